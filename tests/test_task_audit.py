"""Regression and multiclass audits end to end (issue 19): demo data with planted effects, `fairwatch audit --task`
writing a schema-valid snapshot, CSVs and reports; binary specs and snapshots keep exactly their old shape."""

from __future__ import annotations

import json

import pytest

from cli import main
from connectors.demo_tasks import TASK_PLANTED
from metrics.spec import parse_spec


@pytest.fixture(scope="module", params=["regression", "multiclass"])
def audited(request, tmp_path_factory):
    """A 30k-row demo of the task, audited through the CLI from its written config."""
    task = request.param
    root = tmp_path_factory.mktemp(task)
    db, toml, out = root / "demo.duckdb", root / "fairwatch.toml", root / "out"
    assert main(["demo", "--task", task, "--rows", "30000", "--out", str(db), "--config-out", str(toml)]) == 0
    assert main(["audit", "--config", str(toml), "--out", str(out)]) == 0
    return task, out


def test_snapshot_has_the_task_sections_and_finds_exactly_the_planted_groups(audited):
    """Single-feature groups outside the band are the planted ones; the task's sections are in snapshot.json."""
    task, out = audited
    doc = json.loads((out / "snapshot.json").read_text())
    assert doc["task"] == task and doc["spec"]["columns"]["task"] == task
    flagged = {tuple(g["slice"].items())[0] for g in doc["groups"] if len(g["slice"]) == 1
               and any(d["verdict"] == "outside" for d in g["disparities"].values())}
    planted = {p.slice[0] for p in TASK_PLANTED[task] if p.slice}
    assert flagged == planted
    if task == "regression":
        assert doc["data"]["nonfinite_rows"] > 0
        assert {"distributions", "distribution_gaps"} <= set(doc)
        metrics = doc["groups"][0]["metrics"]
        assert {"mean_prediction", "mean_absolute_error", "root_mean_squared_error", "r2_score",
                "mean_overprediction", "mean_underprediction"} <= set(metrics)
        assert (out / "distributions.csv").exists() and (out / "distribution_gaps.csv").exists()
    else:
        assert "manual_review" in doc["classes"] and "manual_review" in doc["task_notes"][0]
        assert (out / "confusion_matrices.csv").exists()
        assert "true_positive_rate@low" in doc["groups"][0]["metrics"]
    html = (out / "report.html").read_text()
    headline = "Mean absolute error" if task == "regression" else "Balanced accuracy"
    assert headline in html
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")


def test_binary_specs_and_snapshots_keep_their_shape():
    """A binary spec writes no task key; its snapshot has no task sections (binary output unchanged)."""
    spec = parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a"]}})
    assert spec.task == "binary" and "task" not in spec.to_dict()["columns"]
    explicit = parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["a"],
                                                                "task": "binary"}})
    assert explicit == spec


def test_binary_snapshot_has_no_task_keys(tmp_path):
    """The binary snapshot.json has none of the new keys."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    path = tmp_path / "rows.csv"
    pd.DataFrame({"a": rng.choice(["u", "v"], 400), "y": rng.integers(0, 2, 400),
                  "p": rng.integers(0, 2, 400)}).to_csv(path, index=False)
    assert main(["audit", str(path), "--label", "y", "--prediction", "p", "--sensitive", "a", "--out",
                 str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "snapshot.json").read_text())
    assert not {"task", "task_notes", "classes", "confusion_matrices", "distributions", "distribution_gaps"} & set(doc)
    assert "nonfinite_rows" not in doc["data"] and "task" not in doc["spec"]["columns"]


def test_task_flag_errors_are_one_line(tmp_path, capsys):
    """--task with a score/threshold, or an unknown task: exit 2 with one line."""
    assert main(["audit", "x.csv", "--label", "y", "--score", "s", "--threshold", "0.5", "--sensitive", "a",
                 "--task", "regression", "--out", str(tmp_path / "o")]) == 2
    assert main(["audit", "x.csv", "--label", "y", "--prediction", "p", "--sensitive", "a", "--task", "ordinal",
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("fairwatch: error:") for line in err)
