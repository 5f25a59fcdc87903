"""Where to look: slice search, data-quality signals, data-need diagnosis, findings, the data plan.

Each module below lists the names it gives this capability's public interface (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

__all__, __getattr__, __dir__ = lazy_interface(__name__, {
    "diagnosis": (
        "HEADLINE_METRICS", "HIGHER_IS_WORSE", "UNDECIDED", "additional_rows_needed", "article", "derive_verdict",
        "diagnose", "diagnose_groups", "higher_is_worse", "means_plan", "metric_text", "rows_plan"
    ),
    "findings": ("Finding", "build_findings", "finding_id"),
    "plan": ("DataPlan", "OBJECTIVE", "allocation_chart", "build_plan", "plan_candidates", "plan_places"),
    "quality": (
        "CELL_COLUMNS", "CLEAN_COLUMNS", "CONFLICTS", "LABEL_ERRORS", "LABEL_ERRORS_NEG", "LABEL_ERRORS_POS",
        "LabelErrorRule", "MISSING_ANY", "MISSING_COLUMN", "NEED_SIGNALS", "OUTLIERS", "QualityCounts",
        "QualityTable", "SIGNAL_COLUMNS", "Slice", "compute_quality", "describe_signal"
    ),
    "slices": (
        "COUNT_COLUMNS", "SIGNAL_DESCRIPTIONS", "SliceCounts", "SliceTable", "find_slices", "finding_rule",
        "material", "merge_overlaps", "overlap_priority", "sliceline_score", "top_findings"
    ),
})
