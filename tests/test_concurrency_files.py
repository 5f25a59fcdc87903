"""Concurrency on file sources (issue 8): CSV and Parquet sources are read through the read-only file system
(Python code that DuckDB calls back with the GIL), so 20 sessions auditing one open source at once must
still agree with one session and raise nothing. test_concurrency.py covers the demo's DuckDB file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_source
from fairwatch.metrics.audit.spec import RowFilter, parse_spec

SESSIONS = 20
N = 30_000


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """The same log as one CSV and as hive-partitioned Parquet files."""
    root = tmp_path_factory.mktemp("fw-concurrent-files")
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"sex": rng.choice(["f", "m"], N), "race": rng.choice(["a", "b", "c"], N),
                       "version": rng.choice(["v1", "v2"], N), "label": rng.integers(0, 2, N),
                       "score": rng.random(N).round(3)})
    df.to_csv(root / "log.csv", index=False)
    for v, part in df.groupby("version"):
        (root / "parts" / f"version={v}").mkdir(parents=True)
        part.drop(columns="version").to_parquet(root / "parts" / f"version={v}" / "p.parquet")
    return root


def _numbers(snap) -> tuple:
    return snap.data.rows, snap.groups.rows.to_json(orient="split", default_handler=str)


@pytest.mark.parametrize("source", ["log.csv", "parts"])
def test_twenty_threads_on_one_file_source_agree_with_one(folder, source):
    spec = parse_spec({"source": {"path": str(folder / source)},
                       "columns": {"label": "label", "score": "score", "threshold": 0.5, "sensitive": ["sex", "race"],
                                   "model_version": "version"}})
    filters = [RowFilter(), RowFilter(model_version="v1"), RowFilter(model_version="v2")]
    src = open_source(spec.source)
    try:
        alone = [_numbers(run_audit(spec, f, src, search_slices=False)) for f in filters]
        with ThreadPoolExecutor(SESSIONS) as pool:
            results = list(pool.map(lambda i: _numbers(run_audit(spec, filters[i % 3], src, search_slices=False)),
                                    range(SESSIONS)))
    finally:
        src.close()
    assert alone[0][0] == N and alone[1][0] + alone[2][0] == N
    for i, got in enumerate(results):
        assert got == alone[i % 3], f"session {i} saw different numbers"
