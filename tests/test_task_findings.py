"""Slice search, data-quality signals, data needs and findings of regression and multiclass audits (issue 19).

Oracles on raw rows: a slice's mean loss and Welch p-value equal scipy's `ttest_ind(equal_var=False)`;
a multiclass slice's error rate equals 1 - scikit-learn's accuracy, a class's false-negative rate
1 - its recall; outlying labels equal numpy's quartiles ('inverted_cdf') with Tukey's fences;
conflicting duplicates a pandas groupby; the power for means statsmodels' `NormalIndPower`. Then
the demos' planted effects, planted data problems, real data and bad inputs.
"""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats
from sklearn.metrics import accuracy_score, recall_score
from statsmodels.stats.power import NormalIndPower

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.slice_counts import fetch_slice_counts
from fairwatch.connectors.source import open_frame
from fairwatch.connectors.task_quality_counts import fetch_task_quality_counts
from fairwatch.metrics.audit.outcomes import normalise_value
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.discovery.diagnosis import POWER, means_plan
from fairwatch.metrics.discovery.plan import build_plan
from fairwatch.metrics.discovery.quality import CONFLICTS, MISSING_ANY, OUTLIERS
from fairwatch.metrics.discovery.slices import find_slices
from fairwatch.metrics.errors import DataError, SpecError

MISSING = "(missing)"
GROUPS = ["a", "b", "o'k", None]


def spec_of(task: str, error: str | None = None, cls: str | None = None, **extra):
    """A task spec over the frame's columns g (sensitive) and f (feature), every slice counted."""
    slices = {"max_depth": 2} | ({"error": error} if error else {}) | ({"class": cls} if cls else {})
    return parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": task, "sensitive": ["g"], "features": ["f"]},
                       "policy": {"min_support": 1} | extra, "slices": slices})


def keys(frame: pd.DataFrame) -> pd.DataFrame:
    """The slice keys as the search spells them: text, NULL as '(missing)'."""
    return frame[["g", "f"]].astype(object).where(frame[["g", "f"]].notna(), MISSING)


def in_slice(k: pd.DataFrame, slice_) -> np.ndarray:
    """Rows of a slice given as (feature, value) pairs."""
    mask = np.ones(len(k), dtype=bool)
    for feat, value in slice_:
        mask &= (k[feat] == value).to_numpy()
    return mask


@st.composite
def regression_rows(draw):
    """Random rows with finite, NaN, infinite and missing labels and predictions."""
    n = draw(st.integers(4, 50))
    number = st.one_of(st.integers(-40, 40).map(lambda v: v / 4), st.sampled_from([np.nan, np.inf, -np.inf]),
                       st.none())
    frame = pd.DataFrame({
        "g": pd.Series([draw(st.sampled_from(GROUPS)) for _ in range(n)], dtype=object),
        "f": pd.Series([draw(st.sampled_from(["x", "y"])) for _ in range(n)], dtype=object),
        "y": pd.array([draw(number) for _ in range(n)], dtype="Float64"),
        "p": pd.array([draw(number) for _ in range(n)], dtype="Float64"),
    })
    # pandas turns NaN into NULL in a nullable array: keep real NaN/inf as float64 where no NULL was drawn.
    for c in ("y", "p"):
        if not frame[c].isna().any():
            frame[c] = frame[c].astype("float64")
    return frame


@pytest.mark.parametrize("error", ["absolute_error", "squared_error"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=regression_rows())
def test_regression_slices_equal_scipy_welch_on_raw_rows(frame, error):
    """Every slice: n, summed loss, mean and Welch p-value against the rest equal scipy on the raw finite rows."""
    spec = spec_of("regression", error)
    y, p = frame["y"].astype("float64").to_numpy(), frame["p"].astype("float64").to_numpy()
    usable = np.isfinite(y) & np.isfinite(p)
    if not usable.any():
        with pytest.raises(DataError, match="no rows count toward"):
            fetch_slice_counts(open_frame(frame), spec, None, None)
        return
    loss = np.abs(p - y) if error == "absolute_error" else (p - y) ** 2
    table = find_slices(fetch_slice_counts(open_frame(frame), spec, None, None), spec)
    k = keys(frame)
    assert table.total_n == int(usable.sum())
    for r in table.rows.to_dict("records"):
        mine = in_slice(k, r["slice"]) & usable
        rest = ~in_slice(k, r["slice"]) & usable
        assert r["n"] == mine.sum()
        assert r["errors"] == pytest.approx(loss[mine].sum(), rel=1e-9, abs=1e-9)
        assert r["rate"] == pytest.approx(loss[mine].mean(), rel=1e-9, abs=1e-9)
        if mine.sum() > 1 and rest.sum() > 1 and (loss[mine].std() > 0 or loss[rest].std() > 0):
            want = stats.ttest_ind(loss[mine], loss[rest], equal_var=False).pvalue
            assert r["p_value"] == pytest.approx(want, rel=1e-6, abs=1e-12), r["group"]


@st.composite
def multiclass_rows(draw):
    """Random classes, spelled as integers in the label and as '2', '2.0' or an unseen '9' in the prediction."""
    n = draw(st.integers(4, 50))
    frame = pd.DataFrame({
        "g": pd.Series([draw(st.sampled_from(GROUPS)) for _ in range(n)], dtype=object),
        "f": pd.Series([draw(st.sampled_from(["x", "y"])) for _ in range(n)], dtype=object),
        "y": pd.array([draw(st.sampled_from([1, 2, 3, None])) for _ in range(n)], dtype="Int64"),
        "p": pd.Series([draw(st.sampled_from(["1", "2", "2.0", "3", "9", None])) for _ in range(n)], dtype=object),
    })
    return frame


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=multiclass_rows(), cls=st.sampled_from([None, "2", "3"]))
def test_multiclass_slices_equal_sklearn_on_raw_rows(frame, cls):
    """Misclassification = 1 - accuracy_score, a class's false negatives = 1 - recall_score, per slice."""
    labelled = frame["y"].notna().to_numpy() & frame["p"].notna().to_numpy()
    y = np.array([normalise_value(str(v)) if v is not pd.NA else None for v in frame["y"]], dtype=object)
    p = np.array([normalise_value(v) if v is not None else None for v in frame["p"]], dtype=object)
    spec = spec_of("multiclass", "false_negative" if cls else None, cls)
    den = labelled & (y == cls) if cls else labelled
    src = open_frame(frame)
    if cls is not None and not (frame["y"].astype("string") == cls).any():
        with pytest.raises(DataError, match="never occurs as a label"):
            fetch_slice_counts(src, spec, None, None)
        return
    if not den.any():
        with pytest.raises(DataError, match="no rows count toward"):
            fetch_slice_counts(src, spec, None, None)
        return
    table = find_slices(fetch_slice_counts(src, spec, None, None), spec)
    k = keys(frame)
    for r in table.rows.to_dict("records"):
        mine = in_slice(k, r["slice"]) & den
        assert r["n"] == mine.sum()
        if not mine.any():
            continue
        truth, guess = y[mine].astype(str), p[mine].astype(str)
        if cls is None:
            want = 1 - accuracy_score(truth, guess)
        else:
            want = 1 - recall_score(truth, guess, labels=[cls], average="macro", zero_division=0)
        assert r["rate"] == pytest.approx(want, abs=1e-12), r["group"]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=regression_rows())
def test_quality_counts_equal_numpy_and_pandas(frame):
    """Outlying labels (numpy quartiles, inverted CDF, Tukey's fences) and missing values per sensitive group equal
    the raw rows; conflicting duplicates are not a regression signal (numeric labels), so none is reported."""
    spec = spec_of("regression")
    y, p = frame["y"].astype("float64").to_numpy(), frame["p"].astype("float64").to_numpy()
    if not (np.isfinite(y) & np.isfinite(p)).any():
        return
    counts = fetch_task_quality_counts(open_frame(frame), spec, [])
    finite = np.isfinite(y)
    q1, q3 = np.quantile(y[finite], [0.25, 0.75], method="inverted_cdf")
    out = finite & ((y < q1 - 1.5 * (q3 - q1)) | (y > q3 + 1.5 * (q3 - q1)))
    k = keys(frame)
    sig = counts.signals
    for s in counts.slices["slice"]:
        mine = in_slice(k, s)
        row = {r["signal"]: r for r in sig[sig["slice"] == s].to_dict("records") if pd.isna(r["column"])}
        assert (row[OUTLIERS]["x"], row[OUTLIERS]["n"]) == (int((out & mine).sum()), int((finite & mine).sum()))
        assert CONFLICTS not in row
        assert row[MISSING_ANY]["x"] == int((k["f"] == MISSING).to_numpy()[mine].sum())
        assert row[OUTLIERS]["total_x"] == int(out.sum())


@pytest.mark.parametrize("sd", [8.0, 20.0])
def test_means_plan_is_the_power_of_normal_ind_power(sd):
    """Equal spreads: the rows returned reach 80% power on Cohen's d (statsmodels), one fewer does not."""
    spec = parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a"],
                                                            "task": "regression"}})
    plan = means_plan(13.0, sd, 40, 10.0, sd, 5000, spec, alpha=0.01)
    assert plan.basis == "observed_gap" and plan.additional_rows == plan.rows_needed - 40

    def power(n1: int) -> float:
        """statsmodels' power of the two-sided z-test for the gap in sd units."""
        return NormalIndPower().power(effect_size=3.0 / sd, nobs1=n1, alpha=0.01, ratio=5000 / n1)

    assert power(plan.rows_needed) >= POWER > power(plan.rows_needed - 1)
    inside = means_plan(11.0, sd, 40, 10.0, sd, 5000, spec, alpha=0.01)  # inside the band: its boundary
    assert inside.basis == "tolerance_boundary" and inside.target_rate == pytest.approx(12.5)
    assert means_plan(13.0, sd, 40, 10.0, sd, 3, spec, alpha=0.01).basis == "comparison_too_small"


# ----------------------------------------------------------------------------- planted effects, end to end


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """The regression and multiclass demos (20k rows each)."""
    from fairwatch.connectors.demo_tasks import TASK_CONFIGS, write_task_demo

    folder = tmp_path_factory.mktemp("task-demos")
    out = {}
    for task in ("regression", "multiclass"):
        write_task_demo(folder / f"{task}.duckdb", task, rows=20_000)
        raw = copy.deepcopy(TASK_CONFIGS[task])
        raw["source"]["path"] = str(folder / f"{task}.duckdb")
        out[task] = raw
    return out


@pytest.mark.parametrize("task, slices, planted", [
    ("regression", {}, {"race_ethnicity=Hispanic", "age_band=18-24"}),
    ("regression", {"error": "squared_error"}, {"race_ethnicity=Hispanic", "age_band=18-24"}),
    ("multiclass", {}, {"race_ethnicity=Black"}),
    ("multiclass", {"error": "false_negative", "class": "very_high"}, {"age_band=65+"}),
    ("multiclass", {"error": "false_negative", "class": "low"}, {"race_ethnicity=Black"}),
])
def test_demo_plants_come_out_as_findings(demos, task, slices, planted):
    """Each planted model effect is a finding with need 'model', and nothing else is."""
    raw = copy.deepcopy(demos[task]) | {"slices": slices}
    snap = run_audit(parse_spec(raw))
    assert {"&".join(f"{k}={v}" for k, v in f.slice) for f in snap.findings} == planted
    assert {f.need for f in snap.findings} == {"model"}
    metric = slices.get("error", "absolute_error" if task == "regression" else "misclassification")
    assert all(f.metric == metric + (f"@{slices['class']}" if "class" in slices else "") for f in snap.findings)
    assert snap.quality is not None and snap.group_needs is not None
    doc = snap.to_dict()
    assert len(doc["findings"]) == len(planted)


def _planted_frame(seed: int = 7) -> pd.DataFrame:
    """Regression rows: region 'east' has 15% labels mistyped x10 (outlying labels), the model is the same everywhere."""
    rng = np.random.default_rng(seed)
    n = 6000
    frame = pd.DataFrame({
        "g": rng.choice(["u", "v", "w"], n), "f": rng.choice(["north", "east", "south", "west"], n),
        "age": rng.choice(["young", "mid", "old"], n),
    })
    truth = rng.normal(100, 10, n)
    frame["p"] = truth + rng.normal(0, 3, n)
    frame["y"] = np.where((frame["f"] == "east") & (rng.random(n) < 0.15), truth * 10, truth)
    return frame


def test_outlying_labels_explain_a_finding():
    """The mistyped labels' slice is a finding whose need is better data: without its outliers the gap is gone."""
    frame = _planted_frame()
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": "regression", "sensitive": ["g", "age"],
                                   "features": ["f"]}})
    snap = run_audit(spec, src=open_frame(frame))
    east = next(f for f in snap.findings if f.slice == (("f", "east"),))
    assert east.need == "better_data" and "outlying_labels" in east.evidence["quality"]["signals_fired"]
    assert "far outside the usual range" in east.message
    q = snap.quality.rows
    fired = q[q["fired"] & (q["signal"] == OUTLIERS)]
    assert set(fired["group"]) == {"f=east"}
    # Without the flagged rows east's error is the rest's: the evidence says so in numbers.
    gone = next(g for g in east.evidence["quality"]["without_flagged"] if g["signal"] == OUTLIERS)
    assert gone["explains_gap"] and gone["ratio_without_flagged"] < spec.policy.ratio_high


def test_a_small_regression_group_gets_rows_from_the_power_for_means():
    """A group too small to judge its MAE: more data, with the rows the power for means asks for."""
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame({"g": rng.choice(["big", "small"], n, p=[0.992, 0.008]), "f": rng.choice(["x", "y"], n)})
    frame["y"] = rng.normal(50, 5, n)
    frame["p"] = frame["y"] + rng.normal(0, 2, n) * np.where(frame["g"] == "small", 1.5, 1.0)
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": "regression", "sensitive": ["g"],
                                   "features": ["f"]}})
    snap = run_audit(spec, src=open_frame(frame))
    row = snap.group_needs.set_index("group").loc["g=small"]
    assert row["need"] == "more_data" and row["additional_rows"] > 0
    plan = row["evidence"]["additional_rows_plan"]
    small = int((frame["g"] == "small").sum())
    # Below min_support a mean is withheld whatever the power says: at least that many rows.
    assert "Welch" in plan["explanation"] and small < spec.policy.min_support
    assert row["additional_rows"] == max(plan["rows_needed"], spec.policy.min_support) - small
    items = build_plan(snap, 100_000).items
    assert [i.candidate.slice for i in items] == [(("g", "small"),)] and items[0].settles


def test_the_labelling_queue_follows_a_regression_plan():
    """Unlabelled rows of the small group: the plan counts its pool and the queue draws from it, ids only from it."""
    from fairwatch.connectors.queue import fetch_queue, plan_pools

    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame({"id": np.arange(n), "g": rng.choice(["big", "small"], n, p=[0.98, 0.02]),
                          "f": rng.choice(["x", "y"], n)})
    frame["y"] = rng.normal(50, 5, n)
    frame["p"] = frame["y"] + rng.normal(0, 2, n)
    small = np.flatnonzero(frame["g"] == "small")
    frame.loc[small[: len(small) - 20], "y"] = np.nan  # 20 labelled, the rest waiting for labels
    frame["y"] = frame["y"].astype("Float64").mask(frame["y"].isna())
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": "regression", "sensitive": ["g"],
                                   "features": ["f"], "id": "id"}})
    src = open_frame(frame)
    snap = run_audit(spec, src=src)
    pools = plan_pools(snap, src)
    plan = build_plan(snap, 50, pools)
    assert pools[(("g", "small"),)] == len(small) - 20 and plan.allocated > 0
    queue = fetch_queue(src, snap, plan)
    assert len(queue.rows) == plan.allocated and set(queue.rows["id"]) <= set(frame["id"][small])


def test_conflicting_classes_fire_for_multiclass():
    """Duplicated rows with different classes in one feature value: the conflicting-duplicates signal fires there."""
    rng = np.random.default_rng(11)
    n = 4000
    frame = pd.DataFrame({"g": rng.choice(["u", "v"], n), "f": rng.choice([f"c{i}" for i in range(40)], n),
                          "h": rng.choice([f"d{i}" for i in range(40)], n)})
    frame["y"] = rng.choice(["low", "mid", "high"], n)
    frame["p"] = np.where(rng.random(n) < 0.8, frame["y"], rng.choice(["low", "mid", "high"], n))
    twins = frame[frame["f"] == "c0"].copy()
    twins["y"] = twins["y"].map({"low": "mid", "mid": "high", "high": "low"})
    frame = pd.concat([frame, twins], ignore_index=True)
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": "multiclass", "sensitive": ["g"],
                                   "features": ["f", "h"]}})
    counts = fetch_task_quality_counts(open_frame(frame), spec, [(("f", "c0"),)])
    from fairwatch.metrics.discovery.quality import compute_quality

    q = compute_quality(counts, spec).rows
    row = q[(q["group"] == "f=c0") & (q["signal"] == CONFLICTS)].iloc[0]
    assert row["fired"] and row["rate"] == 1.0


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize("task, slices, message", [
    ("regression", {"error": "misclassification"}, "does not fit a regression audit"),
    ("regression", {"error": "false_positive"}, "does not fit a regression audit"),
    ("multiclass", {"error": "absolute_error"}, "absolute_error is for regression audits"),
    ("multiclass", {"error": "false_negative"}, "needs the class"),
    ("multiclass", {"class": "high"}, "has no class"),
    ("regression", {"class": "high"}, "has no class"),
    ("binary", {"error": "squared_error"}, "must be one of"),
])
def test_error_signal_not_valid_for_the_task(task, slices, message):
    """An error signal or class that does not fit the task is a one-line spec error."""
    with pytest.raises(SpecError, match=message) as info:
        parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a"],
                                                         "task": task}, "slices": slices})
    assert "\n" not in str(info.value)


def test_unknown_class_is_named_with_the_classes(demos):
    """A false-negative search for a class the labels never hold says which classes exist."""
    raw = copy.deepcopy(demos["multiclass"]) | {"slices": {"error": "false_negative", "class": "manual_review"}}
    with pytest.raises(DataError, match=r"class 'manual_review' never occurs as a label.*'high'") as info:
        run_audit(parse_spec(raw))
    assert "\n" not in str(info.value)


def test_cli_takes_the_error_and_class(demos, tmp_path):
    """--error false_negative --error-class very_high on the command line: the findings name the class."""
    import json

    from fairwatch.cli import main
    from fairwatch.connectors.config import write_config

    toml = tmp_path / "fairwatch.toml"
    write_config(parse_spec(demos["multiclass"]), toml)
    assert main(["audit", "--config", str(toml), "--error", "false_negative", "--error-class", "very_high",
                 "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "snapshot.json").read_text())
    assert [f["id"] for f in doc["findings"]] == ["false_negative@very_high|age_band=65+"]
    assert doc["spec"]["slices"]["class"] == "very_high"


# ----------------------------------------------------------------------------- real data


def test_law_school_regression_findings_equal_scipy(shared_data):
    """law_data.csv with a model of ZFYA: every finding's MAE and Welch p-value equal scipy on its raw rows."""
    from sklearn.linear_model import LinearRegression

    raw = pd.read_csv(shared_data / "lawschool" / "law_data.csv").dropna(subset=["ZFYA", "LSAT", "UGPA"])
    model = LinearRegression().fit(raw[["LSAT", "UGPA"]], raw["ZFYA"])
    frame = pd.DataFrame({"race": raw["race"].astype(str), "sex": raw["sex"].astype(str),
                          "region": raw["region_first"].astype(str), "y": raw["ZFYA"],
                          "p": model.predict(raw[["LSAT", "UGPA"]])})
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": "regression", "sensitive": ["race", "sex"],
                                   "features": ["region"]}})
    snap = run_audit(spec, src=open_frame(frame))
    loss = (frame["p"] - frame["y"]).abs().to_numpy()
    rows = snap.slices.rows
    checked = rows[rows["verdict"].isin(["finding", "small"])].head(20)
    assert len(checked) and snap.findings is not None and snap.group_needs is not None
    for r in checked.to_dict("records"):
        mine = in_slice(frame[["race", "sex", "region"]].astype(object), r["slice"])
        assert r["rate"] == pytest.approx(loss[mine].mean(), rel=1e-9)
        want = stats.ttest_ind(loss[mine], loss[~mine], equal_var=False).pvalue
        assert r["p_value"] == pytest.approx(want, rel=1e-6, abs=1e-300)


def test_diabetes_multiclass_findings_equal_sklearn(shared_data):
    """diabetic_data_first5399.csv with a model of `readmitted`: each slice's error rate is 1 - accuracy_score."""
    from sklearn.tree import DecisionTreeClassifier

    raw = pd.read_csv(shared_data / "diabetes130" / "diabetic_data_first5399.csv")
    features = ["time_in_hospital", "num_lab_procedures", "num_procedures", "num_medications", "number_outpatient",
                "number_emergency", "number_inpatient", "number_diagnoses"]
    model = DecisionTreeClassifier(max_depth=5, random_state=0).fit(raw[features], raw["readmitted"])
    frame = pd.DataFrame({"race": raw["race"].astype(str), "gender": raw["gender"].astype(str),
                          "age": raw["age"].astype(str), "y": raw["readmitted"], "p": model.predict(raw[features])})
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": "multiclass",
                                   "sensitive": ["race", "gender", "age"]}})
    snap = run_audit(spec, src=open_frame(frame))
    k = frame[["race", "gender", "age"]].astype(object)
    rows = snap.slices.rows
    for r in rows.head(40).to_dict("records"):
        mine = in_slice(k, r["slice"])
        assert r["rate"] == pytest.approx(1 - accuracy_score(frame["y"][mine], frame["p"][mine]), abs=1e-12)
    assert snap.group_needs is not None and set(snap.group_needs["metric"]) <= {
        "accuracy", *(f"true_positive_rate@{c}" for c in ("<30", ">30", "NO"))}
