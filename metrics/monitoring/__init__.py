"""Over time and between audits: trends, alerts, model versions, snapshot diffs and follow-up.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

_EXPORTS = {
    "CheckInputs": "alerts",
    "CheckResult": "alerts",
    "DAY_SPAN_MAX_DAYS": "trends",
    "FindingIds": "alerts",
    "GRAINS": "trends",
    "MOVE_RULE": "diff",
    "Period": "alerts",
    "RULE": "followup",
    "Rule": "alerts",
    "STATUSES": "followup",
    "SinceLast": "followup",
    "SnapshotDiff": "diff",
    "SnapshotError": "diff",
    "TrendTable": "trends",
    "VERSION": "trends",
    "VersionComparison": "versions",
    "WEEK_SPAN_MAX_DAYS": "trends",
    "WINDOW": "trends",
    "chance_of_move": "diff",
    "check_schema_version": "diff",
    "choose_grain": "trends",
    "compare_task_versions": "task_trends",
    "compare_versions": "versions",
    "counts_line": "followup",
    "diff_snapshots": "diff",
    "doc_target": "followup",
    "evaluate_rules": "alerts",
    "evaluation_period": "alerts",
    "findings_of": "finding_ids",
    "follow_up": "followup",
    "follow_up_table": "followup",
    "known_slices": "alerts",
    "moved_metric": "finding_ids",
    "parse_instant": "trends",
    "prediction_shift": "task_trends",
    "parse_rule": "alerts",
    "parse_rules": "alerts",
    "record_id": "finding_ids",
    "since_last": "followup",
    "task_trend_table": "task_trends",
    "target_of": "followup",
    "tracked": "followup",
    "trend_table": "trends",
    "window_floor": "trends",
    "window_outcomes": "trends",
}
__all__, __getattr__, __dir__ = lazy_interface(__name__, _EXPORTS)
