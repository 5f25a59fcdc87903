"""Statistics over counts: per-group metrics and intervals for every task, scores, representation, drift.

The names below are this capability's public interface (what the rest of fairwatch uses); each loads
its module on first use (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

_EXPORTS = {
    "BucketEdges": "regression",
    "CELLS": "groups",
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
    "RATES": "groups",
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
__all__, __getattr__, __dir__ = lazy_interface(__name__, _EXPORTS)
