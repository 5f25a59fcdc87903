"""The drill-down of one slice for regression and multiclass audits (issue 19): the task's metrics in vs out.

Oracles on raw rows: the slice's and the rest's mean absolute error, mean squared error, mean error
and R² equal scikit-learn's over the rows whose label and prediction are finite numbers (numpy for
the means); a multiclass slice's accuracy, balanced accuracy, per-class recall and confusion matrix
equal scikit-learn's over its labelled rows with a prediction. Then the bad inputs: a slice value that
no longer occurs, and a slice that holds every row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, mean_absolute_error,
                             mean_squared_error, r2_score, recall_score)

from fairwatch.connectors.drilldown import drill_down
from fairwatch.connectors.source import open_frame
from fairwatch.connectors.task_drilldown import TaskSliceAnalysis
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.presentation.slice_views import REST_SIDE, SLICE_SIDE


def spec_of(task: str):
    """A task spec over the frame's columns g (sensitive), f and x (features)."""
    return parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "task": task, "sensitive": ["g"],
                                   "features": ["f", "x"]},
                       "policy": {"min_support": 1}})


def value(a: TaskSliceAnalysis, metric: str, side: str) -> float:
    """One metric's value on one side."""
    rows = a.side_rows
    return float(rows.loc[(rows["metric"] == metric) & (rows["group"] == side), "value"].iloc[0])


@st.composite
def regression_frames(draw):
    """Random rows with finite, NaN and missing labels and predictions, and a feature f with values u, v (and NULL)."""
    n = draw(st.integers(8, 60))
    number = st.one_of(st.integers(-40, 40).map(lambda v: v / 4), st.just(np.nan))
    frame = pd.DataFrame({
        "g": [draw(st.sampled_from(["a", "b"])) for _ in range(n)],
        "f": pd.Series([draw(st.sampled_from(["u", "v", None])) for _ in range(n)], dtype=object),
        "x": [float(draw(st.integers(0, 9))) for _ in range(n)],
        "y": [draw(number) for _ in range(n)],
        "p": [draw(number) for _ in range(n)],
    })
    frame.loc[0, "f"], frame.loc[1, "f"] = "u", "v"  # both sides hold a row
    frame.loc[[0, 1], ["y", "p"]] = [[1.0, 2.0], [3.0, 2.5]]  # and a usable one
    return frame


def _check_regression(frame: pd.DataFrame, slice_, inside: np.ndarray) -> None:
    """The slice's and the rest's metrics equal scikit-learn's on their finite rows."""
    a = drill_down(open_frame(frame), spec_of("regression"), None, slice_)
    assert a.rows == int(inside.sum()) and a.rest_rows == int((~inside).sum())
    finite = np.isfinite(frame["y"].astype(float)) & np.isfinite(frame["p"].astype(float))
    for side, mask in ((SLICE_SIDE, inside), (REST_SIDE, ~inside)):
        rows = frame[mask & finite.to_numpy()]
        if rows.empty:
            continue
        y, p = rows["y"].astype(float), rows["p"].astype(float)
        assert value(a, "mean_absolute_error", side) == pytest.approx(mean_absolute_error(y, p), abs=1e-9)
        assert value(a, "mean_squared_error", side) == pytest.approx(mean_squared_error(y, p), abs=1e-9)
        assert value(a, "mean_error", side) == pytest.approx(float(np.mean(p - y)), abs=1e-9)
        if y.nunique() > 1:
            assert value(a, "r2_score", side) == pytest.approx(r2_score(y, p), abs=1e-9)
    assert a.errors["n"].sum() == int(finite.sum())  # the error histogram holds every usable row once


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(regression_frames())
def test_regression_slice_against_the_rest_equals_sklearn(frame):
    """Property: a value slice's metrics in and out equal scikit-learn's on the raw rows (NaN rows left out)."""
    _check_regression(frame, (("f", "u"),), (frame["f"] == "u").to_numpy())


def test_regression_range_and_intersection_slices():
    """A numeric range label and a two-feature slice select the rows the binary drill-down would."""
    rng = np.random.default_rng(3)
    n = 400
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], n), "f": rng.choice(["u", "v"], n),
                          "x": rng.integers(0, 30, n).astype(float), "y": rng.normal(10, 3, n)})
    frame["p"] = frame["y"] + rng.normal(0, 1, n) + (frame["f"] == "u") * 2
    _check_regression(frame, (("x", "[10, 20)"),), ((frame["x"] >= 10) & (frame["x"] < 20)).to_numpy())
    _check_regression(frame, (("g", "b"), ("f", "u")), ((frame["g"] == "b") & (frame["f"] == "u")).to_numpy())
    a = drill_down(open_frame(frame), spec_of("regression"), None, (("f", "u"),))
    mae = a.side_rows[(a.side_rows["metric"] == "mean_absolute_error") & (a.side_rows["group"] == SLICE_SIDE)]
    assert float(mae["difference"].iloc[0]) > 0 and float(mae["q_value"].iloc[0]) < 0.05  # the planted gap, tested
    table = a.table()
    assert len(table) == 9 and set(table.columns) >= {SLICE_SIDE, REST_SIDE, "Difference", "q-value"}


def test_multiclass_slice_against_the_rest_equals_sklearn():
    """Accuracy, balanced accuracy, recall per class and the confusion matrix equal scikit-learn's, in and out."""
    rng = np.random.default_rng(5)
    n = 600
    classes = ["cat", "dog", "eel"]
    y = rng.choice(classes, n)
    frame = pd.DataFrame({"g": rng.choice(["a", "b"], n), "f": rng.choice(["u", "v"], n),
                          "x": rng.integers(0, 5, n).astype(float), "y": y})
    wrong = rng.random(n) < np.where(frame["f"] == "u", 0.4, 0.1)
    frame["p"] = np.where(wrong, rng.choice(classes, n), y)
    frame.loc[:9, "y"] = None  # unlabelled rows count in no metric
    a = drill_down(open_frame(frame), spec_of("multiclass"), None, (("f", "u"),))
    assert a.classes == tuple(classes)
    for side, mask in ((SLICE_SIDE, frame["f"] == "u"), (REST_SIDE, frame["f"] != "u")):
        rows = frame[mask & frame["y"].notna()]
        assert value(a, "accuracy", side) == pytest.approx(accuracy_score(rows["y"], rows["p"]))
        assert value(a, "balanced_accuracy", side) == pytest.approx(balanced_accuracy_score(rows["y"], rows["p"]))
        recalls = recall_score(rows["y"], rows["p"], labels=classes, average=None)
        for c, r in zip(classes, recalls):
            assert value(a, f"true_positive_rate@{c}", side) == pytest.approx(r)
    own = frame[(frame["f"] == "u") & frame["y"].notna()]
    matrix = a.confusion.pivot(index="y_true", columns="y_pred", values="n").loc[classes, classes].to_numpy()
    assert (matrix == confusion_matrix(own["y"], own["p"], labels=classes)).all()
    points = a.versus_points("#1f77b4", "#999999")
    assert set(points["metric_label"]) >= {"Accuracy", "Balanced accuracy"} and set(points["side"]) == {"own", "rest"}


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_a_value_that_no_longer_occurs_is_a_one_line_message(task):
    """A slice whose value is gone (or that holds every row) is a one-line DataError, as in the binary drill-down."""
    frame = pd.DataFrame({"g": ["a", "b"] * 10, "f": ["u"] * 20, "x": [1.0] * 20,
                          "y": [1.0, 2.0] * 10, "p": [1.5, 2.0] * 10})
    if task == "multiclass":
        frame[["y", "p"]] = frame[["y", "p"]].astype(int).astype(str)
    with pytest.raises(DataError, match="no rows match g=c in the chosen view") as err:
        drill_down(open_frame(frame), spec_of(task), None, (("g", "c"),))
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="no rest to compare it with"):
        drill_down(open_frame(frame), spec_of(task), None, (("f", "u"),))
    with pytest.raises(DataError, match="not"):  # a feature the spec does not have: the binary check's message
        drill_down(open_frame(frame), spec_of(task), None, (("nope", "u"),))
