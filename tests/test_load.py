"""Many sessions at once at the protocol level (bench/bench_load.py, bounded): every page run finishes without an error.

A real `fairwatch serve` on a small demo; five sessions over Streamlit's own WebSocket protocol ask
for the Overview, Performance and Representation pages at the same time, half of them for model
version v2. No timings are asserted (the machine is shared); the bench reports them.
"""

from __future__ import annotations

import asyncio

import pytest

pytest.importorskip("websockets")

from bench.bench_load import measure, page_run, run_session  # noqa: E402,F401
from connectors.demo import write_demo  # noqa: E402


def test_five_sessions_at_once_finish_every_page_without_an_error(tmp_path):
    """5 concurrent sessions x 3 pages (plus a lone warm-up session): every run finishes, nothing errs."""
    write_demo(tmp_path / "demo.duckdb", rows=20_000)
    got = measure(str(tmp_path), sessions=5, rounds=1, seconds=600)
    assert got["errors"] == []
    assert got["runs"] == 3 + 5 * 3  # the lone session's pages, then every session's pages


def test_a_page_that_fails_counts_as_an_error(tmp_path):
    """The bench can fail: a session asking for a page the app does not have is reported."""
    write_demo(tmp_path / "demo.duckdb", rows=20_000)
    from bench.bench_load import served

    with served({"FAIRWATCH_DATA_DIR": str(tmp_path), "FAIRWATCH_CONFIG": ""}) as (base, _proc):
        url = base.replace("http://", "ws://") + "/_stcore/stream"
        result = asyncio.run(run_session(url, None, 1, deadline=float("inf"), pages=("No_such_page",)))
    assert any("No_such_page" in e for e in result.errors)
