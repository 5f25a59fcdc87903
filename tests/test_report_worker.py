"""The report worker process of `fairwatch audit`: the same bytes, the same errors, no report lost (issue 18)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors import export as ex
from fairwatch.connectors.report import render_charts, render_html, render_pdf
from fairwatch.connectors.report_worker import ReportWorker, can_fork, draw_reports
from fairwatch.metrics.errors import ReportError
from fairwatch.metrics.presentation.report_model import Chart, build_report, csv_tables

ROOT = Path(__file__).resolve().parents[1]


def small_log(path: Path, n: int = 3000, seed: int = 3) -> Path:
    """A CSV prediction log with two sensitive features and a group that errs more."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["f", "m"], n)
    race = rng.choice(["a", "b", "c"], n)
    label = rng.integers(0, 2, n)
    flip = rng.random(n) < np.where(race == "c", 0.35, 0.1)
    pd.DataFrame({"sex": sex, "race": race, "label": label, "pred": np.where(flip, 1 - label, label)}).to_csv(
        path, index=False)
    return path


def model_of(folder: Path):
    """The report model of a written snapshot, rebuilt from its snapshot.json as the export built it."""
    doc = json.loads((folder / ex.SNAPSHOT_FILE).read_text(encoding="utf-8"))
    files = sorted([ex.SNAPSHOT_FILE, ex.REPORT_HTML, ex.REPORT_PDF, *(f"{n}.csv" for n in csv_tables(doc))])
    return build_report(doc, files=files)


def one_process(model) -> tuple[bytes, bytes]:
    """HTML and PDF drawn the way an export in one process draws them (charts first, then HTML, then PDF)."""
    charts = render_charts(model)
    return render_html(model, charts).encode("utf-8"), render_pdf(model, charts)


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """A snapshot written by `fairwatch audit` as a user runs it: a fresh process, so the worker is forked."""
    tmp = tmp_path_factory.mktemp("worker")
    log = small_log(tmp / "log.csv")
    proc = subprocess.run([sys.executable, "-m", "fairwatch.cli", "audit", str(log), "--label", "label",
                           "--prediction", "pred", "--sensitive", "sex,race", "--out", str(tmp / "audit")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return tmp / "audit"


def test_the_cli_forks_a_worker_whose_reports_are_the_bytes_one_process_draws(audited):
    """report.html and report.pdf from the worker equal the same model drawn in one process, byte for byte."""
    html, pdf = one_process(model_of(audited))
    assert (audited / ex.REPORT_HTML).read_bytes() == html
    assert (audited / ex.REPORT_PDF).read_bytes() == pdf
    assert ex.verify(audited).intact


def test_a_bare_process_can_fork_and_this_one_cannot():
    """Only a process with no threads and no native runtime forks a worker (pytest has loaded DuckDB)."""
    assert not can_fork()
    assert ReportWorker.start() is None
    code = "from fairwatch.connectors.report_worker import can_fork; print(can_fork())"
    bare = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bare.stdout.strip() == "True", bare.stderr


def test_a_spawned_worker_draws_the_same_bytes(audited):
    """The worker's drawing (charts in a thread beside the PDF) is the one-process drawing."""
    model = model_of(audited)
    worker = ReportWorker(method="spawn")
    try:
        assert worker.result(worker.submit(model), model) == one_process(model)
    finally:
        worker.close()
    assert not worker._proc.is_alive()


def broken_chart(model):
    """The model with its first chart's spec replaced by one vl-convert refuses."""
    for i, section in enumerate(model.sections):
        for j, block in enumerate(section.blocks):
            if isinstance(block, Chart):
                blocks = list(section.blocks)
                blocks[j] = replace(block, spec_json=json.dumps({"mark": "no-such-mark", "data": {"values": [{"x": 1}]}}))
                sections = list(model.sections)
                sections[i] = replace(section, blocks=tuple(blocks))
                return replace(model, sections=tuple(sections))
    raise AssertionError("the report has no chart")


def test_an_error_in_the_worker_comes_back_with_the_same_one_line_message(audited):
    """A chart vl-convert cannot draw: the same ReportError, word for word, as when drawn in one process."""
    model = broken_chart(model_of(audited))
    with pytest.raises(ReportError) as here:
        one_process(model)
    worker = ReportWorker(method="spawn")
    try:
        with pytest.raises(ReportError) as there:
            worker.result(worker.submit(model), model)
    finally:
        worker.close()
    assert str(there.value) == str(here.value)
    assert "could not be drawn" in str(there.value) and "\n" not in str(there.value)
    with pytest.raises(ReportError) as drawn:
        draw_reports(model)
    assert str(drawn.value) == str(here.value)


def test_a_dead_worker_loses_nothing(audited):
    """A worker killed before it draws (out of memory, say): the report is drawn in this process instead."""
    model = model_of(audited)
    worker = ReportWorker(method="spawn")
    worker._proc.kill()
    worker._proc.join(timeout=30)
    try:
        assert worker.result(worker.submit(model), model) == one_process(model)
    finally:
        worker.close()


def test_the_audit_process_leaves_no_worker_behind_after_bad_input(tmp_path):
    """A refused command (existing --out) exits 2 with its one line, at once, and its worker is gone."""
    log = small_log(tmp_path / "log.csv", n=200)
    (tmp_path / "taken").mkdir()
    proc = subprocess.run([sys.executable, "-m", "fairwatch.cli", "audit", str(log), "--label", "label",
                           "--prediction", "pred", "--sensitive", "sex", "--out", str(tmp_path / "taken")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("fairwatch: error: ") and proc.stderr.count("\n") == 1
    assert "exists" in proc.stderr
