"""Monitoring of regression and multiclass audits (issue 19): trends per window equal fairlearn's MetricFrame with
scikit-learn's metrics on each window's raw rows; versions, drift and alert rules of these tasks; bad rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, mean_prediction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import accuracy_score, balanced_accuracy_score, mean_absolute_error, root_mean_squared_error

from fairwatch.connectors.monitor import run_check, run_drift, run_trends, run_version_comparison
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.monitoring.alert_rules import PER_CLASS, REGRESSION_METRICS, parse_rule
from fairwatch.metrics.stats import multiclass, regression

REGRESSION_ORACLE = {
    "mean_absolute_error": mean_absolute_error,
    "root_mean_squared_error": root_mean_squared_error,
    "mean_prediction": mean_prediction,
    "mean_error": lambda y, p: float(np.mean(np.asarray(p) - np.asarray(y))),
}
MULTICLASS_ORACLE = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}
START = pd.Timestamp("2025-03-03")  # a Monday


def spec_for(task: str, min_support: int = 1, **extra) -> object:
    """A spec over label y, prediction p, groups a and b, time t and version v."""
    return parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a", "b"],
                                                            "task": task, "time": "t", "model_version": "v"},
                       "policy": {"min_support": min_support}, **extra})


def rows_for(task: str, n: int, seed: int, weeks: int = 3) -> pd.DataFrame:
    """Random rows over a few weeks; in the last week group a=u is worse (a planted change over time)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.choice(["u", "w"], n), "b": rng.choice(["x", "y", "z"], n),
                          "t": START + pd.to_timedelta(rng.integers(0, weeks * 7 * 86400, n), unit="s"),
                          "v": rng.choice(["v1", "v2"], n)})
    late = ((frame["t"] >= START + pd.Timedelta(weeks=weeks - 1)) & (frame["a"] == "u")).to_numpy()
    if task == "regression":
        frame["y"] = rng.normal(100, 20, n).round(1)
        frame["p"] = frame["y"] + rng.normal(np.where(late, 15, 0), 5)
    else:
        frame["y"] = rng.choice(["lo", "mid", "hi"], n)
        wrong = rng.random(n) < np.where(late, 0.6, 0.2)
        frame["p"] = np.where(wrong, rng.choice(["lo", "mid", "hi"], n), frame["y"])
    return frame


def _trends(frame: pd.DataFrame, spec, grain: str = "week"):
    """run_trends over an in-memory frame (the real SQL path)."""
    src = open_frame(frame)
    try:
        return run_trends(spec, grain, src=src)
    finally:
        src.close()


def assert_matches_oracle(frame: pd.DataFrame, task: str, rows: pd.DataFrame) -> None:
    """Every (window, group) value of the oracle's metrics equals MetricFrame on that window's raw rows."""
    oracle = REGRESSION_ORACLE if task == "regression" else MULTICLASS_ORACLE
    frame = frame.assign(window=frame["t"].dt.to_period("W-SUN").dt.start_time)
    checked = 0
    for window, part in frame.groupby("window"):
        for feats in (["a"], ["b"], ["a", "b"]):
            mf = MetricFrame(metrics=oracle, y_true=part["y"], y_pred=part["p"], sensitive_features=part[feats])
            by_group = mf.by_group
            for key, values in by_group.iterrows():
                key = key if isinstance(key, tuple) else (key,)
                group = ", ".join(f"{f}={k}" for f, k in zip(feats, key))
                for metric, expected in values.items():
                    got = rows[(rows["window"] == window) & (rows["group"] == group) & (rows["metric"] == metric)]
                    if got.empty and np.isnan(expected):
                        continue  # MetricFrame lists every combination; an empty one is not a group
                    assert len(got) == 1, (window, group, metric)
                    assert got["value"].iloc[0] == pytest.approx(expected, rel=1e-9, abs=1e-9, nan_ok=True), (window, group, metric)
                    checked += 1
    assert checked


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_trends_equal_metricframe_per_window(task):
    """Each window's task metrics, per group and intersection, equal MetricFrame with sklearn on its raw rows."""
    frame = rows_for(task, 3000, seed=1)
    trends = _trends(frame, spec_for(task))
    assert trends.grain == "week" and len(trends.coverage) == 3
    assert_matches_oracle(frame, task, trends.rows)
    # The ratio to the reference (the largest group, chosen once) per window; the planted late gap shows.
    last = trends.rows[(trends.rows["window"] == trends.rows["window"].max()) & (trends.rows["grouping"] == "a")]
    metric = "mean_absolute_error" if task == "regression" else "accuracy"
    ratio = last.set_index(["metric", "group"])["ratio"]
    value = last.set_index(["metric", "group"])["value"]
    ref = last["reference"].iloc[0]
    ref_group = ", ".join(f"{k}={v}" for k, v in ref)
    other = "a=w" if ref_group == "a=u" else "a=u"
    assert ratio[(metric, other)] == pytest.approx(value[(metric, other)] / value[(metric, ref_group)])
    assert ratio[(metric, ref_group)] == pytest.approx(1.0)


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_label_coverage_per_window_counts_unlabelled_rows(task):
    """Rows without a label count in a window's rows, not its labelled rows, and never in a metric."""
    frame = rows_for(task, 1200, seed=2)
    frame["y"] = frame["y"].astype(object)
    frame.loc[frame.index[::4], "y"] = None
    if task == "regression":
        frame["y"] = frame["y"].astype(float)
    trends = _trends(frame, spec_for(task))
    frame = frame.assign(window=frame["t"].dt.to_period("W-SUN").dt.start_time)
    expected = frame.groupby("window").agg(rows=("y", "size"), labelled=("y", "count"))
    cov = trends.coverage.set_index("window")
    assert cov["rows"].tolist() == expected["rows"].tolist()
    assert cov["labelled_rows"].tolist() == expected["labelled"].tolist()
    assert cov["label_coverage"].to_numpy() == pytest.approx((expected["labelled"] / expected["rows"]).to_numpy())
    assert_matches_oracle(frame[frame["y"].notna()], task, trends.rows)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(40, 400), seed=st.integers(0, 10_000), task=st.sampled_from(["regression", "multiclass"]),
       weeks=st.integers(1, 4))
def test_trends_equal_metricframe_property(n, seed, task, weeks):
    """On random rows over 1-4 weeks, every window's metrics equal MetricFrame (keyed sums and confusions)."""
    frame = rows_for(task, n, seed, weeks)
    assert_matches_oracle(frame, task, _trends(frame, spec_for(task)).rows)


def test_small_windows_are_gaps_not_zeros():
    """A group below min_support in a window is NaN there (masked), with its n kept."""
    frame = rows_for("regression", 600, seed=3)
    rows = _trends(frame, spec_for("regression", min_support=100)).rows
    small = rows[rows["support"] < 100]
    assert len(small) and small["value"].isna().all() and small["masked"].all()
    assert rows.loc[rows["support"] >= 100, "value"].notna().all()


def _versions(frame, spec, a="v1", b="v2"):
    """run_version_comparison over an in-memory frame."""
    src = open_frame(frame)
    try:
        return run_version_comparison(spec, a, b, src=src)
    finally:
        src.close()


def test_regression_versions_use_welch_on_the_raw_rows():
    """B − A of MAE and mean prediction per group: the values and Welch's p equal scipy on the raw rows."""
    frame = rows_for("regression", 4000, seed=4)
    worse = (frame["v"] == "v2") & (frame["a"] == "u")
    frame.loc[worse, "p"] += np.random.default_rng(0).normal(8, 4, int(worse.sum()))
    comp = _versions(frame, spec_for("regression"))
    rows = comp.rows.set_index(["group", "metric"])
    for group, part in frame.groupby("a"):
        a, b = part[part["v"] == "v1"], part[part["v"] == "v2"]
        for metric, values in (("mean_absolute_error", lambda f: (f["p"] - f["y"]).abs()),
                               ("mean_prediction", lambda f: f["p"])):
            r = rows.loc[(f"a={group}", metric)]
            assert r["value_a"] == pytest.approx(values(a).mean(), rel=1e-9)
            assert r["value_b"] == pytest.approx(values(b).mean(), rel=1e-9)
            assert r["p_value"] == pytest.approx(stats.ttest_ind(values(b), values(a), equal_var=False).pvalue,
                                                 rel=1e-6, abs=1e-300)
    assert rows.loc[("a=u", "mean_absolute_error"), "change"] == "worse"
    assert rows.loc[("a=w", "mean_absolute_error"), "change"] == "no_significant_change"
    assert rows.loc[("a=u", "mean_label"), "change"] == "descriptive"
    # MSE carries RMSE's q-value (one test), as in the audit.
    assert rows.loc[("a=u", "mean_squared_error"), "q_value"] == rows.loc[("a=u", "root_mean_squared_error"), "q_value"]


def test_multiclass_versions_compare_proportions():
    """Accuracy per version equals sklearn on the raw rows; a planted drop is 'worse', the other group unchanged."""
    frame = rows_for("multiclass", 4000, seed=5)
    worse = ((frame["v"] == "v2") & (frame["a"] == "u")).to_numpy()
    rng = np.random.default_rng(1)
    flip = worse & (rng.random(len(frame)) < 0.4)
    frame.loc[flip, "p"] = rng.choice(["lo", "mid", "hi"], int(flip.sum()))
    rows = _versions(frame, spec_for("multiclass")).rows.set_index(["group", "metric"])
    for group, part in frame.groupby("a"):
        for side, v in (("a", "v1"), ("b", "v2")):
            sel = part[part["v"] == v]
            assert rows.loc[(f"a={group}", "accuracy"), f"value_{side}"] == pytest.approx(
                accuracy_score(sel["y"], sel["p"]), rel=1e-12)
            assert rows.loc[(f"a={group}", "balanced_accuracy"), f"value_{side}"] == pytest.approx(
                balanced_accuracy_score(sel["y"], sel["p"]), rel=1e-12)
    assert rows.loc[("a=u", "accuracy"), "change"] == "worse"
    assert rows.loc[("a=w", "accuracy"), "change"] in ("no_significant_change", "better")
    assert rows.loc[("a=u", "selection_rate@lo"), "change"] in ("changed", "no_significant_change")


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_version_errors_are_one_line(task):
    """An unknown version names the versions present."""
    with pytest.raises(SpecError, match="versions present: v1, v2"):
        _versions(rows_for(task, 300, seed=6), spec_for(task), "v1", "v9")


def test_population_drift_of_regression_counts_every_row():
    """Regression drift reads rows from the sums (all rows, labelled or not), one scan: shares per window."""
    frame = rows_for("regression", 1500, seed=7)
    frame.loc[frame.index[::3], "y"] = np.nan
    src = open_frame(frame)
    try:
        drift = run_drift(spec_for("regression"), "week", src=src)
    finally:
        src.close()
    shares = drift.shares[drift.shares["grouping"] == "a"]
    frame = frame.assign(window=frame["t"].dt.to_period("W-SUN").dt.start_time)
    expected = frame.groupby(["window", "a"]).size()
    for r in shares.itertuples():
        assert r.n == expected[(r.window, dict(r.slice)["a"])]


def _check(frame, spec, rules):
    """run_check over an in-memory frame."""
    src = open_frame(frame)
    try:
        return run_check(spec, rules, grain="week", src=src)
    finally:
        src.close()


@pytest.mark.parametrize("task,rule", [("regression", "mae_ratio > 1.25 for any a group"),
                                       ("regression", "mean_absolute_error value > 8 for a=u"),
                                       ("multiclass", "accuracy difference < -0.05 for any a group"),
                                       ("multiclass", "accuracy value < 0.7 for a=u")])
def test_check_fires_on_the_planted_late_gap(task, rule):
    """The latest week's planted gap fires the task's rules for a=u only; the first week would not."""
    frame = rows_for(task, 6000, seed=8)
    spec = spec_for(task, min_support=30, reference={"a": "w"})
    result = _check(frame, spec, [rule])
    assert result.outcomes[0].status == "fired", result.lines()
    assert [h.group for h in result.outcomes[0].hits] == ["a=u"]
    early = frame[frame["t"] < START + pd.Timedelta(weeks=2)]
    assert _check(early, spec, [rule]).outcomes[0].status == "ok"


def test_regression_value_rule_uses_a_t_test():
    """A value rule on a mean fires only when the interval clears the threshold (one-sided t-test)."""
    frame = rows_for("regression", 6000, seed=9)
    spec = spec_for("regression", min_support=30)
    late_u = frame[(frame["t"] >= START + pd.Timedelta(weeks=2)) & (frame["a"] == "u")]
    mae = float((late_u["p"] - late_u["y"]).abs().mean())
    assert _check(frame, spec, [f"mae value > {mae * 0.9:.3f} for a=u"]).outcomes[0].status == "fired"
    assert _check(frame, spec, [f"mae value > {mae:.3f} for a=u"]).outcomes[0].status == "ok"


@pytest.mark.parametrize("task,rule,message", [
    ("regression", "false_negative_rate ratio < 0.8",
     r"unknown metric for a regression audit .*mean_absolute_error.*\(or mae, rmse, mse, r2\)"),
    ("multiclass", "mae ratio > 1.25", r"unknown metric for a multiclass audit .*accuracy, balanced_accuracy"),
    ("binary", "mae ratio > 1.25", r"unknown metric at 'mae'.*false_negative_rate"),
    ("regression", "mae value > 1.5 for any c group", "unknown sensitive feature"),
])
def test_rule_naming_a_metric_the_task_lacks_is_one_line(task, rule, message):
    """A rule naming another task's metric says which metrics this task has, in one line."""
    spec = spec_for(task) if task != "binary" else parse_spec(
        {"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a", "b"]}})
    with pytest.raises(SpecError, match=message) as err:
        parse_rule(rule, spec)
    assert "\n" not in str(err.value)


def test_rule_naming_a_class_the_data_lacks_lists_the_metrics():
    """tpr@<class> for a class never seen: a one-line error listing the audit's metrics."""
    frame = rows_for("multiclass", 800, seed=10)
    with pytest.raises(SpecError, match=r"no metric true_positive_rate@nope; its metrics are accuracy, "
                                        r"balanced_accuracy, selection_rate@hi") as err:
        _check(frame, spec_for("multiclass"), ["tpr@nope ratio < 0.8"])
    assert "\n" not in str(err.value)


def test_task_rules_in_the_spec_are_checked_when_it_is_read():
    """[alerts] rules of a regression spec parse with its metrics, and a binary metric there is refused."""
    ok = spec_for("regression", alerts={"rules": ["rmse ratio > 1.25 for any a group"]})
    assert ok.alerts.rules
    with pytest.raises(SpecError, match="unknown metric for a regression audit"):
        spec_for("regression", alerts={"rules": ["fnr ratio > 1.25"]})


def test_rule_metric_lists_match_the_engines():
    """The rule language's copies of the task metric names are the engines' own."""
    assert REGRESSION_METRICS == regression.METRICS
    assert PER_CLASS == multiclass.PER_CLASS


def test_prediction_shift_is_ks_on_the_bucketed_predictions():
    """Per window and group, D equals scipy's two-sample KS on the bucketed raw predictions against the baseline
    window, never exceeds the exact D, and the planted late shift of a=u is significant."""
    from fairwatch.connectors.monitor import run_prediction_shift

    frame = rows_for("regression", 3000, seed=11)
    src = open_frame(frame)
    try:
        shift = run_prediction_shift(spec_for("regression"), "week", src=src)
    finally:
        src.close()
    lo, hi = frame["p"].min(), frame["p"].max()
    frame = frame.assign(window=frame["t"].dt.to_period("W-SUN").dt.start_time,
                         bucket=np.clip(np.floor((frame["p"] - lo) / ((hi - lo) / 100)), 0, 99))
    base = frame[frame["window"] == frame["window"].min()]
    checked = 0
    for r in shift[shift["grouping"] == "a"].itertuples():
        if r.window == frame["window"].min():
            assert np.isnan(r.ks_statistic)
            continue
        group = dict(r.slice)["a"]
        now, then = frame[(frame["window"] == r.window) & (frame["a"] == group)], base[base["a"] == group]
        assert r.ks_statistic == pytest.approx(stats.ks_2samp(now["bucket"], then["bucket"]).statistic, abs=1e-12)
        assert r.ks_statistic <= stats.ks_2samp(now["p"], then["p"]).statistic + 1e-12
        checked += 1
    assert checked == 4
    last = shift[(shift["window"] == shift["window"].max()) & (shift["grouping"] == "a")].set_index("group")
    assert last.loc["a=u", "q_value"] < 0.05 < last.loc["a=w", "q_value"]


def test_prediction_shift_is_for_regression_only():
    """A multiclass spec gets a one-line error pointing to the population drift."""
    from fairwatch.connectors.monitor import run_prediction_shift

    with pytest.raises(SpecError, match="for regression audits; this one is multiclass"):
        run_prediction_shift(spec_for("multiclass"), src=None)


def _doc(metric: str, value: float, low: float, high: float) -> dict:
    """A minimal snapshot document with one flagged group cell."""
    return {"groups": [{"slice": {"a": "u"}, "grouping": "a",
                        "metrics": {metric: {"value": value, "ci_low": low, "ci_high": high, "support": 500}},
                        "disparities": {metric: {"verdict": "outside", "ratio": 1.5, "q_value": 1e-6}}}]}


@pytest.mark.parametrize("metric,then,now,status", [
    ("mean_absolute_error", (10, 9, 11), (14, 13, 15), "worse"),  # an error grew
    ("mean_absolute_error", (14, 13, 15), (10, 9, 11), "improved"),
    ("false_positive_rate@high", (0.2, 0.18, 0.22), (0.3, 0.28, 0.32), "worse"),
    ("accuracy", (0.7, 0.68, 0.72), (0.6, 0.58, 0.62), "worse"),
    ("true_positive_rate@low", (0.6, 0.58, 0.62), (0.7, 0.68, 0.72), "improved"),
    ("mean_prediction", (900, 880, 920), (700, 680, 720), "unchanged"),  # no better side: a gap either way
])
def test_follow_up_reads_the_direction_of_task_metrics(metric, then, now, status):
    """A task finding whose interval moved clearly is worse or improved by the metric's direction."""
    from fairwatch.metrics.monitoring.followup import follow_up

    (item,) = follow_up(_doc(metric, *then), _doc(metric, *now))
    assert item.status == status, item.explanation


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_trends_of_one_feature(task):
    """One sensitive feature (the Overview's arrows narrow the spec so): one slice per row, the reference named."""
    frame = rows_for(task, 600, seed=12)
    spec = parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a"],
                                                            "task": task, "time": "t"}, "policy": {"min_support": 1}})
    rows = _trends(frame, spec).rows
    assert set(rows["group"]) == {"a=u", "a=w"}
    assert set(rows["reference"]) == {(("a", "u"),)} or set(rows["reference"]) == {(("a", "w"),)}


def test_regression_trends_never_average_nan_or_inf_and_refuse_text():
    """NaN/inf predictions count as rows of their window but never in a metric; text labels are a one-line error."""
    from fairwatch.metrics.errors import DataError

    frame = rows_for("regression", 1500, seed=13)
    frame.loc[frame.index[::50], "p"] = np.inf
    frame.loc[frame.index[7::50], "p"] = np.nan
    trends = _trends(frame, spec_for("regression"))
    finite = frame[np.isfinite(frame["p"])]
    assert_matches_oracle(finite, "regression", trends.rows)
    assert trends.coverage["rows"].sum() == len(frame)
    assert trends.coverage["evaluated_rows"].sum() == len(finite)
    bad = frame.assign(y=frame["y"].astype(str))
    bad.loc[bad.index[3], "y"] = "n/a"
    with pytest.raises(DataError, match="needs numbers, but the label column y holds 'n/a'") as err:
        _trends(bad, spec_for("regression"))
    assert "\n" not in str(err.value)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(60, 400), seed=st.integers(0, 10_000), task=st.sampled_from(["regression", "multiclass"]))
def test_version_values_equal_metricframe_property(n, seed, task):
    """On random rows, each version's value per group equals MetricFrame on that version's raw rows."""
    frame = rows_for(task, n, seed)
    if frame["v"].nunique() < 2:
        return
    rows = _versions(frame, spec_for(task)).rows
    oracle = REGRESSION_ORACLE if task == "regression" else MULTICLASS_ORACLE
    for side, version in (("a", "v1"), ("b", "v2")):
        part = frame[frame["v"] == version]
        by_group = MetricFrame(metrics=oracle, y_true=part["y"], y_pred=part["p"], sensitive_features=part[["b"]]).by_group
        for key, values in by_group.iterrows():
            for metric, expected in values.items():
                got = rows[(rows["group"] == f"b={key}") & (rows["metric"] == metric)][f"value_{side}"]
                assert got.iloc[0] == pytest.approx(expected, rel=1e-9, abs=1e-9, nan_ok=True), (version, key, metric)
