"""The Data plan page's cached loaders and sections: the plan for a budget, the queue, the downloads."""

from __future__ import annotations

import streamlit as st

from connectors.queue import LabelQueue, build_queue, label_studio_json, plan_csv, plan_pools, queue_csv
from metrics.plan import DataPlan, build_plan
from metrics.spec import AuditSpec, RowFilter
from pages.components.loaders import Stamp, get_source, load_full_audit

PLAN_COLUMNS = {
    "allocated": st.column_config.NumberColumn("Rows planned", format="localized"),
    "additional_rows": st.column_config.NumberColumn("Rows to settle it", format="localized"),
    "available": st.column_config.NumberColumn("Unlabelled rows", format="localized"),
    "ci_width": st.column_config.NumberColumn("Interval width now", format="%.3f"),
    "expected_ci_width": st.column_config.NumberColumn("Expected width after", format="%.3f"),
}


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


def render_downloads(plan: DataPlan, queue: LabelQueue) -> None:
    """Plan CSV, queue CSV and the Label Studio import file."""
    c1, c2, c3 = st.columns(3)
    c1.download_button("Plan (CSV)", plan_csv(plan), "data_plan.csv", "text/csv", key="fw.plan.dl.plan")
    c2.download_button("Queue (CSV)", queue_csv(queue), "label_queue.csv", "text/csv", key="fw.plan.dl.queue")
    c3.download_button("Label Studio tasks (JSON)", label_studio_json(queue), "label_studio_tasks.json",
                       "application/json", key="fw.plan.dl.ls",
                       help='For a labeling config with <Text name="text" value="$text"/> and '
                            '<Choices name="label" toName="text">; re-checks carry the recorded label as a prediction')
