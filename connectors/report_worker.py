"""Draw the report (charts, HTML, PDF) in a separate process that loads its libraries while the audit counts.

`fairwatch audit` forks the worker after its own imports and before DuckDB opens (issue 18;
FAIRWATCH_REPORT_WORKER=0 turns it off): importing fpdf2 (with fontTools and Pillow) and Altair and starting
vl-convert's JavaScript runtime take 1-2 CPU-seconds that hold the GIL of whatever process does
them. In threads of the audit they compete with the audit's own Python work; in this process they
run beside it while DuckDB counts. The export then hands the exported document to the worker, which
builds the report model and draws it, and writes snapshot.json and the CSVs meanwhile (figures in
cli.py `_start_worker`: 4.46 s instead of 5.55 s for the 3-sensitive 10M-row audit).

The worker calls the same `render_charts`, `render_html` and `render_pdf` as an export in one
process, so the files are byte for byte the same. Its errors come back as the same exceptions with
the same one-line messages (FairwatchError pickles its template); a worker that died or could not
start is never a lost report: the export then draws in its own process (`draw_reports`).

This module imports nothing heavy at load time; `can_fork` says when a fork is safe (no thread
running, no chart runtime loaded); the caller forks before it opens a DuckDB database.
"""

from __future__ import annotations

import importlib
import multiprocessing
import signal
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

# Libraries whose runtime threads do not survive a fork (and that the worker loads itself); the caller also
# forks before it opens a DuckDB database, whose threads would not survive either.
_FORK_UNSAFE = ("vl_convert", "fpdf")

# What drawing a report imports (build_report loads the chart builders and views on first use): loaded at warm-up.
_REPORT_MODULES = ("fpdf.fonts", "fairwatch.metrics.presentation.report_model", "fairwatch.metrics.presentation.charts",
                   "fairwatch.metrics.presentation.views", "fairwatch.metrics.policy.overview")


def can_fork() -> bool:
    """True when this process can fork the worker safely: no other Python thread yet, no chart runtime loaded.

    Only then is a worker worth it: forked, it shares what this process imported and costs no new
    interpreter; a spawned one would re-import its caller's main module (an unguarded script would run
    twice) and, started late, would have little left to overlap with.
    """
    return ("fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
            and not any(name in sys.modules for name in _FORK_UNSAFE))


def _warm_up() -> None:
    """In the worker: start the chart runtime, import the PDF library and what building the report model imports."""
    try:
        from fairwatch.connectors import report

        report.warm_up_charts()
        for name in _REPORT_MODULES:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a missing library is reported, with its message, when the report is drawn
        pass


class _OneChart:
    """A report model reduced to one chart, for `render_charts` (which reads only `charts()`)."""

    def __init__(self, chart: Any) -> None:
        """Hold the chart."""
        self._chart = chart

    def charts(self) -> list[Any]:
        """The one chart."""
        return [self._chart]


class _ChartsWhenReady(Mapping):
    """A report's charts, drawn one by one in a thread, each waited for where the PDF places it.

    fpdf2 lays out the pages before a chart while vl-convert draws it. Measured here, vl-convert 1.x
    holds the GIL while it converts (a spinning Python thread got 7% of its speed), so the overlap is
    small; the structure stays right for a renderer that releases it. Lookups behave as the dict of
    `render_charts`: a chart id that is not in the report is missing.
    """

    def __init__(self, model: Any, pool: ThreadPoolExecutor, render_charts: Any) -> None:
        """Submit every chart, in the report's order."""
        self._pending = {chart.chart_id: pool.submit(render_charts, _OneChart(chart)) for chart in model.charts()}

    def __getitem__(self, key: str) -> Any:
        """One chart, once drawn (raises what render_charts raised for it)."""
        return self._pending[key].result()[key]

    def __iter__(self) -> Iterator[str]:
        """The chart ids."""
        return iter(self._pending)

    def __len__(self) -> int:
        """How many charts."""
        return len(self._pending)

    def wait(self) -> None:
        """Every chart drawn; raises the first chart's error in the report's order, as render_charts does."""
        for key in self._pending:
            self[key]


def draw_reports(document: Mapping[str, Any], files: Sequence[str]) -> tuple[bytes, bytes]:
    """The report of an exported document (listing `files`) as HTML and PDF bytes, in this process.

    The charts are drawn in a thread while fpdf2 lays out the pages, each chart waited for where it is
    placed (`_ChartsWhenReady`); errors come in the order one process raises them (charts first).
    """
    from fairwatch.connectors.report import render_charts, render_html, render_pdf
    from fairwatch.metrics.presentation.report_model import build_report

    model = build_report(document, files=list(files))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fairwatch-charts") as pool:
        charts = _ChartsWhenReady(model, pool, render_charts)
        try:
            pdf = render_pdf(model, charts)
        except Exception:
            charts.wait()  # drawn in one process, a chart's error came first: so it does here
            raise
        html = render_html(model, charts).encode("utf-8")
    return html, pdf


def _serve(conn: Connection, parent_end: Connection) -> None:
    """The worker's life: warm up, then draw each document received until told to stop (None) or the pipe closes."""
    # A forked worker holds a copy of the parent's end: closed, so a parent that dies leaves this one an EOF.
    parent_end.close()
    # Ctrl-C reaches the whole process group: the audit process handles it; the worker just goes with it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _warm_up()
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            reply: tuple[str, Any] = ("ok", draw_reports(*job))
        except Exception as exc:  # noqa: BLE001 - every error goes back to the export, which raises it there
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception:  # noqa: BLE001 - an error that does not pickle: the export draws again and raises it itself
            conn.send(("redo", None))


class ReportWorker:
    """One worker process that draws reports on request; `result` draws in this process when the worker is gone."""

    def __init__(self, method: str = "fork") -> None:
        """Start the process and its warm-up now (the CLI does this before it imports the audit)."""
        ctx = multiprocessing.get_context(method)
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self._conn), name="fairwatch-report", daemon=True)
        self._proc.start()
        child.close()
        self._lock = threading.Lock()

    @classmethod
    def start(cls) -> ReportWorker | None:
        """A started worker, or None when this process cannot fork one safely (the export then draws in-process)."""
        if not can_fork():
            return None
        try:
            return cls()
        except (OSError, RuntimeError, ValueError):
            return None

    def submit(self, document: Mapping[str, Any], files: Sequence[str]) -> Future:
        """Start drawing the report in the worker; the future holds ("ok", (html, pdf)), ("error", exc) or ("redo", None)."""
        pending: Future = Future()

        def exchange() -> None:
            """Send the model and wait for the reply (in a thread: the worker may still be warming up)."""
            try:
                with self._lock:
                    self._conn.send((document, list(files)))
                    pending.set_result(self._conn.recv())
            except Exception:  # noqa: BLE001 - a dead worker or a model that does not pickle: draw in-process
                pending.set_result(("redo", None))

        threading.Thread(target=exchange, name="fairwatch-report-exchange", daemon=True).start()
        return pending

    def result(self, pending: Future, document: Mapping[str, Any], files: Sequence[str]) -> tuple[bytes, bytes]:
        """The (HTML, PDF) bytes of a submitted report; drawn in this process when the worker could not.

        An error raised while drawing (a chart vl-convert cannot draw, fpdf2 missing) is raised here
        unchanged, message and all; a dead worker (killed, out of memory) costs time, never the report.
        """
        status, value = pending.result()
        if status == "ok":
            return value
        if status == "error":
            raise value
        return draw_reports(document, files)

    def close(self) -> None:
        """Stop the worker now (it writes nothing, so nothing is lost), and close the pipe."""
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(timeout=5)
        self._conn.close()
