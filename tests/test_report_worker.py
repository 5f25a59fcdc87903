"""The report worker process of `fairwatch audit`: the same bytes, the same errors, no report lost (issue 18)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors import export as ex
from fairwatch.connectors.report import render_charts, render_html, render_pdf
from fairwatch.connectors.report_worker import ReportWorker, draw_reports
from fairwatch.metrics.errors import ReportError
from fairwatch.metrics.presentation.report_model import build_report, csv_tables
from fairwatch.metrics.privacy.withholding import jsonable, withhold

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


def job_of(folder: Path) -> tuple[dict, list[str]]:
    """The exported document of a written snapshot and the files its report lists, as the export had them."""
    doc = json.loads((folder / ex.SNAPSHOT_FILE).read_text(encoding="utf-8"))
    return doc, sorted([ex.SNAPSHOT_FILE, ex.REPORT_HTML, ex.REPORT_PDF, *(f"{n}.csv" for n in csv_tables(doc))])


def one_process(doc: dict, files: list[str]) -> tuple[bytes, bytes]:
    """HTML and PDF drawn the way an export in one process draws them (model, charts, HTML, then PDF)."""
    model = build_report(doc, files=files)
    charts = render_charts(model)
    return render_html(model, charts).encode("utf-8"), render_pdf(model, charts)


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> Path:
    """A snapshot written by `fairwatch audit` as a user runs it (a fresh process): its worker is forked."""
    tmp = tmp_path_factory.mktemp("worker")
    log = small_log(tmp / "log.csv")
    proc = subprocess.run([sys.executable, "-m", "fairwatch.cli", "audit", str(log), "--label", "label",
                           "--prediction", "pred", "--sensitive", "sex,race", "--out", str(tmp / "audit")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "FAIRWATCH_REPORT_WORKER": ""})
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return tmp / "audit"


def test_the_cli_forks_a_worker_whose_reports_are_the_bytes_one_process_draws(audited):
    """report.html and report.pdf from the worker equal the same model drawn in one process, byte for byte."""
    html, pdf = one_process(*job_of(audited))
    assert (audited / ex.REPORT_HTML).read_bytes() == html
    assert (audited / ex.REPORT_PDF).read_bytes() == pdf
    assert ex.verify(audited).intact


def test_only_a_process_without_threads_or_chart_runtime_forks():
    """A bare process can fork the worker; one that has loaded vl-convert or started a thread cannot."""
    code = ("import threading, time; from fairwatch.connectors.report_worker import ReportWorker, can_fork; "
            "print(can_fork()); import vl_convert; print(can_fork(), ReportWorker.start())")
    bare = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bare.stdout.split() == ["True", "False", "None"], bare.stderr
    code = ("import threading, time; from fairwatch.connectors.report_worker import can_fork; "
            "threading.Thread(target=time.sleep, args=(2,)).start(); print(can_fork())")
    threaded = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert threaded.stdout.strip() == "False", threaded.stderr


def test_a_spawned_worker_draws_the_same_bytes(audited):
    """The worker's drawing (model built there, charts in a thread beside the PDF) is the one-process drawing."""
    job = job_of(audited)
    worker = ReportWorker(method="spawn")
    try:
        assert worker.result(worker.submit(*job), *job) == one_process(*job)
    finally:
        worker.close()
    assert not worker._proc.is_alive()


def test_a_fairwatch_error_pickles_back_with_its_message():
    """What the worker sends back for a report it cannot draw: the same class and one-line message."""
    error = ReportError("chart 'x' could not be drawn: unknown mark")
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is ReportError and str(back) == str(error)


def test_an_error_in_the_worker_comes_back_as_the_same_exception(audited):
    """A document the report cannot be built from: the worker raises what one process raises, word for word."""
    doc, files = job_of(audited)
    broken = {**doc, "groups": [{"slice": "not a mapping"}]}
    with pytest.raises(Exception) as here:
        one_process(broken, files)
    worker = ReportWorker(method="spawn")
    try:
        with pytest.raises(Exception) as there:
            worker.result(worker.submit(broken, files), broken, files)
    finally:
        worker.close()
    assert type(there.value) is type(here.value)
    assert str(there.value) == str(here.value)
    with pytest.raises(Exception) as drawn:
        draw_reports(broken, files)
    assert type(drawn.value) is type(here.value) and str(drawn.value) == str(here.value)


def test_a_dead_worker_loses_nothing(audited):
    """A worker killed before it draws (out of memory, say): the report is drawn in this process instead."""
    job = job_of(audited)
    worker = ReportWorker(method="spawn")
    worker._proc.kill()
    worker._proc.join(timeout=30)
    try:
        assert worker.result(worker.submit(*job), *job) == one_process(*job)
    finally:
        worker.close()


def test_the_audit_process_leaves_no_worker_behind_after_bad_input(tmp_path):
    """A refused command (existing --out) exits 2 with its one line, at once, and its worker is gone."""
    log = small_log(tmp_path / "log.csv", n=200)
    (tmp_path / "taken").mkdir()
    proc = subprocess.run([sys.executable, "-m", "fairwatch.cli", "audit", str(log), "--label", "label",
                           "--prediction", "pred", "--sensitive", "sex", "--out", str(tmp_path / "taken")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FAIRWATCH_REPORT_WORKER": ""})
    assert proc.returncode == 2
    assert proc.stderr.startswith("fairwatch: error: ") and proc.stderr.count("\n") == 1
    assert "exists" in proc.stderr


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    """Python code in a fresh process (a fork is safe there: no thread, no chart runtime yet)."""
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


_IN_CHART_PROCESS = """
import json, os, signal, sys
from pathlib import Path
import fairwatch.connectors.report
from fairwatch.connectors.report_worker import _ChartProcess, draw_reports
folder, files, out, kill = Path(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3]), sys.argv[4] == "kill"
doc = json.loads((folder / "snapshot.json").read_text(encoding="utf-8"))
charts = _ChartProcess.start()
assert charts is not None
if kill:
    os.kill(charts._pid, signal.SIGKILL)
html, pdf = draw_reports(doc, files, chart_process=charts)
out.with_suffix(".html").write_bytes(html)
out.with_suffix(".pdf").write_bytes(pdf)
pid = charts._pid
charts.close()
gone = not Path(f"/proc/{pid}").exists()
print(json.dumps({"vl_convert_here": "vl_convert" in sys.modules, "gone": gone,
                  "statistics": sorted(m for m in ("scipy.stats", "statsmodels") if m in sys.modules)}))
"""


@pytest.mark.parametrize("kill", [False, True], ids=["drawn there", "chart process killed"])
def test_charts_drawn_in_the_chart_process_give_the_bytes_one_process_draws(audited, tmp_path, kill):
    """The worker's chart process draws the charts (this process never loads vl-convert) and the report is the
    one-process report, byte for byte; a chart process that died is no lost chart: the charts are drawn here.
    Drawing a report imports neither scipy.stats nor statsmodels (the worker is forked before the audit's imports)."""
    doc, files = job_of(audited)
    proc = _run(_IN_CHART_PROCESS, str(audited), json.dumps(files), str(tmp_path / "report"),
                "kill" if kill else "keep")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["vl_convert_here"] is kill
    assert got["gone"] and got["statistics"] == []
    html, pdf = one_process(doc, files)
    assert (tmp_path / "report.html").read_bytes() == html
    assert (tmp_path / "report.pdf").read_bytes() == pdf


def test_a_chart_the_chart_process_cannot_draw_raises_the_one_process_error():
    """A chart vl-convert refuses: the chart process sends back the ReportError one process raises, word for word."""
    from fairwatch.metrics.presentation.report_model import Chart

    code = """
import json, sys
import fairwatch.connectors.report
from fairwatch.connectors.report_worker import _ChartProcess
from fairwatch.metrics.presentation.report_model import Chart
charts = _ChartProcess.start()
bad = Chart("bad", "Bad chart", json.dumps({"mark": "nonsense", "data": {"values": []}}), "no such mark")
try:
    charts.submit([bad])["bad"].result()
except Exception as exc:
    print(type(exc).__name__, exc)
finally:
    charts.close()
"""
    there = _run(code)
    assert there.returncode == 0, there.stderr
    bad = Chart("bad", "Bad chart", json.dumps({"mark": "nonsense", "data": {"values": []}}), "no such mark")
    with pytest.raises(ReportError) as here:
        render_charts(_OneModel(bad))
    assert there.stdout.strip() == f"ReportError {here.value}"


class _OneModel:
    """A model of one chart, for render_charts."""

    def __init__(self, chart) -> None:
        """Hold the chart."""
        self._chart = chart

    def charts(self) -> list:
        """The one chart."""
        return [self._chart]


def test_a_worker_that_answered_stops_with_its_chart_process(audited):
    """After the report, closing the worker stops the worker and its chart process (waited for, not left behind)."""
    code = """
import json, sys, time
from pathlib import Path
from fairwatch.connectors.report_worker import ReportWorker
folder, files = Path(sys.argv[1]), json.loads(sys.argv[2])
doc = json.loads((folder / "snapshot.json").read_text(encoding="utf-8"))
worker = ReportWorker.start()
html, pdf = worker.result(worker.submit(doc, files), doc, files)
pid = worker._proc.pid
children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
worker.close()
print(json.dumps({"children": len(children), "exitcode": worker._proc.exitcode,
                  "left": [c for c in children if Path(f"/proc/{c}").exists()]}))
"""
    doc, files = job_of(audited)
    proc = _run(code, str(audited), json.dumps(files))
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got == {"children": 1, "exitcode": 0, "left": []}


_PREVIEW = """
import json, os, sys
from pathlib import Path
from fairwatch.connectors import report_worker
folder, files, log, change = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3], sys.argv[4] == "change"
doc = json.loads((folder / "snapshot.json").read_text(encoding="utf-8"))
real = report_worker._ChartProcess.submit

def logged(self, charts):
    caller = sys._getframe(1).f_code.co_name  # draw_ahead (the preview) or __init__ (the report's own charts)
    with open(log, "a") as fh:  # written in the worker, which is forked with this class
        fh.write(json.dumps([caller, [c.chart_id for c in charts]]) + "\\n")
    return real(self, charts)

report_worker._ChartProcess.submit = logged
early = json.loads(json.dumps(doc))
if change:  # ratios that moved between the preview and the report: their chart is drawn again
    for g in early["groups"]:
        for d in (g.get("disparities") or {}).values():
            d["ratio"] = d["ratio"] * 1.01 if d.get("ratio") else d.get("ratio")
worker = report_worker.ReportWorker.start()
worker.preview(early, None).join()
html, pdf = worker.result(worker.submit(doc, files), doc, files)
worker.close()
Path(log).with_suffix(".html").write_bytes(html)
Path(log).with_suffix(".pdf").write_bytes(pdf)
"""


@pytest.mark.parametrize("change", [False, True], ids=["same groups", "a ratio moved"])
def test_charts_drawn_from_a_preview_are_the_reports_charts(audited, tmp_path, change):
    """The CLI sends the groups ahead: their charts are drawn during the slice search and the report takes each one
    whose spec is unchanged, drawing the others; the bytes are one process's either way."""
    doc, files = job_of(audited)
    log = tmp_path / "submitted.txt"
    proc = _run(_PREVIEW, str(audited), json.dumps(files), str(log), "change" if change else "same")
    assert proc.returncode == 0, proc.stderr
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    drawn = [c.chart_id for c in build_report(doc, files=files).charts()]
    # The preview drew every chart; the report drew only the one whose spec moved (none otherwise).
    assert sent == ([["draw_ahead", drawn], ["__init__", ["ratios"]]] if change else [["draw_ahead", drawn]])
    html, pdf = one_process(doc, files)
    assert log.with_suffix(".html").read_bytes() == html
    assert log.with_suffix(".pdf").read_bytes() == pdf


def test_the_audits_groups_alone_give_the_reports_charts(tmp_path):
    """What `run_audit` hands `on_groups` (the groups before the slice search) draws the final report's charts; a
    preview that fails changes nothing."""
    from fairwatch.connectors.audit import run_audit
    from fairwatch.metrics.audit.spec import parse_spec

    log = small_log(tmp_path / "log.csv")
    # Four rows of a fifth race: a group below k = 10, withheld, so the preview must withhold it as the export does.
    with log.open("a") as fh:
        fh.write("".join(f"{s},d,{y},{y}\n" for s, y in (("f", 0), ("m", 1), ("f", 1), ("m", 0))))
    spec = parse_spec({"source": {"path": str(log)}, "columns": {"label": "label", "prediction": "pred",
                                                                 "sensitive": ["sex", "race"]}})
    early = []
    snap = run_audit(spec, on_groups=early.append)
    assert len(early) == 1 and early[0].slices is None and early[0].findings is None
    final, summary = ex.prepare_document(snap.to_dict(), fingerprint=None, k=None, snapshot_id="x",
                                         exported_at="now", validate=False)
    assert summary.primary_groups >= 1  # something was withheld: the charts would differ without it
    unwithheld = {c.chart_id: c.spec_json for c in build_report(jsonable(early[0].to_dict())).charts()}
    specs = {c.chart_id: c.spec_json for c in build_report(final).charts()}
    assert specs and specs == {c.chart_id: c.spec_json for c in build_report(withhold(early[0].to_dict(), None)[0]).charts()}
    assert unwithheld != specs

    def fails(_):
        raise RuntimeError("a preview that fails")

    again = run_audit(spec, on_groups=fails)
    pd.testing.assert_frame_equal(again.groups.rows, snap.groups.rows)
