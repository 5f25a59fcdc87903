"""Representation: is each group present in the data as often as in the population it should reflect?"""

import streamlit as st

from fairwatch.metrics.presentation.charts import intersection_heatmap, share_chart
from fairwatch.metrics.privacy.roles import allowed
from fairwatch.metrics.presentation.views import (fit_tests_table, groupings_shown, intersection_caption, intersection_cells,
                           representation_table, share_points)
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import SHARE_COLUMNS, PageContext, run_page, show_chart, show_table


def draw(ctx: PageContext) -> None:
    """The Representation page."""
    snap, features = ctx.snapshot(), ctx.selection.features
    rep, min_support = snap.representation, snap.spec.policy.min_support
    st.caption(f"Shares count all {snap.data.rows:,} rows, labelled or not. Reference shares come from the "
               "config ([reference_shares]); intersections use the product of their features' shares.")
    grouping = st.selectbox("Groups of", ctx.view(lambda: groupings_shown(snap.groups.rows, features), "groupings"),
                            key="fw.rep.grouping")
    groups = rep.loc[rep["grouping"] == grouping, "group"].tolist()
    show_chart(lambda: share_chart(share_points(rep, grouping), groups),
               key=ctx.chart_key("representation.shares", grouping))
    show_table(representation_table(rep, grouping), SHARE_COLUMNS)
    st.subheader("Does the data match the reference population?")
    st.caption("Chi-square goodness-of-fit test per feature: a small p-value means the group shares differ "
               "from the reference shares by more than chance. With many rows even small differences are "
               "significant, so read it with the share ÷ reference column.")
    show_table(fit_tests_table(snap.representation_tests), columns={})
    st.subheader("Intersections")
    if len(features) < 2:
        st.info("Show at least two sensitive features in the sidebar to see their intersections.")
        return
    c1, c2 = st.columns(2)
    first = c1.selectbox("Rows", features, index=0, key="fw.rep.first")
    second = c2.selectbox("Columns", [f for f in features if f != first], index=0, key="fw.rep.second")
    cells = intersection_cells(rep, first, second, min_support, complete=allowed(ctx.role, "small_cells"))
    show_chart(lambda: intersection_heatmap(cells, first, second, min_support),
               key=ctx.chart_key("representation.cells", first, second))
    st.caption(md(intersection_caption(cells, min_support)))


run_page("Representation", ":material/groups:", draw)
