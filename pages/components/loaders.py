"""Cached access to the data: one DuckDB per source per process, audits cached per (spec, filter).

Every cache key carries the source file's (mtime, size) stamp, so regenerated data is re-read
instead of served stale. Connections are never hashed: the frozen spec is the key (DESIGN.md).
"""

from __future__ import annotations

import streamlit as st

from connectors.active import source_stamp
from connectors.audit import run_audit
from connectors.dashboard import FilterOptions, fetch_filter_options, fetch_sample, fetch_tables
from connectors.datapaths import safe_data_path
from connectors.source import OpenSource, open_source
from connectors.threshold_counts import ScoreBuckets, fetch_threshold_counts
from metrics.mapping import ColumnProfile, profile_columns
from metrics.snapshot import AuditSnapshot
from metrics.spec import AuditSpec, RowFilter, SourceSpec

Stamp = tuple[float, int]


def stamp_of(spec: AuditSpec) -> Stamp:
    """The cache stamp of a spec's source."""
    return source_stamp(spec.source)


@st.cache_resource(max_entries=8, show_spinner="Opening the data source…")
def get_source(source: SourceSpec, stamp: Stamp) -> OpenSource:
    """The source opened once per process (read-only); queries take fresh cursors from it."""
    return open_source(source)


@st.cache_data(max_entries=64, show_spinner="Auditing the chosen rows…")
def load_snapshot(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> AuditSnapshot:
    """The audit of a spec and row filter (cached; the counting happens inside DuckDB)."""
    return run_audit(spec, row_filter, get_source(spec.source, stamp))


@st.cache_data(max_entries=16, show_spinner="Reading model versions and dates…")
def load_filter_options(spec: AuditSpec, stamp: Stamp) -> FilterOptions:
    """Model versions and time span for the sidebar."""
    return fetch_filter_options(get_source(spec.source, stamp), spec)


@st.cache_data(max_entries=32, show_spinner="Counting scores per group…")
def load_threshold_buckets(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> ScoreBuckets:
    """Score-bucket counts per group, fetched once per (spec, filter); every slider move reuses them."""
    return fetch_threshold_counts(get_source(spec.source, stamp), spec, row_filter)


@st.cache_data(max_entries=16, show_spinner="Reading the columns…")
def load_profiles(source: SourceSpec, stamp: Stamp) -> list[ColumnProfile]:
    """Column names, types and a few values of a source, for the mapping form."""
    src = get_source(source, stamp)
    return profile_columns(fetch_sample(src), src.columns)


def list_tables(name: str) -> list[str]:
    """Tables of a DuckDB file in the data folder (uncached: cheap, and files change)."""
    return fetch_tables(safe_data_path(name))


@st.cache_data(max_entries=64, show_spinner=False)
def load_overview(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp, features: tuple[str, ...]):
    """The Overview's verdicts and worst gaps (cached: a sidebar change back to a seen view is instant)."""
    from metrics.charts import group_colours
    from metrics.overview import feature_verdicts, worst_disparities
    from metrics.views import colours_by_group

    rows = load_snapshot(spec, row_filter, stamp).groups.rows
    return (feature_verdicts(rows, features), worst_disparities(rows, features, limit=6),
            colours_by_group(rows, group_colours))
