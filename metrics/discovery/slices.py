"""Slice search, the pure half: score, test and de-duplicate slices from their counts.

The counting (every conjunction of up to `max_depth` feature values with `n >= min_support`, over
every row) happens in DuckDB (`connectors/slice_counts.py`); this module turns those counts into a
ranked table.

* Ranking: SliceLine's score (Sagadeeva & Boehm, SIGMOD 2021; apache/systemds `sliceLine.dml`),
  `alpha * (rate / overall_rate - 1) - (1 - alpha) * (N / n - 1)`, where N and the overall rate are
  those of the audited rows in the error signal's denominator. It is exactly the `sliceline`
  package's score, so our top-k (slices with score > 0 and n >= min_support) equals its top-k.
* Evidence: each slice's error rate (Wilson interval) against its complement (every other row of
  the denominator): Newcombe interval of the difference and an exact p-value. For `score_loss` the
  error is a squared loss, not a 0/1 event: t intervals and Welch's test from (n, sum, sum of
  squares) replace the proportion machinery.
* Why exact, not `intervals.two_proportion_pvalue`: its score test is used whenever expected
  counts reach 5, but the decisions here act on far tails (~0.05/300), where the normal
  approximation of a small slice's error count is too light on the "worse" side. On effect-free
  data (100 seeds, ~270 slices each, bench/bench_slices.py) it flagged something on 10% of seeds,
  twice the stated FDR; Fisher's exact test (conditional on the margins, so the hypergeometric
  distribution; two-sided by doubling the smaller tail) flagged 4%. It costs ~0.2 ms a slice, so
  the score test screens and the exact test decides (`screened_pvalue`).
* The rule (issue 16; `finding_rule` says it in one sentence): a finding is significant AND
  material (`material`: above the policy's ratio_high times the rest's error, and at least
  min_difference higher) AND the sharpest description of its rows. The score ranks, never filters.
  - Significance for the list shown: a slice is significant at t = fdr * k / m, m the slices tested,
    k the findings shown (at least 1), the largest k with at least k findings shown at that level
    (`_select`): Benjamini-Hochberg with the shown findings as the discoveries. BH over every slice
    lets the many redundant slices under one real effect loosen the level for everything, so the
    visible list filled with chance slices; here the expected number of null slices below t is at
    most fdr * k. q_value = p * m / k. Measured on planted truth: bench/bench_findings.py.
  - Sharpest description (`_arrange`), among slices significant at t: a child no worse than the rest
    of a significantly worse ancestor is listed under it ('explained_by_parent'; when that ancestor is
    not material the child is real but small: it only crossed the band inside a small gap); an
    ancestor whose rows outside a sharper child are no longer a finding (material and significant
    against every row outside the ancestor) is listed under the child ('explained_by_child', not for
    a child that only adds '(missing)' predicates: missing values are the ancestor's data problem);
    when both stand, the child is listed inside the ancestor ('sharper_part'). Overlapping findings
    of the same rows are merged ('same_rows'): from the counts of their intersection here when the
    search counted it, and otherwise from SQL counts of which findings each row is in
    (`merge_overlaps` over `connectors.quality_counts.fetch_overlap_counts`, in the audit). A slice and a slice inside it are never both
    findings.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.proportion import test_proportions_2indep

from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.stats.intervals import CONFIDENCE, difference_interval, wilson_interval
from fairwatch.metrics.audit.spec import MEAN_LOSSES, AuditSpec

Slice = tuple[tuple[str, str], ...]

# Exact p-values are computed wherever the score test's is below SCREEN times the FDR (see screened_pvalue).
SCREEN = 4.0
# The score test's p-value stands where it is this many times below the smallest level tested and every
# expected count is at least FLOOR_EXPECTED (there its error is orders of magnitude smaller than the factor).
FLOOR_FACTOR = 1e-6
FLOOR_EXPECTED = 50
# A slice predicate on a missing value (the value the counting writes for NULL).
MISSING_VALUE = "(missing)"
# Count columns of SliceCounts.frame; the other columns are the features, in spec order.
COUNT_COLUMNS = ("rows", "labelled", "n", "errors", "errors_sq")
TABLE_COLUMNS = (
    "slice", "group", "depth", "rows", "n", "errors", "errors_sq", "rate", "ci_low", "ci_high", "complement_n",
    "complement_rate", "difference", "diff_ci_low", "diff_ci_high", "p_value", "q_value", "score",
    "material", "finding", "verdict", "parent", "relation", "redundant", "sensitive",
)
SIGNAL_DESCRIPTIONS = {
    "misclassification": "misclassification rate (prediction differs from the label) among labelled rows with a prediction",
    "false_negative": "false-negative rate (predicted negative) among labelled actual positives with a prediction",
    "false_positive": "false-positive rate (predicted positive) among labelled actual negatives with a prediction",
    "score_loss": "mean squared score loss (score - label)^2 among labelled rows with a score",
    "absolute_error": "mean absolute error |prediction - label| among rows with a finite label and prediction",
    "squared_error": "mean squared error (prediction - label)^2 among rows with a finite label and prediction",
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

    Columns of `rows`: see TABLE_COLUMNS (`errors_sq` feeds the score_loss intervals); `verdict` is
    'finding' (shown), 'explained' (significant and material, listed under `parent` for `relation`),
    'small' (significant, not material: real but small), 'inconclusive' (worse, not significant) or
    'not_worse'. `evaluated` counts the slices counted (n >= min_support), `tested` those with a
    p-value (m); `findings` the significant and material slices (shown or explained), `shown` the
    findings shown, `small` the real-but-small ones; `threshold` the level t = fdr * k / m.
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
    shown: int = 0
    small: int = 0
    threshold: float = float("nan")
    rule: str = ""

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


def screened_pvalue(x, n, total_x, total_n, fdr: float, floor: float | None = None) -> np.ndarray:
    """Two-sided p-values of parts against the rest of their wholes: exact wherever one can matter.

    The score test (statsmodels, vectorised) screens; Fisher's exact test (`exact_pvalue`, ~0.2 ms
    each) replaces it where it gives p < SCREEN * fdr or an expected count is below 5. Only p-values
    below the FDR can decide a finding (a BH q-value is never below its p-value, and a p-value at
    or above the FDR cannot bring another q-value below it), so every decision rests on exact ones.
    floor: the smallest level any decision is taken at; where the score test's p-value is a million
    times below it and every expected count is at least FLOOR_EXPECTED, the exact test could not
    change a decision (its p-value differs from the score test's by far less than that factor
    there), so the score test's stands and the exact test's cost is saved.
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
    if floor is not None:
        need[ok] &= ~((p[ok] < FLOOR_FACTOR * floor) & (expected >= FLOOR_EXPECTED))
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


def _proportion_tests(errors, n, c_errors, c_n, fdr: float, floor: float | None = None) -> dict[str, np.ndarray]:
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
        "p_value": screened_pvalue(errors, n, errors + c_errors, n + c_n, fdr, floor),
    }


def material(rate, rest_rate, policy, lower_is_worse: bool = False) -> np.ndarray:
    """Materially worse than the rest: ratio above the policy's ratio_high and at least min_difference higher.

    lower_is_worse (a selection or true-positive rate): ratio below ratio_low and at least min_difference lower.
    """
    rate, rest = (np.asarray(v, dtype=float) for v in (rate, rest_rate))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(rest > 0, rate / np.where(rest > 0, rest, 1.0), np.where(rate > 0, np.inf, np.nan))
    if lower_is_worse:
        return (rate < rest) & (ratio < policy.ratio_low) & (rest - rate >= policy.min_difference)
    return (rate > rest) & (ratio > policy.ratio_high) & (rate - rest >= policy.min_difference)


def finding_rule(policy) -> str:
    """The rule that makes a slice a finding, in one sentence (pages, reports and the README say the same)."""
    extra = f" and at least {policy.min_difference:g} higher" if policy.min_difference > 0 else ""
    return (f"A slice is a finding when its error is significantly higher than the rest's (q < {policy.fdr:g}) and "
            f"materially so (more than {policy.ratio_high:g} times the rest's{extra}), and no sharper slice explains "
            f"it; significant but smaller gaps are listed apart as real but small.")


def _part_test(x, sq, n, whole_x, whole_sq, whole_n, proportion: bool, fdr: float,
               floor: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """p-value, rate and rest's rate of parts against the rest of their wholes (exact where it can decide)."""
    x, sq, n, wx, wsq, wn = (np.asarray(v, dtype=float) for v in (x, sq, n, whole_x, whole_sq, whole_n))
    rest_x, rest_n = wx - x, wn - n
    if proportion:
        p = screened_pvalue(x, n, wx, wn, fdr, floor=floor) if len(x) else np.array([])
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(n > 0, x / np.where(n > 0, n, 1), np.nan)
            rest = np.where(rest_n > 0, rest_x / np.where(rest_n > 0, rest_n, 1), np.nan)
        return p, rate, rest
    res = _loss_tests(x, sq, n, rest_x, wsq - sq, rest_n)
    return res["p_value"], res["rate"], res["complement_rate"]


@dataclass(frozen=True)
class _Pairs:
    """Every (descendant, ancestor) pair of the candidate pool, with the two tests that order them."""

    child: np.ndarray
    anc: np.ndarray
    sharper_p: np.ndarray      # the child against the rest of its ancestor
    sharper_worse: np.ndarray
    residual_p: np.ndarray     # the ancestor without the child against every row outside the ancestor
    residual_material: np.ndarray
    missing_only: np.ndarray   # the child adds only '(missing)' predicates: a data-quality split, not a population


def _pool_pairs(slices: list, pool: np.ndarray, ancestors: np.ndarray, index: dict, n, e, sq, total: tuple,
                proportion: bool, spec, floor: float) -> _Pairs:
    """The pool's slices with each of their ancestors among `ancestors`, and the pairs' tests (computed once)."""
    child, anc = [], []
    for i in np.flatnonzero(pool):
        s = slices[i]
        for k in range(1, len(s)):
            for sub in itertools.combinations(s, k):
                j = index.get(sub)
                if j is not None and ancestors[j]:
                    child.append(i)
                    anc.append(j)
    c, a = np.array(child, dtype=np.int64), np.array(anc, dtype=np.int64)
    fdr = spec.policy.fdr
    tn, te, tsq = total
    sp, srate, srest = _part_test(e[c], sq[c], n[c], e[a], sq[a], n[a], proportion, fdr, floor)
    # The ancestor without the child, against every row outside the ancestor (the whole: all rows but the child's).
    rp, rrate, rrest = _part_test(e[a] - e[c], sq[a] - sq[c], n[a] - n[c], te - e[c], tsq - sq[c], tn - n[c],
                                  proportion, fdr, floor)
    missing_only = np.array([all(v == MISSING_VALUE for f, v in slices[i] if (f, v) not in set(slices[j]))
                             for i, j in zip(child, anc)], dtype=bool)
    return _Pairs(c, a, np.nan_to_num(sp, nan=1.0), srate > srest, np.nan_to_num(rp, nan=1.0),
                  material(rrate, rrest, spec.policy) & (n[a] - n[c] >= spec.policy.min_support), missing_only)


def _follow(pointer: dict, score: np.ndarray) -> dict:
    """Break any cycle of 'explained by' pointers (rare): the best-scoring member of a cycle stays a finding."""
    for start in list(pointer):
        seen, node = [], start
        while node in pointer and node not in seen:
            seen.append(node)
            node = pointer[node][0]
        if node in seen:
            cycle = seen[seen.index(node):]
            pointer.pop(max(cycle, key=lambda i: (np.nan_to_num(score[i], nan=-np.inf), -i)))
    return pointer


def _arrange(t: float, pool: np.ndarray, worse: np.ndarray, p: np.ndarray, pairs: _Pairs, slices: list, index: dict, order: dict,
             n, e, sq, total: tuple, score: np.ndarray, depth: np.ndarray, proportion: bool, spec,
             floor: float) -> tuple[np.ndarray, dict]:
    """The findings shown at significance level t, and for each other candidate the slice it is listed under.

    Returns (shown mask, {position: (position listed under, relation)}); relations: 'explained_by_parent' (not
    significantly worse than the rest of its ancestor), 'explained_by_child' (the ancestor without this sharper
    child is no longer a finding), 'sharper_part' (both real: the child is listed inside its ancestor), and
    'same_rows' (an overlapping slice without the other's rows is no longer a finding).
    """
    cand = pool & (p < t)
    real = worse & (p < t)  # significantly worse, material or not
    sharper = (pairs.sharper_p < t) & pairs.sharper_worse
    residual = (pairs.residual_p < t) & pairs.residual_material
    # A child no worse than the rest of a significantly worse ancestor only repeats the ancestor's gap,
    # material or small; a child that crosses the band only by chance inside a small gap is that small gap.
    by_parent = cand[pairs.child] & real[pairs.anc] & ~sharper
    by_child = cand[pairs.child] & cand[pairs.anc] & sharper & ~residual & ~pairs.missing_only
    pointer: dict = {}
    # A parent goes under the deepest (then best-scoring) sharper child that explains it, a child under the
    # ancestor that explains it: a finding first, then the deepest, then the best-scoring.
    for c, a in zip(pairs.child[by_child], pairs.anc[by_child]):
        key = (1, depth[c], np.nan_to_num(score[c], nan=-np.inf))
        if a not in pointer or key > pointer[a][2]:
            pointer[a] = (c, "explained_by_child", key)
    for c, a in zip(pairs.child[by_parent], pairs.anc[by_parent]):
        key = (0, bool(cand[a]), depth[a], np.nan_to_num(score[a], nan=-np.inf))
        if c not in pointer or key > pointer[c][2]:
            pointer[c] = (a, "explained_by_parent", key)
    pointer = _follow(pointer, score)
    free = cand.copy()
    free[list(pointer)] = False
    # Both real: a child that its ancestor does not explain, and an ancestor still a finding without it. The
    # ancestor is shown, the child listed inside it, so a parent and its child are never both findings.
    inside = free[pairs.child] & free[pairs.anc] & cand[pairs.anc]
    for c, a in zip(pairs.child[inside], pairs.anc[inside]):
        key = (2, depth[a], np.nan_to_num(score[a], nan=-np.inf))
        if c not in pointer or (pointer[c][1] == "sharper_part" and key > pointer[c][2]):
            pointer[c] = (a, "sharper_part", key)
    shown = free.copy()
    shown[[c for c in pointer if pointer[c][1] == "sharper_part"]] = False
    _merge_overlaps(shown, pointer, t, slices, index, order, n, e, sq, total, score, proportion, spec, floor)
    return shown, {i: v[:2] for i, v in pointer.items()}


def _merge_overlaps(shown: np.ndarray, pointer: dict, t: float, slices: list, index: dict, order: dict,
                    n, e, sq, total: tuple, score: np.ndarray, proportion: bool, spec, floor: float) -> None:
    """Overlapping findings (neither inside the other) that describe the same rows: keep one, list the other under it.

    X goes under Y when X without Y's rows is no longer a finding against the rows outside both; needs the
    counts of their intersection, a slice the search counted (else they stay apart).
    """
    idx = sorted(np.flatnonzero(shown), key=lambda i: (-np.nan_to_num(score[i], nan=-np.inf), i))
    if len(idx) < 2:
        return
    xs, ys, its = [], [], []
    for a, b in itertools.combinations(idx, 2):
        union = dict(slices[a])
        if any(union.get(f, v) != v for f, v in slices[b]):
            continue  # the same feature with another value: disjoint rows
        union.update(slices[b])
        j = index.get(tuple(sorted(union.items(), key=lambda fv: order[fv[0]])))
        if j is None:
            continue
        xs += [a, b]
        ys += [b, a]
        its += [j, j]
    if not xs:
        return
    x, y, i = (np.array(v, dtype=np.int64) for v in (xs, ys, its))
    tn, te, tsq = total
    rp, rrate, rrest = _part_test(e[x] - e[i], sq[x] - sq[i], n[x] - n[i], te - e[y], tsq - sq[y], tn - n[y],
                                  proportion, spec.policy.fdr, floor)
    stays = (np.nan_to_num(rp, nan=1.0) < t) & material(rrate, rrest, spec.policy)
    # A population's slice is never listed under a slice defined by more missing values: its excess on the rows
    # with a missing value is its data problem (its need says so), not another population.
    holes = np.array([sum(v == MISSING_VALUE for _, v in s) for s in slices], dtype=np.int64)
    gone = {(int(a), int(b)) for a, b, s in zip(x, y, stays) if not s and holes[b] <= holes[a]}
    kept: list[int] = []
    # Fewer missing values first, then the best score: of two descriptions of the same rows, that one is kept.
    idx = sorted(idx, key=lambda i: (holes[i], -np.nan_to_num(score[i], nan=-np.inf), i))
    for a in idx:
        host = next((b for b in kept if (a, b) in gone), None)
        if host is not None:
            shown[a] = False
            pointer[a] = (host, "same_rows", ())
            continue
        for b in [b for b in kept if (b, a) in gone]:
            shown[b] = False
            pointer[b] = (a, "same_rows", ())
            kept.remove(b)
        kept.append(a)


def _select(table: pd.DataFrame, slices: list, features: tuple[str, ...], total: tuple, proportion: bool,
            spec: AuditSpec) -> tuple[np.ndarray, dict, np.ndarray, float, int, np.ndarray]:
    """Findings at a significance level set by how many are shown: Benjamini-Hochberg with the shown as discoveries.

    A slice is significant at t = fdr * k / m (m slices tested, k findings shown; k at least 1): the
    largest k with at least k findings shown at that level, searched down from every material slice with
    p < fdr. So the expected number of chance slices among the findings is at most fdr * k, whatever
    the redundancy hidden under them. Returns (shown, pointers, candidates, t, k, material).
    """
    fdr, policy = spec.policy.fdr, spec.policy
    p = np.nan_to_num(table["p_value"].to_numpy(float), nan=1.0)
    m = max(int(table["p_value"].notna().sum()), 1)
    n = table["n"].to_numpy(float)
    e = table["errors"].to_numpy(float)
    sq = table["errors_sq"].to_numpy(float)
    mat = material(table["rate"].to_numpy(float), table["complement_rate"].to_numpy(float), policy) & (
        n >= policy.min_support) & table["p_value"].notna().to_numpy()
    worse = (table["difference"] > 0).to_numpy(bool) & (n >= policy.min_support)
    k = max(int((mat & (p < fdr)).sum()), 1)
    pool = mat & (p < fdr * k / m)
    ancestors = worse & (p < fdr * k / m)
    index = {s: i for i, s in enumerate(slices)}
    order = {f: i for i, f in enumerate(features)}
    score = table["score"].to_numpy(float)
    depth = table["depth"].to_numpy()
    # Below this the score test's p-value cannot be wrong about any level tested here (see screened_pvalue).
    floor = fdr / m
    pairs = _pool_pairs(slices, pool, ancestors, index, n, e, sq, total, proportion, spec, floor)
    while True:
        t = fdr * k / m
        shown, pointer = _arrange(t, pool, worse, p, pairs, slices, index, order, n, e, sq, total, score, depth,
                                  proportion, spec, floor)
        count = int(shown.sum())
        if count >= k or k == 1:
            return shown, pointer, pool & (p < t), t, k, mat
        k = max(count, 1)


def find_slices(counts: SliceCounts, spec: AuditSpec) -> SliceTable:
    """Score, test and de-duplicate every evaluated slice; ranked by SliceLine score."""
    frame = counts.frame.reset_index(drop=True)
    alpha = spec.slices.alpha
    notes = list(counts.notes)
    proportion = counts.error not in MEAN_LOSSES
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
        res = _proportion_tests(errors, n, c_e, c_n, spec.policy.fdr, floor=spec.policy.fdr / max(len(frame), 1))
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
    table["score"] = sliceline_score(n, errors, total_n, total_e, alpha)
    total = (float(total_n), total_e, float(counts.total_errors_sq))
    shown, pointer, cand, t, k, mat = _select(table, slices, counts.features, total, proportion, spec)
    m = max(int(table["p_value"].notna().sum()), 1)
    # The q-value of the rule: p * m / k, k the findings shown (Benjamini-Hochberg with them as the discoveries).
    table["q_value"] = np.minimum(1.0, table["p_value"].to_numpy(float) * m / k)
    worse = (table["difference"] > 0).to_numpy(bool) & table["p_value"].notna().to_numpy()
    significant = worse & (table["q_value"].to_numpy(float) < spec.policy.fdr) & (n >= spec.policy.min_support)
    table["material"] = mat
    # A candidate whose gap is a small ancestor's (it only crossed the band inside it) is real but small too.
    def end(i: int) -> int:
        """Where a chain of 'listed under' pointers ends (cycles were broken in `_arrange`)."""
        seen = set()
        while i in pointer and i not in seen:
            seen.add(i)
            i = pointer[i][0]
        return i

    inside_small = np.array([i in pointer and cand[i] and not cand[end(i)] for i in range(len(slices))],
                            dtype=bool)
    table["finding"] = cand & ~inside_small
    table["verdict"] = np.select(
        [shown, cand & ~inside_small, significant & (~mat | inside_small), worse],
        ["finding", "explained", "small", "inconclusive"], "not_worse")
    table["parent"] = pd.Series([slices[pointer[i][0]] if i in pointer and cand[i] else None
                                 for i in range(len(slices))], dtype=object)
    table["relation"] = pd.Series([pointer[i][1] if i in pointer and cand[i] else None
                                   for i in range(len(slices))], dtype=object)
    table["redundant"] = cand & ~inside_small & ~shown
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
    elif not shown.any() and len(table):
        small = int((table["verdict"] == "small").sum())
        notes.append(
            f"No finding: no slice's {counts.error.replace('_', ' ')} rate is both significantly (q < "
            f"{spec.policy.fdr:g}, {int(table['p_value'].notna().sum()):,} slices tested) and materially (more than "
            f"{spec.policy.ratio_high:g} times) higher than the rest"
            + (f"; {small:,} slice(s) are significantly but only slightly worse (real but small)." if small else ".")
        )
    return SliceTable(
        rows=table,
        error=counts.error,
        evaluated=len(table),
        tested=int(table["p_value"].notna().sum()),
        findings=int(table["finding"].sum()),
        shown=int(shown.sum()),
        small=int((table["verdict"] == "small").sum()),
        threshold=float(t),
        rule=finding_rule(spec.policy),
        total_n=int(total_n),
        total_errors=total_e,
        overall_rate=overall,
        max_depth=counts.max_depth,
        alpha=alpha,
        notes=tuple(notes),
    )


def top_findings(table: SliceTable, k: int | None = None, sensitive_only: bool = False) -> pd.DataFrame:
    """The k best-scoring findings shown (all when k is None), optionally only those on sensitive features."""
    rows = table.rows
    out = rows[rows["finding"] & ~rows["redundant"]]
    if sensitive_only:
        out = out[out["sensitive"]]
    return out.head(k).reset_index(drop=True) if k is not None else out.reset_index(drop=True)


def overlap_priority(table: SliceTable) -> list[Slice]:
    """The findings shown, in the order overlapping findings keep their shared rows: highest error first.

    A slice defined by a missing value comes after those defined by values alone: where it overlaps a
    population's slice, the missing values are that population's data problem (its need), not another population.
    """
    shown = table.rows[table.rows["verdict"] == "finding"]
    shown = shown.assign(_missing=[sum(v == MISSING_VALUE for _, v in s) for s in shown["slice"]])
    ranked = shown.sort_values(["_missing", "rate", "n", "group"], ascending=[True, False, False, True],
                               kind="mergesort")
    return [tuple(s) for s in ranked["slice"]]


def merge_overlaps(table: SliceTable, findings: list, patterns: pd.DataFrame | None, spec: AuditSpec) -> SliceTable:
    """Findings whose own rows are no longer a finding describe other findings' rows: listed under one of them.

    `patterns` (SQL, `connectors.quality_counts.fetch_overlap_counts`): the error signal per pattern of
    membership in `findings` (the findings shown, in `overlap_priority` order). A finding's own rows are
    those in no other finding still on the list (a slice defined by more missing values takes no rows
    from one defined by fewer: the missing values are that population's data problem). Each round the
    findings whose own rows are not significantly (at the search's level) and materially worse than the
    rows in no finding are found, and the weakest of them (lowest ratio, then latest in the order) is
    listed under the finding that shares most rows with it ('same_rows'). Then the level follows the
    fewer findings shown (t = fdr * k / m): a finding no longer significant at it becomes inconclusive.
    Mean losses (score_loss, a regression's absolute or squared error) are not merged this way.
    """
    if patterns is None or len(findings) < 2 or not len(patterns) or table.error in MEAN_LOSSES:
        return table
    rows = table.rows.copy()
    policy = spec.policy
    member = np.array([[c == "1" for c in pat] for pat in patterns["pattern"]], dtype=bool)
    n, e = patterns["n"].to_numpy(float), patterns["errors"].to_numpy(float)
    holes = np.array([sum(v == MISSING_VALUE for _, v in f) for f in findings])
    m = max(table.tested, 1)
    t = table.threshold
    active = np.ones(len(findings), dtype=bool)
    hosts: dict[int, int] = {}
    while active.sum() > 1:
        rest = ~member[:, active].any(axis=1)
        rest_n, rest_e = n[rest].sum(), e[rest].sum()
        own_n, own_e = np.zeros(len(findings)), np.zeros(len(findings))
        for j in np.flatnonzero(active):
            takers = active & (holes <= holes[j])
            takers[j] = False
            own = member[:, j] & ~member[:, takers].any(axis=1)
            own_n[j], own_e[j] = n[own].sum(), e[own].sum()
        p, rate, rest_rate = _part_test(own_e, own_e, own_n, own_e + rest_e, own_e + rest_e, own_n + rest_n, True,
                                        policy.fdr, policy.fdr / m)
        stays = (np.nan_to_num(p, nan=1.0) < t) & material(rate, rest_rate, policy) & (own_n >= policy.min_support)
        failing = np.flatnonzero(active & ~stays)
        if not len(failing):
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.nan_to_num(rate / rest_rate, nan=0.0, posinf=np.inf)
        j = min(failing, key=lambda i: (ratio[i], -i))
        active[j] = False
        shared = [(n[member[:, j] & member[:, i]].sum(), -i) for i in np.flatnonzero(active)]
        hosts[j] = -max(shared)[1]
    pos = {tuple(s): i for i, s in enumerate(rows["slice"])}
    for j, h in hosts.items():
        i = pos.get(tuple(findings[j]))
        if i is None:
            continue
        rows.at[i, "verdict"] = "explained"
        rows.at[i, "redundant"] = True
        rows.at[i, "parent"] = tuple(findings[h])
        rows.at[i, "relation"] = "same_rows"
    merged = len(hosts)
    if not merged:
        return table
    # Fewer findings shown: the level drops with them (the rule's fixed point, from the merged list down).
    p_all = rows["p_value"].to_numpy(float)
    while True:
        k = max(int((rows["verdict"] == "finding").sum()), 1)
        q = np.minimum(1.0, p_all * m / k)
        lost = (rows["verdict"] == "finding").to_numpy() & ~(q < policy.fdr)
        if not lost.any():
            break
        rows.loc[lost, "verdict"] = "inconclusive"
        rows.loc[lost, "finding"] = False
    rows["q_value"] = q
    worse = (rows["difference"] > 0).to_numpy() & rows["p_value"].notna().to_numpy()
    significant = worse & (q < policy.fdr) & (rows["n"].to_numpy() >= policy.min_support)
    retest = rows["verdict"].isin(["small", "inconclusive"]).to_numpy()
    rows.loc[retest, "verdict"] = np.where(significant[retest], "small", "inconclusive")
    rows.loc[retest & ~worse, "verdict"] = "not_worse"
    shown = int((rows["verdict"] == "finding").sum())
    note = (f"{merged} finding(s) merged into another: without the rows of the other findings they are no longer "
            f"significantly and materially worse than the rows in no finding.")
    return replace(table, rows=rows, shown=shown, threshold=policy.fdr * max(shown, 1) / m,
                   small=int((rows["verdict"] == "small").sum()), findings=int(rows["finding"].sum()),
                   notes=table.notes + (note,))
