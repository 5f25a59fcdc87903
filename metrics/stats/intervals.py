"""Confidence intervals and tests from counts (statsmodels/scipy), vectorised, NaN where undefined."""

from __future__ import annotations

import warnings

import numpy as np

# scipy.stats and statsmodels (about a second of imports, issue 18) are imported where they are used: the report
# (views, overview) imports names from here, and `fairwatch audit` draws it in a worker that never computes an interval.

CONFIDENCE = 0.95


def _arrays(*values) -> list[np.ndarray]:
    """Float arrays of equal shape."""
    return [np.atleast_1d(np.asarray(v, dtype=float)) for v in values]


def wilson_interval(successes, n, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion; NaN where n is 0."""
    x, m = np.broadcast_arrays(*_arrays(successes, n))
    low = np.full(m.shape, np.nan)
    high = np.full(m.shape, np.nan)
    ok = m > 0
    if ok.any():
        from statsmodels.stats.proportion import proportion_confint

        lo, hi = proportion_confint(x[ok], m[ok], alpha=1 - confidence, method="wilson")
        low[ok], high[ok] = np.clip(lo, 0, 1), np.clip(hi, 0, 1)
        # At 0 (or n) successes the bound is exactly 0 (or 1); statsmodels' arithmetic leaves about 3e-18, an
        # interval that misses its own estimate (a diff of two audits of the same rows then read it as a move).
        low[ok & (x == 0)], high[ok & (x == m)] = 0.0, 1.0
    return low, high


def _two_sample(x1, n1, x2, n2):
    """Two samples' counts as broadcast arrays, with the mask of cells where both samples are non-empty."""
    x1, n1, x2, n2 = _arrays(x1, n1, x2, n2)
    x1, n1, x2, n2 = np.broadcast_arrays(x1, n1, x2, n2)
    ok = (n1 > 0) & (n2 > 0)
    return ok, x1, n1, x2, n2


def _two_sample_interval(x1, n1, x2, n2, method: str, compare: str, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """A statsmodels two-sample interval where both samples are non-empty; NaN elsewhere."""
    ok, x1, n1, x2, n2 = _two_sample(x1, n1, x2, n2)
    low, high = np.full(x1.shape, np.nan), np.full(x1.shape, np.nan)
    if ok.any():
        from statsmodels.stats.proportion import confint_proportions_2indep

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = confint_proportions_2indep(x1[ok], n1[ok], x2[ok], n2[ok], method=method,
                                                compare=compare, alpha=1 - confidence)
        low[ok], high[ok] = lo, hi
    return low, high


def difference_interval(x1, n1, x2, n2, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Newcombe's hybrid score interval for p1 - p2."""
    return _two_sample_interval(x1, n1, x2, n2, "newcomb", "diff", confidence)


def ratio_interval(x1, n1, x2, n2, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Log-adjusted interval for p1 / p2 (Katz with 0.5 added where a count is zero)."""
    return _two_sample_interval(x1, n1, x2, n2, "log-adjusted", "ratio", confidence)


def mean_ratio_interval(m1, se1, m2, se2, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """Delta-method interval for m1 / m2 of two positive means on the log scale (their standard errors given).

    log(m1 / m2) has standard error sqrt((se1/m1)^2 + (se2/m2)^2), as the regression table's ratios; NaN unless
    both means are positive.
    """
    m1, se1, m2, se2 = np.broadcast_arrays(*_arrays(m1, se1, m2, se2))
    from scipy import stats

    z = stats.norm.ppf(0.5 + confidence / 2)
    ok = (m1 > 0) & (m2 > 0) & np.isfinite(se1) & np.isfinite(se2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = m1 / np.where(ok, m2, 1.0)
        se_log = np.sqrt((se1 / np.where(ok, m1, 1.0)) ** 2 + (se2 / np.where(ok, m2, 1.0)) ** 2)
    return np.where(ok, ratio * np.exp(-z * se_log), np.nan), np.where(ok, ratio * np.exp(z * se_log), np.nan)


def two_proportion_pvalue(x1, n1, x2, n2) -> np.ndarray:
    """Two-sided p-value for p1 = p2: Fisher's exact test where counts are small, else the score test.

    The score test without small-sample correction is the pooled z-test, i.e. Pearson's chi-square
    on the 2x2 table, which the tests check against scipy.
    """
    ok, x1, n1, x2, n2 = _two_sample(x1, n1, x2, n2)
    p = np.full(x1.shape, np.nan)
    if not ok.any():
        return p
    pooled = np.where(ok, (x1 + x2) / np.where(ok, n1 + n2, 1), np.nan)
    # Expected cell counts below 5 make the normal approximation unreliable: use the exact test.
    small = ok & (np.minimum.reduce([n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled)]) < 5)
    large = ok & ~small
    if large.any():
        from statsmodels.stats.proportion import test_proportions_2indep

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            res = test_proportions_2indep(x1[large], n1[large], x2[large], n2[large], method="score", compare="diff",
                                          correction=False)
        p[large] = np.nan_to_num(np.asarray(res.pvalue, dtype=float), nan=1.0)
    if small.any():
        from scipy import stats
    for i in np.flatnonzero(small):
        table = [[x1[i], n1[i] - x1[i]], [x2[i], n2[i] - x2[i]]]
        p[i] = stats.fisher_exact(np.asarray(table, dtype=np.int64)).pvalue
    return p


def bh_qvalues(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN p-values stay NaN and are not counted."""
    p = np.atleast_1d(np.asarray(pvalues, dtype=float))
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        from statsmodels.stats.multitest import multipletests

        q[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return q


def bh_level(other_pvalues, fdr: float) -> float:
    """The largest p-value one more test can have and still be rejected by Benjamini-Hochberg at `fdr`.

    The family is that test plus `other_pvalues` (NaN ones are not tests), the others held fixed:
    with m tests, it is rejected iff p <= k*fdr/m for some k with at least k-1 others at or below
    k*fdr/m, so the level is the largest such k*fdr/m: fdr/m when no other test is small, fdr alone.
    """
    p = np.sort(np.asarray(other_pvalues, dtype=float).ravel())
    p = p[~np.isnan(p)]
    m = len(p) + 1
    k = np.arange(1, m + 1)
    level = fdr * (k / m)  # as statsmodels computes the steps, so the two agree to the last bit
    # k = 1 always qualifies (no other test needed), so the maximum exists.
    return float(level[np.searchsorted(p, level, side="right") >= k - 1].max())


def normal_interval(value, std_error, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """A normal-approximation interval value ± z·se (for non-proportions such as AUC)."""
    from scipy import stats

    v, se = _arrays(value, std_error)
    z = stats.norm.ppf(0.5 + confidence / 2)
    return v - z * se, v + z * se
