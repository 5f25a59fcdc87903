"""Statistics over counts: per-group metrics and intervals for every task, scores, representation, drift.

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
    "BucketEdges": "regression",
    "CONFIDENCE": "intervals",
    "DESCRIPTIVE": "groups",
    "DriftTable": "drift",
    "EDGE_EPS": "threshold",
    "ERROR_BUCKETS": "regression",
    "GroupTable": "groups",
    "LOWER_IS_BETTER": "groups",
    "METRICS": "regression",
    "MulticlassResult": "multiclass",
    "PREDICTION_BUCKETS": "regression",
    "PSI_EPSILON": "drift",
    "RATES": "rates",
    "RegressionResult": "regression",
    "bh_level": "intervals",
    "bh_qvalues": "intervals",
    "bucket_edges": "regression",
    "bucket_of": "threshold",
    "chi_square": "drift",
    "compute_distributions": "regression",
    "compute_group_table": "groups",
    "compute_multiclass_table": "multiclass",
    "compute_regression_table": "regression",
    "compute_representation": "representation",
    "confusion_by_group": "groups",
    "default_threshold": "threshold",
    "difference_interval": "intervals",
    "drift_table": "drift",
    "grid_bounds": "threshold",
    "grouping_name": "groups",
    "groupings": "groups",
    "metric_names": "groups",
    "metric_rows": "groups",
    "multiclass_counts": "multiclass",
    "nearest_threshold": "threshold",
    "psi": "drift",
    "rates_at": "threshold",
    "ratio_interval": "intervals",
    "reference_groups": "groups",
    "reference_slice": "groups",
    "regression_summary": "regression",
    "slice_label": "groups",
    "threshold_curves": "threshold",
    "thresholds": "threshold",
    "two_proportion_pvalue": "intervals",
    "wide_table": "groups",
    "wilson_interval": "intervals",
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
