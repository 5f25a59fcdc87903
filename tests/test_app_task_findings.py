"""The Slices, Data quality and Data plan pages for regression and multiclass audits (issue 19): the task's findings,
signals and plan drawn from its demo, with no error; the drill-down shows a slice's metrics against the rest (and
its confusion matrix or error histogram), signals and example rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.connectors.demo_tasks import TASK_CONFIGS
from fairwatch.metrics.presentation.text import md_unescape
from tests.demo_data import point_app_at, task_demo_folder

APP = str(Path(__file__).resolve().parents[1] / "app.py")


@pytest.fixture(scope="module", params=["regression", "multiclass"])
def task_env(request, tmp_path_factory):
    """A 20k-row demo of the task and its fairwatch.toml in a fresh data folder."""
    task = request.param
    folder = tmp_path_factory.mktemp("app-findings")
    task_demo_folder(folder, task, rows=20_000)
    return task, folder


@pytest.fixture()
def app(task_env, monkeypatch):
    """The app pointed at the task's demo."""
    task, folder = task_env
    point_app_at(monkeypatch, folder)
    return task, AppTest.from_file(APP, default_timeout=90)


def _clean(at: AppTest) -> None:
    """No exception and no error on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def _text(at: AppTest) -> str:
    """Every text element of the page, unescaped."""
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.subheader]
    return " ".join(md_unescape(str(p.value)) for p in parts)


PLANTED_FINDINGS = {"regression": {"race_ethnicity=Hispanic", "age_band=18-24"},
                    "multiclass": {"race_ethnicity=Black"}}


def test_slices_page_lists_the_tasks_findings(app):
    """The Slices page ranks the task's findings (means as amounts for regression), the drill-down says its scope."""
    task, at = app
    at.run()
    at.switch_page("pages/4_Slices.py").run()
    _clean(at)
    caption = " ".join(md_unescape(c.value) for c in at.caption)
    assert ("mean absolute error |prediction - label|" in caption and "Welch's t-test" in caption) if task == \
        "regression" else ("misclassification rate" in caption and "Fisher's exact test" in caption)
    found = at.dataframe[0].value
    assert set(found["Slice"]) == PLANTED_FINDINGS[task]
    errors = " ".join(found["Error (95% interval)"])
    assert ("%" not in errors) if task == "regression" else ("%" in errors)
    assert any(f"below are its {task} metrics against the rest" in md_unescape(i.value) for i in at.info)
    # The drill-down into the first finding: its metrics against the rest, its confusion matrix (multiclass) or
    # error histogram (regression), its quality signals as the audit counted them, and its example rows.
    text = " ".join(md_unescape(m.value) for m in at.markdown)
    assert "Its metrics against the rest of the data" in text
    assert "Data-quality signals" in text and "Example rows" in text
    assert ("confusion matrix" in text) == (task == "multiclass")
    assert ("Its errors (prediction - label) against the rest" in text) == (task == "regression")
    versus = next(d.value for d in at.dataframe if "Difference" in d.value.columns)
    if task == "regression":
        assert len(versus) == 9 and "Mean absolute error" in set(versus["Metric"])
        mae = versus[versus["Metric"] == "Mean absolute error"].iloc[0]
        assert mae["Verdict"] == "outside the band (significant)"  # the planted finding is worse in the slice
    else:
        assert {"Accuracy", "Balanced accuracy"} <= set(versus["Metric"])
    # Multiclass: the rates against the rest and the confusion matrix; regression: the error histogram; both: the
    # quality signals against the rest and the other features' values.
    assert len(at.get("vega_lite_chart")) == (4 if task == "multiclass" else 3)
    assert at.dataframe[-1].value.shape[0] >= 3  # missing values, conflicts (and outliers) of the slice
    at.toggle(key="fw.sl.rows.show").set_value(True).run()
    _clean(at)
    shown = at.dataframe[-1].value
    label = TASK_CONFIGS[task]["columns"]["label"]
    assert len(shown) and label in shown.columns


def test_data_quality_page_shows_the_tasks_signals(app):
    """The Data quality page draws the task's signals per group: outlying labels for regression, none of label errors."""
    task, at = app
    at.run()
    at.switch_page("pages/5_Data_quality.py").run()
    _clean(at)
    intro = md_unescape(at.caption[0].value)
    assert ("outlying labels" in intro) if task == "regression" else ("carrying a different class" in intro)
    assert f"{task} audit" in intro
    table = at.dataframe[0].value
    signals = set(table.iloc[:, 1]) if len(table.columns) > 1 else set()
    assert ("Outlying labels" in " ".join(map(str, signals))) == (task == "regression")
    assert len(at.get("vega_lite_chart")) == 1


def test_data_plan_page_plans_the_tasks_needs(app):
    """The Data plan page runs on the task's needs (the demos' gaps are all decided: an empty plan, said so)."""
    task, at = app
    at.run()
    at.switch_page("pages/8_Data_plan.py").run()
    _clean(at)
    assert any("no open question" in md_unescape(i.value) for i in at.info)
    assert [h.value for h in at.subheader][:1] == ["Allocation: 0 of 200 rows"]
    assert f"{task} audit" in _text(at)


def test_a_slice_whose_value_is_gone_is_one_error_line(app):
    """A slice kept from before whose value no longer occurs: one error line, the findings above stay (as binary)."""
    task, at = app
    at.run()
    at.switch_page("pages/4_Slices.py").run()
    at.session_state["fw.sl.built"] = (("race_ethnicity", "Martian"),)
    at.radio(key="fw.sl.mode").set_value("A slice I define").run()
    assert not at.exception
    assert [md_unescape(e.value) for e in at.error] == [
        "no rows match race_ethnicity=Martian in the chosen view (all rows); choose values that occur together"]
    assert set(at.dataframe[0].value["Slice"]) == PLANTED_FINDINGS[task]
