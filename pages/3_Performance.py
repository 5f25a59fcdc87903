"""Performance: how well the model does for each group, and how far each group is from the reference."""

import streamlit as st

from fairwatch.metrics.presentation.charts import confusion_heatmap, disparity_chart, histogram_chart, rate_chart
from fairwatch.metrics.policy.overview import threshold_scope_note
from fairwatch.metrics.presentation.views import (confusion_cells, disparity_points, groupings_shown, histogram_cells, masked_groups,
                           metric_label, metric_table, performance_metrics, rate_points)
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import PageContext, run_page, show_chart, show_table
from fairwatch.pages.components.threshold_view import render_threshold_explorer
from fairwatch.pages.components.whatif_view import render_whatif


def render_task_distributions(snap, grouping: str, groups: list[str]) -> None:
    """Multiclass: the confusion matrix of a chosen group; regression: prediction and error histograms per group."""
    if (confusion := confusion_cells(snap, grouping)) is not None:
        _, by_group, classes = confusion
        st.subheader("Confusion matrix")
        chosen = st.selectbox("Group", list(by_group), key="fw.perf.confusion")
        st.caption("Rows: the true class; columns: the predicted class; shade: the share of the true class's rows.")
        show_chart(confusion_heatmap(by_group[chosen], classes))
    for kind, title in (("prediction", "Prediction"), ("error", "Error (prediction − label)")):
        if (bins := histogram_cells(snap, grouping, kind)) is not None:
            st.subheader(f"Distribution of the {kind}s")
            show_chart(histogram_chart(bins, groups, title))


def draw(ctx: PageContext) -> None:
    """The Performance page."""
    snap, features = ctx.snapshot(), ctx.selection.features
    rows, policy = snap.groups.rows, snap.spec.policy
    c1, c2 = st.columns([1, 2])
    grouping = c1.selectbox("Groups of", ctx.view(lambda: groupings_shown(rows, features), "groupings"),
                            key="fw.perf.grouping")
    available, headline = performance_metrics(snap)
    metrics = c2.multiselect("Metrics", available, default=headline, format_func=metric_label,
                             key="fw.perf.metrics") or headline
    groups = rows.loc[rows["grouping"] == grouping, "group"].unique().tolist()
    st.subheader("Metric per group")
    st.caption(f"Each point is the group's value, each line its 95% interval. n is the number of rows the "
               f"value is computed from; below {policy.min_support} the value is not shown.")
    show_chart(lambda: rate_chart(rate_points(rows, grouping, metrics), groups),
               key=ctx.chart_key("performance.rates", grouping, tuple(metrics)))
    for line in masked_groups(rows, grouping, metrics):
        st.caption(f"Not drawn — {md(line)}")
    show_table(ctx.view(lambda: metric_table(rows, grouping, metrics), "performance.table", grouping, tuple(metrics)))
    st.subheader("Gap to the reference group")
    st.caption(f"Ratio of each group's value to the reference group's (1 = the same), with its 95% interval. "
               f"Shaded: the policy band {policy.ratio_low:g}–{policy.ratio_high:g}; a gap fails the policy when "
               f"it is outside the band with q < {policy.fdr:g} (diamonds).")
    show_chart(lambda: disparity_chart(disparity_points(rows, grouping, metrics), groups, policy.ratio_low,
                                       policy.ratio_high),
               key=ctx.chart_key("performance.gaps", grouping, tuple(metrics)))
    render_task_distributions(snap, grouping, groups)
    st.subheader("Threshold explorer")
    if note := threshold_scope_note(snap.spec.task):
        st.info(note)
        return
    if snap.spec.score is None:
        st.info("The threshold explorer needs a score column; map one on the Data sources page.")
    else:
        render_threshold_explorer(ctx, grouping, groups)
    st.subheader("What if: per-group thresholds that meet the policy")
    render_whatif(ctx, grouping)


run_page("Performance", ":material/target:", draw)
