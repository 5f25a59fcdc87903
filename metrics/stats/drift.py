"""Population drift: each group's share per window against a baseline window, PSI and a chi-square test.

Shares count every row (labelled or not), per sensitive feature and per intersection. For each
grouping and window:

- PSI = Σ (p_w − p_b) · ln(p_w / p_b) over the groups present in either window, where a share of 0
  is replaced by PSI_EPSILON = 1e-4 (0.01 %) before the sum so that a group that appears or vanishes
  gives a large but finite term; groups absent from both windows contribute nothing. Common reading:
  < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift. PSI is an effect size: with few rows
  it is noisy, so it is reported next to a test.
- Pearson's chi-square test of homogeneity (scipy.stats.chi2_contingency, no continuity correction)
  on the 2 × k table of baseline and window counts. With many rows even a tiny shift is significant,
  so read the p-value with the PSI. q-values apply Benjamini-Hochberg over the groupings of a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.stats.groups import grouping_name, groupings, slice_label
from fairwatch.metrics.stats.intervals import bh_qvalues, wilson_interval
from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.monitoring.trends import WINDOW

PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class DriftTable:
    """Group shares per window against the baseline window, and one PSI and test per grouping and window."""

    # window, grouping, slice, group, n, total, share, ci_low, ci_high (Wilson), baseline_share, change.
    shares: pd.DataFrame
    # window, grouping, psi, statistic, dof, p_value, q_value, n, baseline_n.
    tests: pd.DataFrame
    baseline: pd.Timestamp


def psi(current: np.ndarray, baseline: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """Population stability index of count rows against baseline counts (last axis = groups)."""
    cur = np.asarray(current, dtype=float)
    base = np.asarray(baseline, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = cur / cur.sum(axis=-1, keepdims=True)
        q = base / base.sum(axis=-1, keepdims=True)
    used = (cur > 0) | (base > 0)
    p, q = np.maximum(p, epsilon), np.maximum(q, epsilon)
    return np.where(used, (p - q) * np.log(p / q), 0.0).sum(axis=-1)


def chi_square(current: np.ndarray, baseline: np.ndarray) -> tuple[float, int, float]:
    """Pearson chi-square of homogeneity of two count vectors: (statistic, dof, p); NaN when undefined."""
    table = np.vstack([baseline, current]).astype(float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return float("nan"), 0, float("nan")
    res = stats.chi2_contingency(table, correction=False)
    return float(res.statistic), int(res.dof), float(res.pvalue)


def choose_baseline(windows: pd.Series, baseline: pd.Timestamp | None) -> pd.Timestamp:
    """The baseline window: the first one, or the window that holds the chosen instant."""
    starts = pd.Series(pd.to_datetime(windows.unique())).sort_values(ignore_index=True)
    if baseline is None:
        return pd.Timestamp(starts.iloc[0])
    before = starts[starts <= pd.Timestamp(baseline)]
    if before.empty:
        raise SpecError(f"the baseline {baseline} is before the first window ({starts.iloc[0]}); choose a later one")
    return pd.Timestamp(before.iloc[-1])


def drift_table(population: pd.DataFrame, spec: AuditSpec, baseline: pd.Timestamp | None = None) -> DriftTable:
    """Shares, PSI and chi-square per window and grouping from counts per (_window, sensitive..., n)."""
    base = choose_baseline(population[WINDOW], baseline)
    share_parts, test_rows = [], []
    for cols in groupings(spec.sensitive):
        name = grouping_name(cols)
        counts = population.pivot_table(index=WINDOW, columns=list(cols), values="n", aggfunc="sum",
                                        fill_value=0, observed=True).sort_index()
        matrix = counts.to_numpy(dtype=float)
        base_row = counts.loc[base].to_numpy(dtype=float)
        totals = matrix.sum(axis=1)
        values = psi(matrix, base_row[None, :])
        for i, window in enumerate(counts.index):
            stat, dof, p = chi_square(matrix[i], base_row)
            test_rows.append({"window": window, "grouping": name, "psi": float(values[i]), "statistic": stat,
                              "dof": dof, "p_value": p, "n": int(totals[i]), "baseline_n": int(base_row.sum())})
        keys = counts.columns.to_frame(index=False)
        slices = [tuple((c, str(v)) for c, v in zip(cols, rec)) for rec in keys.itertuples(index=False)]
        low, high = wilson_interval(matrix, totals[:, None])
        shares = matrix / totals[:, None]
        base_share = base_row / base_row.sum()
        share_parts.append(pd.DataFrame({
            "window": np.repeat(counts.index.to_numpy(), len(slices)),
            "grouping": name,
            "slice": slices * len(counts.index),
            "group": [slice_label(s) for s in slices] * len(counts.index),
            "n": matrix.astype(np.int64).ravel(),
            "total": np.repeat(totals.astype(np.int64), len(slices)),
            "share": shares.ravel(),
            "ci_low": low.ravel(),
            "ci_high": high.ravel(),
            "baseline_share": np.tile(base_share, len(counts.index)),
        }))
    shares = pd.concat(share_parts, ignore_index=True)
    shares["change"] = shares["share"] - shares["baseline_share"]
    tests = pd.DataFrame(test_rows)
    # One family per window: the groupings compared with the baseline in that window.
    tests["q_value"] = tests.groupby("window")["p_value"].transform(lambda p: pd.Series(bh_qvalues(p.to_numpy()), index=p.index))
    return DriftTable(shares=shares, tests=tests, baseline=base)
