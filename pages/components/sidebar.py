"""The sidebar every page draws: source, model version, time window, sensitive features.

The selection lives in a session store (so it survives page switches, which drop widget state) and is
mirrored into the URL on every run (so a view can be shared as a link; Streamlit drops query parameters
on a page switch, and `bind="query-params"` binds them per page, so neither alone is enough here).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import streamlit as st

from fairwatch.connectors.dashboard import FilterOptions
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.loaders import load_filter_options, stamp_of
from fairwatch.pages.components.state import CONFIG_PARAM, active_spec, config_name, generation

STORE = "fw.selection"
ALL_VERSIONS = "all versions"
_W_VERSION, _W_WINDOW, _W_FEATURES = "fw.w.model_version", "fw.w.window", "fw.w.features"


@dataclass(frozen=True)
class Selection:
    """What the user chose in the sidebar, ready to key the caches."""

    spec: AuditSpec
    row_filter: RowFilter
    features: tuple[str, ...]


def _date(text: str | None) -> dt.date | None:
    """An ISO date (or timestamp) string as a date; None when absent or malformed."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def _initial_store() -> dict:
    """The selection of a new session: from the URL of a shared link, else everything."""
    qp = st.query_params
    feats = qp.get("features")
    return {"model_version": qp.get("model_version"), "from": _date(qp.get("from")), "to": _date(qp.get("to")),
            "features": [f for f in feats.split(",") if f] if feats else None}


def _sanitize(store: dict, spec: AuditSpec, opts: FilterOptions) -> dict:
    """Drop stored choices the active source does not have (a new source, a stale link)."""
    out = dict(store)
    if out.get("model_version") not in opts.model_versions:
        out["model_version"] = None
    lo, hi = _date(opts.time_min), _date(opts.time_max)
    if lo is None or hi is None:
        out["from"] = out["to"] = None
    else:
        start = out.get("from") or lo
        end = out.get("to") or hi
        # A window that misses the source's span (a stale link) is no window: clamping it would leave
        # one day at an edge and audit almost nothing without saying so.
        if start > hi or end < lo or start > end:
            start, end = lo, hi
        out["from"], out["to"] = max(start, lo), min(end, hi)
    feats = [f for f in (out.get("features") or []) if f in spec.sensitive]
    out["features"] = feats or list(spec.sensitive)
    return out


def _on_version() -> None:
    """Widget → store: model version."""
    value = st.session_state[_W_VERSION]
    st.session_state[STORE]["model_version"] = None if value == ALL_VERSIONS else value


def _on_window() -> None:
    """Widget → store: time window (ignored until both ends are picked)."""
    value = st.session_state[_W_WINDOW]
    if isinstance(value, (tuple, list)) and len(value) == 2:
        st.session_state[STORE]["from"], st.session_state[STORE]["to"] = value


def _on_features() -> None:
    """Widget → store: sensitive features to show."""
    st.session_state[STORE]["features"] = list(st.session_state[_W_FEATURES])


def _row_filter(store: dict, opts: FilterOptions) -> RowFilter:
    """The store as a RowFilter; the full time span is no filter, so it shares the 'all rows' cache entry."""
    lo, hi = _date(opts.time_min), _date(opts.time_max)
    start, end = store.get("from"), store.get("to")
    full = start is None or (start <= lo and end >= hi) if lo and hi else True
    return RowFilter(
        model_version=store.get("model_version"),
        time_from=None if full else f"{start.isoformat()} 00:00:00",
        time_to=None if full else f"{end.isoformat()} 23:59:59.999999",
    )


def _write_url(store: dict, spec: AuditSpec, opts: FilterOptions, row_filter: RowFilter) -> None:
    """Mirror the selection into the URL (only what differs from the defaults, so links stay short)."""
    params: dict[str, str] = {}
    if config_name():
        params[CONFIG_PARAM] = config_name()
    if store.get("model_version"):
        params["model_version"] = store["model_version"]
    if row_filter.time_from:
        params["from"], params["to"] = store["from"].isoformat(), store["to"].isoformat()
    if list(store["features"]) != list(spec.sensitive):
        params["features"] = ",".join(store["features"])
    if dict(st.query_params) != params:
        st.query_params.from_dict(params)


def render_sidebar() -> Selection:
    """Draw the shared sidebar and return the selection (raises FairwatchError if the source is unusable)."""
    bar = st.sidebar
    spec = active_spec()
    bar.caption(f"**Source:** {md(spec.source.describe())}")
    opts = load_filter_options(spec, stamp_of(spec))
    gen = generation()
    if STORE not in st.session_state:
        st.session_state[STORE] = _initial_store() | {"generation": gen}
    elif st.session_state[STORE].get("generation") != gen:
        # A spec was just made active: its view is the audit the check ran, not the previous source's.
        st.session_state[STORE] = {"generation": gen}
    store = _sanitize(st.session_state[STORE], spec, opts)
    st.session_state[STORE] = store
    # Seed the widgets from the store on every run: a page switch would otherwise reset them.
    if opts.model_versions:
        st.session_state[_W_VERSION] = store["model_version"] or ALL_VERSIONS
        bar.selectbox("Model version", [ALL_VERSIONS, *opts.model_versions], key=_W_VERSION, on_change=_on_version,
                      help="Audit only the decisions of one model version.")
    if store.get("from") is not None:
        st.session_state[_W_WINDOW] = (store["from"], store["to"])
        bar.date_input("Time window", min_value=_date(opts.time_min), max_value=_date(opts.time_max),
                       key=_W_WINDOW, on_change=_on_window, format="YYYY-MM-DD",
                       help="Audit only decisions made between these dates (inclusive).")
    st.session_state[_W_FEATURES] = store["features"]
    bar.multiselect("Sensitive features to show", list(spec.sensitive), key=_W_FEATURES, on_change=_on_features,
                    help="Groups and intersections of these features are shown; all are audited.")
    row_filter = _row_filter(store, opts)
    _write_url(store, spec, opts, row_filter)
    bar.caption(f"Showing: {md(row_filter.describe())}. The address bar holds this view: copy it to share.")
    return Selection(spec=spec, row_filter=row_filter, features=tuple(store["features"]))
