"""The frame of every page: config, sidebar, and the promise that no traceback reaches the page."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from contextlib import contextmanager
from dataclasses import dataclass

import altair as alt
import pandas as pd
import streamlit as st

from fairwatch.metrics.errors import FairwatchError
from fairwatch.metrics.privacy.roles import allowed, visible_snapshot
from fairwatch.metrics.audit.snapshot import AuditSnapshot
from fairwatch.pages.components.auth import access_gate, md
from fairwatch.pages.components.loaders import chart_spec, kept_view, load_full_audit, load_snapshot, stamp_of
from fairwatch.pages.components.sidebar import Selection, render_sidebar

log = logging.getLogger("fairwatch.app")


@dataclass(frozen=True)
class PageContext:
    """What a page draws from: the sidebar selection (None when the source could not be opened) and the role.

    Every audit a page draws comes through `snapshot()`, `full_audit()` or `visible()`, so a role without
    `small_cells` (a viewer) sees small cells withheld on every page, as in exports. The role defaults to
    none, which withholds them too: a context made without the gate's answer fails closed.
    """

    selection: Selection | None
    role: str | None = None

    def _selection(self) -> Selection:
        """The selection, or the one-line reason there is none."""
        if self.selection is None:
            raise FairwatchError("no usable data source: choose one on the Data sources page")
        return self.selection

    def visible(self, snapshot: AuditSnapshot) -> AuditSnapshot:
        """An audit as this role may see it (small cells withheld for a viewer)."""
        return visible_snapshot(snapshot, self.role)[0]

    def snapshot(self) -> AuditSnapshot:
        """The cached audit of the active spec under the sidebar's filter, as this role may see it."""
        sel = self._selection()
        return self.visible(load_snapshot(sel.spec, sel.row_filter, stamp_of(sel.spec)))

    def full_audit(self) -> AuditSnapshot:
        """The cached audit with the slice search and data-quality signals, as this role may see it."""
        sel = self._selection()
        return self.visible(load_full_audit(sel.spec, sel.row_filter, stamp_of(sel.spec)))

    def chart_key(self, *choices: Hashable) -> tuple[Hashable, ...]:
        """The key of a chart drawn from this view's audits: the spec, filter, source stamp, features and role, and
        the page's own `choices` (chart name, widget values), so it is built again when any of them changes."""
        sel = self._selection()
        return (sel.spec, sel.row_filter, stamp_of(sel.spec), sel.features, self.role, *choices)

    def view(self, build: Callable[[], object], *choices: Hashable) -> object:
        """What `build()` makes of this view's audits (a table, a list of groupings), made once per view, role and
        `choices` in this process (loaders.kept_view); callers only read it."""
        return kept_view(self.chart_key(*choices), build)

    def withheld_note(self) -> str:
        """One line saying what this role does not see of the audit ('' when nothing is withheld)."""
        sel = self._selection()
        if allowed(self.role, "small_cells"):
            return ""
        return visible_snapshot(load_snapshot(sel.spec, sel.row_filter, stamp_of(sel.spec)), self.role)[1].caption()


def one_line(exc: BaseException) -> str:
    """An unexpected error as one line a user can report (the traceback goes to the server log)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"Something went wrong ({type(exc).__name__}: {first[:200]}). The other pages still work; please report this."


@contextmanager
def guard():
    """Show input errors and unexpected errors as one-line st.error; never a traceback."""
    try:
        yield
    except FairwatchError as exc:
        st.error(md(exc.in_app()), icon="⚠️")
    except Exception as exc:  # noqa: BLE001 - the promise is: no traceback on the page
        log.exception("page failed")
        st.error(md(one_line(exc)), icon="🛑")


def run_page(title: str, icon: str, draw: Callable[[PageContext], None], *, needs_source: bool = True,
             permission: str = "view") -> None:
    """Set up the page, let the access gate decide, draw the sidebar, then the body inside the error guard."""
    # A Material page icon becomes a favicon fetched from fonts.gstatic.com by every visitor's browser: the
    # app's own favicon instead, so that no page asks another host for anything (tests/e2e/test_browser_hostile.py).
    st.set_page_config(page_title=f"{title} · fairwatch", page_icon=None if icon.startswith(":material/") else icon,
                       layout="wide")
    principal = access_gate(title, permission)
    if principal is None:
        return
    st.title(title)
    selection = None
    with guard():
        selection = render_sidebar()
    if selection is None and needs_source:
        st.info("Choose a data source on the Data sources page (in the menu on the left).")
        return
    ctx = PageContext(selection, principal.role)
    if selection is not None and not principal.can("small_cells"):
        with guard():
            _withheld_caption(ctx)
    with guard():
        draw(ctx)


def _withheld_caption(ctx: PageContext) -> None:
    """Under the title of every page a viewer sees: what is withheld from them, and why."""
    try:
        note = ctx.withheld_note()
    except FairwatchError:
        return  # the page's body says what is wrong with the source, once
    if note:
        st.caption(f":material/visibility_off: {md(note)}")


def show_chart(chart: alt.TopLevelMixin | Callable[[], alt.TopLevelMixin],
               key: tuple[Hashable, ...] | None = None) -> None:
    """An altair chart at the page's width; with a `key` (PageContext.chart_key), `chart` is a function that builds
    it, called only the first time that key is drawn in this process (loaders.chart_spec says why)."""
    if key is None:
        st.altair_chart(chart, width="stretch")
        return
    spec = chart_spec(key, chart)
    if spec is None:
        st.altair_chart(chart(), width="stretch")
    else:  # the spec st.altair_chart would have built; st.vega_lite_chart draws it as the same element
        st.vega_lite_chart(spec=spec, width="stretch")


RATE_COLUMNS = {
    "Value": st.column_config.ProgressColumn("Value", format="%.3f", min_value=0.0, max_value=1.0,
                                             help="The estimate as a bar (empty where there are too few rows)"),
    "n": st.column_config.NumberColumn("n", format="localized", help="Rows the value is computed from"),
    "Group rows": st.column_config.NumberColumn("Group rows", format="localized", help="All rows of the group"),
}
SHARE_COLUMNS = {
    "n": st.column_config.NumberColumn("n", format="localized", help="Rows in the group"),
    "Share": st.column_config.ProgressColumn("Share", format="percent", min_value=0.0, max_value=1.0),
    "Reference share": st.column_config.NumberColumn("Reference share", format="percent"),
    "Share ÷ reference": st.column_config.NumberColumn("Share ÷ reference", format="%.2f"),
}


def show_table(frame: pd.DataFrame, columns: dict | None = None, height: int | None = None) -> None:
    """A dataframe with the standard column formats."""
    st.dataframe(frame, column_config=columns or RATE_COLUMNS, hide_index=True, width="stretch",
                 height=height or "auto")


def show_small_table(frame: pd.DataFrame) -> None:
    """A few rows (the Overview's worst gaps) as a static table, every text cell and header escaped.

    st.table draws plain HTML; st.dataframe loads and boots its data grid in the browser, which a Chrome trace
    of a new Overview tab put at about a third of a second of the page's main thread for six rows (issue 18).
    st.table renders Markdown in its cells, so each text goes through md() like any other text from the data.
    """
    shown = frame.map(lambda v: md(v) if isinstance(v, str) else "" if v is None else v).rename(columns=md)
    st.table(shown, hide_index=True)

