"""Run an audit end to end: open the source, count in the engine, compute in metrics/."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from importlib import metadata

from connectors.counts import fetch_group_counts
from connectors.source import OpenSource, open_source
from connectors.window_counts import fetch_time_span
from metrics.groups import compute_group_table
from metrics.outcomes import binarize, binarize_scores
from metrics.representation import compute_representation
from metrics.snapshot import AuditSnapshot
from metrics.spec import AuditSpec, RowFilter

_LIBRARIES = ("fairwatch", "duckdb", "fairlearn", "scikit-learn", "pandas", "numpy", "scipy", "statsmodels",
              "streamlit", "altair")


def tool_versions() -> dict[str, str]:
    """Versions of fairwatch and the libraries whose numbers an audit depends on."""
    out = {}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def run_audit(spec: AuditSpec, row_filter: RowFilter | None = None, src: OpenSource | None = None) -> AuditSnapshot:
    """The full per-group audit of a source as one snapshot."""
    started = time.perf_counter()
    row_filter = row_filter or RowFilter()
    own = src is None
    src = src or open_source(spec.source)
    try:
        if row_filter.time_from is not None or row_filter.time_to is not None:
            # Times that are not times, or a window without rows, as a one-line DataError, not an engine error.
            fetch_time_span(src, spec, row_filter)
        counts = fetch_group_counts(src, spec, row_filter)
    finally:
        if own:
            src.close()
    outcomes = binarize(counts.cells, spec)
    scores = binarize_scores(counts.scores, spec, outcomes.summary.positive_label) if counts.scores is not None else None
    table = compute_group_table(outcomes.labelled, outcomes.population, scores, spec)
    representation, tests = compute_representation(outcomes.population, spec)
    return AuditSnapshot(
        spec=spec,
        row_filter=row_filter,
        data=outcomes.summary,
        source_description=src.description,
        groups=table,
        representation=representation,
        representation_tests=tests,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tool_versions=tool_versions(),
        duration_seconds=time.perf_counter() - started,
    )
