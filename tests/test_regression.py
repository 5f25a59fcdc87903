"""Regression audits (issue 19): every metric equals fairlearn's MetricFrame with scikit-learn's metric on the raw
rows; the SQL sums, intervals, disparities, distributions and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, mean_prediction
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score, root_mean_squared_error

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_frame
from fairwatch.connectors.task_counts import fetch_regression_buckets, fetch_regression_counts
from fairwatch.metrics.errors import DataError, SpecError
from fairwatch.metrics.stats.regression import (
    ERROR_BUCKETS,
    METRICS,
    PREDICTION_BUCKETS,
    bucket_edges,
    compute_distributions,
    compute_regression_table,
    regression_summary,
)
from fairwatch.metrics.audit.spec import parse_spec
from tests.demo_data import law_school_predictions

ORACLE = {
    "mean_prediction": mean_prediction,
    "mean_label": lambda y, p: float(np.mean(y)),
    "mean_error": lambda y, p: float(np.mean(np.asarray(p) - np.asarray(y))),
    "mean_absolute_error": mean_absolute_error,
    "mean_squared_error": mean_squared_error,
    "root_mean_squared_error": root_mean_squared_error,
    # sklearn's default turns an undefined R² (constant labels) into 0 or 1; ours is NaN, as force_finite=False.
    "r2_score": lambda y, p: r2_score(y, p, force_finite=False) if len(y) > 1 else float("nan"),
    # The formulas: mean of max(e, 0) and of max(-e, 0) over the group's rows, e = prediction - label.
    "mean_overprediction": lambda y, p: float(np.mean(np.maximum(np.asarray(p) - np.asarray(y), 0))),
    "mean_underprediction": lambda y, p: float(np.mean(np.maximum(np.asarray(y) - np.asarray(p), 0))),
}
assert set(ORACLE) == set(METRICS)


def spec_for(sensitive=("a", "b"), **columns) -> object:
    """A regression spec over label y, prediction p; min_support 1 so no value is masked."""
    return parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": list(sensitive),
                                                            "task": "regression", **columns},
                       "policy": {"min_support": 1}})


def table_of(frame: pd.DataFrame, spec) -> pd.DataFrame:
    """The audit's group table over a frame, through the SQL sums."""
    src = open_frame(frame)
    try:
        return compute_regression_table(fetch_regression_counts(src, spec), spec).rows
    finally:
        src.close()


def assert_matches_metricframe(frame: pd.DataFrame, rows: pd.DataFrame, sensitive) -> None:
    """Every metric of every group of every grouping equals MetricFrame on the finite raw rows to 1e-9."""
    finite = frame[np.isfinite(frame["y"]) & np.isfinite(frame["p"])]
    for cols in [(s,) for s in sensitive] + ([tuple(sensitive)] if len(sensitive) > 1 else []):
        mf = MetricFrame(metrics=ORACLE, y_true=finite["y"], y_pred=finite["p"],
                         sensitive_features=finite[list(cols)])
        for key, expected in mf.by_group.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            slice_ = tuple((c, str(v)) for c, v in zip(cols, key))
            size = int((finite[list(cols)] == list(key)).all(axis=1).sum())
            if size == 0:  # MetricFrame lists every combination of values, with or without rows
                continue
            got = rows[rows["slice"].map(lambda s: tuple(s) == slice_)].set_index("metric")
            assert int(got["support"].iloc[0]) == size
            for metric in METRICS:
                want, have = float(expected[metric]), float(got.loc[metric, "value"])
                if math.isnan(want) or math.isinf(want):
                    assert math.isnan(have), (slice_, metric, want, have)
                else:
                    assert have == pytest.approx(want, rel=1e-9, abs=1e-9), (slice_, metric)


# Shrinking a DuckDB-backed example takes minutes; the failing example is printed unshrunk instead.
NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
values = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@st.composite
def frames(draw) -> pd.DataFrame:
    """Rows with two sensitive features, numeric labels and predictions, a few NaN/inf values."""
    n = draw(st.integers(min_value=2, max_value=60))
    a = draw(st.lists(st.sampled_from(["r", "s", "t"]), min_size=n, max_size=n))
    b = draw(st.lists(st.sampled_from(["f", "m"]), min_size=n, max_size=n))
    y = draw(st.lists(values | st.sampled_from([5.0, 5.0, 1e4 + 0.5]), min_size=n, max_size=n))
    p = draw(st.lists(values | st.just(float("nan")) | st.just(float("inf")), min_size=n, max_size=n))
    frame = pd.DataFrame({"a": a, "b": b, "y": y, "p": p})
    if not (np.isfinite(frame["y"]) & np.isfinite(frame["p"])).any():
        frame.loc[0, ["y", "p"]] = [1.0, 2.0]
    return frame


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], phases=NO_SHRINK)
@given(frames())
def test_every_metric_equals_metricframe_on_raw_rows(frame):
    """Oracle: the SQL sums give fairlearn/sklearn's numbers for every group and intersection; NaN/inf rows excluded."""
    spec = spec_for()
    src = open_frame(frame)
    try:
        cells = fetch_regression_counts(src, spec)
    finally:
        src.close()
    rows = compute_regression_table(cells, spec).rows
    assert_matches_metricframe(frame, rows, ("a", "b"))
    summary = regression_summary(cells, spec)
    bad = int((~(np.isfinite(frame["y"]) & np.isfinite(frame["p"]))).sum())
    # From pandas, DuckDB reads NaN as NULL (no label or no prediction); inf stays a non-finite value.
    assert summary.nonfinite_rows + summary.unpredicted_rows + summary.unlabelled_rows == bad
    assert summary.nonfinite_rows == int((np.isinf(frame["p"]) & np.isfinite(frame["y"])).sum())
    assert summary.evaluated_rows == len(frame) - bad


def test_labels_far_from_zero_keep_r2_exact():
    """R² from Chan-combined label variance, not Σy² - (Σy)²/n, which would lose every digit at 1e8 + noise."""
    rng = np.random.default_rng(3)
    y = 1e8 + rng.normal(0, 1, 500)
    frame = pd.DataFrame({"a": rng.choice(["u", "v"], 500), "b": "x", "y": y, "p": y + rng.normal(0, 0.3, 500)})
    assert_matches_metricframe(frame, table_of(frame, spec_for()), ("a", "b"))


def test_intervals_are_t_intervals_and_mse_uses_fourth_moment():
    """The mean's interval is scipy's t interval; MSE's is the t interval of the mean of e² (Σe⁴)."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": "g", "b": "x", "y": rng.normal(0, 1, 300), "p": rng.normal(0.5, 2, 300)})
    rows = table_of(frame, spec_for()).set_index("metric")
    rows = rows[rows["grouping"] == "a"]
    for metric, x in (("mean_prediction", frame["p"]), ("mean_squared_error", (frame["p"] - frame["y"]) ** 2),
                      ("mean_absolute_error", (frame["p"] - frame["y"]).abs())):
        low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
        assert rows.loc[metric, "ci_low"] == pytest.approx(low, rel=1e-9)
        assert rows.loc[metric, "ci_high"] == pytest.approx(high, rel=1e-9)
    assert rows.loc["root_mean_squared_error", "ci_high"] == pytest.approx(math.sqrt(rows.loc["mean_squared_error", "ci_high"]))


def planted_gap() -> tuple[pd.DataFrame, object]:
    """4,000 rows of groups ref, hit, same; hit's errors three times as wide; reference ref."""
    rng = np.random.default_rng(2)
    n = 4000
    a = rng.choice(["ref", "hit", "same"], n, p=[0.5, 0.25, 0.25])
    y = rng.normal(50, 5, n)
    p = y + rng.normal(0, 1, n) * np.where(a == "hit", 3, 1)
    spec = parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a"],
                                                            "task": "regression"}, "reference": {"a": "ref"}})
    return pd.DataFrame({"a": a, "y": y, "p": p}), spec


def test_welch_tests_bh_family_and_verdicts_on_a_planted_gap():
    """A group with three times the error is 'outside' on MAE/RMSE with Welch's p-value; mean_label is descriptive."""
    frame, spec = planted_gap()
    rows = table_of(frame, spec)
    mae = rows[rows["metric"] == "mean_absolute_error"].set_index("group")
    assert mae.loc["a=hit", "verdict"] == "outside" and mae.loc["a=same", "verdict"] == "within"
    assert mae.loc["a=ref", "verdict"] == "reference"
    ae = (frame["p"] - frame["y"]).abs()
    want = stats.ttest_ind(ae[frame["a"] == "hit"], ae[frame["a"] == "ref"], equal_var=False).pvalue
    assert mae.loc["a=hit", "p_value"] == pytest.approx(want, rel=1e-6)
    assert mae.loc["a=hit", "ratio_ci_low"] < mae.loc["a=hit", "ratio"] < mae.loc["a=hit", "ratio_ci_high"]
    assert set(rows.loc[rows["metric"] == "mean_label", "verdict"]) <= {"descriptive", "reference"}
    np.testing.assert_array_equal(rows.loc[rows["metric"] == "mean_squared_error", "q_value"].to_numpy(),
                                  rows.loc[rows["metric"] == "root_mean_squared_error", "q_value"].to_numpy())


def test_cell_sums_equal_numpy_on_raw_rows_in_every_part():
    """The per-cell sums that follow from the sign parts (issue 19) equal numpy on each cell's finite raw rows.

    Cells with only e > 0, only e <= 0 (e = 0 included), only unusable rows, and a mix; labels far from zero.
    """
    inf, nan = float("inf"), float("nan")
    frame = pd.DataFrame({
        "a": ["pos", "pos", "neg", "neg", "neg", "zero", "bad", "bad", "bad", "mix", "mix", "mix", "mix"],
        "y": [1e8 + 1.0, 1e8 + 2.0, 5.0, 6.0, 7.5, 3.0, nan, 1.0, inf, 1e8, 1e8 + 0.5, 2.0, 4.0],
        "p": [1e8 + 1.5, 1e8 + 4.0, 4.0, 6.0, 7.0, 3.0, 1.0, inf, 2.0, 1e8 + 0.25, 1e8, nan, 4.0],
    })
    spec = spec_for(("a",))
    src = open_frame(frame)
    try:
        cells = fetch_regression_counts(src, spec).set_index("a")
    finally:
        src.close()
    assert sorted(cells.index) == ["bad", "mix", "neg", "pos", "zero"]
    for name, rows in frame.groupby("a"):
        ok = rows[np.isfinite(rows["y"]) & np.isfinite(rows["p"])]
        y, p = ok["y"].to_numpy(), ok["p"].to_numpy()
        e = p - y
        got = cells.loc[name]
        assert got["all_rows"] == len(rows) and got["n"] == len(ok)
        assert got["unlabelled"] + got["unpredicted"] + got["nonfinite"] == len(rows) - len(ok)
        want = {"s_e": e.sum(), "s_e2": (e**2).sum(), "s_e4": (e**4).sum(), "s_ae": np.abs(e).sum(),
                "s_over": np.maximum(e, 0).sum(), "s_over2": (np.maximum(e, 0) ** 2).sum(),
                "s_under": np.maximum(-e, 0).sum(), "s_y": y.sum(), "s_p": p.sum(), "s_p2": (p**2).sum(),
                "m2_y": ((y - y.mean()) ** 2).sum() if len(y) else 0.0}
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=1e-12, abs=1e-9), (name, key)
        if len(ok):
            assert got["p_min"] == p.min() and got["p_max"] == p.max()
            assert got["e_min"] == e.min() and got["e_max"] == e.max()
        else:
            assert math.isnan(got["p_min"]) and math.isnan(got["mean_y"])
    # A cell whose every error is <= 0 overpredicts by exactly nothing.
    assert cells.loc["neg", "s_over"] == 0.0 and cells.loc["zero", "s_ae"] == 0.0


def test_buckets_count_every_usable_row_once_top_edge_in_the_last_bucket():
    """Prediction and error buckets (clamped on the result rows) count each usable row once; the maxima land in the last."""
    frame = pd.DataFrame({"a": ["u", "u", "v", "v", "v"], "y": [0.0, 1.0, 2.0, 3.0, float("nan")],
                          "p": [0.0, 2.0, 2.5, 10.0, 1.0]})
    spec = spec_for(("a",))
    src = open_frame(frame)
    try:
        cells = fetch_regression_counts(src, spec)
        edges = bucket_edges(cells)
        buckets = fetch_regression_buckets(src, spec, edges)
    finally:
        src.close()
    for kind, top in (("prediction", PREDICTION_BUCKETS - 1), ("error", ERROR_BUCKETS - 1)):
        part = buckets[buckets["kind"] == kind]
        assert part.groupby("a")["n"].sum().to_dict() == {"u": 2, "v": 2}
        assert part["bucket"].between(0, top).all() and not part.duplicated(["a", "bucket"]).any()
        assert part[part["bucket"] == top]["n"].sum() == 1  # the maximum (p = 10, e = 7), clamped into range
        assert part[part["bucket"] == 0]["n"].sum() == 1  # the minimum (p = 0, e = 0)


def test_distribution_gap_equals_ks_on_bucketed_rows():
    """The KS statistic from bucket counts is scipy's ks_2samp on each row's bucket; histograms count every row."""
    rng = np.random.default_rng(4)
    n = 3000
    a = rng.choice(["u", "v"], n)
    frame = pd.DataFrame({"a": a, "y": rng.normal(0, 1, n)})
    frame["p"] = frame["y"] + np.where(a == "u", 0.5, 0)
    spec = spec_for(("a",))
    src = open_frame(frame)
    try:
        cells = fetch_regression_counts(src, spec)
        edges = bucket_edges(cells)
        result = compute_distributions(fetch_regression_buckets(src, spec, edges), edges, spec)
    finally:
        src.close()
    bucket = np.clip(np.floor((frame["p"] - edges.p_lo) / edges.p_width), 0, PREDICTION_BUCKETS - 1)
    gap = result.distribution_gaps.set_index("group")
    want = stats.ks_2samp(bucket[a == "u"], bucket[a == "v"]).statistic
    assert gap.loc["a=u", "ks_statistic"] == pytest.approx(want, abs=1e-12)
    assert gap.loc["a=u", "q_value"] < 0.05
    hist = result.histograms
    assert hist[(hist["kind"] == "prediction")]["n"].sum() == n
    assert hist[(hist["kind"] == "error")]["n"].sum() == n


def test_non_numeric_labels_name_the_first_offending_values():
    """A text value in a regression label is refused, naming it; so in the prediction."""
    frame = pd.DataFrame({"a": ["u", "v", "u"], "y": ["1.5", "high", "n/a"], "p": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match=r"label column y holds 'high', 'n/a'"):
        table_of(frame, spec_for(("a",)))
    frame = pd.DataFrame({"a": ["u", "v"], "y": [1.0, 2.0], "p": ["3", "tall"]})
    with pytest.raises(DataError, match=r"prediction column p holds 'tall'.*--task multiclass"):
        table_of(frame, spec_for(("a",)))


def test_nan_and_inf_are_counted_and_reported_not_averaged(tmp_path):
    """NaN/inf in a file are counted in the snapshot's data and left out of every mean; all of them is an error."""
    path = tmp_path / "rows.csv"
    path.write_text("a,y,p\nu,1,1\nu,2,inf\nv,3,3.5\nv,nan,4\nv,5,\n")
    spec = parse_spec({"source": {"path": str(path)}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a"],
                                                                  "task": "regression"}, "policy": {"min_support": 1}})
    doc = run_audit(spec).to_dict()
    assert doc["data"]["nonfinite_rows"] == 2 and doc["data"]["unpredicted_rows"] == 1
    assert doc["data"]["evaluated_rows"] == 2
    u = next(g for g in doc["groups"] if g["slice"] == {"a": "u"})
    assert u["metrics"]["mean_prediction"]["value"] == 1.0 and u["metrics"]["mean_prediction"]["support"] == 1
    path.write_text("a,y,p\nu,nan,1\nv,1,inf\n")
    with pytest.raises(DataError, match="2 are NaN or infinite"):
        run_audit(spec)


@pytest.mark.parametrize("columns, message", [
    ({"task": "ordinal"}, "task must be one of binary, regression, multiclass"),
    ({"threshold": 0.5, "score": "s"}, "score is for binary audits"),
    ({"positive_label": "1"}, "positive_label is for binary audits"),
])
def test_bad_task_specs(columns, message):
    """Spec errors of the task say what to change."""
    with pytest.raises(SpecError, match=message):
        spec_for(("a",), **columns)


def test_real_lawschool_regression(shared_data):
    """law_data.csv: a small model of ZFYA trained here; every metric by race and sex equals MetricFrame."""
    frame = law_school_predictions(shared_data)
    rows = table_of(frame, spec_for(("race", "sex")))
    assert_matches_metricframe(frame, rows, ("race", "sex"))


def test_a_flagged_regression_gap_has_its_fcr_adjusted_interval_from_raw_rows():
    """The Overview's interval of a flagged MAE ratio is Benjamini-Yekutieli's at level 1 - fdr·R/m: the delta method
    on the log scale with each side's standard error from the raw rows (it was NaN: the binomial formula)."""
    from fairwatch.metrics.policy.overview import adjusted_intervals

    frame, spec = planted_gap()
    rows = adjusted_intervals(table_of(frame, spec), spec.policy)
    hit = rows[(rows["metric"] == "mean_absolute_error") & (rows["group"] == "a=hit")].iloc[0]
    tested = rows["q_value"].notna() & rows["p_value"].notna()
    level = 1 - spec.policy.fdr * int((tested & (rows["q_value"] < spec.policy.fdr)).sum()) / int(tested.sum())
    assert hit["verdict"] == "outside" and hit["adj_level"] == pytest.approx(level)
    ae = (frame["p"] - frame["y"]).abs()
    one, ref = ae[frame["a"] == "hit"], ae[frame["a"] == "ref"]
    se_log = math.hypot(one.std(ddof=1) / math.sqrt(len(one)) / one.mean(), ref.std(ddof=1) / math.sqrt(len(ref)) / ref.mean())
    z = stats.norm.ppf(0.5 + level / 2)
    ratio = one.mean() / ref.mean()
    assert hit["adj_ci_low"] == pytest.approx(ratio * math.exp(-z * se_log), rel=1e-9)
    assert hit["adj_ci_high"] == pytest.approx(ratio * math.exp(z * se_log), rel=1e-9)
    assert hit["adj_ci_low"] < hit["ratio_ci_low"] < hit["ratio_ci_high"] < hit["adj_ci_high"]  # wider than 95%


def test_mean_prediction_is_judged_by_the_band_only_on_a_ratio_scale(shared_data):
    """Law school's ZFYA is a z-score: its mean predictions (negative for most groups) are reported, not judged (they
    read as ratios of -2.3 and 'outside' before); a model of amounts (no negative prediction) keeps the verdict."""
    frame = law_school_predictions(shared_data)
    assert (frame["p"] < 0).any()
    rows = table_of(frame, spec_for(("race",)))
    mp = rows[(rows["metric"] == "mean_prediction") & (rows["verdict"] != "reference")]
    assert len(mp) and set(mp["verdict"]) == {"descriptive"}
    assert "outside" in set(rows.loc[rows["metric"] == "mean_absolute_error", "verdict"])  # the error is still judged
    src = open_frame(frame)
    try:
        spec = spec_for(("race",))
        cells = fetch_regression_counts(src, spec)
        notes = compute_distributions(fetch_regression_buckets(src, spec, bucket_edges(cells)), bucket_edges(cells),
                                      spec).notes
    finally:
        src.close()
    assert any("not judged against the ratio band" in n and f"{frame['p'].min():.4g}" in n for n in notes)
    shifted = frame.assign(p=frame["p"] - frame["p"].min(), y=frame["y"] - frame["p"].min())  # amounts: p >= 0
    rows = table_of(shifted, spec_for(("race",)))
    mp = rows[(rows["metric"] == "mean_prediction") & (rows["verdict"] != "reference")]
    assert "descriptive" not in set(mp["verdict"])
