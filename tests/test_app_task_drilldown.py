"""The Slices page's drill-down for regression and multiclass audits (issue 19), as a user reads it: for a finding,
its searched error against the rest with the ratio and the slice search's verdict, its need, its quality signals as
the audit counted them, and its other features' values; for a slice the audit did not check, its quality signals
counted now. Each number is checked against the demo's raw rows (numpy / pandas), not against our own output."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.metrics.presentation.text import md_unescape
from tests.demo_data import point_app_at, task_demo_folder

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="module", params=["regression", "multiclass"])
def task_env(request, tmp_path_factory):
    """(task, data folder, spec, raw rows) of a 20k-row demo of the task."""
    task = request.param
    folder = tmp_path_factory.mktemp("app-drill")
    spec = task_demo_folder(folder, task, rows=20_000)
    with duckdb.connect(spec.source.path, read_only=True) as con:
        raw = con.sql(f'SELECT * FROM "{spec.source.table}"').df()
    return task, folder, spec, raw


@pytest.fixture()
def slices_page(task_env, monkeypatch):
    """The Slices page of the app pointed at the task's demo, drawn once."""
    _, folder, _, _ = task_env
    point_app_at(monkeypatch, folder)
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("pages/4_Slices.py").run()
    return at


def _clean(at: AppTest) -> None:
    """No exception and no error on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _text(at: AppTest) -> str:
    """The page's Markdown and captions, unescaped."""
    return " ".join(md_unescape(str(p.value)) for p in [*at.markdown, *at.caption])


def _error_sides(spec, raw: pd.DataFrame, inside: np.ndarray) -> tuple[float, int, float, int]:
    """The searched error (mean absolute error, or misclassification) of the slice and of the rest, with their n."""
    y, p = raw[spec.label], raw[spec.prediction]
    if spec.task == "regression":
        y, p = y.astype(float).to_numpy(), p.astype(float).to_numpy()
        ok = np.isfinite(y) & np.isfinite(p)
        loss = np.abs(p - y)
    else:
        ok = (y.notna() & p.notna()).to_numpy()
        loss = (y.astype(str) != p.astype(str)).to_numpy().astype(float)
    own, rest = loss[ok & inside], loss[ok & ~inside]
    return own.mean(), len(own), rest.mean(), len(rest)


def _members(raw: pd.DataFrame, slice_label: str) -> np.ndarray:
    """The raw rows of a slice named 'a=x, b=y'."""
    mask = np.ones(len(raw), dtype=bool)
    for part in slice_label.split(", "):
        feature, value = part.split("=", 1)
        mask &= (raw[feature].astype(str) == value).to_numpy()
    return mask


def _chart_frames(at: AppTest) -> list[pd.DataFrame]:
    """Every dataset of the page's charts (Arrow IPC, as Streamlit sends them)."""
    frames = []
    for chart in at.get("vega_lite_chart"):
        for d in chart.proto.datasets:
            frames.append(pa.ipc.open_stream(d.data.data).read_all().to_pandas())
    return frames


def _heading(at: AppTest) -> str:
    """The drilled slice's label, from its '#### label' heading."""
    first = next(md_unescape(m.value) for m in at.markdown if md_unescape(m.value).startswith("#### "))
    return first.splitlines()[0][5:]


def test_a_finding_shows_its_error_test_ratio_verdict_and_other_features(task_env, slices_page):
    """The first finding: its error and the rest's on n rows, their ratio and the search's verdict, its other features."""
    task, _, spec, raw = task_env
    at = slices_page
    _clean(at)
    label = _heading(at)
    inside = _members(raw, label)
    own, n, rest, rest_n = _error_sides(spec, raw, inside)
    text = _text(at)
    assert f"on n = {n:,} against" in text and f"on n = {rest_n:,} for the rest" in text
    if task == "regression":
        assert f"Its mean absolute error is {own:.3f}" in text
    else:
        assert f"Its error rate is {100 * own:.1f}%" in text
    assert f"Ratio to the rest: {own / rest:.2f} (95% interval " in text
    assert "the slice search's verdict: a finding: significantly and materially worse than the rest." in text
    assert "Needs: Model." in text  # the demos plant model gaps on clean data
    assert "Signals tested with every signal of the audit" in text
    assert "Its other features against the rest" in text
    assert "did not check this slice" not in text
    if task == "multiclass":  # the heatmap fits the page's width only: a fitted height squeezed its cells into a line
        heatmap = json.loads(next(c.proto.spec for c in at.get("vega_lite_chart") if "Predicted class" in c.proto.spec))
        assert heatmap["autosize"]["type"] == "fit-x"
    # The other features' chart: each value's rows in the slice, as pandas counts them.
    shares = next(f for f in _chart_frames(at) if {"feature", "value", "side_label", "n"} <= set(f.columns))
    feature = next(f for f in (*spec.sensitive, *spec.features) if f not in label)
    got = shares[(shares["feature"] == feature) & (shares["side_label"] == "in the slice")].set_index("value")["n"]
    want = raw.loc[inside, feature].fillna("(missing)").astype(str).value_counts()
    assert got.sort_index().to_dict() == want.sort_index().to_dict()


def test_a_slice_the_audit_did_not_check_gets_its_quality_counted_now(task_env, slices_page):
    """region=east, defined by hand: its quality signals are counted now (no 'did not check' line), with its rows."""
    _, _, spec, raw = task_env
    at = slices_page
    at.session_state["fw.sl.built"] = (("region", "east"),)
    at.radio(key="fw.sl.mode").set_value("A slice I define").run()
    _clean(at)
    assert _heading(at) == "region=east"
    inside = (raw["region"] == "east").to_numpy()
    own, n, rest, rest_n = _error_sides(spec, raw, inside)
    text = _text(at)
    assert "counted now for this slice: the audit did not check it" in text
    assert "did not check this slice's data quality: pick a finding" not in text
    assert f"on n = {n:,} against" in text and f"Ratio to the rest: {own / rest:.2f}" in text
    table = next(d.value for d in at.dataframe if "Signal" in d.value.columns)
    missing = table[table["Signal"] == "Missing values (any other column)"]
    others = [c for c in (*spec.sensitive, *spec.features) if c != "region"]
    assert list(missing["Group or slice"]) == ["region=east"]
    assert int(missing["n"].iloc[0]) == int(inside.sum())
    assert missing["Rate (95% interval)"].iloc[0].startswith(
        f"{100 * raw.loc[inside, others].isna().any(axis=1).mean():.1f}%")
