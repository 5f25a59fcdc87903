"""Fresh data reaches the dashboard: the source stamp changes with every input (files, globs, hive folders, a
separate labels file, a DuckDB file's WAL; a probe for PostgreSQL and Spark), and a running app shows new labels."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from streamlit.testing.v1 import AppTest

from fairwatch.connectors import freshness
from fairwatch.connectors.config import write_config
from fairwatch.connectors.freshness import cached_probe, file_stamps, source_stamp
from fairwatch.metrics.audit.spec import SourceSpec, parse_spec

ROOT = Path(__file__).resolve().parents[1]


def _part(path: Path, n: int = 20, seed: int = 0) -> Path:
    """A small Parquet file of predictions."""
    rng = np.random.default_rng(seed)
    pd.DataFrame({"g": rng.choice(["a", "b"], n), "y": rng.integers(0, 2, n)}).to_parquet(path)
    return path


def _touch(path: Path, seconds: int = 5) -> None:
    """Move a file's mtime forward without changing its size (as a rewrite with equal length would)."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def later():
    """A clock that moves two seconds per reading: every stamp walks the files again (past MANY_FILES_TTL_S)."""
    ticks = itertools.count(0.0, 2.0)
    return lambda: next(ticks)


def test_glob_stamp_follows_every_matched_file(tmp_path):
    """A glob's stamp changes when a matched file is rewritten, added or removed; not for other files."""
    (tmp_path / "parts").mkdir()
    a = _part(tmp_path / "parts" / "a.parquet")
    _part(tmp_path / "parts" / "b.parquet", seed=1)
    src = SourceSpec(path=str(tmp_path / "parts" / "*.parquet"))
    clock = later()

    def stamp() -> str:
        """The stamp as the next page run sees it (after the walk's reuse window)."""
        return source_stamp(src, clock=clock)

    first = stamp()
    assert stamp() == first  # stable while nothing changes
    assert len(file_stamps(src.path)) == 2
    (tmp_path / "parts" / "notes.txt").write_text("not matched")
    assert stamp() == first
    _touch(a)
    touched = stamp()
    assert touched != first
    c = _part(tmp_path / "parts" / "c.parquet", seed=2)
    added = stamp()
    assert added not in (first, touched)
    c.unlink()
    assert stamp() == touched


def test_hive_folder_stamp_sees_a_new_partition(tmp_path):
    """A hive-partitioned folder: a file in a new partition folder changes the stamp."""
    hive = tmp_path / "hive"
    (hive / "month=1").mkdir(parents=True)
    _part(hive / "month=1" / "part-0.parquet")
    src = SourceSpec(path=str(hive))
    clock = later()
    before = source_stamp(src, clock=clock)
    (hive / "month=2").mkdir()
    _part(hive / "month=2" / "part-0.parquet", seed=3)
    assert source_stamp(src, clock=clock) != before
    assert [Path(f).parent.name for f, _, _ in file_stamps(str(hive))] == ["month=1", "month=2"]


def test_a_folder_walk_is_reused_for_a_second_and_a_single_file_never(tmp_path):
    """Within MANY_FILES_TTL_S a page's repeated stamps reuse one walk of a glob; a single file is stat'ed each time."""
    (tmp_path / "parts").mkdir()
    _part(tmp_path / "parts" / "a.parquet")
    _part(tmp_path / "parts" / "b.parquet", seed=1)
    glob_src, one = SourceSpec(path=str(tmp_path / "parts" / "*.parquet")), SourceSpec(path=str(tmp_path / "one.csv"))
    (tmp_path / "one.csv").write_text("g,y\na,1\n")
    now = [100.0]
    clock = lambda: now[0]  # noqa: E731
    first, single = source_stamp(glob_src, clock=clock), source_stamp(one, clock=clock)
    _part(tmp_path / "parts" / "c.parquet", seed=2)
    (tmp_path / "one.csv").write_text("g,y\na,1\nb,0\n")
    assert source_stamp(glob_src, clock=clock) == first  # the same page run: the walk is reused
    assert source_stamp(one, clock=clock) != single  # one stat is cheap: always fresh
    now[0] += freshness.MANY_FILES_TTL_S
    assert source_stamp(glob_src, clock=clock) != first


def test_a_separate_labels_file_is_part_of_the_stamp(tmp_path):
    """New labels in their own file change the stamp though the predictions did not change."""
    preds, labels = tmp_path / "preds.csv", tmp_path / "labels.csv"
    preds.write_text("id,g,p\n1,a,1\n2,b,0\n")
    labels.write_text("id,y\n1,1\n")
    src = SourceSpec(path=str(preds), labels_path=str(labels), id_column="id")
    before = source_stamp(src)
    labels.write_text("id,y\n1,1\n2,0\n")
    assert source_stamp(src) != before
    assert source_stamp(SourceSpec(path=str(preds))) == source_stamp(SourceSpec(path=str(preds)))


def test_duckdb_file_stamp_includes_its_wal_and_a_missing_file_is_not_an_error(tmp_path):
    """Writes waiting in a DuckDB file's WAL count; a missing source gives a stamp (opening it reports why)."""
    db = tmp_path / "log.duckdb"
    src = SourceSpec(path=str(db), table="log")
    missing = source_stamp(src)
    assert missing == source_stamp(src)
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE log AS SELECT 1 AS y")
    con.execute("CHECKPOINT")
    created = source_stamp(src)
    assert created != missing
    (tmp_path / "log.duckdb.wal").write_bytes(b"pending writes")
    assert source_stamp(src) != created
    con.close()


def test_remote_probe_is_asked_again_only_after_its_ttl(monkeypatch):
    """PostgreSQL/Spark: the row-count/max-time probe is cached for its TTL, then asked again."""
    calls: list[tuple] = []
    answers = iter(["100|2026-01-01", "150|2026-01-02"])

    def probe(source, time_column):
        calls.append((source.path, time_column))
        return next(answers)

    now = [1000.0]
    src = SourceSpec(path="postgresql://u@h/db", table="t", engine="postgres")
    monkeypatch.setattr(freshness, "_probes", {})
    ask = lambda: cached_probe(src, "ts", ttl=30, clock=lambda: now[0], probe=probe)  # noqa: E731
    assert ask() == "100|2026-01-01"
    now[0] += 29
    assert ask() == "100|2026-01-01" and len(calls) == 1
    now[0] += 2
    assert ask() == "150|2026-01-02" and len(calls) == 2
    # source_stamp of a remote source is the probe's answer, not a constant: sources with other rows differ.
    monkeypatch.setattr(freshness, "remote_probe", lambda s, t: f"{len(s.path)}|{t}")
    monkeypatch.setattr(freshness, "_probes", {})
    other = SourceSpec(path="postgresql://u@h/db22", table="t", engine="postgres")
    assert source_stamp(src, "ts").startswith("postgres:") and source_stamp(src, "ts") == source_stamp(src, "ts")
    assert source_stamp(src, "ts") != source_stamp(other, "ts")


def _coverage(at: AppTest) -> tuple[str, str]:
    """The Overview's labelled-row count and label coverage."""
    values = {m.label: m.value for m in at.metric}
    return values["With a known outcome"], values["Label coverage"]


def test_new_labels_reach_the_running_app(tmp_path, monkeypatch):
    """A running dashboard over predictions + a labels file shows the new coverage after the labels file changes."""
    rng = np.random.default_rng(4)
    n = 400
    preds = pd.DataFrame({"id": np.arange(n), "g": rng.choice(["a", "b"], n), "p": rng.integers(0, 2, n)})
    preds.to_csv(tmp_path / "predictions.csv", index=False)
    labels = pd.DataFrame({"id": np.arange(n), "y": rng.integers(0, 2, n)})
    labels.iloc[:100].to_csv(tmp_path / "labels.csv", index=False)
    spec = parse_spec({"source": {"path": str(tmp_path / "predictions.csv"),
                                  "labels_path": str(tmp_path / "labels.csv"), "id_column": "id"},
                       "columns": {"label": "y", "prediction": "p", "sensitive": ["g"]}})
    write_config(spec, tmp_path / "fairwatch.toml")
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(tmp_path / "fairwatch.toml"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _coverage(at) == ("100", "25.0%")
    # A new version of the labels file: written beside it, then renamed over it (as an export job does).
    labels.iloc[:300].to_csv(tmp_path / "labels.new", index=False)
    os.replace(tmp_path / "labels.new", tmp_path / "labels.csv")
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _coverage(at) == ("300", "75.0%")
