"""The Trends page for regression and multiclass audits (issue 19): the task's metrics over time, label coverage,
versions with the planted v2 effect, drift, and the task's alert rules; a rule naming another task's metric is
one error line and the other sections still draw."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.metrics.presentation.text import md_unescape
from fairwatch.metrics.presentation.trend_views import trend_metrics_key
from tests.demo_data import point_app_at, task_demo_folder

PAGE = str(Path(__file__).resolve().parents[1] / "pages" / "6_Trends.py")
DEFAULTS = {"regression": ["Mean absolute error", "Root mean squared error"], "multiclass": ["Accuracy"]}
RULES = {"regression": "mae ratio > 1.25 for any sex group", "multiclass": "accuracy difference < -0.05 for any sex group"}
WRONG = {"regression": "fnr ratio > 1.25", "multiclass": "mae ratio > 1.25"}


@pytest.fixture(scope="module", params=["regression", "multiclass"])
def task_env(request, tmp_path_factory):
    """A 40k-row demo of the task (half a year, versions v1 and v2) and its fairwatch.toml."""
    task = request.param
    folder = tmp_path_factory.mktemp(f"trends-{task}")
    task_demo_folder(folder, task, rows=40_000)
    return task, folder


@pytest.fixture()
def page(task_env, monkeypatch):
    """The Trends page pointed at the task's demo."""
    task, folder = task_env
    point_app_at(monkeypatch, folder)
    at = AppTest.from_file(PAGE, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return task, at


def test_every_section_draws_the_tasks_metrics(page):
    """Metrics (the task's headline ones), coverage, versions, shares and PSI charts; the v2 effect is 'worse'."""
    task, at = page
    assert [h.value for h in at.subheader] == ["Metrics over time", "Label coverage", "Model versions side by side",
                                               "Population drift", "Alerts"]
    # Regression adds the shift of each group's predictions from the baseline window (KS).
    assert len(at.get("vega_lite_chart")) == (6 if task == "regression" else 5)
    chosen = at.multiselect(key=trend_metrics_key(task))
    assert [o for o in chosen.options if any(o == d for d in DEFAULTS[task])]
    numbers = at.dataframe[0].value
    assert set(DEFAULTS[task]) <= set(numbers["Metric"])
    assert len(at.dataframe[1].value) == 26  # weekly windows of the half year
    worse = next(md_unescape(m.value) for m in at.markdown if m.value.startswith("**Significantly worse under v2"))
    assert "sex=female" in worse  # the planted v2 effect
    chosen.set_value(chosen.value + ([] if task == "multiclass" else ["mean_prediction"])).run()
    assert not at.exception


def test_the_tasks_rule_fires_and_another_tasks_metric_is_one_error_line(page):
    """The planted v2 gap fires the task's rule in the latest week; a wrong metric names this task's metrics."""
    task, at = page
    at.text_input(key="fw.trend.rule").input(RULES[task]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    table = at.dataframe[-1].value
    assert "fired" in table["Status"].iloc[0] and "sex=female" in table["Fired for"].iloc[0]
    at.text_input(key="fw.trend.rule").input(WRONG[task]).run()
    assert not at.exception
    assert len(at.error) == 1 and f"unknown metric for a {task} audit" in md_unescape(at.error[0].value)
    assert "\n" not in at.error[0].value
    assert len(at.get("vega_lite_chart")) == (6 if task == "regression" else 5)
