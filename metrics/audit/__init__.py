"""What an audit is: the spec, column-role guesses, outcome encoding and the snapshot type.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

_EXPORTS = {
    "AuditSnapshot": "snapshot",
    "AuditSpec": "spec",
    "ColumnProfile": "mapping",
    "DataSummary": "outcomes",
    "ERROR_SIGNALS": "spec",
    "Outcomes": "outcomes",
    "Policy": "spec",
    "RoleGuess": "mapping",
    "RowFilter": "spec",
    "SCHEMA_VERSION": "snapshot",
    "SourceSpec": "spec",
    "TASKS": "spec",
    "TASK_LABELS": "spec",
    "association": "mapping",
    "binarize": "outcomes",
    "binarize_scores": "outcomes",
    "check_rows": "outcomes",
    "choose_positive": "outcomes",
    "clean": "snapshot",
    "default_threshold": "mapping",
    "guess_roles": "mapping",
    "mapping_config": "mapping",
    "normalise_value": "outcomes",
    "outcome_value": "mapping",
    "parse_spec": "spec",
    "positive_set": "outcomes",
    "positive_text": "outcomes",
    "profile_columns": "mapping",
    "threshold_warning": "mapping",
}
__all__, __getattr__, __dir__ = lazy_interface(__name__, _EXPORTS)
