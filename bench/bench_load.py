"""Load test at the protocol level: many Streamlit sessions at once against `fairwatch serve` on the demo.

    .venv/bin/python bench/bench_load.py [--sessions 5,20,50] [--rounds 2] [--rows 600000] [--seconds 600]

No browsers: each session is one WebSocket to `/_stcore/stream` speaking Streamlit's own protocol
(the protobuf BackMsg/ForwardMsg the frontend sends and receives), so the 2 cores measure the
server, not 20 Chromium instances beside it. A session opens, then asks for the Overview,
Performance and Representation pages `--rounds` times (half of the sessions with
?model_version=v2); a page run is timed from the rerun request to Streamlit's `script_finished`.
Errors: exceptions and st.error alerts in the page, compile errors, a run that does not finish
(timeout) or a closed socket. The server is started once per session count, as `make run` starts it
(`fairwatch serve`: asgi.py), on a fresh copy of the demo; first a lone session warms it (its runs
are the "lone" column), then all sessions start together. Server RSS is its VmHWM; server CPU is
its CPU seconds over the wall time of the loaded phase (2.0 = both cores busy); CPU per run is those
CPU seconds over the loaded phase's page runs (each session's first Overview included). Streamlit runs every
session's script in one process, under one GIL: n sessions asking at once wait about n x (CPU per run)
for their pages, whatever the number of cores.

Prints sessions, page runs, errors, p50/p95 script time, server peak RSS and CPU per session count, and
"new tab (server)": the median script time of 5 new sessions opening the Overview one after the other on
the idle server (the server's part of issue 18's new-tab target; bench_dashboard.py measures the browser's).
Target (issue 18): 0 errors and p95 under 3 s at 20 sessions on 2 cores. Exit 1 when any error is
seen (targets are informational). tests/test_load.py runs a bounded form (5 sessions, no timings).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import bench_parser, fmt_bytes, fmt_seconds, parse_args, print_table  # noqa: E402

PAGES = ("", "Performance", "Representation")  # "" = the main page (Overview)
TARGET_P95 = 3.0
NEW_TABS = 5  # new sessions opened one by one on the idle server before the load (the "new tab" column)


@dataclass
class SessionResult:
    """What one session saw: its page-run times and its errors."""

    version: str | None
    first: float | None = None  # the session's first page run: a new tab opening the Overview
    times: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _page_hashes(new_session) -> dict[str, str]:
    """Page name ('' for the main page) -> page_script_hash, from a NewSession message."""
    out = {}
    for p in new_session.app_pages:
        if p.is_default:
            out[""] = p.page_script_hash
        for name in (p.page_name, p.url_pathname):
            if name:
                out.setdefault(name, p.page_script_hash)
    return out


async def page_run(ws, query: str, page_hash: str, timeout: float) -> tuple[float, list[str], dict[str, str]]:
    """Ask for one page and read until its script run finishes: (seconds, errors, page hashes if announced)."""
    from streamlit.proto.Alert_pb2 import Alert
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    msg = BackMsg()
    msg.rerun_script.query_string = query
    msg.rerun_script.page_script_hash = page_hash
    started = time.monotonic()
    await ws.send(msg.SerializeToString())
    errors: list[str] = []
    pages: dict[str, str] = {}
    elements = 0
    while True:
        left = started + timeout - time.monotonic()
        if left <= 0:
            return time.monotonic() - started, errors + [f"no script_finished within {timeout:.0f} s"], pages
        data = await asyncio.wait_for(ws.recv(), timeout=left)
        fwd = ForwardMsg.FromString(data)
        kind = fwd.WhichOneof("type")
        if kind == "new_session":
            pages = {**pages, **_page_hashes(fwd.new_session)}
        elif kind == "navigation":  # Streamlit announces the pages here too (url_pathname, page_name)
            pages = {**pages, **_page_hashes(fwd.navigation)}
        elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            element = fwd.delta.new_element
            what = element.WhichOneof("type")
            elements += 1
            if what == "exception":
                errors.append(f"exception: {element.exception.type}: {element.exception.message[:200]}")
            elif what == "alert" and element.alert.format == Alert.ERROR:
                errors.append(f"st.error: {element.alert.body[:200]}")
        elif kind == "session_event" and fwd.session_event.WhichOneof("type") == "script_compilation_exception":
            errors.append(f"compile error: {fwd.session_event.script_compilation_exception.message[:200]}")
        elif kind == "script_finished":
            status = fwd.script_finished
            if status == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                continue  # the app asked for a rerun: the page is done when that one is
            if status == ForwardMsg.FINISHED_WITH_COMPILE_ERROR:
                errors.append("the script did not compile")
            if not elements:
                errors.append("the page drew nothing")
            return time.monotonic() - started, errors, pages


async def run_session(ws_url: str, version: str | None, rounds: int, deadline: float, timeout: float = 120.0,
                      pages: tuple[str, ...] = PAGES) -> SessionResult:
    """One user: one WebSocket (one Streamlit session) asking for every page `rounds` times."""
    import websockets

    result = SessionResult(version)
    query = f"model_version={version}" if version else ""
    try:
        async with websockets.connect(ws_url, subprotocols=["streamlit"], max_size=None, open_timeout=timeout,
                                      ping_interval=None) as ws:
            seconds, errors, hashes = await page_run(ws, query, "", timeout)
            result.first = seconds
            result.errors += [f"Overview: {e}" for e in errors]
            for _ in range(rounds):
                for name in pages:
                    if time.monotonic() > deadline:
                        return result
                    if name not in hashes:
                        result.errors.append(f"page {name!r} is not among the app's pages {sorted(hashes)}")
                        continue
                    seconds, errors, _ = await page_run(ws, query, hashes[name], timeout)
                    result.times.append(seconds)
                    result.errors += [f"{name or 'Overview'}: {e}" for e in errors]
    except Exception as exc:  # noqa: BLE001 - a dropped socket or a timeout is an error to count
        result.errors.append(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return result


async def run_load(ws_url: str, sessions: int, rounds: int, seconds: float,
                   pages: tuple[str, ...] = PAGES) -> tuple[SessionResult, list[SessionResult], float]:
    """A lone session first (warms the caches, the reference times), then `sessions` at once; their wall time.

    The lone session's result also carries, in `first`, the median of NEW_TABS new sessions opened one after
    the other on the idle server: the server's part of a new tab (issue 18's new-tab target, without a browser).
    """
    deadline = time.monotonic() + seconds
    alone = await run_session(ws_url, None, 1, deadline, pages=pages)
    tabs = [await run_session(ws_url, None, 0, deadline, pages=pages) for _ in range(NEW_TABS)]
    alone.errors += [e for t in tabs for e in t.errors]
    alone.first = percentile([t.first for t in tabs if t.first is not None], 50)
    versions = [None if i % 2 == 0 else "v2" for i in range(sessions)]
    started = time.monotonic()
    results = await asyncio.gather(*(run_session(ws_url, v, rounds, deadline, pages=pages) for v in versions))
    return alone, list(results), time.monotonic() - started


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes (empty where /proc is missing)."""
    out = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    out[line.split(":")[0]] = int(line.split()[1]) * 1024
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 where /proc is missing)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


@contextmanager
def served(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen]]:
    """`fairwatch serve` in a subprocess (as tests/e2e/browser.running_app), yielding its base URL and process."""
    from fairwatch.connectors.serve import ServeOptions, prepare
    from tests.e2e.browser import free_port, stop_server, wait_healthy

    port = free_port()
    cmd, full_env, _ = prepare(ServeOptions(host="127.0.0.1", port=port), environ={**os.environ, **env})
    log = open(Path(tempfile.gettempdir()) / f"fairwatch-load-{port}.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, timeout=120)
        yield base, proc
    finally:
        stop_server(proc, log)


def measure(folder: str, sessions: int, rounds: int, seconds: float) -> dict:
    """One server, one lone session, then `sessions` at once: the figures of one row of the table."""
    with served({"FAIRWATCH_DATA_DIR": folder, "FAIRWATCH_CONFIG": ""}) as (base, proc):
        ws_url = base.replace("http://", "ws://") + "/_stcore/stream"
        before = cpu_seconds(proc.pid)
        alone, results, wall = asyncio.run(run_load(ws_url, sessions, rounds, seconds))
        status = proc_status(proc.pid)
        used = cpu_seconds(proc.pid) - before
    times = [t for r in results for t in r.times]
    errors = [e for r in [alone, *results] for e in r.errors]
    return {"sessions": sessions, "runs": len(times) + len(alone.times), "errors": errors,
            "p50": percentile(times, 50), "p95": percentile(times, 95), "lone": percentile(alone.times, 50),
            "new_tab": alone.first,
            "rss": status.get("VmHWM"), "cpu": used / max(wall, 1e-9), "wall": wall,
            # every page run the server did (each session's first Overview too), the lone session's included
            "cpu_per_run": used / max(1, len(times) + len(results) + len(alone.times) + 1 + NEW_TABS)}


def main(argv: list[str] | None = None) -> int:
    """Measure each session count on its own server and print the table."""
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="5,20,50", help="comma-separated session counts (default 5,20,50)")
    parser.add_argument("--rounds", type=int, default=2, help="visits of every page per session (default 2)")
    parser.add_argument("--rows", type=int, default=600_000, help="rows of the demo log served (default 600000)")
    parser.add_argument("--seconds", type=float, default=600.0, help="deadline per session count (default 600)")
    args = parse_args(parser, argv)
    counts = [int(x) for x in str(args.sessions).split(",") if x.strip()]
    if args.quick:
        counts, args.rounds, args.rows = [5], 1, 20_000
    from fairwatch.connectors.demo import write_demo

    rows, all_errors = [], []
    with tempfile.TemporaryDirectory(prefix="fw-load-") as folder:
        write_demo(Path(folder) / "demo.duckdb", rows=args.rows)
        for n in counts:
            got = measure(folder, n, args.rounds, args.seconds)
            all_errors += got["errors"]
            ok = not got["errors"] and (got["p95"] or 0) < TARGET_P95 if n == 20 else None
            rows.append([n, got["runs"], len(got["errors"]), fmt_seconds(got["p50"]), fmt_seconds(got["p95"]),
                         fmt_seconds(got["lone"]), fmt_seconds(got["new_tab"]), fmt_bytes(got["rss"]), f"{got['cpu']:.2f}",
                         f"{got['cpu_per_run']:.3f} s",
                         fmt_seconds(got["wall"]), "" if ok is None else "PASS" if ok else "FAIL"])
            print(f"  {n} sessions: {got['runs']} page runs, {len(got['errors'])} errors, "
                  f"p95 {fmt_seconds(got['p95'])}", flush=True)
    print_table(["sessions", "page runs", "errors", "p50 run", "p95 run", "lone p50", "new tab (server)", "server peak RSS",
                 "server CPU (cores)", "CPU per run", "wall", "target"], rows,
                title=f"load at the protocol level: {args.rounds} round(s) x {len(PAGES)} pages per session, "
                      f"{args.rows:,}-row demo, {os.cpu_count()} cores (target at 20: 0 errors, p95 < "
                      f"{TARGET_P95:g} s)")
    for e in all_errors[:10]:
        print("error:", e)
    return 1 if all_errors else 0


if __name__ == "__main__":
    sys.exit(main())
