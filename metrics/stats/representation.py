"""Representation: how many rows each group has, against reference population shares."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from fairwatch.metrics.stats.groups import grouping_name, groupings, slice_label
from fairwatch.metrics.stats.intervals import wilson_interval
from fairwatch.metrics.audit.spec import AuditSpec


def compute_representation(population: pd.DataFrame, spec: AuditSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per group: n, share with Wilson interval, reference share and ratio; per feature: a fit test.

    Shares count every row, labelled or not. Intersections get a reference share only when every
    feature in them has reference shares, as the product of those shares (independence assumed,
    and said so in `reference_basis`).
    """
    total = int(population["n"].sum())
    rows, tests = [], []
    for cols in groupings(spec.sensitive):
        g = population.groupby(list(cols), as_index=False, observed=True)["n"].sum()
        low, high = wilson_interval(g["n"], total)
        refs = [spec.shares_for(c) for c in cols]
        for i, rec in enumerate(g.to_dict("records")):
            slice_ = tuple((c, str(rec[c])) for c in cols)
            ref = None
            if all(refs):
                parts = [r.get(v) for r, (_, v) in zip(refs, slice_)]
                ref = float(np.prod(parts)) if all(p is not None for p in parts) else None
            share = rec["n"] / total
            rows.append({
                "grouping": grouping_name(cols), "slice": slice_, "group": slice_label(slice_),
                "n": int(rec["n"]), "share": share, "ci_low": float(low[i]), "ci_high": float(high[i]),
                "reference_share": ref, "ratio": (share / ref) if ref else None,
                "below_min_support": int(rec["n"]) < spec.policy.min_support,
                "reference_basis": None if ref is None else ("given" if len(cols) == 1 else "product of given shares"),
            })
        if len(cols) == 1 and refs[0]:
            tests.append(_fit_test(g, cols[0], refs[0]))
    return pd.DataFrame(rows), pd.DataFrame(tests)


def _fit_test(counts: pd.DataFrame, feature: str, shares: dict[str, float]) -> dict:
    """Chi-square goodness of fit of observed group counts to the reference shares.

    Rows in groups the reference does not list are counted and reported, not silently folded in.
    """
    observed = counts.set_index(feature)["n"]
    listed = [g for g in shares if g in observed.index or shares[g] > 0]
    obs = np.array([observed.get(g, 0) for g in listed], dtype=float)
    exp_share = np.array([shares[g] for g in listed], dtype=float)
    unlisted = int(observed[[g for g in observed.index if g not in shares]].sum())
    if obs.sum() == 0 or len(listed) < 2:
        return {"feature": feature, "statistic": None, "p_value": None, "dof": None, "unlisted_rows": unlisted}
    expected = exp_share / exp_share.sum() * obs.sum()
    stat, p = stats.chisquare(obs, expected)
    return {"feature": feature, "statistic": float(stat), "p_value": float(p), "dof": len(listed) - 1,
            "unlisted_rows": unlisted}
