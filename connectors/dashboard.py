"""Small queries the dashboard needs besides the audit: filter choices, tables, a sample for guessing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from fairwatch.connectors.counts import run_query
from fairwatch.connectors.source import DUCKDB_SUFFIXES, OpenSource, quote_ident, resolve_column
from fairwatch.metrics.errors import SourceError
from fairwatch.metrics.audit.spec import AuditSpec

# More distinct model versions than this is not a version column; the sidebar shows the first ones.
MAX_VERSIONS = 200


@dataclass(frozen=True)
class FilterOptions:
    """What the sidebar can offer: model versions present and the time span of the data."""

    model_versions: tuple[str, ...]
    time_min: str | None
    time_max: str | None


def fetch_filter_options(src: OpenSource, spec: AuditSpec) -> FilterOptions:
    """Distinct model versions and the first and last timestamp, in one pass over the source.

    One pass, not two: over a predictions-labels join every query pays for the join (about 3 s per
    pass on 10M rows with two cores), so both answers come from the same scan.
    """
    parts = []
    if spec.model_version:
        col = quote_ident(resolve_column(src.columns, spec.model_version, "model_version column"))
        parts.append(f"list(DISTINCT CAST({col} AS VARCHAR) ORDER BY CAST({col} AS VARCHAR)) "
                     f"FILTER (WHERE {col} IS NOT NULL) AS versions")
    if spec.time:
        col = quote_ident(resolve_column(src.columns, spec.time, "time column"))
        parts.append(f"CAST(min(CAST({col} AS TIMESTAMP)) AS VARCHAR) AS lo, "
                     f"CAST(max(CAST({col} AS TIMESTAMP)) AS VARCHAR) AS hi")
    if not parts:
        return FilterOptions(model_versions=(), time_min=None, time_max=None)
    row = run_query(src, f"SELECT {', '.join(parts)} FROM src").iloc[0]
    raw = row.get("versions") if spec.model_version else None
    versions = tuple(str(v) for v in (list(raw) if raw is not None and not _missing(raw) else []))[:MAX_VERSIONS]
    lo, hi = (row.get("lo"), row.get("hi")) if spec.time else (None, None)
    return FilterOptions(model_versions=versions, time_min=None if _missing(lo) else str(lo),
                         time_max=None if _missing(hi) else str(hi))


def fetch_column_values(src: OpenSource, column: str, limit: int = 50) -> tuple[str, ...]:
    """Up to `limit` distinct values of a column as text, most frequent first (for value pickers)."""
    col = quote_ident(resolve_column(src.columns, column, "column"))
    frame = run_query(src, f"SELECT CAST({col} AS VARCHAR) AS v, count(*) AS n FROM src WHERE {col} IS NOT NULL "
                           f"GROUP BY 1 ORDER BY n DESC, v LIMIT {int(limit)}")
    return tuple(str(v) for v in frame["v"])


def _missing(value) -> bool:
    """True for None/NaN/NA scalars (lists are never missing)."""
    if isinstance(value, (list, tuple)) or hasattr(value, "__len__") and not isinstance(value, str):
        return False
    return value is None or bool(pd.isna(value))


def fetch_tables(path: Path) -> list[str]:
    """Tables and views of a DuckDB file, opened read-only."""
    if path.suffix.lower() not in DUCKDB_SUFFIXES:
        return []
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise SourceError(f"cannot open DuckDB file {path.name}: {str(exc).splitlines()[0]}") from None
    try:
        rows = con.execute("SELECT table_name FROM information_schema.tables ORDER BY 1").fetchall()
    finally:
        con.close()
    return [r[0] for r in rows]


def fetch_sample(src: OpenSource, rows: int = 5000) -> pd.DataFrame:
    """The first rows of the source: enough to guess column roles, cheap on any size."""
    return run_query(src, f"SELECT * FROM src LIMIT {int(rows)}")
