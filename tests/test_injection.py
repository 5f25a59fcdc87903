"""SQL injection (issue 8): arbitrary strings as group VALUES and as COLUMN NAMES reach DuckDB only as quoted
identifiers or parameters. The counts equal a pandas groupby on the raw rows, and nothing else happens: a
sentinel table survives and the DuckDB file is unchanged, byte for byte."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import duckdb
import pandas as pd
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from fairwatch.connectors.counts import fetch_group_counts
from fairwatch.connectors.source import open_source
from fairwatch.metrics.audit.spec import parse_spec

NASTY = ["'", '"', ";", "--", "/*", "*/", "'; DROP TABLE sentinel; --", '"; DROP TABLE sentinel; --', "\n", "\\",
         "é", "名前", "🙂", "%", "_", "$1", "?", "\t", " ", "NULL", "(missing)x"]
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12)
piece = st.one_of(text, st.sampled_from(NASTY))
word = st.lists(piece, min_size=1, max_size=3).map("".join)


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_log_with_sentinel(path: Path, raw: pd.DataFrame) -> str:
    """A DuckDB file with the rows as table `log` and a sentinel table an injection would touch; its SHA-256."""
    db = duckdb.connect(str(path))
    db.register("raw", raw)
    db.execute("CREATE TABLE log AS SELECT * FROM raw")
    db.execute("CREATE TABLE sentinel AS SELECT 42 AS answer")
    db.close()
    return file_sha256(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(column=word, values=st.lists(word, min_size=1, max_size=6, unique=True), seed=st.integers(0, 10**6))
def test_counts_equal_pandas_and_nothing_else_happens(column, values, seed):
    assume(column.strip() and column.lower() not in ("label", "pred"))
    import numpy as np

    rng = np.random.default_rng(seed)
    n = 50
    raw = pd.DataFrame({column: rng.choice(values, n), "label": rng.integers(0, 2, n), "pred": rng.integers(0, 2, n)})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "log.duckdb"
        before = write_log_with_sentinel(path, raw)
        spec = parse_spec({"source": {"path": str(path), "table": "log"},
                           "columns": {"label": "label", "prediction": "pred", "sensitive": [column]},
                           "policy": {"min_support": 1}})
        src = open_source(spec.source)
        try:
            counts = fetch_group_counts(src, spec).cells
        finally:
            src.close()
        assert file_sha256(path) == before
        db = duckdb.connect(str(path), read_only=True)
        assert db.execute("SELECT answer FROM sentinel").fetchall() == [(42,)]
        assert [r[0] for r in db.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()] \
            == ["log", "sentinel"]
        db.close()
    got = counts.assign(label_raw=counts["label_raw"].astype(int), pred_raw=counts["pred_raw"].astype(int))
    got = got.set_index([column, "label_raw", "pred_raw"])["n"].sort_index()
    want = raw.groupby([column, "label", "pred"]).size().rename_axis([column, "label_raw", "pred_raw"]).sort_index()
    assert got.to_dict() == want.to_dict()
    assert int(counts["n"].sum()) == n
