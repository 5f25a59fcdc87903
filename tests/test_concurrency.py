"""Concurrency (issue 8): 20 dashboard sessions at once give the numbers of one session with zero errors; audits
run as separate processes into one snapshot history keep its hash chain intact and lose none."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e.browser_load import run_load
from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.demo import DEMO_CONFIG
from fairwatch.connectors.source import open_source
from fairwatch.metrics.audit.spec import RowFilter, parse_spec
from tests.e2e.browser import CHROMIUM, running_app

from fairwatch.cli import main
from fairwatch.connectors.demo import write_demo
from fairwatch.connectors.export import history, verify

ROOT = Path(__file__).resolve().parents[1]
SESSIONS = 20
BROWSER_SESSIONS = 6


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fw-concurrent")
    write_demo(root / "demo.duckdb", rows=20_000)
    return root


def _numbers(snap) -> tuple:
    """Everything a page shows from a snapshot, as comparable values."""
    return (snap.data.rows, snap.data.labelled_rows, snap.groups.rows.to_json(orient="split", default_handler=str),
            tuple(f.__repr__() for f in (snap.findings or ())))


def test_twenty_threads_on_one_shared_source_agree_with_one(demo_folder):
    """What 20 sessions of one server do: audits at once on the one cached source (a cursor each)."""
    spec = demo_spec_at(demo_folder)
    filters = [RowFilter(), RowFilter(model_version="v1"), RowFilter(model_version="v2"),
               RowFilter(time_from="2025-03-01", time_to="2025-06-30")]
    src = open_source(spec.source)
    try:
        alone = [_numbers(run_audit(spec, f, src, search_slices=False)) for f in filters]
        jobs = [filters[i % len(filters)] for i in range(SESSIONS)]
        with ThreadPoolExecutor(SESSIONS) as pool:
            results = list(pool.map(lambda f: _numbers(run_audit(spec, f, src, search_slices=False)), jobs))
    finally:
        src.close()
    assert len({a[0] for a in alone}) == len(filters)  # the filters really differ
    for i, got in enumerate(results):
        assert got == alone[i % len(filters)], f"session {i} saw different numbers"


def demo_spec_at(folder: Path):
    spec = parse_spec(DEMO_CONFIG)
    return spec.with_source(replace(spec.source, path=str(folder / "demo.duckdb")))


@pytest.mark.e2e
def test_browser_sessions_at_once_on_a_real_server(demo_folder):
    """BROWSER_SESSIONS browser contexts (Streamlit sessions) at once on `streamlit run app.py`: no error, and each
    sees what a lone session sees. AppTest cannot do this: AppTest instances in threads share Streamlit's one Runtime
    ("Runtime hasn't been created!"). Bounded below 20 because 20 Chromium renderers on a 2-CPU machine time out on
    their own; bench/bench_load.py runs the full 20."""
    pytest.importorskip("playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip("no /usr/bin/chromium")
    with running_app({"FAIRWATCH_DATA_DIR": str(demo_folder), "FAIRWATCH_CONFIG": ""}) as base:
        alone, results = asyncio.run(run_load(base, BROWSER_SESSIONS, rounds=1, seconds=170, pages=("",)))
    assert all(r.seen for r in alone.values()) and alone[None].seen != alone["v2"].seen
    assert [e for r in [*alone.values(), *results] for e in r.errors] == []
    assert all(r.seen == alone[r.version].seen for r in results)


def test_concurrent_audit_processes_keep_the_history_chain(tmp_path):
    rng = np.random.default_rng(3)
    n = 2000
    pd.DataFrame({"sex": rng.choice(["f", "m"], n), "label": rng.integers(0, 2, n),
                  "pred": rng.integers(0, 2, n)}).to_csv(tmp_path / "log.csv", index=False)
    hist = tmp_path / "history"
    runs = 5
    cmd = [sys.executable, str(ROOT / "cli.py"), "audit", str(tmp_path / "log.csv"), "--label", "label",
           "--prediction", "pred", "--sensitive", "sex", "--history", str(hist)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(runs)]
    outcomes = [(p.wait(timeout=170), *p.communicate()) for p in procs]
    assert all(code == 0 for code, _, _ in outcomes), [err for _, _, err in outcomes]
    report = verify(hist)
    assert report.intact, report.lines()
    entries = history(hist)
    assert len(entries) == runs and len(report.snapshots) == runs  # none lost
    assert sorted(e.sequence for e in entries) == list(range(1, runs + 1))
    assert [e.link for e in entries].count("first") == 1 and all(e.link in ("first", "ok") for e in entries)
    assert main(["verify", str(hist)]) == 0
    assert not [p for p in hist.iterdir() if "partial" in p.name]
