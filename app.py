"""Overview: does the model meet the fairness policy, for whom not, and how sure are we."""

import streamlit as st

from fairwatch.metrics.presentation.charts import worst_chart
from fairwatch.metrics.monitoring.followup import counts_line
from fairwatch.metrics.presentation.formats import explain, fmt_pct, fmt_ratio, headline_metrics
from fairwatch.metrics.policy.overview import GLOSSARY, coverage, plain_summary, status_icon, supported_metrics, task_scope_note
from fairwatch.metrics.presentation.views import worst_points, worst_table
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import PageContext, guard, run_page, show_chart, show_small_table, show_table
from fairwatch.pages.components.loaders import load_overview, load_since_last, load_trend_arrows, stamp_of
from fairwatch.pages.components.slice_view import render_findings_board


def draw(ctx: PageContext) -> None:
    """The Overview page."""
    snap, sel = ctx.snapshot(), ctx.selection
    policy = snap.spec.policy
    verdicts, worst, colours = load_overview(sel.spec, sel.row_filter, stamp_of(sel.spec), sel.features, ctx.role)
    cov = coverage(snap.data)
    arrows = load_trend_arrows(sel.spec, sel.row_filter, stamp_of(sel.spec), sel.features, ctx.role)
    cols = st.columns(4)
    cols[0].metric("Decisions audited", f"{cov.rows:,}", help="Rows of the source after the sidebar's filters")
    cols[1].metric("With a known outcome", f"{cov.labelled:,}", help="Labelled rows: error rates use these")
    cols[2].metric("Outcome not known yet", f"{cov.unlabelled:,}", help="Unlabelled rows: counted in shares only")
    cols[3].metric("Label coverage", fmt_pct(cov.share), help=f"{cov.labelled:,} of {cov.rows:,} rows. Arrow: "
                   f"{md(arrows.coverage.detail or 'no windows to compare')}", **arrows.coverage.as_delta())
    st.subheader("In plain words")
    st.markdown("\n".join(f"- {md(line)}" for line in
                          plain_summary(snap.data, verdicts, worst, policy, snap.spec.label,
                                        snap.spec.prediction or f"{snap.spec.score} ≥ {snap.spec.threshold}",
                                        snap.spec.task)))
    st.subheader("Verdict per sensitive feature")
    for col, v in zip(st.columns(min(max(len(verdicts), 1), 3)) * (1 + len(verdicts) // 3), verdicts):
        with col.container(border=True):
            st.markdown(f"### {status_icon(v.status)} {md(v.feature)}\n**{md(v.label)}** · {v.groups} groups\n\n"
                        f"{md(v.where)}")
            st.markdown("\n".join(f"- {md(r)}" for r in v.reasons))
            if v.small_intersection_cells:
                st.caption(f"{v.small_intersection_cells} intersection group(s) with it are too small to judge.")
    st.subheader("Largest gaps")
    if worst:
        st.metric(md(arrows.gap_label), fmt_ratio(worst[0].ratio), help="The ratio over the whole view. Arrow: the "
                  f"two latest windows where both groups have enough rows: {md(arrows.gap.detail or '—')}",
                  **arrows.gap.as_delta())
        show_chart(lambda: worst_chart(worst_points(worst, colours), policy.ratio_low, policy.ratio_high),
                   key=ctx.chart_key("overview.worst"))
        show_small_table(worst_table(worst))
        st.caption("Significant gaps first. A flagged gap's interval is adjusted for the number of gaps flagged "
                   "among all comparisons (false-coverage-rate, Benjamini–Yekutieli), so it agrees with the verdict; "
                   "the others show their plain 95% interval.")
    else:
        st.info("No gap to show: every group is the reference or too small to compare.")
    # Filled only once opened (a rerun from the cache): a new tab has seven fewer Markdown blocks to parse and draw.
    glossary = st.expander("What do these metrics mean?", key="fw.ov.glossary", on_change="rerun")
    if glossary.open:
        with glossary:
            for m in headline_metrics(snap.spec.task, supported_metrics(snap.groups.rows)):
                e = explain(m)
                st.markdown(f"**{md(e.name)}** — {e.plain}. *{e.question}*")
            st.markdown("\n".join(f"- **{k}**: {v}" for k, v in GLOSSARY.items()))
    st.subheader("Findings by need (more data / better data / model)")
    if note := task_scope_note(snap.spec.task):
        st.info(note)
        return
    with guard():  # a failing search is an error line here; the verdicts above stay
        render_findings_board(ctx)
    st.subheader("Since the last snapshot")
    with guard():  # after the board: a search run there is followed up here in the same run
        since = load_since_last(sel.spec, sel.row_filter, stamp_of(sel.spec), ctx.role)
        if since.items:
            st.markdown(md(counts_line(since.items)))
            show_table(since.table(), columns={}, height=min(300, 40 + 35 * len(since.items)))
        st.caption(md(since.caption()))
    st.caption(f"Audited {md(snap.created_at)} in {snap.duration_seconds or 0:.2f} s · "
               f"{md(snap.source_description)} · {md(snap.row_filter.describe())}")


run_page("Overview", ":material/balance:", draw)
