"""A cheap change detector over every input of a source: part of every dashboard cache key.

Files (the predictions and a separate labels file; every file a glob or a hive folder matches; a
DuckDB file with its write-ahead log) are stamped by name, mtime in nanoseconds and size: one stat
each, no read. A rewritten, appended, added or removed file changes the stamp, so the next rerun
reads the new data instead of serving cached numbers.

PostgreSQL and Spark have no file to stat: a probe counts the rows (and takes the newest time when
the spec has a time column) and its answer is kept for `PROBE_TTL_S` seconds, so a page's many
cache lookups cost one small query per half minute, and new rows reach the dashboard within that. A glob or folder's walk is reused for a second (a
page run asks a dozen times), a single file is stat'ed every time.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable

from fairwatch.connectors.source import DUCKDB_SUFFIXES, expand_path, open_remote, quote_ident, resolve_column
from fairwatch.metrics.errors import FairwatchError
from fairwatch.metrics.audit.spec import SourceSpec

PROBE_TTL_S = 30.0
# A page run asks for the stamp a dozen times; walking a folder of 1,000 files takes 15-30 ms each time.
# So the stamps of a path matching several files are reused for this long (a single file is stat'ed each time).
MANY_FILES_TTL_S = 1.0
_probes: dict[tuple[SourceSpec, str | None], tuple[float, str]] = {}
_walks: dict[str, tuple[float, tuple[tuple[str, int, int], ...]]] = {}
_lock = threading.Lock()


def file_stamps(path: str) -> tuple[tuple[str, int, int], ...]:
    """(file, mtime_ns, size) of every file a path, glob or folder matches; a DuckDB file with its .wal."""
    try:
        files = expand_path(path)[1]
    except FairwatchError:
        return (("missing", 0, 0),)  # opening the source reports the real problem; a new file changes this
    if len(files) == 1 and files[0].lower().endswith(DUCKDB_SUFFIXES):
        files = [files[0], files[0] + ".wal"]  # committed but not yet checkpointed writes live in the WAL
    out = []
    for f in sorted(files):
        try:
            st = os.stat(f)
        except OSError:  # the WAL is absent most of the time; a file removed since the glob ran
            continue
        out.append((f, st.st_mtime_ns, st.st_size))
    return tuple(out)


def recent_file_stamps(path: str, clock: Callable[[], float] = time.monotonic) -> tuple[tuple[str, int, int], ...]:
    """`file_stamps`, reused for MANY_FILES_TTL_S seconds when the path matches several files."""
    with _lock:
        hit = _walks.get(path)
    if hit is not None and clock() - hit[0] < MANY_FILES_TTL_S:
        return hit[1]
    stamps = file_stamps(path)
    if len(stamps) > 1:
        with _lock:
            _walks[path] = (clock(), stamps)
            while len(_walks) > 64:
                _walks.pop(next(iter(_walks)))
    return stamps


def _digest(parts: object) -> str:
    """A short digest of a stamp's parts: a small, cheap cache key whatever the number of files."""
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()[:24]


def remote_probe(source: SourceSpec, time_column: str | None = None) -> str:
    """Rows (and the newest time) of a PostgreSQL or Spark source, asked of the engine now."""
    try:
        src = open_remote(source)
    except FairwatchError:
        return "unreachable"  # the page that opens the source says why; a later probe retries
    try:
        names = tuple(src.columns)
        newest = ""
        if time_column:
            try:
                newest = f", CAST(max({quote_ident(resolve_column(names, time_column, 'time column'))}) AS VARCHAR) AS t"
            except FairwatchError:
                newest = ""  # the audit reports the unknown column; the row count still detects change
        frame = src.runner.query(f"SELECT count(*) AS n{newest} FROM src", {})
        return "|".join(str(v) for v in frame.iloc[0].tolist())
    except FairwatchError:
        return "unreadable"
    finally:
        src.close()


def cached_probe(source: SourceSpec, time_column: str | None, *, ttl: float = PROBE_TTL_S,
                 clock: Callable[[], float] = time.monotonic,
                 probe: Callable[[SourceSpec, str | None], str] | None = None) -> str:
    """The remote probe's answer, asked again only when the last one is older than `ttl` seconds."""
    key = (source, time_column)
    with _lock:
        hit = _probes.get(key)
    if hit is not None and clock() - hit[0] < ttl:
        return hit[1]
    value = (probe or remote_probe)(source, time_column)
    with _lock:
        _probes[key] = (clock(), value)
        while len(_probes) > 64:  # sources a long-running dashboard no longer shows
            _probes.pop(next(iter(_probes)))
    return value


def source_stamp(source: SourceSpec, time_column: str | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> str:
    """A stamp that changes when any input of the source changes: file stamps, or a row-count/max-time probe."""
    if source.engine != "duckdb":
        return f"{source.engine}:{_digest(cached_probe(source, time_column, clock=clock))}"
    parts = [recent_file_stamps(source.path, clock)]
    if source.labels_path:
        parts.append(recent_file_stamps(source.labels_path, clock))
    return f"files:{sum(len(p) for p in parts)}:{_digest(parts)}"
