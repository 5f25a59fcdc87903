"""The dashboard for regression and multiclass audits (issue 19): the Overview judges each task's headline
measures, the Performance page offers the task's metrics, its confusion matrix or histograms; a viewer
never sees the task tables' small cells."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.config import write_config
from fairwatch.connectors.demo_tasks import TASK_CONFIGS, write_task_demo
from fairwatch.metrics.privacy.roles import visible_snapshot
from fairwatch.metrics.audit.spec import SourceSpec, parse_spec
from fairwatch.metrics.presentation.text import md_unescape

APP = str(Path(__file__).resolve().parents[1] / "app.py")
HEADLINES = {"regression": ["mean_prediction", "mean_absolute_error", "root_mean_squared_error"],
             "multiclass": ["accuracy", "balanced_accuracy", "true_positive_rate@high", "true_positive_rate@low",
                            "true_positive_rate@medium", "true_positive_rate@very_high"]}


@pytest.fixture(scope="module", params=["regression", "multiclass"])
def task_env(request, tmp_path_factory):
    """A 20k-row demo of the task and its fairwatch.toml in a fresh data folder."""
    task = request.param
    folder = tmp_path_factory.mktemp(f"app-{task}")
    write_task_demo(folder / "demo.duckdb", task, rows=20_000)
    spec = parse_spec(TASK_CONFIGS[task])
    spec = spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(folder / "demo.duckdb")}))
    write_config(spec, folder / "fairwatch.toml")
    return task, folder, spec


@pytest.fixture()
def app(task_env, monkeypatch):
    """The app pointed at the task's demo."""
    task, folder, _ = task_env
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(folder))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(folder / "fairwatch.toml"))
    return task, AppTest.from_file(APP, default_timeout=90)


def _clean(at: AppTest) -> None:
    """No exception and no error on the page."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_overview_judges_the_tasks_headline_measures(app):
    """The planted feature fails on the task's measures; the note says what is binary-only."""
    task, at = app
    at.run()
    _clean(at)
    text = " ".join(md_unescape(m.value) for m in at.markdown)
    assert "race_ethnicity\n**fails policy**" in text
    assert ("Mean absolute error" in text) if task == "regression" else ("True positive rate (recall) (low)" in text)
    assert "Selection rate**" not in text  # the binary headline is not explained for these tasks
    assert any(f"This is a {task} audit" in i.value for i in at.info)


def test_performance_offers_the_tasks_metrics_and_its_charts(app):
    """Default metrics are the task's headline; multiclass draws a confusion matrix, regression two histograms."""
    task, at = app
    at.run()
    at.switch_page("pages/3_Performance.py").run()
    _clean(at)
    assert at.multiselect(key="fw.perf.metrics").value == HEADLINES[task]
    charts = at.get("vega_lite_chart")
    assert len(charts) == (3 if task == "multiclass" else 4)
    headers = [h.value for h in at.subheader]
    assert ("Confusion matrix" in headers) if task == "multiclass" else ("Distribution of the errors" in headers)


def test_a_viewer_never_sees_small_cells_of_the_task_tables(task_env):
    """visible_snapshot drops the task tables' records with fewer than k rows, as exports withhold them."""
    task, _, spec = task_env
    snap = run_audit(spec)
    shown = visible_snapshot(snap, "viewer", k=50)[0].task_result
    frame = shown.confusion if task == "multiclass" else shown.histograms
    assert len(frame) and (frame["n"] >= 50).all()
    assert visible_snapshot(snap, "auditor", k=50)[0].task_result is snap.task_result


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_the_mapping_forms_task_drops_binary_only_choices(task):
    """The Data sources form always sends a threshold and a positive label; a non-binary task leaves them out."""
    from fairwatch.metrics.audit.mapping import mapping_config

    roles = {"label": "y", "prediction": "p", "task": task, "positive_label": "1", "threshold": 0.5,
             "score": "s", "sensitive": ["a"]}
    spec = parse_spec(mapping_config({"path": "x.csv"}, roles))
    assert spec.task == task and spec.score is None and spec.positive_label is None
    binary = mapping_config({"path": "x.csv"}, {**roles, "task": "binary"})
    assert "task" not in binary["columns"] and binary["columns"]["positive_label"] == "1"


def test_data_sources_page_maps_a_task(app, task_env):
    """Mapping a file on the Data sources page with the task chosen there activates that task's audit."""
    task, at = app
    label, prediction = (TASK_CONFIGS[task]["columns"][k] for k in ("label", "prediction"))
    at.run()
    at.switch_page("pages/1_Data_sources.py").run()
    at.radio(key="fw.src.kind").set_value("A file in the data folder").run()
    at.selectbox(key="fw.src.file").select("demo.duckdb").run()
    _clean(at)

    def box(label_text: str):
        """The form's selectbox with this label."""
        return next(b for b in at.selectbox if b.label == label_text)

    # The label sits outside the form (its values feed the positive-value picker): choosing it reruns the page.
    box("Label (actual outcome)").select(label).run()
    _clean(at)
    assert box("What the model outputs").options[0] == "a yes/no decision (binary)"
    box("What the model outputs").select(task)
    box("Prediction (the decision)").select(prediction)
    next(m for m in at.multiselect if m.label == "Sensitive features").set_value(["race_ethnicity", "age_band"])
    next(m for m in at.multiselect if m.label == "Other features (for slicing)").set_value(["region"])
    next(b for b in at.button if b.label == "Check and use this mapping").click().run()
    _clean(at)
    assert any("Mapping checked and in use" in s.value for s in at.success)
    at.switch_page("pages/3_Performance.py").run()
    _clean(at)
    assert at.multiselect(key="fw.perf.metrics").value == HEADLINES[task]
