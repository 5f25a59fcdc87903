"""Audit export: snapshot the current view for the record, download it, list and verify the history, compare two."""

import streamlit as st

from fairwatch.connectors.snapshot_store import SNAPSHOT_DIR_ENV, list_history, snapshot_dir
from fairwatch.pages.components.export_view import (render_diff, render_downloads, render_history, render_snapshot_form,
                                          render_verify, render_verify_upload)
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import PageContext, guard, run_page


def draw(ctx: PageContext) -> None:
    """The Audit export page."""
    root = snapshot_dir()
    st.caption(f"A snapshot is the audit of the current view ({md(ctx.selection.row_filter.describe())}, as chosen in "
               f"the sidebar) with its data fingerprint, the data plan of the budget chosen on the Data plan page, the "
               f"what-if set on the Performance page (if any), HTML and PDF reports, CSV tables and a manifest of "
               f"SHA-256 hashes chained to the previous snapshot. Small cells are withheld. History folder: {md(root)} "
               f"(set {SNAPSHOT_DIR_ENV} to move it).")
    st.subheader("Take a snapshot")
    render_snapshot_form(ctx, root)
    entries = list_history(root)
    if not entries:
        st.info("No snapshots in the history yet: take the first one above.")
        with guard():
            render_verify_upload()
        return
    st.subheader(f"History ({len(entries)} snapshot{'s' if len(entries) != 1 else ''})")
    render_history(entries, root)
    st.subheader("Download")
    with guard():
        render_downloads(entries, root)
    st.subheader("Verify")
    st.caption("Recomputes every file's hash and each link to the previous snapshot. A changed, missing or added "
               "file, or an edited or removed earlier snapshot, is named here.")
    with guard():
        render_verify(entries, root)
    with guard():
        render_verify_upload()
    st.subheader("What changed between two snapshots")
    with guard():
        render_diff(entries, root)


run_page("Audit export", ":material/verified_user:", draw)
