"""The regression and multiclass drill-down's searched error signal, quality signals and other features (issue 19).

Oracles on raw rows, never our own earlier output:
- regression: the slice's and the rest's mean absolute (or squared) error with numpy, the Welch test and its
  interval with `scipy.stats.ttest_ind(equal_var=False)`, the rest's t interval with `scipy.stats.t`, the ratio's
  interval by the log-scale delta rule written out here;
- multiclass: misclassification and one class's false negatives counted with pandas, the p-value of the test the
  binary search uses (statsmodels' score test `test_proportions_2indep`, replaced by Fisher's exact test, one tail
  doubled, where it can decide) and the ratio's adjusted Katz log interval written out here;
- for a slice the search found: the drill-down's numbers, q-value, verdict and need equal `snapshot.slices` and the
  finding's; a slice the audit did not check gets its quality signals counted now (missing values against pandas);
  its other features' values against the rest equal pandas' value counts;
- the law school (regression) and diabetes (multiclass) files through the drill-down;
- bad input: a slice with no rows, a slice that is every row: one line each.
"""

from __future__ import annotations

import math
from dataclasses import replace

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats import proportion as sm_proportion

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.drilldown import drill_down
from fairwatch.connectors.source import open_frame, open_source
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.discovery.diagnosis import means_plan, rows_plan
from fairwatch.metrics.discovery.quality import MISSING_ANY
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.presentation.slice_views import SEARCH_VERDICTS, analysis_lines
from tests.demo_data import diabetes_predictions, law_school_predictions, task_demo_folder
from tests.test_task_drilldown import regression_frames

Z = stats.norm.ppf(0.975)
FDR = 0.05


def spec_of(task: str, **slices) -> object:
    """A task spec over the frame's columns g (sensitive), f and x (features), min_support 1, the [slices] given."""
    return parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": task, "sensitive": ["g"],
                                   "features": ["f", "x"]},
                       "policy": {"min_support": 1}, "slices": slices})


def mean_ratio_oracle(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """mean(a) / mean(b) with its 95% interval: log-scale delta rule, standard errors sd / sqrt(n)."""
    m1, m2 = a.mean(), b.mean()
    se_log = math.hypot(a.std(ddof=1) / math.sqrt(len(a)) / m1, b.std(ddof=1) / math.sqrt(len(b)) / m2)
    r = m1 / m2
    return r, r * math.exp(-Z * se_log), r * math.exp(Z * se_log)


def proportion_pvalue_oracle(x1: int, n1: int, x2: int, n2: int) -> float:
    """The slice search's p-value of one slice: the score test screens, Fisher's exact test (one tail doubled) decides.

    Exact wherever the score test gives p < 4 x fdr or an expected count is below 5, except where the score test's
    p is a million times below the level (fdr, a family of one) with every expected count at least 50.
    """
    score = float(sm_proportion.test_proportions_2indep(x1, n1, x2, n2, method="score", compare="diff").pvalue)
    pooled = (x1 + x2) / (n1 + n2)
    expected = min(n1 * pooled, n1 * (1 - pooled), n2 * pooled, n2 * (1 - pooled))
    if math.isnan(score):
        score = 1.0
    if (score < 4 * FDR or expected < 5) and not (score < 1e-6 * FDR and expected >= 50):
        table = [[x1, n1 - x1], [x2, n2 - x2]]
        side = "greater" if x1 * (n1 + n2) >= (x1 + x2) * n1 else "less"
        return min(1.0, 2 * stats.fisher_exact(table, alternative=side).pvalue)
    return score


def katz_oracle(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float, float]:
    """(x1/n1) / (x2/n2) with the adjusted Katz log interval: every count and n plus 0.5 (Agresti 2002)."""
    a1, m1, a2, m2 = x1 + 0.5, n1 + 0.5, x2 + 0.5, n2 + 0.5
    adjusted = (a1 / m1) / (a2 / m2)
    se = math.sqrt(1 / a1 - 1 / m1 + 1 / a2 - 1 / m2)
    return (x1 / n1) / (x2 / n2), adjusted * math.exp(-Z * se), adjusted * math.exp(Z * se)


def _check_regression_signal(frame: pd.DataFrame, error: str) -> None:
    """The slice f=u's searched error against the rest equals numpy and scipy on its finite rows."""
    a = drill_down(open_frame(frame), spec_of("regression", error=error), None, (("f", "u"),))
    y, p = frame["y"].astype(float).to_numpy(), frame["p"].astype(float).to_numpy()
    ok = np.isfinite(y) & np.isfinite(p)
    loss = np.abs(p - y) if error == "absolute_error" else (p - y) ** 2
    inside = (frame["f"] == "u").to_numpy()
    own, rest = loss[ok & inside], loss[ok & ~inside]
    e = a.error
    assert (int(e["n"]), int(e["complement_n"])) == (len(own), len(rest))
    assert a.metric == error and a.origin == "hand"
    if len(own):
        assert e["rate"] == pytest.approx(own.mean(), rel=1e-9, abs=1e-12)
    if len(rest):
        assert e["complement_rate"] == pytest.approx(rest.mean(), rel=1e-9, abs=1e-12)
    if len(own) < 2 or len(rest) < 2:
        assert np.isnan(e["p_value"])
        return
    welch = stats.ttest_ind(own, rest, equal_var=False)
    if np.isfinite(welch.pvalue):
        assert e["p_value"] == pytest.approx(welch.pvalue, rel=1e-6, abs=1e-12)
        low, high = welch.confidence_interval(0.95)
        assert (e["diff_ci_low"], e["diff_ci_high"]) == (pytest.approx(low, rel=1e-6, abs=1e-9),
                                                         pytest.approx(high, rel=1e-6, abs=1e-9))
    if rest.std(ddof=1) > 0:
        low, high = stats.t.interval(0.95, len(rest) - 1, loc=rest.mean(), scale=stats.sem(rest))
        assert e["complement_ci_low"] == pytest.approx(max(low, 0.0), rel=1e-6, abs=1e-9)
        assert e["complement_ci_high"] == pytest.approx(high, rel=1e-6, abs=1e-9)
    if own.mean() > 0 and rest.mean() > 0 and own.std(ddof=1) > 0 and rest.std(ddof=1) > 0:
        r, low, high = mean_ratio_oracle(own, rest)
        assert (e["ratio"], e["ratio_ci_low"], e["ratio_ci_high"]) == (
            pytest.approx(r, rel=1e-9), pytest.approx(low, rel=1e-6), pytest.approx(high, rel=1e-6))
    assert e["verdict"] in SEARCH_VERDICTS


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regression_frames(), st.sampled_from(["absolute_error", "squared_error"]))
def test_a_regression_slices_error_test_equals_scipy_welch(frame, error):
    """Property: mean error in and out, Welch's p-value and interval, the rest's t interval and the ratio's interval."""
    _check_regression_signal(frame, error)


def multiclass_frame(seed: int = 5, n: int = 600) -> pd.DataFrame:
    """Three classes, a slice f=u with more errors, ten unlabelled rows and five without a prediction."""
    rng = np.random.default_rng(seed)
    classes = ["cat", "dog", "eel"]
    y = rng.choice(classes, n)
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], n), "f": rng.choice(["u", "v"], n),
                          "x": rng.integers(0, 5, n).astype(float), "y": y})
    wrong = rng.random(n) < np.where(frame["f"] == "u", 0.35, 0.2)
    frame["p"] = np.where(wrong, rng.choice(classes, n), y)
    frame.loc[:9, "y"] = None
    frame.loc[10:14, "p"] = None
    return frame


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10**6), st.integers(30, 500), st.sampled_from(["misclassification", "false_negative"]))
def test_a_multiclass_slices_error_test_is_the_searchs_two_proportion_test(seed, n, error):
    """Property: errors and denominators from pandas; p-value the binary search's test; the ratio's Katz interval."""
    frame = multiclass_frame(seed, n)
    slices = {"error": error} | ({"class": "cat"} if error == "false_negative" else {})
    a = drill_down(open_frame(frame), spec_of("multiclass", **slices), None, (("f", "u"),))
    both = frame["y"].notna() & frame["p"].notna()
    if error == "misclassification":
        den, wrong = both, frame["y"] != frame["p"]
    else:
        den, wrong = both & (frame["y"] == "cat"), frame["p"] != "cat"
    inside = frame["f"] == "u"
    x1, n1 = int((den & wrong & inside).sum()), int((den & inside).sum())
    x2, n2 = int((den & wrong & ~inside).sum()), int((den & ~inside).sum())
    e = a.error
    assert (int(e["errors"]), int(e["n"]), int(round(e["complement_errors"])), int(e["complement_n"])) == (x1, n1, x2, n2)
    assert a.metric == ("misclassification" if error == "misclassification" else "false_negative@cat")
    assume(n1 > 0 and x2 > 0)  # a rate on both sides and a ratio to compare
    assert e["p_value"] == pytest.approx(proportion_pvalue_oracle(x1, n1, x2, n2), rel=1e-9)
    r, low, high = katz_oracle(x1, n1, x2, n2)
    assert e["ratio"] == pytest.approx(r, rel=1e-12)
    assert (e["ratio_ci_low"], e["ratio_ci_high"]) == (pytest.approx(low, rel=1e-9), pytest.approx(high, rel=1e-9))
    # The verdict the search would give it: material (ratio > 1.25 and worse) and significant at the fdr.
    material = r > 1.25 and x1 / n1 > x2 / n2
    significant = e["p_value"] < FDR and x1 / n1 > x2 / n2
    want = "finding" if material and significant else "small" if significant else (
        "inconclusive" if x1 / n1 > x2 / n2 else "not_worse")
    assert e["verdict"] == want and e["finding"] == (want == "finding")
    assert "the slice search would call it" in analysis_lines(a)[2]


def test_classes_spelled_as_numbers_compare_as_the_search_compares_them():
    """A prediction '2.0' of label '2' is right, as the search's class codes have it (normalise_value)."""
    frame = pd.DataFrame({"g": ["a", "b"] * 20, "f": ["u"] * 10 + ["v"] * 30, "x": [1.0] * 40,
                          "y": ["1", "2", "3", "2"] * 10, "p": ["1.0", "2.0", "1", "2"] * 10})
    a = drill_down(open_frame(frame), spec_of("multiclass"), None, (("f", "u"),))
    wrong = frame["y"].astype(float) != frame["p"].astype(float)
    assert (int(a.error["errors"]), int(a.error["n"])) == (int(wrong[:10].sum()), 10)
    assert int(round(a.error["complement_errors"])) == int(wrong[10:].sum())


def test_a_non_finding_gets_the_data_need_of_power_for_means_and_rates():
    """An undecided gap: more data, its rows from power for means (regression) or rates (multiclass), raw spreads."""
    rng = np.random.default_rng(11)
    n = 400
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], n), "f": np.where(np.arange(n) < 10, "u", "v"),
                          "x": rng.integers(0, 5, n).astype(float), "y": rng.normal(10, 2, n)})
    frame["p"] = frame["y"] + rng.normal(0, 1, n) * np.where(frame["f"] == "u", 1.2, 1.0)
    a = drill_down(open_frame(frame), spec_of("regression"), None, (("f", "u"),))
    loss = (frame["p"] - frame["y"]).abs().to_numpy()
    own, rest = loss[:10], loss[10:]
    assert a.error["verdict"] == "inconclusive" and a.need == "more_data"
    plan = means_plan(own.mean(), own.std(ddof=1), 10, rest.mean(), rest.std(ddof=1), 390, spec_of("regression"),
                      FDR)
    assert a.additional_rows == plan.additional_rows and a.additional_rows > 0
    assert f"{a.additional_rows:,}" in a.message
    frame = multiclass_frame(9, 300)
    frame["f"] = np.where(np.arange(300) < 40, "u", "v")
    frame["p"] = np.where((np.arange(300) < 40) & (np.arange(300) % 6 == 0), "dog", frame["p"])
    a = drill_down(open_frame(frame), spec_of("multiclass"), None, (("f", "u"),))
    both = frame["y"].notna() & frame["p"].notna()
    inside = frame["f"] == "u"
    counts = [int((both & (frame["y"] != frame["p"]) & inside).sum()), int((both & inside).sum()),
              int((both & (frame["y"] != frame["p"]) & ~inside).sum()), int((both & ~inside).sum())]
    assert a.error["verdict"] == "inconclusive" and a.need == "more_data"
    assert a.additional_rows == rows_plan(*counts, spec_of("multiclass"), alpha=FDR).additional_rows > 0


# ----------------------------------------------------------------------------- against the audit's slice search


@pytest.fixture(scope="module", params=["regression", "multiclass", "multiclass_fn"])
def demo(request, tmp_path_factory):
    """(spec, source, snapshot, raw rows) of a 20k-row task demo; multiclass_fn searches class very_high's misses."""
    task = request.param.split("_")[0]
    spec = task_demo_folder(tmp_path_factory.mktemp("drill"), task, rows=20_000)
    if request.param == "multiclass_fn":
        spec = replace(spec, slices=replace(spec.slices, error="false_negative", error_class="very_high"))
    with duckdb.connect(spec.source.path, read_only=True) as con:
        raw = con.sql(f'SELECT * FROM "{spec.source.table}"').df()
    return spec, open_source(spec.source), run_audit(spec), raw


def test_a_finding_drills_down_to_the_searchs_own_numbers(demo):
    """Each finding: n, error, rest, difference with interval, p, q, verdict and need equal the snapshot's."""
    spec, src, snap, _ = demo
    assert snap.findings
    table = snap.slices.rows
    for f in snap.findings:
        a = drill_down(src, spec, snap, f.slice)
        row = table[table["slice"].map(tuple) == f.slice].iloc[0]
        for k in ("n", "complement_n", "rate", "ci_low", "ci_high", "complement_rate", "difference", "diff_ci_low",
                  "diff_ci_high", "p_value", "q_value"):
            assert a.error[k] == pytest.approx(row[k], rel=1e-9, abs=1e-300), k
        assert a.origin == "finding" and a.error["verdict"] == "finding" and a.error["finding"]
        assert (a.need, a.additional_rows, a.message) == (f.need, f.additional_rows, f.message)
        assert a.metric == f.metric and a.quality_note.startswith("tested with every signal of the audit")
        assert a.error["ratio"] == pytest.approx(row["rate"] / row["complement_rate"], rel=1e-9)
        assert a.error["ratio_ci_low"] < a.error["ratio"] < a.error["ratio_ci_high"]
        assert "the slice search's verdict: a finding" in analysis_lines(a)[2].replace("\\", "")


def test_a_slice_the_audit_did_not_check_gets_its_quality_counted_now(demo):
    """region=east (not a finding): its signals counted now; its missing values and other features equal pandas'."""
    spec, src, snap, raw = demo
    slice_ = (("region", "east"),)
    assert not snap.quality.checked(slice_)
    a = drill_down(src, spec, snap, slice_)
    assert a.quality_note.startswith("counted now for this slice") and len(a.quality)
    inside = raw["region"] == "east"
    others = [c for c in (*spec.sensitive, *spec.features) if c != "region"]
    missing = a.quality[a.quality["signal"] == MISSING_ANY].iloc[0]
    assert (int(missing["x"]), int(missing["n"])) == (int(raw.loc[inside, others].isna().any(axis=1).sum()),
                                                      int(inside.sum()))
    assert a.need is None or a.need in ("more_data", "better_data", "model")
    values = a.values
    assert set(values["feature"]) == set(others)
    for side, mask in ((True, inside), (False, ~inside)):
        got = values[(values["feature"] == "sex") & (values["in_slice"] == side)].set_index("value")["n"]
        want = raw.loc[mask, "sex"].fillna("(missing)").astype(str).value_counts()
        assert got.sort_index().to_dict() == want.sort_index().to_dict()


# ----------------------------------------------------------------------------- real data


def test_law_school_through_the_drill_down(shared_data):
    """law_data.csv with a model of ZFYA: each finding's MAE test equals scipy's Welch on its raw rows and the search's."""
    frame = law_school_predictions(shared_data)
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": "regression", "sensitive": ["race", "sex"],
                                   "features": ["region"]}})
    src = open_frame(frame)
    snap = run_audit(spec, src=src)
    loss = (frame["p"] - frame["y"]).abs().to_numpy()
    assert snap.findings
    for f in snap.findings[:3]:
        a = drill_down(src, spec, snap, f.slice)
        mine = np.ones(len(frame), dtype=bool)
        for feat, value in f.slice:
            mine &= (frame[feat] == value).to_numpy()
        assert a.error["rate"] == pytest.approx(loss[mine].mean(), rel=1e-9)
        want = stats.ttest_ind(loss[mine], loss[~mine], equal_var=False).pvalue
        assert a.error["p_value"] == pytest.approx(want, rel=1e-6, abs=1e-300)
        assert (a.need, a.additional_rows) == (f.need, f.additional_rows)
        assert a.values["n"].sum() == len(frame) * (3 - len(f.slice))  # every row once per other feature


def test_diabetes_through_the_drill_down(shared_data):
    """diabetic_data_first5399.csv with a model of `readmitted`: a slice's error rate and test from its raw rows."""
    frame = diabetes_predictions(shared_data)
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": "multiclass",
                                   "sensitive": ["race", "gender", "age"]}})
    src = open_frame(frame)
    snap = run_audit(spec, src=src)
    for slice_ in [*(f.slice for f in snap.findings[:2]), (("gender", "Female"),), (("age", "[70-80)"),)]:
        a = drill_down(src, spec, snap, slice_)
        mine = np.ones(len(frame), dtype=bool)
        for feat, value in slice_:
            mine &= (frame[feat] == value).to_numpy()
        wrong = (frame["y"] != frame["p"]).to_numpy()
        x1, n1, x2, n2 = int(wrong[mine].sum()), int(mine.sum()), int(wrong[~mine].sum()), int((~mine).sum())
        assert (int(a.error["errors"]), int(a.error["n"])) == (x1, n1)
        if a.origin == "hand":  # a searched slice carries the search's p (its family's floor may differ)
            assert a.error["p_value"] == pytest.approx(proportion_pvalue_oracle(x1, n1, x2, n2), rel=1e-9)
        assert a.error["ratio"] == pytest.approx((x1 / n1) / (x2 / n2), rel=1e-12)
        assert len(a.quality) and a.values["n"].sum() == len(frame) * (3 - len(slice_))


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_bad_slices_are_one_line_each_with_an_audit(task):
    """With the audit's snapshot too: a slice with no rows, and a slice that is every row, each one line."""
    frame = pd.DataFrame({"g": ["a", "b"] * 10, "f": ["u"] * 20, "x": [1.0, 2.0] * 10,
                          "y": [1.0, 2.0, 3.0, 5.0] * 5, "p": [1.5, 2.0, 2.0, 4.0] * 5})
    if task == "multiclass":
        frame[["y", "p"]] = frame[["y", "p"]].astype(int).astype(str)
    spec, src = spec_of(task), open_frame(frame)
    snap = run_audit(spec, src=src)
    for slice_, words in (((("g", "c"),), "no rows match g=c in the chosen view"),
                          ((("f", "u"),), "no rest to compare it with")):
        with pytest.raises(DataError, match=words) as err:
            drill_down(src, spec, snap, slice_)
        assert "\n" not in str(err.value)
