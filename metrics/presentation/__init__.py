"""What people read: views for the pages, the display vocabulary, charts and the report model.

Each module below lists the names it gives this capability's public interface (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

__all__, __getattr__, __dir__ = lazy_interface(__name__, {
    "charts": (
        "REST_COLOUR", "SLICE_COLOUR", "confusion_heatmap", "disparity_chart", "distribution_chart",
        "group_colours", "histogram_chart", "intersection_heatmap", "psi_chart", "rate_chart", "share_chart",
        "threshold_chart", "trend_chart", "version_chart", "versus_chart", "whatif_chart", "worst_chart"
    ),
    "export_views": (
        "annotation_record", "changes_table", "diff_figures", "findings_table", "history_table", "moves_table",
        "problems_table", "snapshot_author", "snapshot_label"
    ),
    "formats": (
        "HEADLINE_METRICS", "METRIC_EXPLANATIONS", "REGRESSION_METRICS", "explain", "fmt_num", "fmt_pct", "fmt_q",
        "fmt_ratio", "headline_metrics", "is_missing"
    ),
    "quality_views": (
        "DETAIL_SIGNALS", "FINDINGS_SCOPE", "HEADLINE_SIGNALS", "fire_rule", "fired_lines", "label_rule_text",
        "quality_points", "quality_rows", "quality_scopes", "quality_table", "scope_colours", "scope_slices"
    ),
    "report_model": (
        "Bullets", "Chart", "Facts", "MAX_GENERIC_SHOWN", "Paragraph", "ReportModel", "Section", "Table",
        "build_report", "csv_tables", "generic_table"
    ),
    "slice_views": (
        "BUILT", "FOUND", "REST_SIDE", "SEARCH_VERDICTS", "SLICE_SIDE", "SliceAnalysis", "SliceSignal",
        "analyse_slice", "analysis_lines", "board_items", "built_slice", "canonical", "confusion_table",
        "distribution_points", "drill_options", "feature_choices", "inconclusive_table", "metric_versus_points",
        "option_texts", "search_caption", "sides_test", "signal_analysis", "signal_fields", "signal_metric",
        "slice_test", "small_table", "task_error_counts", "verdict_text"
    ),
    "text": ("WORD_JOINER", "hide_paths", "md_escape", "md_unescape", "visible_text"),
    "trend_views": (
        "GRAIN_CHOICES", "PSI_LARGE", "PSI_MODERATE", "check_table", "coverage_points", "coverage_table",
        "drift_tests_table", "example_rules", "grain_arg", "grain_caption", "psi_points", "share_trend_points",
        "trend_gaps", "trend_groupings", "trend_points", "trend_table", "version_changes", "version_points",
        "version_table"
    ),
    "views": (
        "colours_by_group", "confusion_cells", "disparity_points", "fit_tests_table", "groupings_shown",
        "histogram_cells", "intersection_caption", "intersection_cells", "masked_groups", "metric_label",
        "metric_table", "performance_metrics", "rate_points", "reference_options", "representation_table",
        "share_points", "threshold_table", "worst_points", "worst_table"
    ),
})
