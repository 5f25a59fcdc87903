"""The dashboard for regression and multiclass audits (issue 19): the Overview judges each task's headline
measures, the Performance page offers the task's metrics (a number on it equals scikit-learn on the raw rows),
its confusion matrix or histograms and no threshold explorer; Representation counts every row; the Audit export
page writes a snapshot whose HTML and CSV carry the task's metrics with interval and n, and the Access log
records it; a real file (law school, diabetes) mapped on the Data sources page audits as the task; a viewer
never sees the task tables' small cells."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score, mean_absolute_error
from streamlit.testing.v1 import AppTest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.demo_tasks import TASK_CONFIGS
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.privacy.roles import visible_snapshot
from fairwatch.metrics.presentation.text import md_unescape
from fairwatch.metrics.policy.overview import threshold_scope_note
from fairwatch.metrics.presentation.views import metric_label
from tests.demo_data import diabetes_predictions, law_school_predictions, point_app_at, task_demo_folder

APP = str(Path(__file__).resolve().parents[1] / "app.py")
HEADLINES = {"regression": ["mean_prediction", "mean_absolute_error", "root_mean_squared_error"],
             "multiclass": ["accuracy", "balanced_accuracy", "true_positive_rate@high", "true_positive_rate@low",
                            "true_positive_rate@medium", "true_positive_rate@very_high"]}


@pytest.fixture(scope="module", params=["regression", "multiclass"])
def task_env(request, tmp_path_factory):
    """A 20k-row demo of the task and its fairwatch.toml in a fresh data folder."""
    task = request.param
    folder = tmp_path_factory.mktemp("app-task")  # not named after the task: the sidebar shows the path
    return task, folder, task_demo_folder(folder, task, rows=20_000)


@pytest.fixture()
def app(task_env, monkeypatch, tmp_path):
    """The app pointed at the task's demo; snapshots go to a temporary history outside the data folder."""
    task, folder, _ = task_env
    point_app_at(monkeypatch, folder)
    monkeypatch.setenv("FAIRWATCH_SNAPSHOT_DIR", str(tmp_path / "snapshots"))
    return task, AppTest.from_file(APP, default_timeout=90)


# The task's headline measure checked against scikit-learn on the raw rows, per group of one feature.
ORACLE = {"regression": ("mean_absolute_error", mean_absolute_error), "multiclass": ("accuracy", accuracy_score)}
# Binary-only words that must not appear on a task's page (the task's own words are "label"/"prediction").
BINARY_WORDS = ("Selection rate", "positive label", "Positive outcome", "positive decision", "false negative rate")


def raw_rows(spec) -> pd.DataFrame:
    """The demo's rows as the audit uses them: label and prediction known (and finite for regression)."""
    with duckdb.connect(spec.source.path, read_only=True) as con:
        frame = con.sql(f'SELECT * FROM "{spec.source.table}"').df()
    frame = frame.dropna(subset=[spec.label, spec.prediction])
    if spec.task == "regression":
        frame = frame[np.isfinite(frame[spec.label]) & np.isfinite(frame[spec.prediction])]
    return frame


def sklearn_by_group(frame: pd.DataFrame, task: str, label: str, prediction: str, feature: str) -> pd.Series:
    """fairlearn's MetricFrame with scikit-learn's metric on the raw rows, by one feature."""
    _, metric = ORACLE[task]
    return MetricFrame(metrics=metric, y_true=frame[label], y_pred=frame[prediction],
                       sensitive_features=frame[feature].astype(str)).by_group


def page_values(at: AppTest, metric: str, feature: str) -> dict[str, float]:
    """The Performance table's exact values of one metric, by group of the chosen feature."""
    table = next(d.value for d in at.dataframe if "Value" in d.value.columns)
    rows = table[table["Metric"] == metric_label(metric)]
    return {g.split("=", 1)[1]: v for g, v in zip(rows["Group"], rows["Value"]) if g.startswith(f"{feature}=")}


def page_text(at: AppTest) -> str:
    """Every text element of the page, unescaped."""
    parts = [*at.markdown, *at.caption, *at.info, *at.warning, *at.subheader, *at.header, *at.title]
    return " ".join(md_unescape(str(p.value)) for p in parts)


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


def test_performance_number_equals_sklearn_and_no_threshold_explorer(app, task_env):
    """The headline measure per group equals MetricFrame with scikit-learn on the raw rows; the threshold
    explorer and the what-if are replaced by one line saying why; no binary wording."""
    task, at = app
    _, _, spec = task_env
    at.run()
    at.switch_page("pages/3_Performance.py").run()
    at.selectbox(key="fw.perf.grouping").select("sex").run()
    _clean(at)
    metric, _ = ORACLE[task]
    want = sklearn_by_group(raw_rows(spec), task, spec.label, spec.prediction, "sex")
    got = page_values(at, metric, "sex")
    assert set(got) == set(want.index)
    for group, value in got.items():
        assert value == pytest.approx(want[group], rel=1e-9, abs=1e-12), group
    assert not at.slider  # no threshold slider
    assert "What if: per-group thresholds that meet the policy" not in [h.value for h in at.subheader]
    assert not [t for t in at.toggle if t.key == "fw.whatif.on"]
    reason = [i.value for i in at.info if "threshold explorer" in i.value]
    assert reason == [threshold_scope_note(task)]
    text = page_text(at)
    assert not [w for w in BINARY_WORDS if w.lower() in text.lower()]


def test_representation_counts_every_row_of_the_task(app, task_env):
    """The Representation page draws its charts and counts each group's rows, labelled or not."""
    task, at = app
    _, _, spec = task_env
    at.run()
    at.switch_page("pages/2_Representation.py").run()
    _clean(at)
    assert len(at.get("vega_lite_chart")) >= 2
    with duckdb.connect(spec.source.path, read_only=True) as con:
        want = dict(con.sql(f'SELECT sex, count(*) FROM "{spec.source.table}" GROUP BY 1').fetchall())
    shown = {int(v) for d in at.dataframe for c in d.value.columns for v in d.value[c]
             if isinstance(v, (int, np.integer))}
    assert set(want.values()) <= shown


# What each page must show for the task (its own words, not binary ones).
FOLLOWS = {
    "pages/4_Slices.py": {"regression": "mean absolute error |prediction - label|",
                          "multiclass": "misclassification rate (prediction differs from the label)"},
    "pages/5_Data_quality.py": {"regression": "outlying labels", "multiclass": "carrying a different class"},
    "pages/8_Data_plan.py": {"regression": "power for means", "multiclass": "power for rates"},
    "pages/6_Trends.py": {"regression": "Mean absolute error", "multiclass": "Accuracy"},
}


@pytest.mark.parametrize("page", list(FOLLOWS))
def test_pages_that_follow_the_task_draw_and_name_it(app, page):
    """Slices, Data quality, Data plan and Trends draw for the task without an exception or error line and show
    the task's own measures and signals."""
    task, at = app
    at.run()
    at.switch_page(page).run()
    _clean(at)
    assert FOLLOWS[page][task] in page_text(at), page


def test_audit_export_writes_the_task_metrics_and_the_access_log_records_it(app, task_env, tmp_path):
    """A snapshot taken on the Audit export page: its HTML names the task's headline measures with intervals, its
    groups.csv gives every task metric with value, interval and n; the downloads are offered; the Access log lists
    the export."""
    task, at = app
    at.run()
    at.switch_page("pages/7_Audit_export.py").run()
    _clean(at)
    at.text_input(key="fw.export.author").input("Alice Auditor")
    at.text_area(key="fw.export.note").input(f"{task} review")
    next(b for b in at.button if b.label == "Create snapshot").click().run()
    _clean(at)
    folders = [p for p in (tmp_path / "snapshots").iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(folders) == 1
    html = (folders[0] / "report.html").read_text(encoding="utf-8")
    for metric in HEADLINES[task][:2]:
        assert metric_label(metric) in html
    assert "(95% interval)" in html and "Positive outcome" not in html
    rows = list(csv.DictReader(io.StringIO((folders[0] / "groups.csv").read_text(encoding="utf-8-sig"))))
    metrics = {r["metric"] for r in rows}
    assert set(HEADLINES[task]) <= metrics
    shown = [r for r in rows if r["metric"] in HEADLINES[task] and r["suppressed"] == "false" and r["masked"] == "false"]
    assert shown and all(r["ci_low"] and r["ci_high"] and int(r["support"]) > 0 for r in shown)
    assert all(float(r["ci_low"]) <= float(r["value"]) <= float(r["ci_high"]) for r in shown)
    assert at.get("download_button")
    at.switch_page("pages/9_Access_log.py").run()
    _clean(at)
    log = next(d.value for d in at.dataframe if "Action" in d.value.columns)
    assert any("export" in a or "snapshot" in a for a in log["Action"])


# The real file with a model's predictions (tests/task_data.py), its sensitive features and the one checked.
REAL = {"regression": (law_school_predictions, ["race", "sex"], "race"),
        "multiclass": (diabetes_predictions, ["race", "gender", "age"], "gender")}


@pytest.mark.parametrize("task", ["regression", "multiclass"])
def test_data_sources_page_maps_real_data_as_the_task(task, shared_data, tmp_path, monkeypatch):
    """Law school (regression) and diabetes (multiclass) with a trained model's predictions, mapped on the Data
    sources page as the task: Performance shows the task's measures, equal to scikit-learn on the raw rows."""
    predictions, sensitive, feature = REAL[task]
    folder = tmp_path / "data"
    folder.mkdir()
    frame = predictions(shared_data)
    frame.to_csv(folder / f"{task}.csv", index=False)
    task_demo_folder(folder, task, rows=2_000)
    point_app_at(monkeypatch, folder)
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    at.switch_page("pages/1_Data_sources.py").run()
    at.radio(key="fw.src.kind").set_value("A file in the data folder").run()
    at.selectbox(key="fw.src.file").select(f"{task}.csv").run()
    _clean(at)
    form = {w.label: w for w in [*at.main.selectbox, *at.main.multiselect]}
    form["Label (actual outcome)"].select("y").run()
    _clean(at)
    form = {w.label: w for w in [*at.main.selectbox, *at.main.multiselect]}
    form["What the model outputs"].select(task)
    form["Prediction (the decision)"].select("p")
    form["Sensitive features"].set_value(sensitive)
    form["Other features (for slicing)"].set_value([])
    next(b for b in at.button if b.label == "Check and use this mapping").click().run()
    _clean(at)
    assert any(f"{len(frame):,} rows" in md_unescape(s.value) for s in at.success), [s.value for s in at.success]
    at.switch_page("pages/3_Performance.py").run()
    at.selectbox(key="fw.perf.grouping").select(feature).run()
    _clean(at)
    metric, _ = ORACLE[task]
    want = sklearn_by_group(frame, task, "y", "p", feature)
    got = page_values(at, metric, feature)
    assert got and set(got) <= set(want.index)
    for group, value in got.items():
        assert value == pytest.approx(want[group], rel=1e-9, abs=1e-12), group


def test_the_threshold_reason_is_one_line_for_tasks_only():
    """Binary audits get the explorer (no note); each task gets one line naming it and what its model outputs."""
    assert threshold_scope_note("binary") is None
    for task, output in (("regression", "a number"), ("multiclass", "one of several classes")):
        note = threshold_scope_note(task)
        assert task in note and output in note and "\n" not in note
