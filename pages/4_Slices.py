"""Slices: where the model errs most, what each problem needs, and a drill-down into any slice."""

import streamlit as st

from metrics.slice_views import findings_table, inconclusive_table, search_caption
from pages.components.frame import PageContext, guard, run_page, show_table
from pages.components.loaders import load_full_audit, stamp_of
from pages.components.slice_view import FINDING_COLUMNS, need_filter, pick_slice, render_drilldown


def draw(ctx: PageContext) -> None:
    """The Slices page."""
    sel = ctx.selection
    snap = load_full_audit(sel.spec, sel.row_filter, stamp_of(sel.spec))
    st.caption(search_caption(snap.slices, sel.spec, len(snap.findings or ())))
    if snap.slices.note:
        st.info(snap.slices.note)
    st.subheader("Findings, ranked")
    st.caption("A finding is a slice significantly worse than the rest that no broader finding explains. Need: "
               "better data when a data-quality signal fired for it; more data when its gap cannot be decided yet "
               "(with the labelled rows that would decide it); else the model. Explains: worse slices inside it.")
    show_table(findings_table(snap, need_filter(snap)), FINDING_COLUMNS, height=420)
    if st.toggle("Show inconclusive slices too (worse than the rest, but it could be chance)",
                 key="fw.sl.inconclusive"):
        show_table(inconclusive_table(snap.slices, sel.spec.policy.fdr), FINDING_COLUMNS, height=300)
    st.subheader("Drill down")
    with guard():  # a bad hand-made slice is an error line here; the findings above stay
        slice_ = pick_slice(ctx, snap)
        if slice_ is not None:
            render_drilldown(ctx, slice_)


run_page("Slices", ":material/troubleshoot:", draw, permission="drill_down")
