"""The active spec of a session: the one every page audits, chosen on the Data sources page."""

from __future__ import annotations

import streamlit as st

from connectors.active import default_spec, saved_config_spec
from metrics.spec import AuditSpec

ACTIVE = "fw.active_spec"
CONFIG_NAME = "fw.config_name"
CONFIG_PARAM = "config"


def active_spec() -> AuditSpec:
    """The session's spec: set on the Data sources page, else `?config=` of a shared link, else the default."""
    if ACTIVE not in st.session_state:
        name = st.query_params.get(CONFIG_PARAM)
        # A failure here raises before anything is stored, so the next run tries again.
        spec = saved_config_spec(name) if name else default_spec()
        st.session_state[ACTIVE] = spec
        st.session_state[CONFIG_NAME] = name or None
    return st.session_state[ACTIVE]


def set_active_spec(spec: AuditSpec, config_name: str | None = None) -> None:
    """Make a spec the one all pages use (and, when saved, the `config` of shared links)."""
    st.session_state[ACTIVE] = spec
    st.session_state[CONFIG_NAME] = config_name


def config_name() -> str | None:
    """The saved config behind the active spec, when it has one."""
    return st.session_state.get(CONFIG_NAME)
