"""The access gate of every page: sign-in, who is signed in, what their role may see, and the menu.

`access_gate` runs first in `run_page`. Without an `[auth]` section in the secrets (local mode) the one
local user may see everything, on loopback only; with one, a person signs in through Streamlit's own
`st.login` and gets the role that `metrics/privacy/roles.py` resolves from the access config. Pages ask
`can("export")` before drawing a control and call `log_access(...)` (or wrap a download in `logged(...)`)
before showing example rows or writing an export. Small cells are withheld from a viewer by the page
context (`PageContext.snapshot()` in frame.py), which every page reads its audit through.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import streamlit as st
from streamlit import config as st_config
from streamlit.errors import StreamlitPageNotFoundError

from fairwatch.connectors.access import (ACCESS_LOG_ENV, AccessConfig, AuthSettings, ProviderStatus,
                               access_config_path, auth_settings, authlib_missing, check_provider, file_stamp,
                               load_access_config, local_user_name, record_access)
from fairwatch.connectors.datapaths import DATA_DIR_ENV
from fairwatch.connectors.serve import ALLOW_ENV, ALLOW_FLAG, host_is_loopback
from fairwatch.metrics.errors import AccessLogError, FairwatchError, ServeError
from fairwatch.metrics.privacy.roles import (PAGES, ROLE_SUMMARY, Principal, local_principal, no_role_message, not_permitted_message,
                           principal_from_claims, required_permissions, visible_pages)
from fairwatch.metrics.presentation.text import hide_paths, md_escape

log = logging.getLogger("fairwatch.auth")
ROOT = Path(__file__).resolve().parents[2]
PRINCIPAL = "fw.auth.principal"
_DENIED_LOGGED = "fw.auth.denied_logged"


def shown_paths(text: object) -> str:
    """Text with server paths cut to their file name unless the role of this run may see them (auditors; nobody
    before the gate let someone in). For plain-text sinks such as st.code; Markdown sinks use md()."""
    return str(text) if can("server_paths") else hide_paths(str(text))


def md(text: object) -> str:
    """Untrusted text (a value, name, path, URL parameter, error) for any Markdown sink: labels, help, messages.

    Server paths are cut as in shown_paths, then everything is escaped so that it shows as exactly this text
    (metrics/presentation/text.py md_escape).
    """
    return md_escape(shown_paths(text))


def _escaped(principal: Principal) -> Principal:
    """The principal with its name and id escaped, for messages drawn as markdown."""
    return replace(principal, name=md(principal.name), user_id=md(principal.user_id))


# ----------------------------------------------------------------------------- cached reads


@st.cache_data(max_entries=4, show_spinner=False)
def _access_config(path: str, stamp: tuple[float, int], log_env: str | None, data_env: str | None) -> AccessConfig:
    """The access config (re-read when the file or the environment that places the log changes)."""
    return load_access_config()


def access_config() -> AccessConfig:
    """The access config in force now."""
    path = access_config_path()
    return _access_config(str(path), file_stamp(path), os.environ.get(ACCESS_LOG_ENV), os.environ.get(DATA_DIR_ENV))


@st.cache_data(ttl=15, max_entries=8, show_spinner="Checking the sign-in provider…")
def _provider_status(metadata_url: str) -> ProviderStatus:
    """Whether the provider answers (cached briefly, so a busy sign-in page does not hammer it)."""
    return check_provider(metadata_url, timeout=3.0)


def _auth_section() -> dict[str, Any] | None:
    """The `[auth]` section of the secrets, or None in local mode."""
    if not st.secrets.load_if_toml_exists():
        return None
    auth = st.secrets.get("auth")
    if auth is None:
        return None
    return auth.to_dict() if hasattr(auth, "to_dict") else dict(auth) if isinstance(auth, Mapping) else None


# ----------------------------------------------------------------------------- what pages call


def current_principal() -> Principal | None:
    """The person this page run is for (None before the gate let them in)."""
    return st.session_state.get(PRINCIPAL)


def can(permission: str) -> bool:
    """True when the person of this run may use something that needs the permission."""
    principal = current_principal()
    return principal is not None and principal.can(permission)


def author() -> dict[str, str]:
    """The author block for a snapshot created in this session."""
    principal = current_principal()
    if principal is None:
        raise FairwatchError("nobody is signed in; sign in again before creating a snapshot")
    return principal.author()


def log_access(action: str, what: str, detail: Mapping[str, Any] | None = None) -> None:
    """Write who/when/what to the access log before showing example rows or writing an export.

    Raises a FairwatchError when the log cannot be written: the caller must then not show or write anything.
    """
    principal = current_principal()
    if principal is None:
        raise FairwatchError("nobody is signed in; sign in again")
    try:
        record_access(access_config().log_path, who=principal.user_id, name=principal.name, role=principal.role,
                      action=action, what=what, detail=detail)
    except AccessLogError as exc:
        log.error("access log write failed: %s", exc)
        raise FairwatchError(f"{exc} (nothing was shown or exported)") from None


def logged(action: str, what: str, produce: Callable[[], bytes],
           detail: Mapping[str, Any] | None = None) -> Callable[[], bytes]:
    """`produce`, logged when called: for st.download_button(data=logged(...)), which calls it on the click.

    Who and where are taken now, in the page run: the click is served outside it.
    """
    principal = current_principal()
    if principal is None:
        raise FairwatchError("nobody is signed in; sign in again")
    log_path = access_config().log_path

    def call() -> bytes:
        """Log, then produce: no log line, no bytes."""
        record_access(log_path, who=principal.user_id, name=principal.name, role=principal.role, action=action,
                      what=what, detail=detail)
        return produce()

    return call


# ----------------------------------------------------------------------------- the gate


def access_gate(title: str, permission: str = "view") -> Principal | None:
    """Let the person of this session see the page, or draw why not (sign-in, no role, not permitted)."""
    st.session_state[PRINCIPAL] = None
    try:
        principal = _gate(title, permission)
    except FairwatchError as exc:
        st.error(md(exc), icon=":material/warning:")
        return None
    except Exception as exc:  # noqa: BLE001 - fail closed, and no traceback on the page
        log.exception("access gate failed")
        st.error(f"Access could not be checked ({type(exc).__name__}); nothing is shown. Please report this.",
                 icon=":material/error:")
        return None
    st.session_state[PRINCIPAL] = principal
    return principal


def _gate(title: str, permission: str) -> Principal | None:
    """The gate's decision, drawing the sign-in page or a refusal when it says no."""
    needed = required_permissions(title, permission)
    auth = _auth_section()
    if auth is None:
        principal = _local_mode()
        if principal is None:
            return None
    else:
        settings = auth_settings(auth)
        config = access_config()
        claims = st.user.to_dict()
        if claims.get("is_logged_in") is not True:
            _sign_in_page(settings)
            return None
        principal = principal_from_claims(claims, config.rules)
        _identity(principal)
        if principal.role is None:
            if config.rules.empty:
                log.warning("no role rules in %s: every signed-in user is refused",
                            config.source or access_config_path())
            st.title("No access yet")
            st.warning(no_role_message(_escaped(principal)), icon=":material/lock:")
            return None
    _menu(principal)
    if not all(principal.can(p) for p in needed):
        st.title(title)
        st.error(not_permitted_message(_escaped(principal), f"the {title} page", needed), icon=":material/block:")
        _log_denied(principal, title)
        return None
    return principal


def _address_is_loopback(address: str | None) -> bool:
    """Whether the server listens on loopback only (AppTest runs no server: no address counts as loopback)."""
    if not address:
        return bool(st_config.get_option("global.appTest"))
    try:
        return host_is_loopback(address)
    except ServeError:
        return False


def _local_mode() -> Principal | None:
    """No sign-in configured: everything for the local user, on loopback (or with the explicit flag)."""
    address = st_config.get_option("server.address")
    if not _address_is_loopback(address):
        if os.environ.get(ALLOW_ENV) != "1":
            st.title("fairwatch")
            st.error(f"fairwatch listens on {md(address or 'all addresses')} without sign-in, so it shows nothing: "
                     f"configure [auth] in .streamlit/secrets.toml, serve on 127.0.0.1, or start it with "
                     f"`fairwatch serve {ALLOW_FLAG}` if everyone on this network may see everything.",
                     icon=":material/lock_open:")
            return None
        st.sidebar.warning("**No sign-in**: anyone who can reach this port can see everything, "
                           "example rows included.", icon=":material/lock_open:")
    else:
        st.sidebar.markdown(":material/lock_open: :small[**Local mode**: no sign-in is configured, so anyone who "
                            "can reach this port can see everything. Configure sign-in before sharing it.]")
    return local_principal(local_user_name())


def _identity(principal: Principal) -> None:
    """The signed-in person's name and role at the top of the sidebar, with the sign-out button."""
    bar = st.sidebar
    sees = f" A {principal.role} sees {ROLE_SUMMARY[principal.role]}." if principal.role in ROLE_SUMMARY else ""
    bar.markdown(f":material/account_circle: **{md(principal.name)}** · {principal.role or 'no role'}",
                 help=f"Signed in as {md(principal.user_id)}.{sees}")
    if bar.button("Sign out", key="fw.auth.sign_out", icon=":material/logout:"):
        st.logout()
        st.stop()  # the browser is being sent to the provider's sign-out: draw nothing more


def _menu(principal: Principal) -> None:
    """The pages this person may open, when Streamlit's own menu is off (client.showSidebarNavigation = false)."""
    if st_config.get_option("client.showSidebarNavigation"):
        return
    existing = [p.file for p in PAGES if (ROOT / p.file).is_file()]
    for page in visible_pages(principal.role, existing):
        try:
            st.sidebar.page_link(page.file, label=page.title)  # titles are the app's own
        except StreamlitPageNotFoundError:  # a page file run on its own (not through app.py) has no menu to link
            return
    st.sidebar.divider()


def _sign_in_page(settings: AuthSettings) -> None:
    """Who is asked to sign in sees this, and nothing else; the button only when the provider answers."""
    st.title("Sign in to fairwatch")
    browser = urlparse(st.context.url or "")
    target = urlparse(settings.redirect_uri)
    if browser.hostname and target.hostname and browser.hostname != target.hostname:
        home = f"{target.scheme}://{target.netloc}/"
        st.warning(f"Open fairwatch at {md(home)} to sign in: sign-in returns there, and its cookie is kept per "
                   f"host name ({md(browser.hostname)} is not {md(target.hostname)}).", icon=":material/swap_horiz:")
    fix = authlib_missing()
    if fix:
        st.error(f"Sign-in is configured but cannot work here: {md(fix)}.", icon=":material/extension_off:")
        return
    status = _provider_status(settings.server_metadata_url)
    if not status.ok:
        st.error(md(status.message), icon=":material/cloud_off:")
        if st.button("Try again", key="fw.auth.retry"):
            _provider_status.clear()
            st.rerun()
        return
    st.markdown("fairwatch shows who a model treats unfairly. Sign in with your organisation's account; what you "
                "can see depends on the role an admin gave you.")
    if st.button("Sign in", type="primary", key="fw.auth.sign_in", icon=":material/login:"):
        st.login(None if settings.provider == "default" else settings.provider)


def _log_denied(principal: Principal, title: str) -> None:
    """Write a refused page to the access log, once per page per session."""
    seen = st.session_state.setdefault(_DENIED_LOGGED, set())
    if title in seen:
        return
    seen.add(title)
    try:
        record_access(access_config().log_path, who=principal.user_id, name=principal.name, role=principal.role,
                      action="denied", what=f"page {title}")
    except AccessLogError as exc:
        log.error("access log write failed: %s", exc)
