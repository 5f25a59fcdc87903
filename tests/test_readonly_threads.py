"""Sources read through the read-only file system stay correct when DuckDB's threads share a file."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fairwatch.connectors.source import open_source
from fairwatch.metrics.audit.spec import SourceSpec


def test_parallel_scans_of_one_parquet_file_read_the_right_bytes(tmp_path):
    """Many row groups, scanned by several cursors at once, each with DuckDB's own threads: every query
    gets pandas' answer (a shared file position once made them fail with 'Invalid data' now and then)."""
    rng = np.random.default_rng(0)
    n = 400_000
    frame = pd.DataFrame({"g": rng.integers(0, 50, n), "x": rng.random(n), "s": rng.choice(["a", "b", "c"], n)})
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "log.parquet", row_group_size=5_000)
    want = frame.groupby(["g", "s"])["x"].agg(["count", "sum"]).reset_index().sort_values(["g", "s"])
    src = open_source(SourceSpec(path=str(tmp_path / "log.parquet")), threads=4)
    results, errors = [], []

    def scan() -> None:
        for _ in range(4):
            try:
                with src.cursor() as cur:
                    results.append(cur.execute("SELECT g, s, count(*) AS count, sum(x) AS sum FROM src "
                                               "GROUP BY ALL ORDER BY g, s").df())
            except Exception as exc:  # noqa: BLE001 - every failure is collected and shown
                errors.append(str(exc).splitlines()[0])

    threads = [threading.Thread(target=scan) for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    src.close()
    assert not errors, errors[:3]
    assert len(results) == 16
    for got in results:
        assert got["count"].tolist() == want["count"].tolist()
        np.testing.assert_allclose(got["sum"].to_numpy(), want["sum"].to_numpy(), rtol=1e-12)
