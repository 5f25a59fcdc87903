"""Trends: how each group's metrics, the label coverage and the population move over time; versions; alerts."""

import streamlit as st

from fairwatch.metrics.presentation.trend_views import (GRAIN_CHOICES, grain_arg, grain_caption, trend_groupings,
                                                      trend_metrics, trend_metrics_key)
from fairwatch.metrics.presentation.views import metric_label
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import PageContext, guard, run_page
from fairwatch.pages.components.loaders import load_trends, stamp_of
from fairwatch.pages.components.trends_view import (render_alerts, render_coverage, render_drift, render_metric_trends,
                                          render_versions)


def draw(ctx: PageContext) -> None:
    """The Trends page."""
    sel = ctx.selection
    spec = sel.spec
    c1, c2, c3 = st.columns([1, 1, 2])
    choice = c1.selectbox("Window", GRAIN_CHOICES, key="fw.trend.grain",
                          help="auto: days up to 60 days of data, weeks up to 400 days, else months")
    trends = load_trends(spec, sel.row_filter, grain_arg(choice), stamp_of(spec))
    rows = trends.rows
    grouping = c2.selectbox("Groups of", trend_groupings(rows, spec, sel.features), key="fw.trend.grouping")
    available, default = trend_metrics(rows, spec)
    metrics = c3.multiselect("Metrics", available, default=default, format_func=metric_label,
                             key=trend_metrics_key(spec.task)) or default
    groups = rows.loc[rows["grouping"] == grouping, "group"].unique().tolist()
    st.caption(f"{md(grain_caption(trends.grain, choice))} {len(trends.coverage)} windows of "
               f"{trends.total_rows:,} rows ({md(sel.row_filter.describe())}).")
    # Sections, not tabs: a chart in a hidden tab is not drawn until opened, and each section's
    # guard keeps the others on the page when one fails.
    st.subheader("Metrics over time")
    render_metric_trends(trends, grouping, metrics, groups, spec.policy.min_support, spec.task)
    st.subheader("Label coverage")
    render_coverage(trends)
    st.subheader("Model versions side by side")
    with guard():
        render_versions(ctx, grouping, metrics, groups)
    st.subheader("Population drift")
    with guard():
        render_drift(ctx, trends, grouping, groups)
    st.subheader("Alerts")
    with guard():
        render_alerts(ctx)


run_page("Trends", ":material/trending_up:", draw)
