"""Read-only (issue 8): an audit never writes to a source; the only files written are the snapshot (and the app's
settings), each atomically."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from fairwatch.cli import main
from fairwatch.connectors import config as config_mod
from fairwatch.connectors.config import load_spec, write_config
from fairwatch.connectors.source import READONLY_PROTOCOL, open_source
from fairwatch.metrics.audit.spec import parse_spec

N = 300


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": range(N), "sex": rng.choice(["f", "m"], N), "label": rng.integers(0, 2, N),
                         "pred": rng.integers(0, 2, N), "score": rng.random(N)})


def _tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root: sha256 and mtime (ns)."""
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture()
def sources(tmp_path) -> Path:
    root = tmp_path / "sources"
    (root / "parts").mkdir(parents=True)
    df = _frame()
    df.to_csv(root / "log.csv", index=False)
    df.iloc[:150].to_parquet(root / "parts" / "a.parquet")
    df.iloc[150:].to_parquet(root / "parts" / "b.parquet")
    db = duckdb.connect(str(root / "log.duckdb"))
    db.register("f", df)
    db.execute("CREATE TABLE preds AS SELECT id, sex, pred, score FROM f")
    db.execute("CREATE TABLE labels AS SELECT id, label FROM f")
    db.close()
    return root


@pytest.mark.parametrize("source", [
    ["log.csv"], ["parts"], ["parts/*.parquet"], ["log.duckdb", "--table", "preds", "--labels-table", "labels", "--id", "id"],
])
def test_an_audit_writes_only_its_snapshot(sources, tmp_path, capsys, source):
    before = _tree(sources)
    out = tmp_path / "history" / "snap"
    args = ["audit", str(sources / source[0]), *source[1:], "--label", "label", "--prediction", "pred",
            "--sensitive", "sex", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    assert _tree(sources) == before  # same bytes, same modification times
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()
                     and not p.is_relative_to(sources))
    assert written and all(w.startswith("history/snap/") for w in written), written
    assert not [p for p in (tmp_path / "history").iterdir() if p.name != "snap"]  # no partial folder left behind


def test_the_engine_cannot_write_anywhere(sources, tmp_path):
    spec = parse_spec({"source": {"path": str(sources / "log.duckdb"), "table": "preds", "labels_table": "labels",
                                  "id_column": "id"},
                       "columns": {"label": "label", "prediction": "pred", "sensitive": ["sex"]}})
    before = _tree(sources)
    src = open_source(spec.source)
    try:
        attempts = [
            "CREATE TABLE src_db.evil AS SELECT 1",
            "DELETE FROM src_db.preds",
            "INSERT INTO src_db.labels VALUES (1, 1)",
            f"COPY (SELECT 1) TO '{tmp_path / 'leak.csv'}'",
            f"ATTACH '{tmp_path / 'other.duckdb'}' AS other",
            "SET enable_external_access = true",
            "SET lock_configuration = false",
        ]
        for sql in attempts:
            with pytest.raises(duckdb.Error):
                with src.cursor() as cur:
                    cur.execute(sql)
        with src.cursor() as cur:
            assert cur.execute("SELECT count(*) FROM src").fetchall() == [(N,)]
    finally:
        src.close()
    assert _tree(sources) == before
    assert not (tmp_path / "leak.csv").exists()
    assert not (tmp_path / "other.duckdb").exists()


@pytest.mark.parametrize("source", ["log.csv", "parts", "parts/*.parquet"])
def test_the_engine_cannot_write_into_the_source_folder(sources, source):
    """allowed_directories alone would let COPY write (even over the source); sources are read through a read-only
    file system, so every write into the source's folder fails, by plain path or through that file system."""
    spec = parse_spec({"source": {"path": str(sources / source)},
                       "columns": {"label": "label", "prediction": "pred", "sensitive": ["sex"]}})
    before = _tree(sources)
    src = open_source(spec.source)
    try:
        targets = [sources / "leak.csv", sources / "log.csv", sources / "parts" / "a.parquet",
                   sources / "parts" / "leak.parquet"]
        attempts = [f"COPY (SELECT 1 AS label) TO '{t}'" for t in targets]
        attempts += [f"COPY (SELECT 1 AS label) TO '{READONLY_PROTOCOL}://{t}'" for t in targets]
        attempts += [f"COPY (SELECT 1 AS a, 2 AS b) TO '{READONLY_PROTOCOL}://{sources}/hive' (FORMAT parquet, PARTITION_BY (a))",
                     f"ATTACH '{READONLY_PROTOCOL}://{sources}/new.duckdb' AS other",
                     f"EXPORT DATABASE '{READONLY_PROTOCOL}://{sources}/export'",
                     f"SELECT * FROM read_csv('{READONLY_PROTOCOL}://{sources}/../../../../etc/passwd')"]
        for sql in attempts:
            with pytest.raises(duckdb.Error):
                with src.cursor() as cur:
                    cur.execute(sql)
        with src.cursor() as cur:  # reading still works after every refused write
            assert cur.execute("SELECT count(*) FROM src").fetchall() == [(N,)]
    finally:
        src.close()
    assert _tree(sources) == before  # nothing added, nothing changed


def test_a_query_larger_than_memory_spills_outside_the_data_folder(sources, monkeypatch):
    """DuckDB's default spill folder is ./.tmp: run from the data folder, it would write beside the source."""
    monkeypatch.chdir(sources)
    before = _tree(sources)
    spec = parse_spec({"source": {"path": str(sources / "log.csv")},
                       "columns": {"label": "label", "prediction": "pred", "sensitive": ["sex"]}})
    src = open_source(spec.source, memory_limit="64MB", threads=1)
    try:
        with src.cursor() as cur:
            spill = cur.execute("SELECT current_setting('temp_directory')").fetchall()[0][0]
            rows = cur.execute("SELECT count(*), max(m) FROM (SELECT i, md5(i::VARCHAR) AS m FROM range(2000000) t(i) "
                               "ORDER BY m)").fetchall()
        assert rows[0][0] == 2_000_000
        assert os.path.isdir(spill), "the query did not spill: raise its size"  # the test really exercised a spill
        assert not Path(spill).resolve().is_relative_to(sources.resolve())
    finally:
        src.close()
    assert _tree(sources) == before and not (sources / ".tmp").exists()
    assert not os.path.exists(spill)  # DuckDB removes its spill folder on close


def test_settings_are_written_atomically(tmp_path, monkeypatch):
    spec = parse_spec({"source": {"path": "x.csv"}, "columns": {"label": "label", "prediction": "pred",
                                                                "sensitive": ["sex"]}})
    target = tmp_path / "fairwatch.toml"
    write_config(spec, target)
    first = target.read_bytes()
    other = parse_spec({**spec.to_dict(), "columns": {**spec.to_dict()["columns"], "sensitive": ["race"]}})

    def crash(*_a, **_k):
        raise OSError("disk full")

    monkeypatch.setattr(config_mod.os, "replace", crash)
    with pytest.raises(OSError):
        write_config(other, target)
    monkeypatch.undo()
    assert target.read_bytes() == first  # the old settings survive a crash mid-write, whole
    write_config(other, target)
    assert load_spec(target).sensitive == ("race",)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fairwatch.toml"]  # no temporary file left behind
