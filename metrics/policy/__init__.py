"""Judged against the policy: verdicts per feature, the largest gaps, and what thresholds would meet it.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

_EXPORTS = {
    "CONSTRAINTS": "whatif",
    "Disparity": "overview",
    "FAIRLEARN_OBJECTIVES": "whatif",
    "GLOSSARY": "overview",
    "HEADLINE_METRICS": "overview",
    "NEEDS": "overview",
    "NEED_LABELS": "overview",
    "OBJECTIVES": "whatif",
    "Objective": "whatif",
    "STEADY": "overview",
    "Tolerance": "whatif",
    "TrendArrows": "overview",
    "VERDICT_LABELS": "overview",
    "WhatIfError": "whatif",
    "WhatIfResult": "whatif_result",
    "adjusted_intervals": "overview",
    "apply_rules": "whatif",
    "arrow_spec": "overview",
    "changes_table": "whatif_result",
    "comparison_table": "whatif_result",
    "coverage": "overview",
    "coverage_arrow": "overview",
    "feature_verdicts": "overview",
    "findings_by_need": "overview",
    "fit_thresholds": "whatif",
    "gap_arrow": "overview",
    "grouping_features": "overview",
    "objective_value": "whatif",
    "plain_summary": "overview",
    "rate_table": "whatif",
    "raw_cells": "whatif",
    "reference_label": "whatif",
    "rules_table": "whatif_result",
    "shown_rows": "overview",
    "split_ranges": "whatif_result",
    "status_icon": "overview",
    "supported_metrics": "overview",
    "task_scope_note": "overview",
    "drilldown_scope_note": "overview",
    "threshold_scope_note": "overview",
    "trend_arrows": "overview",
    "verdict_lines": "whatif_result",
    "whatif_cells": "whatif",
    "whatif_options": "whatif",
    "whatif_result": "whatif_result",
    "window_text": "overview",
    "worst_disparities": "overview",
}
__all__, __getattr__, __dir__ = lazy_interface(__name__, _EXPORTS)
