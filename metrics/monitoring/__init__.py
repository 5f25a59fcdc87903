"""Over time and between audits: trends, alerts, model versions, snapshot diffs and follow-up.

Each module below lists the names it gives this capability's public interface (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

__all__, __getattr__, __dir__ = lazy_interface(__name__, {
    "alerts": (
        "CheckInputs", "CheckResult", "FindingIds", "Period", "Rule", "evaluate_rules", "evaluation_period",
        "known_slices", "parse_rule", "parse_rules"
    ),
    "diff": (
        "MOVE_RULE", "SnapshotDiff", "SnapshotError", "chance_of_move", "check_schema_version", "diff_snapshots"
    ),
    "finding_ids": ("findings_of", "moved_metric", "record_id"),
    "followup": (
        "RULE", "STATUSES", "SinceLast", "counts_line", "doc_target", "follow_up", "follow_up_table", "since_last",
        "target_of", "tracked"
    ),
    "task_trends": ("compare_task_versions", "prediction_shift", "task_trend_table"),
    "trends": (
        "DAY_SPAN_MAX_DAYS", "GRAINS", "TrendTable", "VERSION", "WEEK_SPAN_MAX_DAYS", "WINDOW", "choose_grain",
        "parse_instant", "trend_table", "window_floor", "window_outcomes"
    ),
    "versions": ("VersionComparison", "compare_versions"),
})
