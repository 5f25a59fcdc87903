"""What an audit is: the spec, column-role guesses, outcome encoding and the snapshot type.

Each module below lists the names it gives this capability's public interface (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

__all__, __getattr__, __dir__ = lazy_interface(__name__, {
    "mapping": (
        "ColumnProfile", "RoleGuess", "association", "default_threshold", "guess_roles", "mapping_config",
        "outcome_value", "profile_columns", "threshold_warning"
    ),
    "outcomes": (
        "DataSummary", "Outcomes", "binarize", "binarize_scores", "check_rows", "choose_positive",
        "normalise_value", "positive_set", "positive_text"
    ),
    "snapshot": ("AuditSnapshot", "SCHEMA_VERSION", "clean"),
    "spec": (
        "AuditSpec", "ERROR_SIGNALS", "Policy", "RowFilter", "SourceSpec", "TASKS", "TASK_LABELS", "parse_spec"
    ),
})
