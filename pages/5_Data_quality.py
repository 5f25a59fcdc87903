"""Data quality: missing values, conflicting duplicates and suspected label errors (regression: outlying labels)
per group and per finding."""

import streamlit as st

from fairwatch.metrics.presentation.charts import REST_COLOUR, versus_chart
from fairwatch.metrics.presentation.quality_views import (DETAIL_SIGNALS, FINDINGS_SCOPE, HEADLINE_SIGNALS, fired_lines, quality_intro,
                                   label_rule_text, quality_points, quality_rows, quality_scopes, quality_table,
                                   scope_colours, scope_slices)
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import PageContext, run_page, show_chart, show_table
from fairwatch.pages.components.slice_view import QUALITY_COLUMNS


def draw(ctx: PageContext) -> None:
    """The Data quality page."""
    sel = ctx.selection
    snap = ctx.full_audit()
    quality, policy = snap.quality, sel.spec.policy
    st.caption(quality_intro(sel.spec.task, policy.ratio_high, policy.fdr))
    st.markdown(md(label_rule_text(quality)))
    scope = st.selectbox("Show", quality_scopes(sel.spec, sel.features), key="fw.dq.scope",
                         format_func=lambda s: s if s == FINDINGS_SCOPE else f"Groups of {s}")
    slices = scope_slices(quality, scope)
    if not slices:
        st.info("Nothing to show here: the search found no finding to check." if scope == FINDINGS_SCOPE
                else f"No group of {md(scope)} was checked.")
        return
    rows = quality_rows(quality.rows, slices)
    colours = scope_colours(scope, rows["group"].unique().tolist())
    st.subheader("Signals per group against all other rows")
    st.caption("Filled point: the group (in its colour on every page) or finding; hollow grey: all other rows; "
               "lines: 95% intervals; a large diamond: the signal fired. Hover for n.")
    show_chart(versus_chart(quality_points(rows, colours, REST_COLOUR), "Signal", across=True))
    everything = quality_rows(quality.rows, slices, HEADLINE_SIGNALS + DETAIL_SIGNALS)
    fired = fired_lines(everything)
    st.subheader(f"Fired signals ({len(fired)})")
    st.markdown("\n".join(f"- {t}" for t in fired) or "None: no signal is significantly and materially higher here.")
    st.subheader("The numbers")
    show_table(quality_table(rows), QUALITY_COLUMNS)
    with st.expander("Per column, and label errors per label"):
        show_table(quality_table(quality_rows(quality.rows, slices, DETAIL_SIGNALS)), QUALITY_COLUMNS)
    for note in quality.notes:
        st.caption(md(note))


run_page("Data quality", ":material/rule:", draw, permission="small_cells")
