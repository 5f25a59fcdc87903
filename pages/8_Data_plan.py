"""Data plan: spend a labelling budget where it settles the most, and the rows to label or re-check."""

import streamlit as st

from fairwatch.metrics.discovery.plan import allocation_chart
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import PageContext, run_page, show_chart, show_table
from fairwatch.pages.components.loaders import stamp_of
from fairwatch.pages.components.plan_view import (DEFAULT_BUDGET, PLAN_COLUMNS, load_plan, load_queue, remember_budget,
                                        render_downloads, show_queue_rows)


def draw(ctx: PageContext) -> None:
    """The Data plan page."""
    sel = ctx.selection
    key = (sel.spec, sel.row_filter, stamp_of(sel.spec))
    c1, c2, c3 = st.columns(3)
    budget = c1.slider("Labelling budget (rows)", 0, 5000, DEFAULT_BUDGET, step=10, key="fw.plan.budget",
                       help="The Slices page and the next snapshot (Audit export) use the plan of this budget")
    remember_budget(budget)
    recheck = c2.number_input("Rows to re-check", 0, 5000, 100, step=10, key="fw.plan.recheck",
                              help="Candidate label errors in slices that need better data")
    share = c3.slider("Share nearest the threshold", 0.0, 1.0, 0.2, step=0.05, key="fw.plan.share",
                      help="Uncertainty sampling; 0 keeps the sample strictly random (unbiased estimate)")
    plan = load_plan(*key, int(budget))
    st.caption(f"Objective: {md(plan.objective)}.")
    for note in plan.notes:
        st.info(md(note))
    st.subheader(f"Allocation: {plan.allocated:,} of {plan.budget:,} rows")
    if plan.items:
        st.caption("Bars: rows planned per open question; red tick: rows that would settle it (80% power at the "
                   "Benjamini-Hochberg level its verdict needs, not an unadjusted 0.05).")
        show_chart(allocation_chart(plan))
        show_table(plan.table(), PLAN_COLUMNS)
    for group, why in plan.skipped:
        st.caption(f"Not planned — {md(group)}: {md(why)}")
    queue = load_queue(*key, int(budget), int(recheck), float(share))
    st.subheader(f"Queue: {len(queue.rows):,} rows")
    st.caption(", ".join(f"{v:,} {md(k.replace('_', ' '))}" for k, v in queue.counts().items()) or "empty")
    for note in queue.notes:
        st.info(md(note))
    # What the access log records of this page: the view and the plan's settings.
    view = {"view": sel.row_filter.describe(), "source": sel.spec.source.describe(), "budget": int(budget),
            "recheck": int(recheck), "uncertain_share": float(share)}
    show_queue_rows(queue, view)
    render_downloads(plan, queue, view)


run_page("Data plan", ":material/playlist_add_check:", draw)
