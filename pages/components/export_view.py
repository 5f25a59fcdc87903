"""The sections of the Audit export page: take a snapshot, list the history, download, verify, compare two."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from fairwatch.connectors.export import HistoryEntry, verify, verify_zip_bytes, zip_bytes
from fairwatch.connectors.snapshot_store import FILES, export_view, snapshot_file, snapshot_folder
from fairwatch.metrics.monitoring.diff import MOVE_RULE
from fairwatch.metrics.presentation.export_views import (annotation_record, snapshot_author, changes_table, diff_figures, findings_table, history_table,
                                  moves_table, problems_table, snapshot_label)
from fairwatch.metrics.monitoring.followup import RULE as FOLLOW_UP_RULE
from fairwatch.metrics.monitoring.followup import counts_line, follow_up_table
from fairwatch.metrics.errors import FairwatchError
from fairwatch.metrics.privacy.roles import OIDC_MODE, allowed
from fairwatch.pages.components.auth import author as session_author
from fairwatch.pages.components.auth import current_principal, log_access, logged, md
from fairwatch.pages.components.frame import PageContext, guard, show_table
from fairwatch.pages.components.loaders import get_source, load_annotation, load_full_audit, load_snapshot_diff, stamp_of
from fairwatch.pages.components.plan_view import chosen_budget, load_plan
from fairwatch.pages.components.whatif_view import chosen_whatif, compute_whatif

PICKED = "fw.export.download"
_COUNTS = {n: st.column_config.NumberColumn(n, format="localized") for n in ("n", "Flagged gaps")}


def render_snapshot_form(ctx: PageContext, root: Path) -> None:
    """Author and note, then write the current view's audit as the newest snapshot of the history.

    Signed in, the author is the signed-in person (not typed); in local mode the person types their name.
    Either way the snapshot also records the session's own author block (name, id, role, how signed in).
    """
    sel, principal = ctx.selection, current_principal()
    signed_in = principal is not None and principal.mode == OIDC_MODE
    with st.form("fw.export.form", clear_on_submit=True):
        if signed_in:
            st.text_input("Author", value=principal.name, disabled=True,
                          help=f"You, as signed in ({md(principal.user_id)}): recorded in the snapshot and its "
                               "manifest")
            author = principal.name
        else:
            author = st.text_input("Author", key="fw.export.author", help="Who takes this snapshot (kept in it)")
        note = st.text_area("Note", key="fw.export.note", placeholder="Why this snapshot: a review, a release, a complaint…")
        choice = chosen_whatif() if allowed(ctx.role, "small_cells") else None
        attach = choice is not None and st.checkbox(
            f"Attach the what-if set on the Performance page: {md(choice.describe())}", value=True,
            key="fw.export.whatif", help="As `fairwatch audit --whatif-group`: its thresholds, rates and changed "
                                         "decisions go into snapshot.json, the reports and the CSV files")
        submitted = st.form_submit_button("Create snapshot", type="primary")
    if choice is None:
        st.caption("No what-if is set: a snapshot is written without one. To attach per-group thresholds that would "
                   "meet the policy, compute them in the What if section of the Performance page first.")
    if submitted:
        with guard(), st.spinner("Fingerprinting the rows and writing the reports…"):
            view = sel.row_filter.describe()
            annotation = annotation_record(author, note, view)
            # Logged before anything is written: no log line, no snapshot.
            log_access("export", f"create snapshot of {view}", {"history": str(root), "author": author,
                                                                 "source": sel.spec.source.describe()})
            # The full audit, slice search and findings included, as `fairwatch audit` exports it.
            snap = load_full_audit(sel.spec, sel.row_filter, stamp_of(sel.spec))
            # With the data plan of the budget chosen on the Data plan page (its default otherwise).
            snap = snap.with_plan(load_plan(sel.spec, sel.row_filter, stamp_of(sel.spec), chosen_budget()))
            whatif_note = ""
            if attach:
                try:
                    snap = snap.with_whatif(compute_whatif(sel, choice))
                    whatif_note = f" With the what-if ({md(choice.describe())})."
                except FairwatchError as exc:  # e.g. the view changed since: its score or groups are gone
                    whatif_note = f" Written without the what-if: {md(str(exc).strip().splitlines()[0])}."
            result = export_view(snap, annotation, root, get_source(sel.spec.source, stamp_of(sel.spec)),
                                 author=snapshot_author(session_author(), annotation[0]["author"], signed_in))
            st.session_state[PICKED] = result.path.name
            st.success(f"Snapshot #{result.sequence} written to {md(result.path)} ({len(result.files)} files, "
                       f"{result.suppression.cells_suppressed:,} small cells withheld).{whatif_note} Its manifest "
                       f"SHA-256 is {md(result.manifest_sha256)}: keep it somewhere else (a ticket, an e-mail) to "
                       "anchor the chain.")


def _labels(entries: Sequence[HistoryEntry], root: Path) -> dict[str, str]:
    """Picker label of each snapshot folder."""
    return {e.folder: snapshot_label(e, load_annotation(str(root / e.folder), e.manifest_sha256)) for e in entries}


def render_history(entries: Sequence[HistoryEntry], root: Path) -> None:
    """Every snapshot, newest first, with who took it, why, and the state of its chain link."""
    notes = {e.folder: load_annotation(str(root / e.folder), e.manifest_sha256) for e in entries}
    show_table(history_table(entries, notes), _COUNTS, height=min(400, 40 + 35 * len(entries)))


def render_downloads(entries: Sequence[HistoryEntry], root: Path) -> None:
    """The chosen snapshot as a zip of the whole folder, or its HTML report, PDF report or JSON document."""
    labels = _labels(entries, root)
    names = list(labels)
    if st.session_state.get(PICKED) not in labels:
        st.session_state[PICKED] = names[-1]
    name = st.selectbox("Snapshot", names, format_func=labels.get, key=PICKED)
    folder = snapshot_folder(root, name)
    cols = st.columns(4)
    # Each file is made on the click, after its access-log line is written (auth.logged): no line, no bytes.
    cols[0].download_button("Zip (all files)", logged("export", f"download {name}.zip", lambda: zip_bytes(folder),
                                                      {"snapshot": name, "file": "zip"}),
                            f"{name}.zip", "application/zip", on_click="ignore", icon=":material/folder_zip:",
                            key="fw.export.zip")
    for col, (kind, (file, mime)) in zip(cols[1:], FILES.items()):
        data = logged("export", f"download {name}_{file}", lambda k=kind: snapshot_file(folder, k),
                      {"snapshot": name, "file": file})
        col.download_button(kind.upper(), data, f"{name}_{file}", mime, on_click="ignore", icon=":material/download:",
                            key=f"fw.export.{kind}")


def render_verify(entries: Sequence[HistoryEntry], root: Path) -> None:
    """Check a snapshot's files against its manifest (or the whole history and its chain), now."""
    labels = {"": "The whole history (every snapshot and the chain)", **_labels(entries, root)}
    name = st.selectbox("What to verify", list(labels), format_func=labels.get, key="fw.export.verify")
    report = verify(snapshot_folder(root, name) if name else root)
    if report.intact:
        st.success(md(report.lines()[0].capitalize()), icon=":material/verified:")
        return
    st.error(md(report.lines()[0]), icon=":material/gpp_bad:")
    show_table(problems_table(report), columns={})


def render_verify_upload() -> None:
    """Check a snapshot zip the user brings (e.g. one sent for review) against the manifest inside it."""
    up = st.file_uploader("…or verify a snapshot zip from elsewhere", type=["zip"], key="fw.export.upload",
                          help="The zip downloaded from this page (Zip, all files); it is checked in memory, not kept.")
    if up is None:
        return
    report = verify_zip_bytes(up.getvalue(), up.name)
    if report.intact:
        st.success(report.lines()[0].capitalize(), icon=":material/verified:")
        return
    st.error(report.lines()[0], icon=":material/gpp_bad:")
    show_table(problems_table(report), columns={})


def render_diff(entries: Sequence[HistoryEntry], root: Path) -> None:
    """What changed from an older snapshot to a newer one: findings, moved metrics, settings."""
    if len(entries) < 2:
        st.info("Take a second snapshot to compare two.")
        return
    labels, by_name = _labels(entries, root), {e.folder: e for e in entries}
    names = list(labels)
    c1, c2 = st.columns(2)
    old = c1.selectbox("Older", names, index=len(names) - 2, format_func=labels.get, key="fw.export.old")
    new = c2.selectbox("Newer", names, index=len(names) - 1, format_func=labels.get, key="fw.export.new")
    diff = load_snapshot_diff(str(root / old), by_name[old].manifest_sha256, str(root / new),
                              by_name[new].manifest_sha256)
    for col, (label, value, help_) in zip(st.columns(5), diff_figures(diff)):
        col.metric(md(label), value, help=md(help_))
    st.caption(f"Rule: {md(MOVE_RULE)}. Findings are the gaps outside the policy band with significance.")
    if diff.unchanged:
        st.success("Nothing of substance changed: the same rows, findings and settings, and no metric moved "
                   "beyond its interval.")
    follow = f"Follow-up of the older snapshot's findings and open questions: {md(counts_line(diff.follow_up))}"
    for title, table in (("Metrics that moved", moves_table(diff)), ("New and resolved findings", findings_table(diff)),
                         (follow, follow_up_table(diff.follow_up)), ("Settings and data", changes_table(diff))):
        if len(table):
            st.markdown(f"**{title}** ({len(table):,})")
            show_table(table, columns={}, height=min(300, 40 + 35 * len(table)))
    st.caption(f"Follow-up rule: {md(FOLLOW_UP_RULE)}.")
