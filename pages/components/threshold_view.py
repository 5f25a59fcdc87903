"""The threshold explorer: per-group rates as the decision threshold on the score moves."""

from __future__ import annotations

import streamlit as st

from fairwatch.metrics.presentation.charts import threshold_chart
from fairwatch.metrics.policy.overview import threshold_scope_note
from fairwatch.metrics.stats.threshold import default_threshold, nearest_threshold, rates_at
from fairwatch.metrics.presentation.views import threshold_table
from fairwatch.pages.components.frame import PageContext, show_chart, show_table
from fairwatch.pages.components.loaders import load_threshold_buckets, load_threshold_curves, stamp_of


def render_threshold_explorer(ctx: PageContext, grouping: str, groups: list[str]) -> None:
    """Slider + curves with intervals + the rates at the chosen threshold (counts fetched once, cached)."""
    sel = ctx.selection
    if note := threshold_scope_note(sel.spec.task):  # no score to cut for a regression or multiclass audit
        st.info(note)
        return
    snap = ctx.snapshot()
    buckets = load_threshold_buckets(sel.spec, sel.row_filter, stamp_of(sel.spec))
    curves = load_threshold_curves(sel.spec, sel.row_filter, stamp_of(sel.spec), grouping, snap.data.positive_label,
                                   ctx.role, tuple(groups))
    step = buckets.step
    start = default_threshold(sel.spec.threshold, buckets.lo, buckets.hi, buckets.bins)
    picked = st.slider("Threshold: decide yes when the score is at least", buckets.lo, buckets.hi, start, step,
                       format="%.2f", key=f"fw.thr.{grouping}")
    threshold = nearest_threshold(picked, buckets.lo, buckets.hi, buckets.bins)
    show_chart(lambda: threshold_chart(curves, groups, threshold, sel.spec.threshold),
               key=ctx.chart_key("performance.threshold", grouping, threshold))
    st.caption(f"Computed from {buckets.rows:,} labelled rows with a score, counted per score "
               f"step of {step:.3g} (exact at every step). Bands are 95% intervals; points with fewer than "
               f"{sel.spec.policy.min_support} rows are left out.")
    show_table(threshold_table(rates_at(curves, threshold)))
