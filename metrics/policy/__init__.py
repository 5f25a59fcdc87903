"""Judged against the policy: verdicts per feature, the largest gaps, and what thresholds would meet it.

Each module below lists the names it gives this capability's public interface (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

__all__, __getattr__, __dir__ = lazy_interface(__name__, {
    "overview": (
        "Disparity", "GLOSSARY", "HEADLINE_METRICS", "NEEDS", "NEED_LABELS", "STEADY", "TrendArrows",
        "VERDICT_LABELS", "adjusted_intervals", "arrow_spec", "coverage", "coverage_arrow", "drilldown_scope_note",
        "feature_verdicts", "findings_by_need", "gap_arrow", "grouping_features", "plain_summary", "shown_rows",
        "status_icon", "supported_metrics", "task_scope_note", "threshold_scope_note", "trend_arrows",
        "window_text", "worst_disparities"
    ),
    "whatif": (
        "CONSTRAINTS", "FAIRLEARN_OBJECTIVES", "OBJECTIVES", "Objective", "Tolerance", "WhatIfError", "apply_rules",
        "fit_thresholds", "objective_value", "rate_table", "raw_cells", "reference_label", "whatif_cells",
        "whatif_options"
    ),
    "whatif_result": (
        "WhatIfChoice", "WhatIfResult", "changes_table", "comparison_table", "rules_table", "split_ranges",
        "verdict_lines", "whatif_result"
    ),
})
