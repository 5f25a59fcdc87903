"""Two model versions side by side: each rate per group under A and B, the change and whether it is real.

For every proportion metric (RATES) of every group of every grouping: the value under version A and
under B (labelled rows only, min_support masking as in an audit), the difference B − A with
Newcombe's hybrid score interval, a two-sided p-value (score test, Fisher's exact test for small
counts) and a Benjamini-Hochberg q-value over all comparisons of the two versions (base_rate, which
describes the population rather than the model, is shown but not tested). A change is `worse` or
`better` by the metric's direction when q < fdr; selection_rate has no better direction (`changed`).

The versions are compared on the rows each one scored. When they ran at different times (as
usual), a change can also come from a change in the population; compare them on the same period
(RowFilter) or read the drift next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.stats.groups import DESCRIPTIVE, LOWER_IS_BETTER, RATES
from fairwatch.metrics.stats.intervals import bh_qvalues, difference_interval, two_proportion_pvalue
from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.monitoring.trends import VERSION, keyed_metric_rows

# Metrics whose change is neither better nor worse for a group.
NEUTRAL = frozenset({"selection_rate"})
_SIDE = ["value", "ci_low", "ci_high", "support", "successes", "masked"]


@dataclass(frozen=True)
class VersionComparison:
    """Per (group, metric): value under A and B, difference B − A with its interval, p, q and the change."""

    # grouping, slice, group, metric, value_a, ci_low_a, ci_high_a, support_a, masked_a, value_b, ci_low_b,
    # ci_high_b, support_b, masked_b, difference, diff_ci_low, diff_ci_high, p_value, q_value, change.
    rows: pd.DataFrame
    version_a: str
    version_b: str

    def changed(self, change: str) -> pd.DataFrame:
        """The rows whose change is `worse`, `better` or `changed`."""
        return self.rows[self.rows["change"] == change]


def _direction(metric: str) -> int:
    """+1 when a higher value is better for the group, −1 when lower is better, 0 when neither."""
    if metric in NEUTRAL or metric in DESCRIPTIVE:
        return 0
    return -1 if metric in LOWER_IS_BETTER else 1


def compare_versions(labelled: pd.DataFrame, population: pd.DataFrame, spec: AuditSpec,
                     version_a: str, version_b: str) -> VersionComparison:
    """Compare two versions from 0/1 counts keyed by _version (see trends.window_outcomes)."""
    present = sorted(population[VERSION].astype(str).unique())
    for v in (version_a, version_b):
        if v not in present:
            raise SpecError(f"model version {v!r} is not in the data; versions present: {', '.join(present)}")
    if version_a == version_b:
        raise SpecError(f"compare two different model versions, not {version_a!r} with itself")
    keep_l = labelled[VERSION].isin([version_a, version_b])
    keep_p = population[VERSION].isin([version_a, version_b])
    rows = keyed_metric_rows(labelled[keep_l], population[keep_p], spec, VERSION)
    rows = rows[rows["metric"].isin(list(RATES))]
    # Slices are tuples, awkward in an index; a group's label is unique within its grouping.
    keys = ["grouping", "group", "metric"]
    a = rows[rows[VERSION] == version_a].set_index(keys)[_SIDE]
    b = rows[rows[VERSION] == version_b].set_index(keys)[_SIDE]
    out = a.add_suffix("_a").merge(b.add_suffix("_b"), left_index=True, right_index=True, how="outer").reset_index()
    out.insert(1, "slice", out["group"].map(dict(zip(rows["group"], rows["slice"]))))
    # A group seen under one version only has nothing under the other: a gap, not a zero.
    for side in ("_a", "_b"):
        out["support" + side] = out["support" + side].fillna(0).astype(np.int64)
        out["masked" + side] = out["masked" + side].fillna(True).astype(bool)
    out["difference"] = out["value_b"] - out["value_a"]
    ok = ~out["masked_a"] & ~out["masked_b"]
    xa, na = out.loc[ok, "successes_a"], out.loc[ok, "support_a"]
    xb, nb = out.loc[ok, "successes_b"], out.loc[ok, "support_b"]
    for col in ("diff_ci_low", "diff_ci_high", "p_value", "q_value"):
        out[col] = np.nan
    out.loc[ok, "diff_ci_low"], out.loc[ok, "diff_ci_high"] = difference_interval(xb, nb, xa, na)
    out.loc[ok, "p_value"] = two_proportion_pvalue(xb, nb, xa, na)
    tested = ok & ~out["metric"].isin(DESCRIPTIVE)
    out.loc[tested, "q_value"] = bh_qvalues(out.loc[tested, "p_value"].to_numpy())
    significant = out["q_value"] < spec.policy.fdr
    signed = out["difference"] * out["metric"].map(_direction)
    out["change"] = np.select(
        [~ok, out["metric"].isin(DESCRIPTIVE), ~significant, out["metric"].map(_direction) == 0, signed > 0],
        ["insufficient_data", "descriptive", "no_significant_change", "changed", "better"],
        default="worse",
    )
    out = out.drop(columns=["successes_a", "successes_b"])
    return VersionComparison(rows=out, version_a=version_a, version_b=version_b)
