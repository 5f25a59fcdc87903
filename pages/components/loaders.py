"""Cached access to the data: one DuckDB per source per process, audits cached per (spec, filter).

Every cache key carries the source's stamp (connectors/freshness.py: every input file's mtime and
size, or a row-count/max-time probe of PostgreSQL and Spark), so new data is re-read instead of
served stale. Connections are never hashed: the frozen spec is the key (DESIGN.md).
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from collections.abc import Callable, Hashable
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


# Every page run reads the view's audits several times (the sidebar, the page, the findings board). st.cache_data
# hashes the arguments with Streamlit's hasher and unpickles a fresh copy of the value on every read: at 20
# sessions that was a fifth of the server's CPU (py-spy). The loaders below marked `kept_in_memory` also keep
# their results as objects in this process, looked up by the arguments' own hash: a read is a dict lookup.
# The objects are shared by all sessions; pages only read them (pandas' copy-on-write keeps derived frames apart).
IN_MEMORY_KEPT = 48


@st.cache_resource(show_spinner=False)
def _in_memory() -> dict:
    """Loader results kept as objects in this process, by (loader, arguments) (insertion order, bounded), and a lock."""
    return {"lock": threading.Lock(), "items": {}}


def kept_in_memory(loader: Callable) -> Callable:
    """`loader` (an st.cache_data function) whose results are also kept as shared objects, by argument value."""

    @functools.wraps(loader)
    def call(*args, **kwargs):
        """The kept result for these arguments, else the loader's (then kept)."""
        store = _in_memory()
        key = (loader, args, tuple(sorted(kwargs.items())))
        with store["lock"]:
            if key in store["items"]:
                return store["items"][key]
        value = loader(*args, **kwargs)
        with store["lock"]:
            items = store["items"]
            items[key] = value
            while len(items) > IN_MEMORY_KEPT:  # oldest first; the loader's own cache still holds it
                items.pop(next(iter(items)))
        return value

    return call


@st.cache_resource(max_entries=8, show_spinner="Opening the data source…")
def get_source(source: SourceSpec, stamp: Stamp) -> OpenSource:
    """The source opened once per process (read-only); queries take fresh cursors from it."""
    return open_source(source)


@kept_in_memory
@st.cache_data(max_entries=64, show_spinner="Auditing the chosen rows…")
def load_snapshot(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> AuditSnapshot:
    """The group audit of a spec and row filter, without the slice search (fast; see `load_full_audit`)."""
    return run_audit(spec, row_filter, get_source(spec.source, stamp), search_slices=False)


@kept_in_memory
@st.cache_data(max_entries=16, show_spinner="Reading model versions and dates…")
def load_filter_options(spec: AuditSpec, stamp: Stamp) -> FilterOptions:
    """Model versions and time span for the sidebar."""
    return fetch_filter_options(get_source(spec.source, stamp), spec)


@kept_in_memory
@st.cache_data(max_entries=32, show_spinner="Counting scores per group…")
def load_threshold_buckets(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> ScoreBuckets:
    """Score-bucket counts per group, fetched once per (spec, filter); every slider move reuses them."""
    return fetch_threshold_counts(get_source(spec.source, stamp), spec, row_filter)


@kept_in_memory
@st.cache_data(max_entries=64, show_spinner=False)
def load_threshold_curves(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp, grouping: str,
                          positive_label: str | tuple[str, ...], role: str | None, groups: tuple[str, ...]):
    """The threshold explorer's curves of one grouping as a role may see them, computed once (every slider move and
    every session reuse them; computing them was most of a Performance page run under load)."""
    from fairwatch.metrics.policy.overview import grouping_features
    from fairwatch.metrics.privacy.roles import visible_rates
    from fairwatch.metrics.stats.threshold import threshold_curves

    b = load_threshold_buckets(spec, row_filter, stamp)
    curves = threshold_curves(b.counts, grouping_features(grouping), positive_label, b.lo, b.hi, b.bins,
                              spec.policy.min_support)
    # `groups` are the page's (a viewer's leave out withheld groups); no rate on fewer than k rows for a viewer.
    return visible_rates(curves, role, spec.suppress_below, list(groups))


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


@kept_in_memory
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


@kept_in_memory
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


@kept_in_memory
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


# ----------------------------------------------------------------------------- chart specs
# Building an altair chart (its encodings are validated against the Vega-Lite schema) and converting it with
# `to_dict` (validated again, data serialised to Arrow) took about a third of the server's CPU per page run
# under load (py-spy, bench/bench_load.py at 20 sessions). A chart drawn from a cached audit is the same for
# every session with the same view, so its finished Vega-Lite spec is kept per key and drawn as it is.
CHART_SPECS_KEPT = 512


@st.cache_resource(show_spinner=False)
def _chart_specs() -> dict:
    """Vega-Lite specs of the charts drawn in this process, by key (insertion order, bounded), and their lock."""
    return {"lock": threading.Lock(), "specs": {}}


def vega_lite_spec(chart) -> dict | None:
    """An altair chart as the Vega-Lite spec st.altair_chart sends (None when this Streamlit lacks the converter)."""
    try:  # Streamlit's own conversion (its Arrow datasets and theme handling), so the element is the same
        from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec
    except ImportError:  # pragma: no cover - a Streamlit without it: charts are built on every run instead
        return None
    return _convert_altair_to_vega_lite_spec(chart)


def chart_spec(key: tuple[Hashable, ...], build: Callable[[], object]) -> dict | None:
    """The Vega-Lite spec of the chart `build()` makes, built once per key in this process (None: draw `build()`).

    The key must hold everything the chart depends on (PageContext.chart_key: the view, the role and the
    page's own choices); the spec is shared by all sessions and must not be changed by the caller.
    """
    store = _chart_specs()
    with store["lock"]:
        spec = store["specs"].get(key)
    if spec is None:
        spec = vega_lite_spec(build())
        if spec is None:
            return None
        with store["lock"]:
            specs = store["specs"]
            specs[key] = spec
            while len(specs) > CHART_SPECS_KEPT:  # oldest first; an evicted chart is built again when asked for
                specs.pop(next(iter(specs)))
    return spec


def kept_view(key: tuple[Hashable, ...], build: Callable[[], object]) -> object:
    """What `build()` returns (a table or list a page draws from a cached audit), built once per key in this process.

    As chart_spec: the key holds everything the result depends on (PageContext.chart_key); the object is shared
    by all sessions and only read. Under load the per-run views (groupings on show, metric tables: pandas maps and
    sorts) were the largest part of a page run left once the charts were kept.
    """
    store = _chart_specs()
    key = ("view", *key)
    with store["lock"]:
        if key in store["specs"]:
            return store["specs"][key]
    value = build()
    with store["lock"]:
        specs = store["specs"]
        specs[key] = value
        while len(specs) > CHART_SPECS_KEPT:
            specs.pop(next(iter(specs)))
    return value


WARM_VERSIONS = 4  # model versions whose group audit the warm-up computes (the first ones the sidebar offers)


def warm_overview(spec: AuditSpec, stamp: Stamp) -> None:
    """What the Overview of the start-up view reads besides the audit, for every role: its verdicts, and the
    windowed counts behind its arrows (a query over all rows: seconds on 10M rows, paid by the first visitor
    before); and altair's first use (its schema and validators load on the first chart a process builds)."""
    from fairwatch.metrics.privacy.roles import ROLES

    for role in ROLES:  # local mode is one of them; with sign-in, whoever comes first
        load_overview(spec, RowFilter(), stamp, tuple(spec.sensitive), role)
        load_trend_arrows(spec, RowFilter(), stamp, tuple(spec.sensitive), role)
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame({"group": ["a", "b"], "ratio": [0.8, 1.2]})
    vega_lite_spec(alt.Chart(frame).mark_point().encode(x="ratio:Q", y="group:N", tooltip=["group", "ratio"]))


def warm_default_view(stop: threading.Event, poll_seconds: float = 5.0) -> None:
    """Compute the start-up view's audits before anyone asks, again whenever the source's data changes.

    Runs in a thread of the server (asgi.py): the first visitor then waits for Streamlit's own start,
    not for the audit. The view is the one a new session opens with (the active spec, all rows, all
    versions), with the Overview's own reads (warm_overview) and the group audit of each of the first
    WARM_VERSIONS model versions; the same cached loaders fill the same caches a page reads. Never
    raises: a source that cannot be opened is the Overview's to report.
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
                options = load_filter_options(spec, stamp)
                load_snapshot(spec, RowFilter(), stamp)
                warm_overview(spec, stamp)
                # Each model version's group audit (the sidebar's first choice; a shared link's ?model_version=):
                # the first to pick one waited for its audit, and everyone asking meanwhile with them.
                for version in options.model_versions[:WARM_VERSIONS]:
                    load_snapshot(spec, RowFilter(model_version=version), stamp)
                load_full_audit(spec, RowFilter(), stamp)
                warmed = (spec, stamp)
                # One line in the server's log (bench/bench_dashboard.py waits for it).
                print(f"{WARM_MARK} in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        except Exception as exc:  # noqa: BLE001 - a background warm-up must not stop the server
            logging.getLogger("fairwatch").info("warm-up of the default view skipped: %s", exc)
        stop.wait(poll_seconds)
