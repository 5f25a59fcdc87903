"""The active spec of a session: the one every page audits, chosen on the Data sources page."""

from __future__ import annotations

import streamlit as st

from fairwatch.connectors.active import default_spec, saved_config_spec
from fairwatch.metrics.audit.spec import AuditSpec

ACTIVE = "fw.active_spec"
CONFIG_NAME = "fw.config_name"
CONFIG_PARAM = "config"
# Bumped each time a spec is made active: the sidebar starts a fresh view (all rows, all features) on a
# new generation, so nothing chosen for the previous source can narrow the new audit silently.
GENERATION = "fw.active_generation"


def active_spec() -> AuditSpec:
    """The session's spec: set on the Data sources page, else `?config=` of a shared link, else the default."""
    if ACTIVE not in st.session_state:
        name = st.query_params.get(CONFIG_PARAM)
        # A failure here raises before anything is stored, so the next run tries again.
        spec = saved_config_spec(name) if name else default_spec()
        st.session_state[ACTIVE] = spec
        st.session_state[CONFIG_NAME] = name or None
    return st.session_state[ACTIVE]


def set_active_spec(spec: AuditSpec, config_name: str | None = None, *, fresh_view: bool = True) -> None:
    """Make a spec the one all pages use (and, when saved, the `config` of shared links).

    With `fresh_view` the sidebar's view restarts at all rows and all sensitive features: exactly the
    audit the Data sources page just checked. Saving the same spec keeps the view.
    """
    st.session_state[ACTIVE] = spec
    st.session_state[CONFIG_NAME] = config_name
    if fresh_view:
        st.session_state[GENERATION] = generation() + 1


def generation() -> int:
    """How many times a spec was made active in this session (0: the start-up spec)."""
    return int(st.session_state.get(GENERATION, 0))


def config_name() -> str | None:
    """The saved config behind the active spec, when it has one."""
    return st.session_state.get(CONFIG_NAME)
