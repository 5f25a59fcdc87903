"""Statistics over counts: per-group metrics and intervals for every task, scores, representation, drift.

Each module below lists the names it gives this capability's public interface (metrics/lazy.py).
"""

from fairwatch.metrics.lazy import lazy_interface

__all__, __getattr__, __dir__ = lazy_interface(__name__, {
    "drift": ("DriftTable", "PSI_EPSILON", "chi_square", "drift_table", "psi"),
    "groups": (
        "CELLS", "DESCRIPTIVE", "GroupTable", "LOWER_IS_BETTER", "RATES", "compute_group_table",
        "confusion_by_group", "grouping_name", "groupings", "metric_names", "metric_rows", "reference_groups",
        "reference_slice", "slice_label", "wide_table"
    ),
    "intervals": (
        "CONFIDENCE", "bh_level", "bh_qvalues", "difference_interval", "mean_ratio_interval", "ratio_interval",
        "two_proportion_pvalue", "wilson_interval"
    ),
    "multiclass": ("MulticlassResult", "compute_multiclass_table", "multiclass_counts"),
    "regression": (
        "BucketEdges", "ERROR_BUCKETS", "METRICS", "PREDICTION_BUCKETS", "RegressionResult", "bucket_edges",
        "compute_distributions", "compute_regression_table", "regression_summary"
    ),
    "representation": ("compute_representation",),
    "threshold": (
        "EDGE_EPS", "bucket_of", "default_threshold", "grid_bounds", "nearest_threshold", "rates_at",
        "threshold_curves", "thresholds"
    ),
})
