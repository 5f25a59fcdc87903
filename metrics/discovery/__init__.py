"""Where to look: slice search, data-quality signals, data-need diagnosis, findings, the data plan.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

_EXPORTS = {
    "CELL_COLUMNS": "quality",
    "CLEAN_COLUMNS": "quality",
    "CONFLICTS": "quality",
    "COUNT_COLUMNS": "slices",
    "DataPlan": "plan",
    "Finding": "findings",
    "HEADLINE_METRICS": "diagnosis",
    "HIGHER_IS_WORSE": "diagnosis",
    "LABEL_ERRORS": "quality",
    "LABEL_ERRORS_NEG": "quality",
    "LABEL_ERRORS_POS": "quality",
    "LabelErrorRule": "quality",
    "MISSING_ANY": "quality",
    "MISSING_COLUMN": "quality",
    "NEED_SIGNALS": "quality",
    "OBJECTIVE": "plan",
    "OUTLIERS": "quality",
    "QualityCounts": "quality",
    "QualityTable": "quality",
    "SIGNAL_COLUMNS": "quality",
    "SIGNAL_DESCRIPTIONS": "slices",
    "Slice": "quality",
    "SliceCounts": "slices",
    "SliceTable": "slices",
    "UNDECIDED": "diagnosis",
    "additional_rows_needed": "diagnosis",
    "allocation_chart": "plan",
    "article": "diagnosis",
    "build_findings": "findings",
    "build_plan": "plan",
    "compute_quality": "quality",
    "derive_verdict": "diagnosis",
    "describe_signal": "quality",
    "diagnose": "diagnosis",
    "diagnose_groups": "diagnosis",
    "find_slices": "slices",
    "finding_id": "findings",
    "finding_rule": "slices",
    "material": "slices",
    "merge_overlaps": "slices",
    "metric_text": "diagnosis",
    "overlap_priority": "slices",
    "plan_candidates": "plan",
    "plan_places": "plan",
    "rows_plan": "diagnosis",
    "sliceline_score": "slices",
    "top_findings": "slices",
}
__all__, __getattr__, __dir__ = lazy_interface(__name__, _EXPORTS)
