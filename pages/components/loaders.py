"""Cached access to the data: one DuckDB per source per process, audits cached per (spec, filter).

Every cache key carries the source's stamp (connectors/freshness.py: every input file's mtime and
size, or a row-count/max-time probe of PostgreSQL and Spark), so new data is re-read instead of
served stale. Connections are never hashed: the frozen spec is the key (DESIGN.md).
"""

from __future__ import annotations

import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd
import streamlit as st

from fairwatch.connectors.active import WARM_MARK
from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.dashboard import FilterOptions, fetch_column_values, fetch_filter_options, fetch_sample, fetch_tables
from fairwatch.connectors.datapaths import safe_data_path
from fairwatch.connectors.drilldown import drill_down, fetch_example_rows, fetch_value_counts
from fairwatch.connectors.export import load_snapshot as read_snapshot
from fairwatch.connectors.freshness import source_stamp
from fairwatch.connectors.snapshot_store import annotation_of, list_history, snapshot_dir, snapshot_target
from fairwatch.connectors.source import OpenSource, open_source
from fairwatch.connectors.monitor import run_check, run_drift, run_prediction_shift, run_trends, run_version_comparison
from fairwatch.connectors.threshold_counts import ScoreBuckets, fetch_threshold_counts
from fairwatch.metrics.monitoring.alerts import CheckResult
from fairwatch.metrics.monitoring.diff import SnapshotDiff, diff_snapshots
from fairwatch.metrics.stats.drift import DriftTable
from fairwatch.metrics.errors import FairwatchError
from fairwatch.metrics.presentation.export_views import snapshot_label
from fairwatch.metrics.monitoring.followup import SinceLast, since_last, target_of
from fairwatch.metrics.audit.mapping import ColumnProfile, RoleGuess, guess_roles, profile_columns
from fairwatch.metrics.policy.overview import TrendArrows, arrow_spec, trend_arrows
from fairwatch.metrics.privacy.roles import visible_snapshot
from fairwatch.metrics.presentation.slice_views import SliceAnalysis
from fairwatch.metrics.audit.snapshot import AuditSnapshot
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter, SourceSpec
from fairwatch.metrics.monitoring.trends import TrendTable
from fairwatch.metrics.monitoring.versions import VersionComparison

Stamp = str


def stamp_of(spec: AuditSpec) -> Stamp:
    """The cache stamp of a spec's source: file stamps of predictions and labels, or a remote row/time probe."""
    return source_stamp(spec.source, spec.time)


@st.cache_resource(max_entries=8, show_spinner="Opening the data source…")
def get_source(source: SourceSpec, stamp: Stamp) -> OpenSource:
    """The source opened once per process (read-only); queries take fresh cursors from it."""
    return open_source(source)


@st.cache_data(max_entries=64, show_spinner="Auditing the chosen rows…")
def load_snapshot(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> AuditSnapshot:
    """The group audit of a spec and row filter, without the slice search (fast; see `load_full_audit`)."""
    return run_audit(spec, row_filter, get_source(spec.source, stamp), search_slices=False)


@st.cache_data(max_entries=16, show_spinner="Reading model versions and dates…")
def load_filter_options(spec: AuditSpec, stamp: Stamp) -> FilterOptions:
    """Model versions and time span for the sidebar."""
    return fetch_filter_options(get_source(spec.source, stamp), spec)


@st.cache_data(max_entries=32, show_spinner="Counting scores per group…")
def load_threshold_buckets(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> ScoreBuckets:
    """Score-bucket counts per group, fetched once per (spec, filter); every slider move reuses them."""
    return fetch_threshold_counts(get_source(spec.source, stamp), spec, row_filter)


@st.cache_data(max_entries=16, show_spinner="Reading the columns…")
def load_profiles(source: SourceSpec, stamp: Stamp) -> tuple[list[ColumnProfile], RoleGuess]:
    """Column names, types and a few values of a source, and the guessed roles with reasons, for the mapping form."""
    src = get_source(source, stamp)
    sample = fetch_sample(src)
    profiles = profile_columns(sample, src.columns)
    return profiles, guess_roles(profiles, sample)


@st.cache_data(max_entries=32, show_spinner=False)
def load_column_values(source: SourceSpec, stamp: Stamp, column: str) -> tuple[str, ...]:
    """The most frequent values of one column (at most 50), for the positive-label picker."""
    return fetch_column_values(get_source(source, stamp), column)


def list_tables(name: str) -> list[str]:
    """Tables of a DuckDB file in the data folder (uncached: cheap, and files change)."""
    return fetch_tables(safe_data_path(name))


@st.cache_data(max_entries=64, show_spinner=False)
def load_overview(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp, features: tuple[str, ...], role: str | None):
    """The Overview's verdicts and worst gaps as a role may see them (a viewer's leave out small cells)."""
    from fairwatch.metrics.presentation.charts import group_colours
    from fairwatch.metrics.presentation.formats import headline_metrics
    from fairwatch.metrics.policy.overview import feature_verdicts, supported_metrics, worst_disparities
    from fairwatch.metrics.presentation.views import colours_by_group

    rows = visible_snapshot(load_snapshot(spec, row_filter, stamp), role)[0].groups.rows
    metrics = headline_metrics(spec.task, supported_metrics(rows))
    return (feature_verdicts(rows, features, metrics, policy=spec.policy),
            worst_disparities(rows, features, limit=6, metrics=metrics, policy=spec.policy),
            colours_by_group(rows, group_colours))


@st.cache_data(max_entries=32, show_spinner="Counting per time window…")
def load_trends(spec: AuditSpec, row_filter: RowFilter, grain: str | None, stamp: Stamp) -> TrendTable:
    """Metrics and label coverage per window (grain None: chosen from the time span), cached per grain."""
    return run_trends(spec, grain, row_filter, get_source(spec.source, stamp))


@st.cache_data(max_entries=32, show_spinner="Comparing group shares with the baseline…")
def load_drift(spec: AuditSpec, row_filter: RowFilter, grain: str, baseline: str | None, stamp: Stamp) -> DriftTable:
    """Group shares per window against the baseline window (None: the first), PSI and chi-square."""
    return run_drift(spec, grain, baseline, row_filter, get_source(spec.source, stamp))


@st.cache_data(max_entries=32, show_spinner="Comparing the predictions with the baseline…")
def load_prediction_shift(spec: AuditSpec, row_filter: RowFilter, grain: str, baseline: str | None,
                          stamp: Stamp) -> pd.DataFrame:
    """Regression: each group's KS distance from its predictions in the baseline window, per window."""
    return run_prediction_shift(spec, grain, baseline, row_filter, get_source(spec.source, stamp))


@st.cache_data(max_entries=32, show_spinner="Comparing the model versions…")
def load_versions(spec: AuditSpec, row_filter: RowFilter, version_a: str, version_b: str,
                  stamp: Stamp) -> VersionComparison:
    """Each rate per group under version A and B (the comparison reads both, whatever the sidebar's version)."""
    return run_version_comparison(spec, version_a, version_b, replace(row_filter, model_version=None),
                                  get_source(spec.source, stamp))


@st.cache_data(max_entries=32, show_spinner="Checking the alert rules…")
def load_check(spec: AuditSpec, rules: tuple[str, ...], now: str | None, stamp: Stamp) -> CheckResult:
    """Alert rules evaluated as `fairwatch check` does, with the spec's [alerts] settings, up to `now`."""
    a = spec.alerts
    return run_check(spec, rules, now, last_days=a.last_days, grain=a.grain, baseline=a.baseline,
                     src=get_source(spec.source, stamp))


@st.cache_data(max_entries=32, show_spinner=False)
def load_arrow_trends(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> TrendTable | None:
    """The windowed metrics behind the Overview's arrows (`spec` narrowed by `arrow_spec`); None without a time
    column or when it cannot be read. Not keyed by role, so the visit's prefetch can warm it."""
    if not spec.time:
        return None
    try:
        return run_trends(spec, None, row_filter, get_source(spec.source, stamp))
    except FairwatchError:  # the Trends page says what is wrong; the Overview just shows no arrows
        return None


@st.cache_data(max_entries=64, show_spinner=False)
def load_trend_arrows(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp, features: tuple[str, ...],
                      role: str | None) -> TrendArrows:
    """The Overview's arrows (latest window vs previous) for the largest gap this role sees."""
    worst = load_overview(spec, row_filter, stamp, features, role)[1]
    gap = worst[0] if worst else None
    return trend_arrows(load_arrow_trends(arrow_spec(spec, gap), row_filter, stamp), gap)


@st.cache_data(max_entries=256, show_spinner=False)
def load_annotation(folder: str, manifest_sha256: str) -> dict:
    """Author and note of a snapshot, cached per manifest hash (a changed snapshot is read again)."""
    return annotation_of(Path(folder))


@st.cache_data(max_entries=16, show_spinner="Comparing the two snapshots…")
def load_snapshot_diff(old: str, old_sha256: str, new: str, new_sha256: str) -> SnapshotDiff:
    """What changed from one snapshot folder to another, cached per pair of manifest hashes."""
    return diff_snapshots(read_snapshot(Path(old)), read_snapshot(Path(new)))


@st.cache_data(max_entries=256, show_spinner=False)
def load_snapshot_target(folder: str, manifest_sha256: str) -> str | None:
    """What a snapshot audited (spec and view as a key), cached per manifest hash; None when it cannot be read."""
    return snapshot_target(Path(folder))


@st.cache_data(max_entries=16, show_spinner="Following up the last snapshot's findings…")
def _since(folder: str, manifest_sha256: str, label: str, spec: AuditSpec, row_filter: RowFilter, stamp: Stamp,
           role: str | None, searched: bool) -> SinceLast:
    """The follow-up of one snapshot in this view's audit (with the slice search when it ran), as a role may see it."""
    snap = load_full_audit(spec, row_filter, stamp) if searched else load_snapshot(spec, row_filter, stamp)
    return since_last(read_snapshot(Path(folder)), visible_snapshot(snap, role)[0].to_dict(), label)


def load_since_last(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp, role: str | None) -> SinceLast:
    """The Overview's follow-up of the newest snapshot of this spec and view in the history (`earlier` None: none)."""
    root, target = snapshot_dir(), target_of(spec, row_filter)
    # Uncached walk, newest first: a snapshot taken a moment ago on the Audit export page counts at once.
    for e in reversed(list_history(root)):
        folder = str(root / e.folder)
        if load_snapshot_target(folder, e.manifest_sha256) == target:
            label = snapshot_label(e, load_annotation(folder, e.manifest_sha256))
            return _since(folder, e.manifest_sha256, label, spec, row_filter, stamp, role,
                          search_done(spec, row_filter, stamp))
    return since_last(None, {}, None)


# ----------------------------------------------------------------------------- slice search and drill-down
# The search and the quality signals take seconds (more on big data); the group audit above does not wait
# for them. Slices, Data quality and the Overview's findings board read this separate, cached full audit.


@st.cache_resource(show_spinner=False)
def _searched() -> dict:
    """(spec, filter, stamp) of the full audits computed in this process (insertion order, bounded)."""
    return {}


def search_done(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> bool:
    """Whether the full audit of this view was computed in this process (so reading it is instant)."""
    key = (spec, row_filter, stamp)
    job = _search_jobs()["jobs"].get(key)
    return key in _searched() or (job is not None and job[0].done())


@st.cache_resource(show_spinner=False)
def _search_jobs() -> dict:
    """Slice searches started in the background, by (spec, filter, stamp): (future, start time), bounded."""
    return {"pool": ThreadPoolExecutor(max_workers=1, thread_name_prefix="fw-search"), "jobs": {}}


def start_search(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> tuple[Future, float]:
    """The background slice search of a view (started now unless it already runs or ran): (future, start time).

    A search run in the script would hold the session until it returns; run on a worker thread, the Overview's
    verdicts are drawn at once and its findings board polls the job (`job_state`). The thread only computes (no
    Streamlit call); the page reads the result through `load_full_audit`, which waits for the same job.
    """
    reg = _search_jobs()
    key = (spec, row_filter, stamp)
    jobs = reg["jobs"]
    if key not in jobs:
        src = get_source(spec.source, stamp)
        jobs[key] = (reg["pool"].submit(run_audit, spec, row_filter, src, search_slices=True), time.monotonic())
        while len(jobs) > 16:  # finished jobs beyond the cache's size are forgotten (computed again if asked)
            old = next(iter(jobs))
            if not jobs[old][0].done():
                break
            jobs.pop(old)
    return jobs[key]


@st.cache_data(max_entries=16, show_spinner="Searching slices and checking data quality (seconds; more on big data)…")
def load_full_audit(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> AuditSnapshot:
    """The audit with the slice search, data-quality signals, findings and needs (cached per spec, filter, stamp)."""
    job, _ = start_search(spec, row_filter, stamp)
    snap = job.result()
    done = _searched()
    done[(spec, row_filter, stamp)] = True
    while len(done) > 16:  # as many as the cache keeps; an evicted one is computed again when asked for
        done.pop(next(iter(done)))
    return snap


@st.cache_data(max_entries=64, show_spinner="Analysing the slice…")
def load_slice_analysis(spec: AuditSpec, row_filter: RowFilter, slice_: tuple, stamp: Stamp) -> SliceAnalysis:
    """One slice against the rest (counts, test, need, quality signals, other features), cached per slice."""
    return drill_down(get_source(spec.source, stamp), spec, load_full_audit(spec, row_filter, stamp), slice_,
                      row_filter)


@st.cache_data(max_entries=16, show_spinner="Reading the features' values…")
def load_feature_values(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp):
    """Every slicing feature's values with their row counts (the filter builder's choices)."""
    return fetch_value_counts(get_source(spec.source, stamp), spec, (), row_filter)


def example_rows(spec: AuditSpec, row_filter: RowFilter, slice_: tuple, page: int, stamp: Stamp):
    """One page of a slice's rows, hidden columns left out (uncached: raw rows are not kept in memory)."""
    return fetch_example_rows(get_source(spec.source, stamp), spec, slice_, row_filter, page)


@st.cache_data(max_entries=16, show_spinner="Counting the scores of the fit range and the later range…")
def load_whatif_ranges(spec: AuditSpec, row_filter: RowFilter, features: tuple[str, ...], grain: str | None,
                       stamp: Stamp):
    """The what-if's bucket counts, fetched once per (spec, filter, groups, split); every choice refits from them."""
    from fairwatch.connectors.whatif import fetch_whatif_ranges

    return fetch_whatif_ranges(spec, list(features), row_filter, get_source(spec.source, stamp), grain=grain)


@st.cache_data(max_entries=64, show_spinner="Fitting per-group thresholds…")
def load_whatif(spec: AuditSpec, row_filter: RowFilter, features: tuple[str, ...], constraint: str, objective,
                tolerance, randomise: bool, grain: str | None, stamp: Stamp):
    """The what-if for one set of choices: pure computation over the cached counts."""
    from fairwatch.connectors.whatif import whatif_from_ranges

    ranges = load_whatif_ranges(spec, row_filter, features, grain, stamp)
    return whatif_from_ranges(ranges, spec, list(features), constraint, objective, tolerance, randomise)


def warm_default_view(stop: threading.Event, poll_seconds: float = 5.0) -> None:
    """Compute the start-up view's audits before anyone asks, again whenever the source's data changes.

    Runs in a thread of the server (asgi.py): the first visitor then waits for Streamlit's own start,
    not for the audit. The view is the one a new session opens with (the active spec, all rows, all
    versions); the same cached loaders fill the same caches a page reads. Never raises: a source that
    cannot be opened is the Overview's to report.
    """
    import logging

    from fairwatch.connectors.active import default_spec

    warmed = None
    while not stop.is_set():
        try:
            spec = default_spec()
            stamp = stamp_of(spec)
            if (spec, stamp) != warmed:
                started = time.monotonic()
                load_filter_options(spec, stamp)
                load_snapshot(spec, RowFilter(), stamp)
                load_full_audit(spec, RowFilter(), stamp)
                warmed = (spec, stamp)
                # One line in the server's log (bench/bench_dashboard.py waits for it).
                print(f"{WARM_MARK} in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 - a background warm-up must not stop the server
            logging.getLogger("fairwatch").info("warm-up of the default view skipped: %s", exc)
        stop.wait(poll_seconds)
