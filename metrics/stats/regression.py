"""Regression audits: per-group error metrics, intervals and disparities, exactly from SQL sums.

Every metric is a function of the per-group count and sums that the engine returns
(connectors/task_counts.py): with e = prediction - label,

- mean_prediction = Σŷ/n, mean_label = Σy/n, mean_error = Σe/n, mean_absolute_error = Σ|e|/n,
  mean_squared_error = Σe²/n, root_mean_squared_error = √MSE, mean_overprediction = Σmax(e,0)/n,
  mean_underprediction = Σmax(-e,0)/n, r2_score = 1 - Σe² / Σ(y - ȳ)²; the label's sum of squared
  deviations is combined from each cell's mean and var_pop (Chan et al.), not from Σy² - (Σy)²/n,
  which cancels catastrophically for labels far from zero. R² is NaN where every label is equal
  (sklearn returns a made-up 0 or 1 there unless force_finite=False).
- Intervals (95%): a t interval for every mean (mean ± t(n-1)·s/√n, s from the sums of x and x²);
  MSE is the mean of e², so its interval is the t interval with s² = (Σe⁴ - n·MSE²)/(n-1) (the moment
  estimate of Var(e²)); RMSE's interval is the square root of MSE's bounds; R²'s is normal with
  se(R²) = se(MSE) / (Σ(y-ȳ)²/n), i.e. conditional on the group's label variance.
- Disparities to the reference group: difference with a Welch-Satterthwaite t interval, ratio with a
  delta-method interval on the log scale (RMSE: se = se(MSE)/(2·RMSE)), Welch's t-test for the
  difference of the means (RMSE shares MSE's test), Benjamini-Hochberg over one family: every
  tested comparison of the audit. Verdicts (policy band, default 0.8-1.25) on mean absolute error,
  root mean squared error and mean prediction; the other metrics are descriptive.
- Distributions: prediction and error histograms from bucket counts, and per group the two-sample
  Kolmogorov-Smirnov statistic against the rest of its grouping from the same buckets. Bucketed, D
  is the largest CDF gap at bucket edges: never above the exact D, and below it by at most the
  larger of the two samples' share in one bucket.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from fairwatch.metrics.stats.groups import GroupTable, _between_groups, _Values, grouping_name, groupings, slice_label, verdicts
from fairwatch.metrics.stats.intervals import CONFIDENCE, bh_qvalues
from fairwatch.metrics.audit.outcomes import DataSummary, check_rows
from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.task_tables import Layout, layout, long_rows, sum_rows

METRICS = ("mean_prediction", "mean_label", "mean_error", "mean_absolute_error", "mean_squared_error",
           "root_mean_squared_error", "r2_score", "mean_overprediction", "mean_underprediction")
# Judged against the policy band: errors (lower is better) and the output itself (parity of the numbers).
JUDGED = frozenset({"mean_prediction", "mean_absolute_error", "root_mean_squared_error"})
# Compared with Welch's t-test and counted in the audit's one BH family (RMSE shares MSE's test).
TESTED = frozenset({"mean_prediction", "mean_error", "mean_absolute_error", "root_mean_squared_error",
                    "mean_overprediction", "mean_underprediction"})
LOWER_IS_BETTER = frozenset({"mean_absolute_error", "mean_squared_error", "root_mean_squared_error",
                             "mean_overprediction", "mean_underprediction"})
PREDICTION_BUCKETS = 100
ERROR_BUCKETS = 40
HISTOGRAM_BINS = 20
_SUMS = ("n", "s_e", "s_e2", "s_e4", "s_ae", "s_over", "s_over2", "s_under", "s_y", "s_y2", "s_p", "s_p2")


@dataclass(frozen=True)
class BucketEdges:
    """Where the histogram buckets of predictions and errors start and how wide they are."""

    p_lo: float
    p_width: float
    e_lo: float
    e_width: float

    def edges(self, kind: str) -> np.ndarray:
        """The bucket edges of 'prediction' or 'error' (buckets + 1 values)."""
        lo, width, count = ((self.p_lo, self.p_width, PREDICTION_BUCKETS) if kind == "prediction"
                            else (self.e_lo, self.e_width, ERROR_BUCKETS))
        return lo + width * np.arange(count + 1)


@dataclass(frozen=True)
class RegressionResult:
    """A regression audit's extra sections: histograms and distribution gaps per group, and notes."""

    histograms: pd.DataFrame  # grouping, slice, kind, bin, low, high, n, share
    distribution_gaps: pd.DataFrame  # grouping, slice, n, rest_n, ks_statistic, p_value, q_value
    notes: tuple[str, ...] = ()


def bucket_edges(cells: pd.DataFrame) -> BucketEdges:
    """Equal-width buckets over the observed range of predictions and errors (width 1 for a single value)."""
    def span(lo: float, hi: float, count: int) -> tuple[float, float]:
        """(low edge, width) of `count` buckets over [lo, hi]."""
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            return (lo if math.isfinite(lo) else 0.0), 1.0
        return lo, (hi - lo) / count

    p_lo, p_w = span(float(cells["p_min"].min()), float(cells["p_max"].max()), PREDICTION_BUCKETS)
    e_lo, e_w = span(float(cells["e_min"].min()), float(cells["e_max"].max()), ERROR_BUCKETS)
    return BucketEdges(p_lo=p_lo, p_width=p_w, e_lo=e_lo, e_width=e_w)


def prediction_is_ratio_scale(cells: pd.DataFrame) -> bool:
    """Whether a ratio of mean predictions means anything: no usable prediction is negative.

    Amounts (limits, prices, salaries) have a true zero, so 0.8x of the reference's mean is a gap one can read. A
    score centred on 0 (a z-score: law school's ZFYA) does not: there 0.04 against 0.14 reads as 0.31x, and a
    negative mean as a negative ratio. Such a model's mean prediction is reported (difference, Welch test) but not
    judged against the ratio band; the distribution gap compares its groups' predictions.
    """
    low = pd.to_numeric(cells["p_min"], errors="coerce").min() if len(cells) else float("nan")
    return not low < 0


def regression_summary(cells: pd.DataFrame, spec: AuditSpec) -> DataSummary:
    """Where every row went: labelled, unlabelled, unpredicted, NaN/inf (counted, never averaged in)."""
    total = int(cells["all_rows"].sum()) if len(cells) else 0
    unlabelled = int(cells["unlabelled"].sum()) if len(cells) else 0
    rows, _ = check_rows(total, total - unlabelled, spec)
    summary = DataSummary(rows=rows, labelled_rows=rows - unlabelled, unlabelled_rows=unlabelled,
                          unpredicted_rows=int(cells["unpredicted"].sum()), positive_label=None,
                          positive_prediction=None, nonfinite_rows=int(cells["nonfinite"].sum()))
    if summary.evaluated_rows == 0:
        raise DataError(f"no row has both a finite label ({spec.label}) and a finite prediction ({spec.prediction}); "
                        f"{summary.nonfinite_rows:,} are NaN or infinite: fix the values before auditing")
    return summary


def _label_m2(lay: Layout, n: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> np.ndarray:
    """Per group, Σ(y - ȳ)² combined from the rows' means and m2 (Chan et al.): stable for any label scale."""
    n_g = sum_rows(lay, n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_g = sum_rows(lay, np.where(n > 0, n * np.nan_to_num(mean), 0.0)) / np.where(n_g > 0, n_g, 1)
    out = np.zeros(lay.groups.size)
    for ids in lay.member:
        ok = (ids >= 0) & (n > 0)
        np.add.at(out, ids[ok], m2[ok] + n[ok] * (mean[ok] - mean_g[ids[ok]]) ** 2)
    return out


def _t_interval(mean: np.ndarray, var: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, standard error) of a mean from its sample variance: mean ± t(n-1)·√(var/n)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.where(n > 1, np.sqrt(np.maximum(var, 0) / np.where(n > 0, n, 1)), np.nan)
        t = stats.t.ppf(0.5 + CONFIDENCE / 2, np.where(n > 1, n - 1, np.nan))
    return mean - t * se, mean + t * se, se


def _sample_var(s1: np.ndarray, s2: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Sample variance (ddof 1) from the sum and the sum of squares."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 1, (s2 - s1 * s1 / np.where(n > 0, n, 1)) / np.where(n > 1, n - 1, 1), np.nan)


@dataclass(frozen=True)
class _Stats:
    """Per metric (rows) and group (columns): value, interval, standard error; and each group's n."""

    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    se: np.ndarray
    n: np.ndarray


def regression_values(sums: dict[str, np.ndarray], m2_y: np.ndarray) -> _Stats:
    """Every metric of every group with its 95% interval and standard error, from the groups' sums."""
    n = sums["n"].astype(float)
    with np.errstate(all="ignore"):
        inv = np.where(n > 0, 1 / np.where(n > 0, n, 1), np.nan)
        mean = {k: sums[k] * inv for k in ("s_p", "s_y", "s_e", "s_ae", "s_e2", "s_over", "s_under")}
        mse = mean["s_e2"]
        rmse = np.sqrt(mse)
        r2 = np.where((m2_y > 0) & (n > 0), 1 - sums["s_e2"] / np.where(m2_y > 0, m2_y, 1), np.nan)
    under2 = sums["s_e2"] - sums["s_over2"]
    variances = {
        "s_p": _sample_var(sums["s_p"], sums["s_p2"], n),
        "s_y": np.where(n > 1, m2_y / np.where(n > 1, n - 1, 1), np.nan),
        "s_e": _sample_var(sums["s_e"], sums["s_e2"], n),
        "s_ae": _sample_var(sums["s_ae"], sums["s_e2"], n),
        "s_e2": _sample_var(sums["s_e2"], sums["s_e4"], n),
        "s_over": _sample_var(sums["s_over"], sums["s_over2"], n),
        "s_under": _sample_var(sums["s_under"], under2, n),
    }
    ci = {k: _t_interval(mean[k], variances[k], n) for k in variances}
    mse_low, mse_high, mse_se = ci["s_e2"]
    with np.errstate(all="ignore"):
        rmse_se = mse_se / (2 * rmse)
        var_y = m2_y / np.where(n > 0, n, 1)
        r2_se = mse_se / np.where(var_y > 0, var_y, np.nan)
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    rows = [
        (mean["s_p"], *ci["s_p"]), (mean["s_y"], *ci["s_y"]), (mean["s_e"], *ci["s_e"]),
        (mean["s_ae"], np.maximum(ci["s_ae"][0], 0), ci["s_ae"][1], ci["s_ae"][2]),
        (mse, np.maximum(mse_low, 0), mse_high, mse_se),
        (rmse, np.sqrt(np.maximum(mse_low, 0)), np.sqrt(mse_high), rmse_se),
        (r2, r2 - z * r2_se, np.minimum(r2 + z * r2_se, 1), r2_se),
        (mean["s_over"], np.maximum(ci["s_over"][0], 0), ci["s_over"][1], ci["s_over"][2]),
        (mean["s_under"], np.maximum(ci["s_under"][0], 0), ci["s_under"][1], ci["s_under"][2]),
    ]
    return _Stats(*(np.vstack([r[i] for r in rows]) for i in range(4)), n=n)


def _disparities(st: _Stats, m: np.ndarray, g: np.ndarray, ref: np.ndarray, usable: np.ndarray) -> dict[str, np.ndarray]:
    """Ratio and difference to the reference with intervals, and Welch p-values, per long row (m, g)."""
    has = (ref >= 0) & usable
    r = np.maximum(ref, 0)
    v, rv = st.value[m, g], np.where(has, st.value[m, r], np.nan)
    se, rse = st.se[m, g], st.se[m, r]
    n1, n2 = st.n[g], st.n[r]
    names = np.asarray(METRICS)[m]
    # RMSE is tested as MSE is (the same hypothesis); its own se is on the RMSE scale for intervals.
    mse_row = METRICS.index("mean_squared_error")
    test_v, test_rv = np.where(names == "root_mean_squared_error", st.value[mse_row, g], v), \
        np.where(names == "root_mean_squared_error", st.value[mse_row, r], rv)
    test_se, test_rse = np.where(names == "root_mean_squared_error", st.se[mse_row, g], se), \
        np.where(names == "root_mean_squared_error", st.se[mse_row, r], rse)
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    # Undefined comparisons (n = 1, zero variance, huge values) become NaN, as everywhere in the table.
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        diff = np.where(has, v - rv, np.nan)
        se_d = np.sqrt(se**2 + rse**2)
        df = se_d**4 / (se**4 / (n1 - 1) + rse**4 / (n2 - 1))
        t = stats.t.ppf(0.5 + CONFIDENCE / 2, df)
        positive = has & (v > 0) & (rv > 0)
        ratio = np.where(has & (rv > 0), v / np.where(rv > 0, rv, 1), np.nan)
        se_log = np.sqrt((se / v) ** 2 + (rse / rv) ** 2)
        ratio_low = np.where(positive, ratio * np.exp(-z * se_log), np.nan)
        ratio_high = np.where(positive, ratio * np.exp(z * se_log), np.nan)
        welch = stats.ttest_ind_from_stats(test_v, test_se * np.sqrt(n1), n1, test_rv, test_rse * np.sqrt(n2), n2,
                                           equal_var=False).pvalue
    is_ref = g == ref
    # R² is a ratio of sums, not a mean: its difference gets a normal interval and no test.
    normal = names == "r2_score"
    mult = np.where(normal, z, t)
    tested = has & ~is_ref & (names != "r2_score") & (n1 > 1) & (n2 > 1)
    p = np.where(tested, welch, np.nan)
    p = np.where(tested & np.isnan(p), np.where(diff == 0, 1.0, np.nan), p)  # zero variance both sides
    return {"ratio": ratio, "ratio_ci_low": ratio_low, "ratio_ci_high": ratio_high, "difference": diff,
            "diff_ci_low": np.where(has, diff - mult * se_d, np.nan), "diff_ci_high": np.where(has, diff + mult * se_d, np.nan),
            "p_value": p}


def compute_regression_table(cells: pd.DataFrame, spec: AuditSpec) -> GroupTable:
    """Metrics, intervals, disparities and verdicts for every sensitive feature and every intersection."""
    lay = layout(cells, cells["all_rows"].to_numpy(np.int64), spec)
    sums = {k: sum_rows(lay, cells[k].to_numpy(np.float64)) for k in _SUMS}
    m2_y = _label_m2(lay, cells["n"].to_numpy(np.float64), cells["mean_y"].to_numpy(np.float64),
                     cells["m2_y"].to_numpy(np.float64))
    total = sum_rows(lay, cells["all_rows"].to_numpy(np.int64))
    labelled = total - sum_rows(lay, cells["unlabelled"].to_numpy(np.int64))
    st = regression_values(sums, m2_y)
    n_eval = sums["n"].astype(np.int64)
    vals = _Values(names=METRICS, value=st.value, ci_low=st.low, ci_high=st.high,
                   support=np.tile(n_eval.astype(float), (len(METRICS), 1)),
                   successes=np.full(st.value.shape, np.nan), proportion=np.zeros(len(METRICS), dtype=bool))
    lr = long_rows(lay, vals, total, labelled, n_eval, spec)
    rows, m, g, ref, row_of = lr.rows, lr.m, lr.g, lr.ref, lr.row_of
    masked = rows["masked"].to_numpy()
    ref_masked = np.where(ref >= 0, masked[row_of[m, np.maximum(ref, 0)]], True)
    rows = rows.assign(**_disparities(st, m, g, ref, ~masked & ~ref_masked))
    rows["q_value"] = np.nan
    family = rows["metric"].isin(TESTED).to_numpy()
    rows.loc[family, "q_value"] = bh_qvalues(rows.loc[family, "p_value"].to_numpy())
    # MSE carries the q-value of the test it shares with RMSE.
    mse, rmse = METRICS.index("mean_squared_error"), METRICS.index("root_mean_squared_error")
    at_mse = np.flatnonzero(m == mse)
    rows.loc[rows.index[at_mse], "q_value"] = rows["q_value"].to_numpy()[row_of[rmse, g[at_mse]]]
    rows["verdict"] = verdicts(rows, spec, is_ref=(g == ref))
    judged = JUDGED if prediction_is_ratio_scale(cells) else JUDGED - {"mean_prediction"}
    descriptive = ~rows["metric"].isin(judged) & (rows["verdict"] != "reference")
    rows.loc[descriptive, "verdict"] = "descriptive"
    rows = rows.drop(columns=["proportion"])
    return GroupTable(rows=rows, summary=_between_groups(rows))


def compute_distributions(buckets: pd.DataFrame, edges: BucketEdges, spec: AuditSpec) -> RegressionResult:
    """Histograms of predictions and errors per group, and each group's KS gap to the rest of its grouping.

    Vectorised over groups: every bucket row adds its count to its group in each grouping.
    """
    hist_parts, gaps = [], None
    for kind, count in (("prediction", PREDICTION_BUCKETS), ("error", ERROR_BUCKETS)):
        part = buckets[buckets["kind"] == kind]
        lay = layout(part, part["n"].to_numpy(np.int64), spec)
        size = lay.groups.size
        counts = np.zeros((size, count), dtype=np.int64)
        bucket, n = part["bucket"].to_numpy(np.int64), part["n"].to_numpy(np.int64)
        for ids in lay.member:
            ok = ids >= 0
            np.add.at(counts, (ids[ok], bucket[ok]), n[ok])
        grouping_of = lay.groups.grouping_of()
        names = np.array([grouping_name(c) for c in lay.groups.groupings], dtype=object)[grouping_of]
        slices = [dict(s) for s in lay.groups.slices]
        sizes = counts.sum(axis=1)
        merge = count // HISTOGRAM_BINS
        coarse = counts.reshape(size, HISTOGRAM_BINS, merge).sum(axis=2)
        e = edges.edges(kind)
        g = np.repeat(np.arange(size), HISTOGRAM_BINS)
        b = np.tile(np.arange(HISTOGRAM_BINS), size)
        with np.errstate(all="ignore"):
            share = np.where(sizes[g] > 0, coarse.ravel() / np.where(sizes[g] > 0, sizes[g], 1), np.nan)
        hist_parts.append(pd.DataFrame({
            "grouping": names[g], "slice": [slices[i] for i in g], "kind": kind, "bin": b,
            "low": e[b * merge], "high": e[(b + 1) * merge], "n": coarse.ravel(), "share": share}))
        if kind == "prediction":
            gaps = _ks_gaps(counts, grouping_of, names, lay.groups.slices)
    notes = ("distribution gap: two-sample Kolmogorov-Smirnov statistic of each group's predictions against the "
             f"rest of its grouping, from {PREDICTION_BUCKETS} equal-width buckets (a lower bound on the exact "
             "statistic; p-value from the asymptotic Kolmogorov distribution); histograms merge them into 20 bins",)
    if edges.p_lo < 0:  # the lowest usable prediction, as prediction_is_ratio_scale reads it
        notes += (f"mean prediction is not judged against the ratio band: predictions go as low as {edges.p_lo:.4g}, and "
                  "a ratio of means has no meaning for an output without a true zero; its difference and Welch test "
                  "are reported, and the distribution gap compares the groups' predictions",)
    return RegressionResult(histograms=pd.concat(hist_parts, ignore_index=True), distribution_gaps=gaps, notes=notes)


def _ks_gaps(counts: np.ndarray, grouping_of: np.ndarray, names: np.ndarray, slices) -> pd.DataFrame:
    """Per group: its bucketed KS statistic against the rest of its grouping, p-value and BH q-value."""
    totals = np.zeros((int(grouping_of.max()) + 1 if len(grouping_of) else 0, counts.shape[1]), dtype=np.int64)
    np.add.at(totals, grouping_of, counts)
    rest = totals[grouping_of] - counts
    n, rn = counts.sum(axis=1), rest.sum(axis=1)
    with np.errstate(all="ignore"):
        cdf = np.cumsum(counts, axis=1) / np.where(n > 0, n, 1)[:, None]
        rest_cdf = np.cumsum(rest, axis=1) / np.where(rn > 0, rn, 1)[:, None]
        d = np.where((n > 0) & (rn > 0), np.abs(cdf - rest_cdf).max(axis=1, initial=0.0), np.nan)
        en = n * rn / np.where(n + rn > 0, n + rn, 1)
        p = np.where(np.isnan(d), np.nan, stats.kstwobign.sf(d * np.sqrt(en)))
    return pd.DataFrame({"grouping": names, "slice": [dict(s) for s in slices],
                         "group": [slice_label(s) for s in slices], "n": n, "rest_n": rn, "ks_statistic": d,
                         "p_value": p, "q_value": bh_qvalues(p)})
