"""Run an audit end to end: open the source, count in the engine, compute in metrics/."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from fairwatch.connectors.cell_scan import SharedCells
from fairwatch.connectors.counts import GroupCounts, fetch_group_counts
from fairwatch.connectors.export import library_versions
from fairwatch.connectors.quality_counts import fetch_overlap_counts, fetch_quality_counts
from fairwatch.connectors.slice_counts import fetch_slice_counts
from fairwatch.connectors.task_counts import fetch_regression_buckets, fetch_regression_counts
from fairwatch.connectors.task_quality_counts import fetch_task_quality_counts
from fairwatch.connectors.source import OpenSource, opened
from fairwatch.connectors.window_counts import fetch_time_span
from fairwatch.metrics.discovery.diagnosis import diagnose_groups
from fairwatch.metrics.discovery.findings import build_findings
from fairwatch.metrics.stats.groups import compute_group_table
from fairwatch.metrics.stats.multiclass import compute_multiclass_table, multiclass_counts
from fairwatch.metrics.stats.regression import bucket_edges, compute_distributions, compute_regression_table, regression_summary
from fairwatch.metrics.audit.outcomes import binarize, binarize_scores
from fairwatch.metrics.discovery.quality import compute_quality
from fairwatch.metrics.stats.representation import compute_representation
from fairwatch.metrics.policy.overview import supported_metrics
from fairwatch.metrics.presentation.formats import headline_metrics
from fairwatch.metrics.discovery.slices import find_slices, merge_overlaps, overlap_priority
from fairwatch.metrics.audit.snapshot import AuditSnapshot
from fairwatch.metrics.audit.spec import MEAN_LOSSES, AuditSpec, RowFilter

_LIBRARIES = ("fairwatch", "duckdb", "fairlearn", "scikit-learn", "pandas", "numpy", "scipy", "statsmodels",
              "streamlit", "altair")


def tool_versions() -> dict[str, str]:
    """Versions of fairwatch and the libraries whose numbers an audit depends on."""
    return library_versions(_LIBRARIES)


def run_audit(spec: AuditSpec, row_filter: RowFilter | None = None, src: OpenSource | None = None, *,
              search_slices: bool = True, counts: GroupCounts | None = None,
              on_groups: Callable[[AuditSnapshot], None] | None = None) -> AuditSnapshot:
    """The full audit of a source as one snapshot: groups, representation, slices, data quality, needs.

    `counts`: `fetch_group_counts(src, spec, row_filter)` when the caller fetched them already (the CLI
    does, in a thread beside the fingerprint's scan); binary audits only. `on_groups`: called with the
    snapshot of the groups alone (no slices, quality or needs) as soon as they are computed, while the slice
    search still runs (the CLI draws the report's charts meanwhile); binary audits only, its errors ignored.
    """
    started = time.perf_counter()
    row_filter = row_filter or RowFilter()
    if spec.task != "binary":
        return _run_task_audit(spec, row_filter, src, started, search_slices)
    with opened(spec, src) as source:
        if row_filter.time_from is not None or row_filter.time_to is not None:
            # Times that are not times, or a window without rows, as a one-line DataError, not an engine error.
            fetch_time_span(source, spec, row_filter)
        if counts is None:
            counts = fetch_group_counts(source, spec, row_filter)
        outcomes = binarize(counts.cells, spec)
        slices = quality = None
        # The group table needs only the counts: it is computed in a thread while the slice and quality scans
        # below run in DuckDB, which releases the GIL (the same functions on the same counts: the same numbers).
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fairwatch-groups")
        groups = pool.submit(_group_tables, counts, outcomes, spec)
        pool.shutdown(wait=False)
        if on_groups is not None:
            early = dict(spec=spec, row_filter=row_filter, data=outcomes.summary, source_description=source.description,
                         tool_versions=tool_versions())
            groups.add_done_callback(lambda done: _preview(done, early, started, on_groups))
        if search_slices:
            with SharedCells(source) as cells:
                slices, quality = _search(source, spec, outcomes.summary, row_filter, cells)
        description = source.description
    table, representation, tests = groups.result()
    needs = diagnose_groups(table, representation, quality, spec) if search_slices else None
    return AuditSnapshot(
        spec=spec,
        row_filter=row_filter,
        data=outcomes.summary,
        source_description=description,
        groups=table,
        representation=representation,
        representation_tests=tests,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tool_versions=tool_versions(),
        duration_seconds=time.perf_counter() - started,
        slices=slices,
        quality=quality,
        group_needs=needs,
        findings=build_findings(slices, quality, spec) if slices is not None else None,
    )


def _preview(done: Any, early: dict[str, Any], started: float, on_groups: Callable[[AuditSnapshot], None]) -> None:
    """Call `on_groups` with the snapshot of the computed groups alone; a failure is only a preview lost."""
    try:
        table, representation, tests = done.result()
        on_groups(AuditSnapshot(**early, groups=table, representation=representation, representation_tests=tests,
                                created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                duration_seconds=time.perf_counter() - started))
    except Exception:  # noqa: BLE001 - the audit raises its own errors; a preview never does
        pass


def _search(source: OpenSource, spec: AuditSpec, summary: Any, row_filter: RowFilter, cells: SharedCells) -> tuple[Any, Any]:
    """A binary audit's slice search and quality signals; both read one cell scan of the rows where they can."""
    slices = find_slices(fetch_slice_counts(source, spec, summary.positive_label, summary.positive_prediction,
                                            row_filter, cells), spec)
    # Overlapping findings that describe other findings' rows: one GROUP BY of the rows' membership patterns.
    shown = overlap_priority(slices)
    if len(shown) > 1 and spec.slices.error not in MEAN_LOSSES:
        patterns = fetch_overlap_counts(source, spec, shown, summary.positive_label,
                                        summary.positive_prediction, row_filter)
        slices = merge_overlaps(slices, shown, patterns, spec)
    # Quality signals for the findings shown (and every sensitive group), with the error signal
    # among each signal's unflagged rows (whether they explain a finding's gap): from the cells, or one scan.
    wanted = overlap_priority(slices)
    quality = compute_quality(fetch_quality_counts(source, spec, wanted, summary.positive_label, row_filter,
                                                   positive_prediction=summary.positive_prediction, cells=cells), spec)
    return slices, quality


def _group_tables(counts: GroupCounts, outcomes: Any, spec: AuditSpec) -> tuple[Any, Any, Any]:
    """A binary audit's group table, representation table and representation tests, from the counts alone."""
    scores = binarize_scores(counts.scores, spec, outcomes.summary.positive_label) if counts.scores is not None else None
    table = compute_group_table(outcomes.labelled, outcomes.population, scores, spec)
    representation, tests = compute_representation(outcomes.population, spec)
    return table, representation, tests


def _run_task_audit(spec: AuditSpec, row_filter: RowFilter, src: OpenSource | None, started: float,
                    search_slices: bool = True) -> AuditSnapshot:
    """A regression or multiclass audit: groups, intervals, disparities, representation, the task's sections, and
    the slice search, data-quality signals, findings and data needs on the task's error signal (issue 19)."""
    slices = quality = None
    with opened(spec, src) as source:
        if row_filter.time_from is not None or row_filter.time_to is not None:
            fetch_time_span(source, spec, row_filter)
        if spec.task == "regression":
            cells = fetch_regression_counts(source, spec, row_filter)
            summary = regression_summary(cells, spec)
            # The group and representation tables need only the sums: computed in a thread while the bucket scan
            # runs in DuckDB, which releases the GIL (as the binary audit does; the same functions, the same numbers).
            pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fairwatch-groups")
            tables = pool.submit(_regression_tables, cells, spec)
            pool.shutdown(wait=False)
            edges = bucket_edges(cells)
            buckets = fetch_regression_buckets(source, spec, edges, row_filter)
        else:
            counts = multiclass_counts(fetch_group_counts(source, spec, row_filter).cells, spec)
        if search_slices:
            slices, quality = _task_slices(source, spec, row_filter)
        description = source.description
    if spec.task == "regression":
        result = compute_distributions(buckets, edges, spec)
        table, representation, tests = tables.result()
    else:
        table, result = compute_multiclass_table(counts, spec)
        summary, population = counts.summary, counts.population
        representation, tests = compute_representation(population, spec)
    needs = None
    if search_slices:
        # The task's headline measures with counts or a spread to plan from (balanced accuracy has neither).
        tracked = [m for m in headline_metrics(spec.task, supported_metrics(table.rows)) if m != "balanced_accuracy"]
        needs = diagnose_groups(table, representation, quality, spec, metrics=tracked)
    return AuditSnapshot(
        spec=spec, row_filter=row_filter, data=summary, source_description=description, groups=table,
        representation=representation, representation_tests=tests,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), tool_versions=tool_versions(),
        duration_seconds=time.perf_counter() - started, task_result=result, slices=slices, quality=quality,
        group_needs=needs, findings=build_findings(slices, quality, spec) if slices is not None else None,
    )


def _regression_tables(cells: Any, spec: AuditSpec) -> tuple[Any, Any, Any]:
    """A regression audit's group table, representation table and representation tests, from the sums alone."""
    population = cells.groupby(list(spec.sensitive), as_index=False, sort=True)["all_rows"].sum().rename(
        columns={"all_rows": "n"})
    representation, tests = compute_representation(population, spec)
    return compute_regression_table(cells, spec), representation, tests


def _task_slices(source: OpenSource, spec: AuditSpec, row_filter: RowFilter):
    """The slice search on the task's error signal (the binary search's machinery) and the task's quality signals."""
    slices = find_slices(fetch_slice_counts(source, spec, None, None, row_filter), spec)
    shown = overlap_priority(slices)
    if len(shown) > 1 and spec.slices.error not in MEAN_LOSSES:
        patterns = fetch_overlap_counts(source, spec, shown, None, None, row_filter)
        slices = merge_overlaps(slices, shown, patterns, spec)
    quality = compute_quality(fetch_task_quality_counts(source, spec, overlap_priority(slices), row_filter), spec)
    return slices, quality
