"""The Data plan page's cached loaders and sections: the plan for a budget, the queue, the downloads."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from fairwatch.connectors.queue import LabelQueue, build_queue, label_studio_json, plan_csv, plan_pools, queue_csv
from fairwatch.metrics.discovery.plan import DataPlan, build_plan
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter
from fairwatch.pages.components.auth import log_access, logged
from fairwatch.pages.components.frame import show_table
from fairwatch.pages.components.loaders import Stamp, get_source, load_full_audit

_QUEUE_LOGGED = "fw.plan.rows_logged"
# The budget last chosen on the Data plan page, kept outside the slider's own key: Streamlit drops a
# widget's state on pages that do not draw it, and the Slices and Audit export pages use the plan too.
_CHOSEN_BUDGET = "fw.plan.chosen_budget"
DEFAULT_BUDGET = 200

PLAN_COLUMNS = {
    "allocated": st.column_config.NumberColumn("Rows planned", format="localized"),
    "additional_rows": st.column_config.NumberColumn("Rows to settle it", format="localized"),
    "available": st.column_config.NumberColumn("Unlabelled rows", format="localized"),
    "ci_width": st.column_config.NumberColumn("Interval width now", format="%.3f"),
    "expected_ci_width": st.column_config.NumberColumn("Expected width after", format="%.3f"),
}


def remember_budget(budget: int) -> None:
    """Keep the Data plan page's budget for the other pages' plan (Slices, Audit export)."""
    st.session_state[_CHOSEN_BUDGET] = int(budget)


def chosen_budget() -> int:
    """The budget last chosen on the Data plan page, else the page's default."""
    return int(st.session_state.get(_CHOSEN_BUDGET, DEFAULT_BUDGET))


@st.cache_data(max_entries=16, show_spinner="Counting unlabelled rows per slice…")
def load_pools(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp) -> dict:
    """Unlabelled rows of every slice the plan could fund."""
    return plan_pools(load_full_audit(spec, row_filter, stamp), get_source(spec.source, stamp))


@st.cache_data(max_entries=32, show_spinner=False)
def load_plan(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp, budget: int) -> DataPlan:
    """The data plan of a budget (pure once the pools are counted)."""
    return build_plan(load_full_audit(spec, row_filter, stamp), budget, load_pools(spec, row_filter, stamp))


@st.cache_data(max_entries=16, show_spinner="Picking the rows to label…")
def load_queue(spec: AuditSpec, row_filter: RowFilter, stamp: Stamp, budget: int, recheck_rows: int,
               uncertain_share: float) -> LabelQueue:
    """The labelling queue of a plan."""
    snap = load_full_audit(spec, row_filter, stamp)
    return build_queue(snap, load_plan(spec, row_filter, stamp, budget), get_source(spec.source, stamp),
                       recheck_rows=recheck_rows, uncertain_share=uncertain_share)


def show_queue_rows(queue: LabelQueue, view: Mapping[str, Any], shown: int = 200) -> None:
    """The first rows of the queue (example rows of the data), written to the access log first, once per view."""
    if queue.rows.empty:
        show_table(queue.rows, {})
        return
    seen = st.session_state.setdefault(_QUEUE_LOGGED, set())
    key = tuple(sorted((k, str(v)) for k, v in view.items()))
    if key not in seen:
        log_access("example_rows", f"labelling queue: first {min(shown, len(queue.rows)):,} of "
                                   f"{len(queue.rows):,} rows", dict(view))
        seen.add(key)
    show_table(queue.rows.head(shown), {})


def render_downloads(plan: DataPlan, queue: LabelQueue, view: Mapping[str, Any]) -> None:
    """Plan CSV, queue CSV and the Label Studio import file, each written to the access log when clicked."""
    c1, c2, c3 = st.columns(3)
    # Made on the click, after the access-log line (auth.logged): no line, no file; no rerun either.
    c1.download_button("Plan (CSV)", logged("export", "download data_plan.csv", lambda: plan_csv(plan), view),
                       "data_plan.csv", "text/csv", key="fw.plan.dl.plan", on_click="ignore")
    c2.download_button("Queue (CSV)", logged("export", "download label_queue.csv", lambda: queue_csv(queue), view),
                       "label_queue.csv", "text/csv", key="fw.plan.dl.queue", on_click="ignore")
    c3.download_button("Label Studio tasks (JSON)",
                       logged("export", "download label_studio_tasks.json", lambda: label_studio_json(queue), view),
                       "label_studio_tasks.json", "application/json", key="fw.plan.dl.ls", on_click="ignore",
                       help='For a labeling config with <Text name="text" value="$text"/> and '
                            '<Choices name="label" toName="text">; re-checks carry the recorded label as a prediction')
