"""Slice search, the pure half: score, test and de-duplicate slices from their counts.

The counting (every conjunction of up to `max_depth` feature values with `n >= min_support`, over
every row) happens in DuckDB (`connectors/slice_counts.py`); this module turns those counts into a
ranked table.

* Ranking: SliceLine's score (Sagadeeva & Boehm, SIGMOD 2021; apache/systemds `sliceLine.dml`),
  `alpha * (rate / overall_rate - 1) - (1 - alpha) * (N / n - 1)`, where N and the overall rate are
  those of the audited rows in the error signal's denominator. It is exactly the `sliceline`
  package's score, so our top-k (slices with score > 0 and n >= min_support) equals its top-k.
* Evidence: each slice's error rate (Wilson interval) against its complement (every other row of
  the denominator): Newcombe interval of the difference, an exact p-value, and one
  Benjamini-Hochberg family over every slice tested in the audit. The family is valid because the
  only pruning before it is by support, which does not look at the errors. For `score_loss` the
  error is a squared loss, not a 0/1 event: t intervals and Welch's test from (n, sum, sum of
  squares) replace the proportion machinery.
* Why exact, not `intervals.two_proportion_pvalue`: its score test is used whenever expected
  counts reach 5, but BH over hundreds of slices acts on far tails (~0.05/300), where the normal
  approximation of a small slice's error count is too light on the "worse" side. On effect-free
  data (100 seeds, ~270 slices each, bench/bench_slices.py) it flagged something on 10% of seeds,
  twice the stated FDR; Fisher's exact test (conditional on the margins, so the hypergeometric
  distribution; two-sided by doubling the smaller tail) flagged 4%. It costs ~0.2 ms a slice, so
  the score test screens and the exact test decides (`screened_pvalue`).
* Redundancy: a finding is collapsed under an ancestor finding (a slice made of a proper subset of
  its predicates) when it is not significantly worse than the rest of that ancestor
  (ancestor minus slice: the same exact test within the ancestor, BH over all such child-ancestor
  tests at the policy's FDR). Then the ancestor's gap explains the slice's gap:
  the slice is no sharper a description of where the errors are.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import test_proportions_2indep

from metrics.groups import slice_label
from metrics.intervals import CONFIDENCE, bh_qvalues, difference_interval, wilson_interval
from metrics.spec import AuditSpec

# Exact p-values are computed wherever the score test's is below SCREEN times the FDR (see screened_pvalue).
SCREEN = 4.0
# Count columns of SliceCounts.frame; the other columns are the features, in spec order.
COUNT_COLUMNS = ("rows", "labelled", "n", "errors", "errors_sq")
TABLE_COLUMNS = (
    "slice", "group", "depth", "rows", "n", "errors", "errors_sq", "rate", "ci_low", "ci_high", "complement_n",
    "complement_rate", "difference", "diff_ci_low", "diff_ci_high", "p_value", "q_value", "score",
    "finding", "verdict", "parent", "redundant", "sensitive",
)
SIGNAL_DESCRIPTIONS = {
    "misclassification": "misclassification rate (prediction differs from the label) among labelled rows with a prediction",
    "false_negative": "false-negative rate (predicted negative) among labelled actual positives with a prediction",
    "false_positive": "false-positive rate (predicted positive) among labelled actual negatives with a prediction",
    "score_loss": "mean squared score loss (score - label)^2 among labelled rows with a score",
}


@dataclass(frozen=True)
class SliceCounts:
    """Counts per evaluated slice, as the engine returned them (the input of `find_slices`).

    `frame` holds one row per slice with `n >= min_support` (up to `max_depth` predicates): one
    column per feature (the value, or None where the feature is not in the slice) and the counts
    `rows` (every row), `labelled` (rows with a label), `n` (the error signal's denominator),
    `errors` (sum of the error signal) and `errors_sq` (sum of its squares; equal to `errors` for
    0/1 signals).
    """

    frame: pd.DataFrame
    features: tuple[str, ...]
    error: str
    total_rows: int
    total_labelled: int
    total_n: int
    total_errors: float
    total_errors_sq: float
    min_support: int
    max_depth: int
    # Per binned numeric feature: the cut points used (bins are [lo, hi), the last one closed).
    bin_edges: tuple[tuple[str, tuple[float, ...]], ...] = ()
    notes: tuple[str, ...] = ()
    positive_label: str | None = None
    positive_prediction: str | None = None


@dataclass(frozen=True)
class SliceTable:
    """Every evaluated slice, scored and tested, ranked by SliceLine score (best first).

    Columns of `rows`: see TABLE_COLUMNS (`errors_sq` feeds the score_loss intervals). `evaluated`
    counts the slices counted (n >= min_support), `tested` those with a p-value (a non-empty
    complement), the size of the BH family; `findings` counts redundant findings too (see
    `top_findings` for the ones no ancestor explains).
    """

    rows: pd.DataFrame
    error: str
    evaluated: int
    tested: int
    findings: int
    total_n: int
    total_errors: float
    overall_rate: float
    max_depth: int
    alpha: float
    notes: tuple[str, ...] = field(default=())

    @property
    def note(self) -> str | None:
        """The notes as one line for a banner, or None."""
        return " ".join(self.notes) if self.notes else None


def sliceline_score(n, errors, total_n: float, total_errors: float, alpha: float) -> np.ndarray:
    """SliceLine's score of slices: relative error against relative size, weighted by alpha."""
    n = np.asarray(n, dtype=float)
    errors = np.asarray(errors, dtype=float)
    if total_n <= 0 or total_errors <= 0:
        # Without any error the score is undefined (the package divides by a zero average error).
        return np.full(n.shape, np.nan)
    average = total_errors / total_n
    with np.errstate(divide="ignore", invalid="ignore"):
        score = alpha * ((errors / n) / average - 1) - (1 - alpha) * (total_n / n - 1)
    return np.where(n > 0, score, np.nan)


def _slices_of(frame: pd.DataFrame, features: tuple[str, ...]) -> list[tuple[tuple[str, str], ...]]:
    """Each row's slice: its (feature, value) pairs in spec order."""
    values = frame[list(features)].to_numpy(dtype=object)
    out = []
    for row in values:
        out.append(tuple((f, str(v)) for f, v in zip(features, row) if v is not None and v is not pd.NA))
    return out


def exact_pvalue(x, n, total_x, total_n) -> np.ndarray:
    """Fisher's exact test of a part (x of n) against the rest of its whole (total_x of total_n), two-sided by doubling."""
    x, n, tx, tn = (np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, n, total_x, total_n))
    x, n, tx, tn = np.broadcast_arrays(x, n, tx, tn)
    p = np.full(x.shape, np.nan)
    # Both the part and the rest must be non-empty for there to be a comparison.
    ok = (n > 0) & (tn - n > 0)
    if ok.any():
        k, m, succ, draws = (np.rint(v[ok]).astype(np.int64) for v in (x, tn, tx, n))
        # Given the margins, the part's count is hypergeometric: the conditional (Fisher) test. Only
        # the tail on the observation's side is computed (each costs ~0.2 ms): the other one is at
        # least about 1/2, so doubled it could only give p = 1.
        above = k * m >= succ * draws
        tail = np.empty(k.shape)
        tail[above] = stats.hypergeom.sf(k[above] - 1, m[above], succ[above], draws[above])
        tail[~above] = stats.hypergeom.cdf(k[~above], m[~above], succ[~above], draws[~above])
        p[ok] = np.minimum(1.0, 2 * tail)
    return p


def screened_pvalue(x, n, total_x, total_n, fdr: float) -> np.ndarray:
    """Two-sided p-values of parts against the rest of their wholes: exact wherever one can matter.

    The score test (statsmodels, vectorised) screens; Fisher's exact test (`exact_pvalue`, ~0.2 ms
    each) replaces it where it gives p < SCREEN * fdr or an expected count is below 5. Only p-values
    below the FDR can decide a finding (a BH q-value is never below its p-value, and a p-value at
    or above the FDR cannot bring another q-value below it), so every decision rests on exact ones.
    """
    x, n, tx, tn = np.broadcast_arrays(*(np.atleast_1d(np.asarray(v, dtype=float)) for v in (x, n, total_x, total_n)))
    rest_x, rest_n = tx - x, tn - n
    p = np.full(x.shape, np.nan)
    ok = (n > 0) & (rest_n > 0)
    if not ok.any():
        return p
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = test_proportions_2indep(x[ok], n[ok], rest_x[ok], rest_n[ok], method="score", compare="diff")
        pooled = tx[ok] / tn[ok]
        expected = np.minimum.reduce([n[ok] * pooled, n[ok] * (1 - pooled), rest_n[ok] * pooled,
                                      rest_n[ok] * (1 - pooled)])
    # No variation at all (every row an error, or none) is no evidence of a difference.
    p[ok] = np.nan_to_num(np.asarray(res.pvalue, dtype=float), nan=1.0)
    need = np.zeros(x.shape, dtype=bool)
    need[ok] = (p[ok] < min(1.0, SCREEN * fdr)) | (expected < 5)
    if need.any():
        p[need] = exact_pvalue(x[need], n[need], tx[need], tn[need])
    return p


def _mean_stats(total, total_sq, n) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample variance from (sum, sum of squares, n); NaN where undefined."""
    total, total_sq, n = (np.asarray(v, dtype=float) for v in (total, total_sq, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        var = np.where(n > 1, (total_sq - n * mean**2) / (n - 1), np.nan)
    return mean, np.clip(var, 0, None)


def _loss_tests(errors, errors_sq, n, c_errors, c_errors_sq, c_n) -> dict[str, np.ndarray]:
    """t interval of a mean loss and Welch's test and interval for the difference to the complement."""
    mean, var = _mean_stats(errors, errors_sq, n)
    c_mean, c_var = _mean_stats(c_errors, c_errors_sq, c_n)
    n, c_n = np.asarray(n, dtype=float), np.asarray(c_n, dtype=float)
    q = 0.5 + CONFIDENCE / 2
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        se = np.sqrt(var / n)
        half = stats.t.ppf(q, n - 1) * se
        a, b = var / n, c_var / c_n
        se_d = np.sqrt(a + b)
        # Welch-Satterthwaite degrees of freedom.
        df = (a + b) ** 2 / (a**2 / (n - 1) + b**2 / (c_n - 1))
        half_d = stats.t.ppf(q, df) * se_d
        res = stats.ttest_ind_from_stats(mean, np.sqrt(var), n, c_mean, np.sqrt(c_var), c_n, equal_var=False)
    p = np.asarray(res.pvalue, dtype=float)
    ok = (n > 1) & (c_n > 1)
    # Identical constant losses on both sides (e.g. every score exact) are no evidence of a gap.
    p = np.where(ok & np.isnan(p) & (se_d == 0), 1.0, p)
    p = np.where(ok, p, np.nan)
    diff = mean - c_mean
    return {
        "rate": mean, "ci_low": np.clip(mean - half, 0, None), "ci_high": mean + half,
        "complement_rate": c_mean, "difference": diff,
        "diff_ci_low": diff - half_d, "diff_ci_high": diff + half_d, "p_value": p,
    }


def _proportion_tests(errors, n, c_errors, c_n, fdr: float) -> dict[str, np.ndarray]:
    """Wilson interval of a rate, Newcombe interval and exact p-value of its difference to the complement."""
    errors, n, c_errors, c_n = (np.asarray(v, dtype=float) for v in (errors, n, c_errors, c_n))
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(n > 0, errors / n, np.nan)
        c_rate = np.where(c_n > 0, c_errors / c_n, np.nan)
    low, high = wilson_interval(errors, n)
    d_low, d_high = difference_interval(errors, n, c_errors, c_n)
    return {
        "rate": rate, "ci_low": low, "ci_high": high, "complement_rate": c_rate,
        "difference": rate - c_rate, "diff_ci_low": d_low, "diff_ci_high": d_high,
        "p_value": screened_pvalue(errors, n, errors + c_errors, n + c_n, fdr),
    }


def _redundancy(table: pd.DataFrame, fdr: float, proportion: bool) -> tuple[list, np.ndarray]:
    """For each finding: the ancestor finding that explains it (None if none does) and whether one does."""
    parent: list = [None] * len(table)
    redundant = np.zeros(len(table), dtype=bool)
    finding = table["finding"].to_numpy()
    slices = table["slice"].tolist()
    index = {s: i for i, s in enumerate(slices)}
    pairs = []  # (child position, ancestor position)
    for i in np.flatnonzero(finding & (table["depth"].to_numpy() >= 2)):
        s = slices[i]
        for k in range(1, len(s)):
            for sub in itertools.combinations(s, k):
                j = index.get(sub)
                if j is not None and finding[j]:
                    pairs.append((i, j))
    if not pairs:
        return parent, redundant
    child = np.array([p[0] for p in pairs])
    anc = np.array([p[1] for p in pairs])
    n, e = table["n"].to_numpy(float), table["errors"].to_numpy(float)
    # Child against the rest of its ancestor: disjoint rows, so the two-sample tests apply.
    rest_n, rest_e = n[anc] - n[child], e[anc] - e[child]
    if proportion:
        p = screened_pvalue(e[child], n[child], e[anc], n[anc], fdr)
        with np.errstate(divide="ignore", invalid="ignore"):
            worse = e[child] / n[child] > np.where(rest_n > 0, rest_e / rest_n, np.inf)
    else:
        sq = table["errors_sq"].to_numpy(float)
        res = _loss_tests(e[child], sq[child], n[child], rest_e, sq[anc] - sq[child], rest_n)
        p, worse = res["p_value"], res["difference"] > 0
    # The ancestor covering exactly the child's rows leaves nothing to compare: it explains the child.
    p = np.where(rest_n > 0, p, 1.0)
    q = bh_qvalues(p)
    sharper = (q < fdr) & worse
    depth = table["depth"].to_numpy()
    score = table["score"].to_numpy(float)
    best: dict[int, tuple] = {}
    for i, j, is_sharper in zip(child, anc, sharper):
        if is_sharper:
            continue
        # Collapse under the closest explaining ancestor (deepest), then the best-scoring one.
        key = (depth[j], np.nan_to_num(score[j], nan=-np.inf), -j)
        if i not in best or key > best[i][0]:
            best[i] = (key, j)
    for i, (_, j) in best.items():
        parent[i] = slices[j]
        redundant[i] = True
    return parent, redundant


def find_slices(counts: SliceCounts, spec: AuditSpec) -> SliceTable:
    """Score, test and de-duplicate every evaluated slice; ranked by SliceLine score."""
    frame = counts.frame.reset_index(drop=True)
    alpha = spec.slices.alpha
    notes = list(counts.notes)
    proportion = counts.error != "score_loss"
    slices = _slices_of(frame, counts.features)
    keep = np.array([len(s) > 0 for s in slices], dtype=bool)
    frame = frame.loc[keep].reset_index(drop=True)
    slices = [s for s, k in zip(slices, keep) if k]
    n = frame["n"].to_numpy(dtype=np.int64)
    errors = frame["errors"].to_numpy(dtype=float)
    errors_sq = frame["errors_sq"].to_numpy(dtype=float)
    total_n, total_e = counts.total_n, float(counts.total_errors)
    c_n, c_e = total_n - n, total_e - errors
    if proportion:
        res = _proportion_tests(errors, n, c_e, c_n, spec.policy.fdr)
    else:
        res = _loss_tests(errors, errors_sq, n, c_e, float(counts.total_errors_sq) - errors_sq, c_n)
    table = pd.DataFrame({
        "slice": pd.Series(slices, dtype=object),
        "group": [slice_label(s) for s in slices],
        "depth": np.array([len(s) for s in slices], dtype=np.int64),
        "rows": frame["rows"].to_numpy(dtype=np.int64),
        "n": n,
        "errors": frame["errors"].to_numpy(dtype=np.int64) if proportion else errors,
        "errors_sq": errors_sq,
        **{k: res[k] for k in ("rate", "ci_low", "ci_high")},
        "complement_n": c_n.astype(np.int64),
        **{k: res[k] for k in ("complement_rate", "difference", "diff_ci_low", "diff_ci_high", "p_value")},
    })
    # One family per audit: every slice that could be tested (a non-empty complement).
    table["q_value"] = bh_qvalues(table["p_value"].to_numpy())
    table["score"] = sliceline_score(n, errors, total_n, total_e, alpha)
    table["finding"] = (
        (table["q_value"] < spec.policy.fdr) & (table["n"] >= spec.policy.min_support)
        & (table["difference"] > 0)
    ).to_numpy(dtype=bool)
    table["verdict"] = np.where(table["finding"], "finding", "inconclusive")
    parent, redundant = _redundancy(table, spec.policy.fdr, proportion)
    table["parent"] = pd.Series(parent, dtype=object)
    table["redundant"] = redundant
    # Slices on a sensitive feature are the fairness findings; the rest locate model errors.
    sensitive = set(spec.sensitive)
    table["sensitive"] = np.array([any(f in sensitive for f, _ in s) for s in slices], dtype=bool)
    # Best score first; ties (and undefined scores) by size, then by name, so the order is stable.
    table = table.sort_values(["score", "n", "group"], ascending=[False, False, True], na_position="last",
                              kind="mergesort").reset_index(drop=True)
    table = table[list(TABLE_COLUMNS)]
    overall = total_e / total_n if total_n else float("nan")
    if total_n and total_e == 0:
        notes.append(
            f"No errors at all: the {SIGNAL_DESCRIPTIONS[counts.error]} is 0 on all {total_n:,} rows, "
            f"so no slice can be worse than the rest; nothing to find."
        )
    elif not table["finding"].any() and len(table):
        notes.append(
            f"No finding: no slice's {counts.error.replace('_', ' ')} rate is significantly higher than the "
            f"rest at FDR {spec.policy.fdr:g} ({int(table['p_value'].notna().sum()):,} slices tested)."
        )
    return SliceTable(
        rows=table,
        error=counts.error,
        evaluated=len(table),
        tested=int(table["p_value"].notna().sum()),
        findings=int(table["finding"].sum()),
        total_n=int(total_n),
        total_errors=total_e,
        overall_rate=overall,
        max_depth=counts.max_depth,
        alpha=alpha,
        notes=tuple(notes),
    )


def top_findings(table: SliceTable, k: int | None = None, sensitive_only: bool = False) -> pd.DataFrame:
    """The k best-scoring findings that no ancestor explains (all when k is None), optionally on sensitive features."""
    rows = table.rows
    out = rows[rows["finding"] & ~rows["redundant"]]
    if sensitive_only:
        out = out[out["sensitive"]]
    return out.head(k).reset_index(drop=True) if k is not None else out.reset_index(drop=True)
