"""Multiclass audits (issue 19): every metric equals fairlearn's MetricFrame with scikit-learn on the raw rows;
confusion matrices, disparities per class, the heatmap, and bad inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, precision_score, recall_score

from fairwatch.connectors.counts import fetch_group_counts
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.presentation.charts import confusion_heatmap
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.multiclass import compute_multiclass_table, metric_names, multiclass_counts
from fairwatch.metrics.audit.outcomes import normalise_value
from fairwatch.metrics.audit.spec import parse_spec
from tests.demo_data import diabetes_predictions


def spec_for(sensitive=("a", "b"), **extra) -> object:
    """A multiclass spec over label y and prediction p; min_support 1 so no value is masked."""
    return parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": list(sensitive),
                                                            "task": "multiclass"}, "policy": {"min_support": 1}} | extra)


def audit(frame: pd.DataFrame, spec):
    """(group table rows, result) through the counting query."""
    src = open_frame(frame)
    try:
        counts = multiclass_counts(fetch_group_counts(src, spec).cells, spec)
    finally:
        src.close()
    table, result = compute_multiclass_table(counts, spec)
    return table.rows, result


def oracle(classes):
    """MetricFrame metrics: accuracy, balanced accuracy, and per class one-vs-rest from confusion_matrix(labels=)."""
    def per_class(c, kind):
        def f(y, p):
            cm = confusion_matrix(y, p, labels=list(classes))
            i = list(classes).index(c)
            tp, pred_c, true_c, n = cm[i, i], cm[:, i].sum(), cm[i, :].sum(), cm.sum()
            if kind == "selection_rate":
                return pred_c / n
            if kind == "true_positive_rate":  # recall per class, as sklearn computes it
                return recall_score(y, p, labels=[c], average=None, zero_division=np.nan)[0] if true_c else np.nan
            if kind == "false_positive_rate":
                return (pred_c - tp) / (n - true_c) if n - true_c else np.nan
            return precision_score(y, p, labels=[c], average=None, zero_division=np.nan)[0] if pred_c else np.nan
        return f

    out = {"accuracy": accuracy_score, "balanced_accuracy": balanced_accuracy_score}
    for c in classes:
        for kind in ("selection_rate", "true_positive_rate", "false_positive_rate", "precision"):
            out[f"{kind}@{c}"] = per_class(c, kind)
    return out


def assert_matches(frame: pd.DataFrame, rows: pd.DataFrame, classes, sensitive) -> None:
    """Every metric of every group equals MetricFrame on the raw rows (labelled and predicted)."""
    used = frame.dropna(subset=["y", "p"])
    y = used["y"].map(lambda v: normalise_value(str(v)))
    p = used["p"].map(lambda v: normalise_value(str(v)))
    for cols in [(s,) for s in sensitive] + ([tuple(sensitive)] if len(sensitive) > 1 else []):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mf = MetricFrame(metrics=oracle(classes), y_true=y, y_pred=p, sensitive_features=used[list(cols)])
        for key, expected in mf.by_group.iterrows():
            key = key if isinstance(key, tuple) else (key,)
            size = int((used[list(cols)] == list(key)).all(axis=1).sum())
            if size == 0:
                continue
            slice_ = tuple((c, str(v)) for c, v in zip(cols, key))
            got = rows[rows["slice"].map(lambda s: tuple(s) == slice_)].set_index("metric")
            for metric in metric_names(tuple(classes)):
                want, have = float(expected[metric]), float(got.loc[metric, "value"])
                if math.isnan(want):
                    assert math.isnan(have), (slice_, metric)
                else:
                    assert have == pytest.approx(want, abs=1e-12), (slice_, metric)


@st.composite
def frames(draw) -> pd.DataFrame:
    """Rows with two sensitive features and 2-4 classes, some predictions of a class never seen as a label."""
    n = draw(st.integers(min_value=4, max_value=80))
    a = draw(st.lists(st.sampled_from(["r", "s", "t"]), min_size=n, max_size=n))
    b = draw(st.lists(st.sampled_from(["f", "m"]), min_size=n, max_size=n))
    y = draw(st.lists(st.sampled_from(["lo", "mid", "hi"]), min_size=n, max_size=n))
    p = draw(st.lists(st.sampled_from(["lo", "mid", "hi", "x"]), min_size=n, max_size=n))
    y[0], y[1] = "lo", "hi"  # at least two classes
    return pd.DataFrame({"a": a, "b": b, "y": y, "p": p})


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(frames())
def test_every_metric_equals_metricframe_on_raw_rows(frame):
    """Oracle: accuracy, balanced accuracy and every one-vs-rest rate per class, for every group and intersection."""
    rows, result = audit(frame, spec_for())
    classes = result.classes
    assert set(classes) == set(frame["y"]) | set(frame["p"])
    assert_matches(frame, rows, classes, ("a", "b"))
    # The confusion matrix per group is sklearn's with labels=.
    cm = result.confusion[result.confusion["grouping"] == "a"]
    for g, part in frame.groupby("a"):
        want = confusion_matrix(part["y"], part["p"], labels=list(classes))
        got = cm[cm["group"] == f"a={g}"].pivot(index="y_true", columns="y_pred", values="n").loc[list(classes), list(classes)]
        np.testing.assert_array_equal(got.to_numpy(), want)


def test_intervals_disparities_per_class_and_heatmap():
    """Wilson intervals, per-class disparities with the binary tests, a planted gap is 'outside'; the heatmap builds."""
    rng = np.random.default_rng(5)
    n = 6000
    a = rng.choice(["ref", "hit"], n)
    y = rng.choice(["A", "B", "C"], n)
    # The 'hit' group's class C is predicted as B half of the time.
    p = np.where((a == "hit") & (y == "C") & (rng.random(n) < 0.5), "B", y)
    frame = pd.DataFrame({"a": a, "y": y, "p": p})
    rows, result = audit(frame, spec_for(("a",), reference={"a": "ref"}))
    tpr = rows[rows["metric"] == "true_positive_rate@C"].set_index("group")
    assert tpr.loc["a=hit", "verdict"] == "outside" and tpr.loc["a=ref", "verdict"] == "reference"
    assert tpr.loc["a=hit", "ci_low"] < tpr.loc["a=hit", "value"] < tpr.loc["a=hit", "ci_high"]
    assert tpr.loc["a=hit", "q_value"] < 0.05
    assert rows[rows["metric"] == "true_positive_rate@A"].set_index("group").loc["a=hit", "verdict"] == "within"
    cells = result.confusion[result.confusion["group"] == "a=hit"]
    assert cells.groupby("y_true")["row_share"].sum().round(12).eq(1).all()
    chart = confusion_heatmap(cells, result.classes).to_dict()
    assert chart["layer"][0]["mark"]["type"] == "rect"


def test_a_single_class_is_an_error():
    """One label class: nothing to compare, a one-line error."""
    frame = pd.DataFrame({"a": ["u", "v", "u"], "y": ["x", "x", "x"], "p": ["x", "y", "x"]})
    with pytest.raises(DataError, match="single class 'x' in all 3 labelled rows"):
        audit(frame, spec_for(("a",)))


def test_a_predicted_class_never_seen_as_label_is_reported_not_an_error():
    """A prediction class absent from the labels is a note, counted as errors."""
    frame = pd.DataFrame({"a": ["u", "v", "u", "v"], "y": ["x", "y", "x", "y"], "p": ["x", "z", "z", "y"]})
    rows, result = audit(frame, spec_for(("a",)))
    assert "'z' never occur as a label (2 labelled rows)" in result.notes[0]
    assert "z" in result.classes


def test_too_many_numeric_classes_names_regression():
    """Hundreds of numbers as classes: the message names --task regression."""
    frame = pd.DataFrame({"a": ["u", "v"] * 100, "y": np.arange(200) * 1.5, "p": np.arange(200) * 1.5})
    with pytest.raises(DataError, match="--task regression"):
        audit(frame, spec_for(("a",)))


def test_binary_audit_of_seven_labels_names_multiclass(tmp_path, capsys):
    """A 7-class label audited as binary: exit 2, one line naming --task multiclass."""
    from fairwatch.cli import main

    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": ["u", "v"] * 7, "y": list("abcdefg") * 2, "p": list("abcdefg") * 2}).to_csv(path, index=False)
    code = main(["audit", str(path), "--label", "y", "--prediction", "p", "--sensitive", "a", "--out",
                 str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--task multiclass" in err[0]


def test_real_diabetes_readmitted(shared_data):
    """diabetic_data_first5399.csv: a model of `readmitted` trained here; every metric by race, gender, age matches."""
    frame = diabetes_predictions(shared_data)
    spec = spec_for(("race", "gender", "age"))
    rows, result = audit(frame, spec)
    assert set(result.classes) == set(frame["y"])
    for cols in (("race",), ("gender",), ("age",)):
        assert_matches(frame, rows[rows["grouping"] == cols[0]], result.classes, cols)
