"""Slices: where the model errs most, what each problem needs, and a drill-down into any slice."""

import streamlit as st

from fairwatch.metrics.discovery.plan import plan_places
from fairwatch.metrics.presentation.slice_views import findings_table, inconclusive_table, search_caption, small_table
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import PageContext, guard, run_page, show_table
from fairwatch.pages.components.loaders import stamp_of
from fairwatch.pages.components.plan_view import chosen_budget, load_plan
from fairwatch.pages.components.slice_view import FINDING_COLUMNS, need_filter, pick_slice, render_drilldown


def draw(ctx: PageContext) -> None:
    """The Slices page."""
    sel = ctx.selection
    snap = ctx.full_audit()
    st.caption(md(search_caption(snap.slices, sel.spec, len(snap.findings or ()))))
    if snap.slices.note:
        st.info(md(snap.slices.note))
    st.subheader("Findings, ranked")
    st.caption(f"{snap.slices.rule} Need: better data when, without the rows a data-quality signal flags, the slice "
               "is no longer materially worse; else the model (a fired signal is reported beside it). Explains: slices "
               "it describes better.")
    plan = load_plan(sel.spec, sel.row_filter, stamp_of(sel.spec), chosen_budget())
    st.page_link("pages/8_Data_plan.py", icon=":material/playlist_add_check:",
                 label=f"Data plan: each finding's place in the plan of {plan.budget:,} labelled rows "
                       f"({plan.allocated:,} planned over {len(plan.items)} open question(s)); open the plan")
    sensitive_only = st.toggle("Only slices that involve a sensitive feature", key="fw.sl.sensitive",
                               help="Slices of ordinary features (region, channel, …) are about accuracy; the ones "
                                    "naming a sensitive feature are about whom the model fails.")
    show_table(findings_table(snap, need_filter(snap), plan_places(snap, plan), sensitive_only), FINDING_COLUMNS,
               height=420)
    with st.expander(f"Real but small: {snap.slices.small:,} slices significantly but only slightly worse"):
        show_table(small_table(snap.slices), FINDING_COLUMNS, height=300)
    if st.toggle("Show inconclusive slices too (worse than the rest, but it could be chance)",
                 key="fw.sl.inconclusive"):
        show_table(inconclusive_table(snap.slices, sel.spec.policy.fdr), FINDING_COLUMNS, height=300)
    st.subheader("Drill down")
    with guard():  # a bad hand-made slice is an error line here; the findings above stay
        slice_ = pick_slice(ctx, snap)
        if slice_ is not None:
            render_drilldown(ctx, slice_)


run_page("Slices", ":material/troubleshoot:", draw, permission="drill_down")
