"""Trends and model versions of regression and multiclass audits, from counts keyed by a window or a version.

The counts are the audits' own (connectors/task_counts.py: regression sums per group cell; the
(label, decision) cells for multiclass) with one more leading key. Per key value and group, the
metrics are the audit's: `regression_values` and `multiclass_values` of metrics/stats over the
group's sums or confusion matrix, so a window's numbers are exactly what an audit of that window's
rows says (a test checks them against MetricFrame per window). Groups below min_support in a key
value are gaps (NaN), never zeros; the reference group is chosen once over all key values, as the
binary trends choose it.

Versions (B − A per group and metric): a proportion (accuracy, the per-class rates) by Newcombe's
interval and the score test, as binary versions are compared; a mean by Welch's t-test and a
Welch-Satterthwaite interval (RMSE by the test of MSE, as in the audit); R² and balanced accuracy by
a normal test. One Benjamini-Hochberg family over the tested comparisons.

Drift of a regression's output: per window and group, the KS distance of its predictions from the same
group's in the baseline window (`prediction_shift`), from the audit's prediction buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.monitoring.trends import VERSION, WINDOW, TrendTable, label_coverage_rows
from fairwatch.metrics.monitoring.versions import VersionComparison
from fairwatch.metrics.stats.groups import _reference_ids, grouping_name, reference_groups, slice_label
from fairwatch.metrics.stats.intervals import CONFIDENCE, bh_qvalues, difference_interval, two_proportion_pvalue
from fairwatch.metrics.stats.multiclass import multiclass_counts, multiclass_values
from fairwatch.metrics.stats.regression import LOWER_IS_BETTER as REGRESSION_LOWER, METRICS as REGRESSION_METRICS
from fairwatch.metrics.stats.regression import TESTED as REGRESSION_TESTED, regression_values
from fairwatch.metrics.stats.task_tables import Layout, layout

_SUMS = ("n", "s_e", "s_e2", "s_e4", "s_ae", "s_over", "s_over2", "s_under", "s_y", "s_y2", "s_p", "s_p2")
# Normal (not t) intervals and tests: ratios of sums and averages of recalls.
_NORMAL = frozenset({"r2_score", "balanced_accuracy"})


@dataclass(frozen=True)
class KeyedValues:
    """Every metric of every group at every key value (window or version): arrays (metrics, keys, groups)."""

    key_values: np.ndarray
    lay: Layout
    names: tuple[str, ...]
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    se: np.ndarray
    support: np.ndarray
    successes: np.ndarray  # NaN where the metric is not a proportion
    total: np.ndarray  # (keys, groups): all rows
    labelled: np.ndarray  # (keys, groups): rows with a label
    evaluated: np.ndarray  # (keys, groups): rows with a label and a usable prediction


def keyed_sum(lay: Layout, key_of: np.ndarray, keys: int, values: np.ndarray) -> np.ndarray:
    """Per (key index, group id), the sum of the input rows' values over every grouping."""
    out = np.zeros((keys, lay.groups.size, *values.shape[1:]), dtype=values.dtype)
    for ids in lay.member:
        ok = ids >= 0
        np.add.at(out, (key_of[ok], ids[ok]), values[ok])
    return out


def _key_index(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct key values, each row's index into them)."""
    values = np.sort(column.unique())
    return values, np.searchsorted(values, column.to_numpy())


def _label_m2(lay: Layout, key_of: np.ndarray, keys: int, n: np.ndarray, mean: np.ndarray,
              m2: np.ndarray) -> np.ndarray:
    """Per (key, group), Σ(y - ȳ)² combined from the cells' means and m2 (Chan et al.), as the audit does."""
    n_g = keyed_sum(lay, key_of, keys, n)
    s_g = keyed_sum(lay, key_of, keys, np.where(n > 0, n * np.nan_to_num(mean), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_g = s_g / np.where(n_g > 0, n_g, 1)
    out = np.zeros((keys, lay.groups.size))
    for ids in lay.member:
        ok = (ids >= 0) & (n > 0)
        k, g = key_of[ok], ids[ok]
        np.add.at(out, (k, g), m2[ok] + n[ok] * (mean[ok] - mean_g[k, g]) ** 2)
    return out


def regression_keyed(cells: pd.DataFrame, spec: AuditSpec, key: str) -> KeyedValues:
    """Regression metrics per key value and group from the keyed sums (connectors fetch_task_window_counts)."""
    lay = layout(cells, cells["all_rows"].to_numpy(np.int64), spec)
    key_values, key_of = _key_index(cells[key])
    k = len(key_values)

    def ksum(col: str, dtype=np.float64) -> np.ndarray:
        """The column summed per (key, group)."""
        return keyed_sum(lay, key_of, k, cells[col].to_numpy(dtype))

    sums = {c: ksum(c).ravel() for c in _SUMS}
    m2_y = _label_m2(lay, key_of, k, cells["n"].to_numpy(np.float64), cells["mean_y"].to_numpy(np.float64),
                     cells["m2_y"].to_numpy(np.float64)).ravel()
    st = regression_values(sums, m2_y)
    shape = (len(REGRESSION_METRICS), k, lay.groups.size)
    total = ksum("all_rows", np.int64)
    evaluated = ksum("n", np.int64)
    return KeyedValues(key_values=key_values, lay=lay, names=REGRESSION_METRICS, value=st.value.reshape(shape),
                       low=st.low.reshape(shape), high=st.high.reshape(shape), se=st.se.reshape(shape),
                       support=np.broadcast_to(evaluated, shape).astype(float), successes=np.full(shape, np.nan),
                       total=total, labelled=total - ksum("unlabelled", np.int64), evaluated=evaluated)


def multiclass_keyed(cells: pd.DataFrame, spec: AuditSpec, key: str) -> KeyedValues:
    """Multiclass metrics per key value and group from (key, groups, label, decision) cells."""
    counts = multiclass_counts(cells, replace(spec, sensitive=(key, *spec.sensitive)))
    pop, lab = counts.population, counts.labelled
    sens = list(spec.sensitive)
    both = pd.concat([pop[[key, *sens]], lab[[key, *sens]]], ignore_index=True)
    sizes = np.r_[pop["n"].to_numpy(np.int64), np.zeros(len(lab), dtype=np.int64)]
    lay = layout(both, sizes, spec)
    key_values, key_of = _key_index(both[key])
    k, c = len(key_values), len(counts.classes)
    conf = np.zeros((k, lay.groups.size, c, c), dtype=np.int64)
    at = np.arange(len(pop), len(both))
    t, p, n = (lab[col].to_numpy(np.int64) for col in ("y_true", "y_pred", "n"))
    for ids in lay.member:
        ok = ids[at] >= 0
        np.add.at(conf, (key_of[at][ok], ids[at][ok], t[ok], p[ok]), n[ok])
    vals = multiclass_values(conf.reshape(k * lay.groups.size, c, c), counts.classes)
    shape = (len(vals.names), k, lay.groups.size)
    value, low, high = (a.reshape(shape) for a in (vals.value, vals.ci_low, vals.ci_high))
    quantile = np.where(np.isin(np.asarray(vals.names), list(_NORMAL)), stats.norm.ppf(0.5 + CONFIDENCE / 2), np.nan)
    with np.errstate(invalid="ignore"):
        se = np.maximum(high - value, value - low) / quantile[:, None, None]  # balanced accuracy only
    total = keyed_sum(lay, key_of, k, sizes)
    evaluated = conf.sum(axis=(2, 3))
    # Multiclass cells know labelled rows only through the population; unlabelled rows are in `total`.
    labelled = keyed_sum(lay, key_of, k, np.r_[_labelled_of(cells, pop, key, spec), np.zeros(len(lab), np.int64)])
    return KeyedValues(key_values=key_values, lay=lay, names=vals.names, value=value, low=low, high=high, se=se,
                       support=vals.support.reshape(shape), successes=vals.successes.reshape(shape),
                       total=total, labelled=labelled, evaluated=evaluated)


def _labelled_of(cells: pd.DataFrame, pop: pd.DataFrame, key: str, spec: AuditSpec) -> np.ndarray:
    """Per population row (key, groups), the rows that have a label."""
    cols = [key, *spec.sensitive]
    lab = cells[cells["label_raw"].notna()].groupby(cols, as_index=False, observed=True)["n"].sum()
    merged = pop[cols].merge(lab.astype({c: pop[c].dtype for c in cols}), on=cols, how="left")
    return merged["n"].fillna(0).to_numpy(np.int64)


def keyed_values(cells: pd.DataFrame, spec: AuditSpec, key: str) -> KeyedValues:
    """The task's metrics per key value and group."""
    if spec.task == "regression":
        return regression_keyed(cells, spec, key)
    if spec.task == "multiclass":
        return multiclass_keyed(cells, spec, key)
    raise SpecError(f"keyed task metrics are for regression and multiclass audits, not {spec.task}")


def _references(kv: KeyedValues, spec: AuditSpec) -> np.ndarray:
    """Per group id, its grouping's reference group id, chosen once over all key values as an audit would."""
    return _reference_ids(kv.lay.groups, reference_groups(kv.lay.population, spec), kv.evaluated.sum(axis=0),
                          kv.total.sum(axis=0), spec.policy.min_support)


def task_trend_table(cells: pd.DataFrame, spec: AuditSpec, grain: str, version: str | None = None) -> TrendTable:
    """Per window and group the task's metrics with intervals, n, masking and the ratio to the reference."""
    if version is not None:
        cells = cells[cells[VERSION] == version]
    cells = cells.drop(columns=[VERSION], errors="ignore")
    kv = keyed_values(cells, spec, WINDOW)
    groups = kv.lay.groups
    n_m, n_k, n_g = kv.value.shape
    m, k, g = (a.ravel() for a in np.meshgrid(np.arange(n_m), np.arange(n_k), np.arange(n_g), indexing="ij"))
    support = np.nan_to_num(kv.support[m, k, g]).astype(np.int64)
    masked = support < spec.policy.min_support
    value = np.where(masked, np.nan, kv.value[m, k, g])
    ref = _references(kv, spec)
    ref_g = np.maximum(ref[g], 0)
    ref_value = np.where((ref[g] >= 0) & ~(np.nan_to_num(kv.support[m, k, ref_g]) < spec.policy.min_support),
                         kv.value[m, k, ref_g], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(ref_value > 0, value / np.where(ref_value > 0, ref_value, 1), np.nan)
    slices = np.empty(groups.size, dtype=object)
    for i, s_ in enumerate(groups.slices):
        slices[i] = s_
    labels = np.array([slice_label(s) for s in groups.slices], dtype=object)
    grouping = np.array([grouping_name(c) for c in groups.groupings], dtype=object)[groups.grouping_of()]
    # Element by element: np.array over equal-length tuples would make a 3-d array, not one slice per group.
    ref_slice = np.empty(groups.size, dtype=object)
    for i, r in enumerate(ref):
        ref_slice[i] = slices[r] if r >= 0 else None
    rows = pd.DataFrame({
        "window": kv.key_values[k], "grouping": grouping[g], "slice": slices[g], "group": labels[g],
        "n": kv.total[k, g], "labelled_n": kv.labelled[k, g], "metric": np.asarray(kv.names, dtype=object)[m],
        "value": value, "ci_low": np.where(masked, np.nan, kv.low[m, k, g]),
        "ci_high": np.where(masked, np.nan, kv.high[m, k, g]), "support": support, "masked": masked,
        "reference": ref_slice[g], "ratio": ratio,
    })
    rows["window"] = pd.to_datetime(rows["window"])
    coverage = label_coverage_rows(pd.DataFrame({
        "window": pd.to_datetime(kv.key_values), "rows": _finest_sum(kv, kv.total),
        "labelled_rows": _finest_sum(kv, kv.labelled), "evaluated_rows": _finest_sum(kv, kv.evaluated)}), grain)
    return TrendTable(rows=rows.sort_values(["metric", "grouping", "group", "window"], ignore_index=True),
                      coverage=coverage, grain=grain)


def _finest_sum(kv: KeyedValues, per_group: np.ndarray) -> np.ndarray:
    """Per key value, the rows over the groups of the first grouping (each row is in exactly one of them)."""
    first = kv.lay.groups
    return per_group[:, first.start[0]:first.start[1]].sum(axis=1).astype(np.int64)


# --------------------------------------------------------------------------- versions


def _direction(metric: str) -> int:
    """+1 when a higher value is better for the group, −1 when lower is better, 0 when neither."""
    base = metric.partition("@")[0]
    if metric in REGRESSION_LOWER or base == "false_positive_rate":
        return -1
    if base in ("accuracy", "balanced_accuracy", "true_positive_rate", "precision", "r2_score"):
        return 1
    return 0  # mean prediction, mean error, selection rate: a change, neither better nor worse


def _tested(metric: str, task: str) -> bool:
    """Whether a version change of the metric is tested (the audit's family; descriptive ones are shown only)."""
    return metric in REGRESSION_TESTED if task == "regression" else True


def compare_task_versions(cells: pd.DataFrame, spec: AuditSpec, version_a: str, version_b: str) -> VersionComparison:
    """Each task metric per group under versions A and B, the change B − A with interval, p, q and its direction."""
    present = sorted(cells[VERSION].astype(str).unique())
    for v in (version_a, version_b):
        if v not in present:
            raise SpecError(f"model version {v!r} is not in the data; versions present: {', '.join(present)}")
    if version_a == version_b:
        raise SpecError(f"compare two different model versions, not {version_a!r} with itself")
    cells = cells[cells[VERSION].isin([version_a, version_b])].drop(columns=[WINDOW], errors="ignore")
    kv = keyed_values(cells, spec, VERSION)
    ia, ib = (int(np.flatnonzero(kv.key_values == v)[0]) for v in (version_a, version_b))
    groups = kv.lay.groups
    n_m, _, n_g = kv.value.shape
    m, g = (a.ravel() for a in np.meshgrid(np.arange(n_m), np.arange(n_g), indexing="ij"))
    names = np.asarray(kv.names, dtype=object)[m]
    out = {"grouping": np.array([grouping_name(c) for c in groups.groupings], dtype=object)[groups.grouping_of()][g],
           "slice": np.array([dict(s) for s in groups.slices], dtype=object)[g],
           "group": np.array([slice_label(s) for s in groups.slices], dtype=object)[g], "metric": names}
    side = {}
    for suffix, i in (("_a", ia), ("_b", ib)):
        support = np.nan_to_num(kv.support[m, i, g]).astype(np.int64)
        masked = support < spec.policy.min_support
        side[suffix] = (masked, support)
        out |= {"value" + suffix: np.where(masked, np.nan, kv.value[m, i, g]),
                "ci_low" + suffix: np.where(masked, np.nan, kv.low[m, i, g]),
                "ci_high" + suffix: np.where(masked, np.nan, kv.high[m, i, g]),
                "support" + suffix: support, "masked" + suffix: masked}
    rows = pd.DataFrame(out)
    ok = ~side["_a"][0] & ~side["_b"][0]
    diff_low, diff_high, p = _changes(kv, m, g, ia, ib, ok)
    rows["difference"] = rows["value_b"] - rows["value_a"]
    rows["diff_ci_low"], rows["diff_ci_high"], rows["p_value"] = diff_low, diff_high, p
    tested = ok & np.array([_tested(x, spec.task) for x in names]) & np.isfinite(p)
    rows["q_value"] = np.nan
    rows.loc[tested, "q_value"] = bh_qvalues(p[tested])
    if spec.task == "regression":  # MSE carries the q-value of the test it shares with RMSE
        mse, rmse = REGRESSION_METRICS.index("mean_squared_error"), REGRESSION_METRICS.index("root_mean_squared_error")
        rows.loc[m == mse, "q_value"] = rows.loc[m == rmse, "q_value"].to_numpy()
    direction = np.array([_direction(x) for x in names])
    described = ~np.array([_tested(x, spec.task) or x == "mean_squared_error" for x in names])
    significant = rows["q_value"].to_numpy() < spec.policy.fdr
    signed = rows["difference"].to_numpy() * direction
    rows["change"] = np.select(
        [~ok, described, ~significant, direction == 0, signed > 0],
        ["insufficient_data", "descriptive", "no_significant_change", "changed", "better"], default="worse")
    return VersionComparison(rows=rows, version_a=version_a, version_b=version_b)


def _changes(kv: KeyedValues, m: np.ndarray, g: np.ndarray, ia: int, ib: int,
             ok: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interval of B − A and a two-sided p-value per (metric, group): proportions, means (Welch) or normal."""
    low, high, p = (np.full(len(m), np.nan) for _ in range(3))
    names = np.asarray(kv.names, dtype=object)[m]
    prop = ok & np.isfinite(kv.successes[m, ib, g]) & np.isfinite(kv.successes[m, ia, g])
    xa, na, xb, nb = (kv.successes[m, ia, g], kv.support[m, ia, g], kv.successes[m, ib, g], kv.support[m, ib, g])
    if prop.any():
        low[prop], high[prop] = difference_interval(xb[prop], nb[prop], xa[prop], na[prop])
        p[prop] = two_proportion_pvalue(xb[prop], nb[prop], xa[prop], na[prop])
    other = ok & ~prop
    # RMSE is tested as MSE is (the same hypothesis); its interval uses its own (delta-method) se.
    test_m = m.copy()
    if "root_mean_squared_error" in kv.names:
        test_m[names == "root_mean_squared_error"] = kv.names.index("mean_squared_error")
    va, vb = kv.value[m, ia, g], kv.value[m, ib, g]
    sa, sb = kv.se[m, ia, g], kv.se[m, ib, g]
    tva, tvb, tsa, tsb = kv.value[test_m, ia, g], kv.value[test_m, ib, g], kv.se[test_m, ia, g], kv.se[test_m, ib, g]
    normal = np.isin(names, list(_NORMAL))
    z = stats.norm.ppf(0.5 + CONFIDENCE / 2)
    with np.errstate(all="ignore"):
        se_d = np.sqrt(sa**2 + sb**2)
        df = se_d**4 / (sa**4 / (na - 1) + sb**4 / (nb - 1))
        mult = np.where(normal, z, stats.t.ppf(0.5 + CONFIDENCE / 2, df))
        welch = stats.ttest_ind_from_stats(tvb, tsb * np.sqrt(nb), nb, tva, tsa * np.sqrt(na), na,
                                           equal_var=False).pvalue
        test_se = np.sqrt(tsa**2 + tsb**2)
        normal_p = 2 * stats.norm.sf(np.abs(tvb - tva) / test_se)
    low[other] = ((vb - va) - mult * se_d)[other]
    high[other] = ((vb - va) + mult * se_d)[other]
    p[other] = np.where(normal, normal_p, welch)[other]
    # Both sides without spread and equal: no evidence of a change.
    p[other & np.isnan(p) & (vb == va)] = 1.0
    return low, high, p


# --------------------------------------------------------------------------- drift of a regression's output


def prediction_shift(buckets: pd.DataFrame, spec: AuditSpec, baseline: pd.Timestamp | None = None) -> pd.DataFrame:
    """Per window and group, the KS statistic of its predictions against the same group in the baseline window.

    From the audit's prediction buckets with the window as a key (rows with a finite label and
    prediction); bucketed, D is a lower bound on the exact statistic, as for the audit's distribution
    gap. p from the asymptotic Kolmogorov distribution, q by Benjamini-Hochberg over every tested row.
    Columns: window, grouping, slice, group, n, baseline_n, ks_statistic, p_value, q_value.
    """
    columns = ["window", "grouping", "slice", "group", "n", "baseline_n", "ks_statistic", "p_value", "q_value"]
    if buckets.empty:
        return pd.DataFrame(columns=columns)
    windows, key_of = _key_index(buckets[WINDOW])
    base = windows[0] if baseline is None else np.datetime64(pd.Timestamp(baseline))
    if base not in windows:
        shown = ", ".join(f"{pd.Timestamp(w):%Y-%m-%d}" for w in windows[:12])
        raise SpecError(f"no window starts at {pd.Timestamp(base):%Y-%m-%d}; windows start at {shown}")
    lay = layout(buckets, buckets["n"].to_numpy(np.int64), spec)
    width = int(buckets["bucket"].max()) + 1
    counts = np.zeros((len(windows), lay.groups.size, width), dtype=np.int64)
    bucket, n = buckets["bucket"].to_numpy(np.int64), buckets["n"].to_numpy(np.int64)
    for ids in lay.member:
        ok = ids >= 0
        np.add.at(counts, (key_of[ok], ids[ok], bucket[ok]), n[ok])
    ref = counts[int(np.flatnonzero(windows == base)[0])]
    size, ref_size = counts.sum(axis=2), ref.sum(axis=1)
    with np.errstate(all="ignore"):
        cdf = np.cumsum(counts, axis=2) / np.where(size > 0, size, 1)[:, :, None]
        ref_cdf = np.cumsum(ref, axis=1) / np.where(ref_size > 0, ref_size, 1)[:, None]
        usable = (size > 0) & (ref_size > 0)[None, :]
        d = np.where(usable, np.abs(cdf - ref_cdf[None]).max(axis=2), np.nan)
        en = size * ref_size[None, :] / np.where(size + ref_size[None, :] > 0, size + ref_size[None, :], 1)
        p = np.where(np.isnan(d), np.nan, stats.kstwobign.sf(d * np.sqrt(en)))
    k, g = (a.ravel() for a in np.meshgrid(np.arange(len(windows)), np.arange(lay.groups.size), indexing="ij"))
    is_base = windows[k] == base
    groups = lay.groups
    out = pd.DataFrame({
        "window": pd.to_datetime(windows[k]),
        "grouping": np.array([grouping_name(c) for c in groups.groupings], dtype=object)[groups.grouping_of()][g],
        "slice": np.array([dict(s) for s in groups.slices], dtype=object)[g],
        "group": np.array([slice_label(s) for s in groups.slices], dtype=object)[g],
        "n": size[k, g], "baseline_n": ref_size[g],
        "ks_statistic": np.where(is_base, np.nan, d[k, g]), "p_value": np.where(is_base, np.nan, p[k, g])})
    tested = out["p_value"].notna().to_numpy()
    out["q_value"] = np.nan
    out.loc[tested, "q_value"] = bh_qvalues(out.loc[tested, "p_value"].to_numpy())
    return out[columns]
