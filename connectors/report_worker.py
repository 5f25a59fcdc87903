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

The worker draws the charts in a process of its own (`_ChartProcess`, forked by the worker once it has
imported pandas and the report model, before it loads Altair or fpdf2): vl-convert holds the GIL while it
converts, so in a thread beside the PDF layout the two took turns on one core; in two processes both cores
work while the audit process waits for the report. The chart process calls the same `render_charts`; a
chart it could not draw or send back is drawn again in the worker, so nothing is lost and its error is the
one a single process raises.

This module imports nothing heavy at load time; `can_fork` says when a fork is safe (no thread
running, no chart runtime loaded); the caller forks before it opens a DuckDB database.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import signal
import sys
import threading
import time
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


def _warm_up(inherited: Sequence[Connection] = ()) -> _ChartProcess | None:
    """In the worker: import the report model, fork the chart process, then import what drawing the report needs.

    The chart process is forked after pandas and the report model are imported (it shares them) and before
    this process starts a thread or loads fpdf2 or vl-convert; it starts the chart runtime itself. Without
    one (it could not be forked), this process starts the runtime in a thread, as a one-process export does.
    `inherited`: this process's ends of its own pipes, which the chart process closes.
    """
    charts = None
    try:
        importlib.import_module("fairwatch.connectors.report")
        charts = _ChartProcess.start(inherited)
        if charts is None:
            from fairwatch.connectors import report

            report.warm_up_charts()
        for name in _REPORT_MODULES:
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - a missing library is reported, with its message, when the report is drawn
        pass
    return charts


class _OneChart:
    """A report model reduced to one chart, for `render_charts` (which reads only `charts()`)."""

    def __init__(self, chart: Any) -> None:
        """Hold the chart."""
        self._chart = chart

    def charts(self) -> list[Any]:
        """The one chart."""
        return [self._chart]


class _ChartsWhenReady(Mapping):
    """A report's charts, drawn one by one elsewhere (the chart process, or a thread), each waited for where the
    PDF places it.

    fpdf2 lays out the pages before a chart while the chart is drawn. In a thread the overlap is small
    (vl-convert 1.x holds the GIL while it converts: a spinning Python thread got 7% of its speed); in the
    chart process it is real. Lookups behave as the dict of `render_charts`: a chart id that is not in the
    report is missing. A chart the chart process could not draw or send back is drawn here.
    """

    def __init__(self, model: Any, pool: ThreadPoolExecutor, render_charts: Any,
                 process: _ChartProcess | None = None, ahead: Mapping[tuple[str, str], Future] | None = None) -> None:
        """Submit every chart, in the report's order: to the chart process when there is one, else to the pool.

        `ahead`: charts already sent for drawing (`_Preview`), by (chart id, spec): a chart of this report with
        the same id and the very same spec is that drawing (vl-convert draws a spec the same way every time).
        """
        self._charts = {chart.chart_id: chart for chart in model.charts()}
        self._render = render_charts
        ahead = ahead or {}
        drawn = {key: ahead[(key, chart.spec_json)] for key, chart in self._charts.items()
                 if (key, chart.spec_json) in ahead}
        rest = [chart for key, chart in self._charts.items() if key not in drawn]
        sent = process.submit(rest) if process is not None and rest else None
        if sent is None:
            sent = {chart.chart_id: pool.submit(render_charts, _OneChart(chart)) for chart in rest}
        self._pending = {key: drawn[key] if key in drawn else sent[key] for key in self._charts}

    def __getitem__(self, key: str) -> Any:
        """One chart, once drawn (raises what render_charts raised for it)."""
        got = self._pending[key].result()
        if isinstance(got, _Redo):
            got = self._render(_OneChart(self._charts[key]))
            self._pending[key] = _done(got)
        return got[key]

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


class _Redo:
    """The chart process could not draw a chart or send it back: draw it in this process."""


def _done(value: Any) -> Future:
    """A future that already holds `value`."""
    future: Future = Future()
    future.set_result(value)
    return future


class _ChartProcess:
    """vl-convert in a process of its own: draws the charts it is sent, one reply per chart, in order.

    Forked with os.fork, not multiprocessing: the worker is a daemon process, which multiprocessing does not
    let have children (the worker waits for this one when it stops, so it is never left behind).
    """

    def __init__(self, inherited: Sequence[Connection] = ()) -> None:
        """Fork the process (it starts the chart runtime at once) and keep this end of its pipe."""
        self._conn, child = multiprocessing.Pipe()
        self._pid = os.fork()
        if self._pid == 0:  # the chart process: serve, then leave without the worker's exit handlers
            code = 0
            try:
                _serve_charts(child, [self._conn, *inherited])
            except BaseException:  # noqa: BLE001 - the worker redraws what this process did not send
                code = 1
            finally:
                os._exit(code)
        child.close()
        self._receiving: threading.Thread | None = None

    @classmethod
    def start(cls, inherited: Sequence[Connection] = ()) -> _ChartProcess | None:
        """A started chart process, or None when this process cannot fork one safely."""
        if not can_fork():
            return None
        try:
            return cls(inherited)
        except OSError:
            return None

    def submit(self, charts: list[Any]) -> dict[str, Future] | None:
        """Send the charts; a future per chart id holding render_charts' dict, its exception, or _Redo.

        None when the charts cannot be sent (the process is gone): the caller draws them itself.
        """
        if self._receiving is not None:
            self._receiving.join()  # the replies of an earlier report first: they share the pipe
        try:
            self._conn.send(charts)
        except Exception:  # noqa: BLE001 - a dead process or a chart that does not pickle: drawn in this process
            return None
        pending = {chart.chart_id: Future() for chart in charts}

        def receive() -> None:
            """Resolve each chart's future as its reply comes; a lost process leaves the rest to be redrawn."""
            try:
                for key, future in pending.items():
                    status, value = self._conn.recv()
                    if status == "ok":
                        future.set_result(value)
                    elif status == "error":
                        future.set_exception(value)
                    else:
                        future.set_result(_Redo())
            except Exception:  # noqa: BLE001 - EOF or a broken pipe: every chart not received is drawn here
                for future in pending.values():
                    if not future.done():
                        future.set_result(_Redo())

        self._receiving = threading.Thread(target=receive, name="fairwatch-charts-receive", daemon=True)
        self._receiving.start()
        return pending

    def close(self) -> None:
        """Tell the process to stop and wait for it (its CPU time then counts in this process's children)."""
        try:
            self._conn.send(None)
        except Exception:  # noqa: BLE001 - already gone
            pass
        deadline = time.monotonic() + 5
        while not self._reaped() and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._reaped():
            os.kill(self._pid, signal.SIGTERM)
            os.waitpid(self._pid, 0)
        self._conn.close()

    def _reaped(self) -> bool:
        """True once the process has exited and been waited for."""
        try:
            return os.waitpid(self._pid, os.WNOHANG)[0] != 0
        except ChildProcessError:
            return True


def _serve_charts(conn: Connection, parent_ends: Sequence[Connection]) -> None:
    """The chart process: start the runtime, then draw each list of charts received, until None or EOF."""
    # The worker's pipe ends, copied by the fork, closed here: a worker that dies leaves EOFs, not a hang.
    for end in parent_ends:
        end.close()
    from fairwatch.connectors.report import render_charts, start_chart_runtime

    start_chart_runtime()
    while True:
        try:
            charts = conn.recv()
        except (EOFError, OSError):
            return
        if charts is None:
            return
        for chart in charts:
            try:
                reply: tuple[str, Any] = ("ok", render_charts(_OneChart(chart)))
            except Exception as exc:  # noqa: BLE001 - the worker raises it where the PDF places the chart
                reply = ("error", exc)
            try:
                conn.send(reply)
            except Exception:  # noqa: BLE001 - an error that does not pickle: the worker draws that chart itself
                conn.send(("redo", None))


def draw_reports(document: Mapping[str, Any], files: Sequence[str], chart_process: _ChartProcess | None = None,
                 ahead: Mapping[tuple[str, str], Future] | None = None) -> tuple[bytes, bytes]:
    """The report of an exported document (listing `files`) as HTML and PDF bytes.

    The charts are drawn in the chart process (or, without one, in a thread) while fpdf2 lays out the
    pages, each chart waited for where it is placed (`_ChartsWhenReady`); errors come in the order one
    process raises them (charts first). `ahead`: charts a preview sent for drawing already (`_ChartsWhenReady`).
    """
    from fairwatch.connectors.report import render_charts, render_html, render_pdf
    from fairwatch.metrics.presentation.report_model import build_report

    model = build_report(document, files=list(files))
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fairwatch-charts") as pool:
        charts = _ChartsWhenReady(model, pool, render_charts, chart_process, ahead)
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
    charts = _warm_up((conn,))
    ahead: dict[tuple[str, str], Future] = {}
    try:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            if isinstance(job, _Preview):
                ahead = job.draw_ahead(charts)
                continue
            try:
                reply: tuple[str, Any] = ("ok", draw_reports(*job, chart_process=charts, ahead=ahead))
            except Exception as exc:  # noqa: BLE001 - every error goes back to the export, which raises it there
                reply = ("error", exc)
            try:
                conn.send(reply)
            except Exception:  # noqa: BLE001 - an error that does not pickle: the export draws again and raises it itself
                conn.send(("redo", None))
    finally:
        if charts is not None:
            charts.close()


class _Preview:
    """The audit's groups before its slice search: their charts can be drawn while the search runs (issue 18).

    The charts of a report are drawn from its groups and representation, which the audit has long before
    its slice search, quality counts and export end. The worker withholds small cells as the export will,
    builds the report model and sends its charts to the chart process; the report then takes each chart
    whose id and spec are the same (`_ChartsWhenReady`) and draws the others. A preview that fails costs
    nothing but its time: the report draws every chart itself.
    """

    def __init__(self, document: Mapping[str, Any], k: int | None) -> None:
        """Hold the partial audit document (`AuditSnapshot.to_dict` without slices) and the export's k."""
        self.document = document
        self.k = k

    def draw_ahead(self, process: _ChartProcess | None) -> dict[tuple[str, str], Future]:
        """Send the preview's charts to the chart process; their futures by (chart id, spec); {} without one."""
        if process is None:
            return {}
        try:
            from fairwatch.metrics.presentation.report_model import build_report
            from fairwatch.metrics.privacy.withholding import withhold

            charts = build_report(withhold(self.document, self.k)[0]).charts()
            sent = process.submit(charts) if charts else None
        except Exception:  # noqa: BLE001 - the report draws every chart itself then
            return {}
        return {(chart.chart_id, chart.spec_json): sent[chart.chart_id] for chart in charts} if sent else {}


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
        self._idle = False  # True once the worker has answered: it waits for the next job and can stop cleanly
        self._submitted = False  # a report was sent: a preview after it is not

    @classmethod
    def start(cls) -> ReportWorker | None:
        """A started worker, or None when this process cannot fork one safely (the export then draws in-process)."""
        if not can_fork():
            return None
        try:
            return cls()
        except (OSError, RuntimeError, ValueError):
            return None

    def preview(self, document: Mapping[str, Any], k: int | None) -> threading.Thread:
        """Send the audit's groups ahead (`_Preview`), in the thread returned; skipped once a report was submitted."""

        def send() -> None:
            """Send unless the report went first (its charts would then be drawn twice)."""
            try:
                with self._lock:
                    if not self._submitted:
                        self._conn.send(_Preview(document, k))
            except Exception:  # noqa: BLE001 - a dead worker: the report is drawn in this process anyway
                pass

        sending = threading.Thread(target=send, name="fairwatch-report-preview", daemon=True)
        sending.start()
        return sending

    def submit(self, document: Mapping[str, Any], files: Sequence[str]) -> Future:
        """Start drawing the report in the worker; the future holds ("ok", (html, pdf)), ("error", exc) or ("redo", None)."""
        pending: Future = Future()

        def exchange() -> None:
            """Send the model and wait for the reply (in a thread: the worker may still be warming up)."""
            try:
                with self._lock:
                    self._submitted = True
                    self._idle = False
                    self._conn.send((document, list(files)))
                    reply = self._conn.recv()
                    self._idle = True
                    pending.set_result(reply)
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
        """Stop the worker (it writes nothing, so nothing is lost), and close the pipe.

        A worker that has answered is asked to stop and stops its chart process with it, so that both are
        waited for (their CPU time counts in this process's children, as a whole-process bench reads it); a
        worker still busy (the audit failed before its report) is terminated at once.
        """
        if self._idle and self._proc.is_alive():
            try:
                self._conn.send(None)
                self._proc.join(timeout=5)
            except Exception:  # noqa: BLE001 - gone meanwhile: terminated below if it is not
                pass
        if self._proc.is_alive():
            self._proc.terminate()
        self._proc.join(timeout=5)
        self._conn.close()
