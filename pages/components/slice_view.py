"""The Slices page's sections and the Overview's findings board: choose a slice, draw its drill-down.

The slice search takes seconds (more on big data). The Overview starts it on a worker thread
(`loaders.start_search`) and draws its verdicts at once; the findings board shows a progress line,
polled by a fragment, until the search is done, then the findings. A search run in the script itself
would hold the session until it returns (Streamlit can only stop a run between its own calls).
"""

from __future__ import annotations

import hashlib
import math
import time

import streamlit as st

from fairwatch.connectors.drilldown import PAGE_SIZE
from fairwatch.connectors.task_drilldown import TaskSliceAnalysis
from fairwatch.metrics.presentation.charts import (REST_COLOUR, SLICE_COLOUR, confusion_heatmap, distribution_chart,
                                                   histogram_chart, versus_chart)
from fairwatch.metrics.policy.overview import NEED_LABELS, NEEDS, drilldown_scope_note, findings_by_need
from fairwatch.metrics.presentation.quality_views import (DETAIL_SIGNALS, HEADLINE_SIGNALS, fired_lines,
                                   quality_points, quality_rows, quality_table)
from fairwatch.metrics.presentation.slice_views import (BUILT, FOUND, REST_SIDE, SLICE_SIDE, SliceAnalysis,
                                                        analysis_lines, board_items, built_slice, confusion_table,
                                                        distribution_points, drill_options, feature_choices,
                                                        metric_versus_points, option_texts)
from fairwatch.metrics.audit.snapshot import AuditSnapshot
from fairwatch.pages.components.auth import can, log_access, md
from fairwatch.pages.components.frame import PageContext, show_chart, show_table
from fairwatch.pages.components.loaders import (example_rows, load_feature_values, load_slice_analysis, stamp_of,
                                      start_search)

BUILT_KEY = "fw.sl.built"
_LOGGED = "fw.sl.rows_logged"


def _count_columns(*names: str) -> dict:
    """Column formats for whole counts (thousands separators)."""
    return {n: st.column_config.NumberColumn(n, format="localized") for n in names}


FINDING_COLUMNS = _count_columns("n", "Additional rows") | {
    "What it needs": st.column_config.TextColumn("What it needs", width="large")}
QUALITY_COLUMNS = _count_columns("n", "Other rows n")


def render_findings_board(ctx: PageContext) -> None:
    """The Overview's findings by need: started in the background on the first visit, drawn when ready."""
    sel = ctx.selection
    key = (sel.spec, sel.row_filter, stamp_of(sel.spec))
    job, started = start_search(*key)
    if not job.done():
        _board_progress(key, started)
        return
    snap = ctx.full_audit()  # as this role may see it: a viewer's board leaves out findings on small cells
    board = findings_by_need(board_items(snap.findings))
    st.caption(f"{md(board.message.capitalize())} among {snap.slices.evaluated:,} slices searched; each line: the slice's "
               f"error with its n against the rest, its q-value, and the labelled rows that would decide it. "
               f"{snap.slices.rule}")
    for col, (need, items) in zip(st.columns(3), board.by_need):
        col.markdown(f"**{NEED_LABELS[need]}** ({len(items)})\n" + "\n".join(f"- {md(t)}" for t in items[:10])
                     + (f"\n- … and {len(items) - 10} more" if len(items) > 10 else ""))
    if can("drill_down"):
        st.page_link("pages/4_Slices.py", label="Drill into the findings on the Slices page",
                     icon=":material/troubleshoot:")


@st.fragment(run_every=1.0)
def _board_progress(key: tuple, started: float) -> None:
    """While the background search runs: a progress line, polled each second; the whole page reruns when done."""
    job, _ = start_search(*key)
    if job.done():
        st.rerun()  # the board replaces this line
    elapsed = time.monotonic() - started
    st.progress(min(0.95, elapsed / (elapsed + 10.0)),
                text=f"Searching every slice and checking data quality in the background ({elapsed:.0f} s so far); "
                     f"the findings appear here when ready.")


def pick_slice(ctx: PageContext, snap: AuditSnapshot) -> tuple | None:
    """The slice to drill into: one the search found (or an inconclusive one), or one defined by hand."""
    mode = st.radio("Drill into", [FOUND, BUILT], horizontal=True, key="fw.sl.mode")
    if mode == BUILT:
        return _build_slice(ctx)
    options = drill_options(snap, bool(st.session_state.get("fw.sl.inconclusive")))
    if not options:
        st.info("No finding to drill into: show the inconclusive slices above, or define a slice by hand.")
        return None
    texts = option_texts(snap, options)
    return st.selectbox("Slice (rank by SliceLine score · need)", options, format_func=lambda s: texts.get(s, str(s)),
                        key="fw.sl.pick")


def _build_slice(ctx: PageContext) -> tuple | None:
    """The filter builder: feature = value predicates from the data's values; the slice once asked for."""
    sel = ctx.selection
    choices = feature_choices(load_feature_values(sel.spec, sel.row_filter, stamp_of(sel.spec)), sel.spec)
    feats = st.multiselect("Features of the slice", list(choices), key="fw.sl.build.features",
                           help="Each chosen feature adds a condition feature = value; the slice is the rows that "
                                "meet all of them.")
    chosen = {}
    for col, feat in zip(st.columns(3) * (1 + len(feats) // 3), feats):
        counts = dict(choices[feat])
        chosen[feat] = col.selectbox(md(feat), list(counts), key=f"fw.sl.build.value.{feat}",
                                     format_func=lambda v, c=counts: f"{v} ({c[v]:,} rows)")
    if st.button("Analyse this slice", key="fw.sl.build.go", type="primary"):
        st.session_state[BUILT_KEY] = built_slice(chosen, sel.spec)
    return st.session_state.get(BUILT_KEY)


def render_drilldown(ctx: PageContext, slice_: tuple) -> None:
    """One slice against the rest: need, metrics, confusion matrix, quality signals, other features, rows."""
    if not can("drill_down"):
        st.info("Your role does not include the drill-down into slices; an analyst's does.")
        return
    sel = ctx.selection
    if note := drilldown_scope_note(sel.spec.task):
        _render_task_drilldown(ctx, slice_, note)
        return
    a = load_slice_analysis(sel.spec, sel.row_filter, slice_, stamp_of(sel.spec))
    colour = SLICE_COLOUR
    st.markdown(f"#### {md(a.label)}\n" + "\n".join(f"- {line}" for line in analysis_lines(a)))  # lines: Markdown
    st.markdown("**Its metrics against the rest of the data**")
    st.caption("Filled point: the slice; hollow grey: all other rows; lines: 95% intervals; a diamond marks a gap "
               "that is significant (and, for the headline metrics, outside the policy band). Hover for n.")
    show_chart(versus_chart(metric_versus_points(a, colour, REST_COLOUR), "Verdict", labels=False))
    show_table(confusion_table(a), _count_columns("True positives", "False positives", "False negatives",
                                                  "True negatives", "n (labelled, with a decision)"))
    _quality_and_values(a)
    _example_rows(ctx, a.slice, a.label, a.rows)


def _quality_and_values(a: SliceAnalysis | TaskSliceAnalysis) -> None:
    """The slice's data-quality signals (the audit's, or counted now) and its other features against the rest."""
    st.markdown("**Data-quality signals**")
    st.caption(f"Signals {md(a.quality_note)}. {md(a.label_rule[:1].upper() + a.label_rule[1:])}.")
    fired = fired_lines(quality_rows(a.quality, [a.slice], HEADLINE_SIGNALS + DETAIL_SIGNALS))
    st.markdown("\n".join(f"- {t}" for t in fired) or "No data-quality signal fired for this slice.")
    rows = quality_rows(a.quality, [a.slice])
    show_chart(versus_chart(quality_points(rows, {a.label: SLICE_COLOUR}, REST_COLOUR), "Signal", labels=False))
    with st.expander("Every signal of this slice, per column"):
        show_table(quality_table(quality_rows(a.quality, [a.slice], HEADLINE_SIGNALS + DETAIL_SIGNALS)),
                   QUALITY_COLUMNS)
    st.markdown("**Its other features against the rest**")
    st.caption("Each value's share of the slice's rows (blue) and of the rest's (grey), with 95% intervals (the most "
               "common values of each feature); a value far more common in the slice points at where it comes from.")
    show_chart(distribution_chart(distribution_points(a.values), SLICE_COLOUR, (SLICE_SIDE, REST_SIDE)))


def _render_task_drilldown(ctx: PageContext, slice_: tuple, note: str) -> None:
    """A regression or multiclass slice: its error signal's test and need, its metrics against the rest, its quality
    signals, other features and example rows."""
    sel = ctx.selection
    st.info(note)
    a = load_slice_analysis(sel.spec, sel.row_filter, slice_, stamp_of(sel.spec))
    st.markdown(f"#### {md(a.label)}\n" + "\n".join(f"- {line}" for line in analysis_lines(a)))  # lines: Markdown
    st.markdown("**Its metrics against the rest of the data**")
    st.caption("Each metric in the slice and in all other rows with its 95% interval; the difference (slice minus "
               "rest) with its interval, the test's Benjamini-Hochberg q-value and the policy verdict.")
    show_table(a.table(), _count_columns("n"))
    if a.task == "multiclass":
        show_chart(versus_chart(a.versus_points(SLICE_COLOUR, REST_COLOUR), "Verdict", labels=False))
        st.markdown("**The slice's confusion matrix**")
        show_chart(confusion_heatmap(a.confusion, a.classes))
    else:
        st.markdown("**Its errors (prediction - label) against the rest**")
        show_chart(histogram_chart(a.errors, [SLICE_SIDE, REST_SIDE], "Error (prediction - label)"))
    _quality_and_values(a)
    _example_rows(ctx, a.slice, a.label, a.rows)


def _example_rows(ctx: PageContext, slice_: tuple, label: str, rows: int) -> None:
    """A page of the slice's rows, hidden columns left out; each page shown is written to the access log first."""
    st.markdown("**Example rows**")
    if not can("example_rows"):
        st.info("Your role does not include example rows; an analyst's does.")
        return
    sel = ctx.selection
    hidden = ", ".join(sel.spec.hidden_columns) or "none"
    if not st.toggle("Show example rows (each page you open is written to the access log)", key="fw.sl.rows.show"):
        return
    pages = max(1, math.ceil(rows / PAGE_SIZE))
    tag = hashlib.sha1(repr(slice_).encode()).hexdigest()[:10]
    page = st.pagination(pages, key=f"fw.sl.rows.page.{tag}", max_visible_pages=7)
    seen = st.session_state.setdefault(_LOGGED, set())
    if (slice_, sel.row_filter, page) not in seen:
        log_access("example_rows", f"slice {label}", {"page": page, "view": sel.row_filter.describe(),
                                                      "source": sel.spec.source.describe()})
        seen.add((slice_, sel.row_filter, page))
    show_table(example_rows(sel.spec, sel.row_filter, slice_, page, stamp_of(sel.spec)), columns={})
    first = (page - 1) * PAGE_SIZE + 1
    st.caption(f"Rows {first:,}–{min(first + PAGE_SIZE - 1, rows):,} of {rows:,} (labelled first, then newest). "
                f"Hidden by the config ([privacy] hide_columns): {md(hidden)}. Columns that look like personal "
                f"data (names, dates of birth, e-mail, phone, document numbers) are hidden too unless "
                f"[privacy] show_columns lists them.")


def need_filter(snap: AuditSnapshot) -> list[str]:
    """The needs to list, chosen with pills (all by default)."""
    counts = {n: sum(f.need == n for f in snap.findings or ()) for n in NEEDS}
    picked = st.pills("Needs", list(NEEDS), selection_mode="multi", default=list(NEEDS), key="fw.sl.needs",
                      format_func=lambda n: f"{NEED_LABELS[n]} ({counts[n]})")
    return list(picked) or list(NEEDS)
