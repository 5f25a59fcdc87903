"""Counts per (finest sensitive group, raw label, score bucket): the one query behind the threshold explorer.

Buckets are `floor((score - lo) / width)` on a fixed grid of `bins` steps, so "score >= t" for every
grid threshold t is exactly "bucket >= k": the curves are exact at the grid points, not approximations.
`metrics.stats.threshold.bucket_of` is the same formula in numpy (the tests hold one to the other).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fairwatch.connectors.counts import group_expr, run_query, where_sql
from fairwatch.connectors.source import OpenSource, quote_ident, resolve_spec_columns
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter
from fairwatch.metrics.stats.threshold import EDGE_EPS, grid_bounds

THRESHOLD_BINS = 100


@dataclass(frozen=True)
class ScoreBuckets:
    """Labelled rows counted per finest group, raw label and score bucket, with the grid they use."""

    counts: pd.DataFrame  # <sensitive...>, label_raw, bucket, n
    lo: float
    hi: float
    bins: int

    @property
    def rows(self) -> int:
        """Labelled rows with a score that the counts hold."""
        return int(self.counts["n"].sum())

    @property
    def step(self) -> float:
        """The score distance between two thresholds of the grid."""
        return (self.hi - self.lo) / self.bins


def fetch_threshold_counts(src: OpenSource, spec: AuditSpec, row_filter: RowFilter | None = None,
                           bins: int = THRESHOLD_BINS) -> ScoreBuckets:
    """Score-bucket counts of the labelled rows (two aggregate queries; no row leaves the engine)."""
    if spec.score is None:
        raise DataError("the threshold explorer needs a score column: set [columns] score on the Data sources page")
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    score = f"CAST({quote_ident(cols['score'])} AS DOUBLE)"
    label = f"CAST({quote_ident(cols['label'])} AS VARCHAR)"
    usable = f"{where} AND {label} IS NOT NULL AND {score} IS NOT NULL AND NOT isnan({score})"
    span = run_query(src, f"SELECT min({score}) AS lo, max({score}) AS hi FROM src WHERE {usable}", params)
    if span.empty or pd.isna(span.iloc[0]["lo"]):
        raise DataError("no labelled row has a score in the chosen rows; widen the time window or pick another model version")
    lo, hi = grid_bounds(float(span.iloc[0]["lo"]), float(span.iloc[0]["hi"]))
    width = (hi - lo) / bins
    keys = ", ".join(f"{group_expr(c, src.column_type(c))} AS g{i}"
                     for i, c in enumerate(cols[f'sensitive:{s}'] for s in spec.sensitive))
    bucket = f"LEAST(GREATEST(floor(({score} - $lo) / $width + {EDGE_EPS}), 0), {int(bins)})::INTEGER"
    counts = run_query(
        src,
        f"SELECT {keys}, {label} AS label_raw, {bucket} AS bucket, count(*)::BIGINT AS n "
        f"FROM src WHERE {usable} GROUP BY ALL",
        {**params, "lo": lo, "width": width},
    )
    counts = counts.rename(columns={f"g{i}": s for i, s in enumerate(spec.sensitive)})
    return ScoreBuckets(counts=counts, lo=lo, hi=hi, bins=bins)
