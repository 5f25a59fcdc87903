"""What people read: views for the pages, the display vocabulary, charts and the report model.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use, so importing one module of the package does not import the others.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use, so importing one module of the package does not import the others.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use, so importing one module of the package does not import the others.
"""

from __future__ import annotations

from importlib import import_module

_EXPORTS = {
    "BUILT": "slice_views",
    "Bullets": "report_model",
    "Chart": "report_model",
    "DETAIL_SIGNALS": "quality_views",
    "FINDINGS_SCOPE": "quality_views",
    "FOUND": "slice_views",
    "Facts": "report_model",
    "GRAIN_CHOICES": "trend_views",
    "HEADLINE_METRICS": "formats",
    "HEADLINE_SIGNALS": "quality_views",
    "MAX_GENERIC_SHOWN": "report_model",
    "METRIC_EXPLANATIONS": "formats",
    "PSI_LARGE": "trend_views",
    "PSI_MODERATE": "trend_views",
    "Paragraph": "report_model",
    "REGRESSION_METRICS": "formats",
    "REST_COLOUR": "charts",
    "REST_SIDE": "slice_views",
    "ReportModel": "report_model",
    "SLICE_COLOUR": "charts",
    "SLICE_SIDE": "slice_views",
    "Section": "report_model",
    "SliceAnalysis": "slice_views",
    "Table": "report_model",
    "WORD_JOINER": "text",
    "analyse_slice": "slice_views",
    "analysis_lines": "slice_views",
    "annotation_record": "export_views",
    "board_items": "slice_views",
    "build_report": "report_model",
    "built_slice": "slice_views",
    "canonical": "slice_views",
    "changes_table": "export_views",
    "check_table": "trend_views",
    "colours_by_group": "views",
    "confusion_cells": "views",
    "confusion_heatmap": "charts",
    "confusion_table": "slice_views",
    "coverage_points": "trend_views",
    "coverage_table": "trend_views",
    "csv_tables": "report_model",
    "diff_figures": "export_views",
    "disparity_chart": "charts",
    "disparity_points": "views",
    "distribution_chart": "charts",
    "distribution_points": "slice_views",
    "drift_tests_table": "trend_views",
    "drill_options": "slice_views",
    "example_rules": "trend_views",
    "explain": "formats",
    "feature_choices": "slice_views",
    "findings_table": "export_views",
    "fire_rule": "quality_views",
    "fired_lines": "quality_views",
    "fit_tests_table": "views",
    "fmt_num": "formats",
    "fmt_pct": "formats",
    "fmt_q": "formats",
    "fmt_ratio": "formats",
    "generic_table": "report_model",
    "grain_arg": "trend_views",
    "grain_caption": "trend_views",
    "group_colours": "charts",
    "groupings_shown": "views",
    "headline_metrics": "formats",
    "hide_paths": "text",
    "histogram_cells": "views",
    "histogram_chart": "charts",
    "history_table": "export_views",
    "inconclusive_table": "slice_views",
    "intersection_caption": "views",
    "intersection_cells": "views",
    "intersection_heatmap": "charts",
    "is_missing": "formats",
    "label_rule_text": "quality_views",
    "masked_groups": "views",
    "md_escape": "text",
    "md_unescape": "text",
    "metric_label": "views",
    "metric_table": "views",
    "metric_versus_points": "slice_views",
    "moves_table": "export_views",
    "option_texts": "slice_views",
    "performance_metrics": "views",
    "problems_table": "export_views",
    "psi_chart": "charts",
    "psi_points": "trend_views",
    "quality_points": "quality_views",
    "quality_rows": "quality_views",
    "quality_scopes": "quality_views",
    "quality_table": "quality_views",
    "rate_chart": "charts",
    "rate_points": "views",
    "reference_options": "views",
    "representation_table": "views",
    "scope_colours": "quality_views",
    "scope_slices": "quality_views",
    "search_caption": "slice_views",
    "share_chart": "charts",
    "share_points": "views",
    "share_trend_points": "trend_views",
    "slice_test": "slice_views",
    "small_table": "slice_views",
    "snapshot_author": "export_views",
    "snapshot_label": "export_views",
    "threshold_chart": "charts",
    "threshold_table": "views",
    "trend_chart": "charts",
    "trend_gaps": "trend_views",
    "trend_groupings": "trend_views",
    "trend_points": "trend_views",
    "trend_table": "trend_views",
    "version_changes": "trend_views",
    "version_chart": "charts",
    "version_points": "trend_views",
    "version_table": "trend_views",
    "versus_chart": "charts",
    "visible_text": "text",
    "whatif_chart": "charts",
    "worst_chart": "charts",
    "worst_points": "views",
    "worst_table": "views",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Load a public name from its module on first use."""
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, for completion in notebooks."""
    return __all__
