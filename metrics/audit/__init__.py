"""What an audit is: the spec, column-role guesses, outcome encoding and the snapshot type.

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
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Load a public name from its module on first use."""
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, for completion in notebooks."""
    return __all__
