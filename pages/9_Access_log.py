"""Access log: who saw example rows, exported, or was refused a page, and when (auditors only)."""

import json

import pandas as pd
import streamlit as st

from fairwatch.connectors.access import read_access_log, verify_access_log
from fairwatch.pages.components.auth import access_config, md
from fairwatch.pages.components.frame import PageContext, run_page, show_table

SHOWN = 1000


def draw(ctx: PageContext) -> None:
    """The Access log page."""
    path = access_config().log_path
    check = verify_access_log(path)
    records = read_access_log(path, limit=SHOWN)
    st.caption(f"Append-only and hash-chained: each line holds the SHA-256 of the line before it. "
               f"The file: {md(path)}.")
    c1, c2, c3 = st.columns(3)
    c1.metric("Records", f"{check.records:,}")
    c2.metric("Chain", "intact" if check.intact else f"{len(check.problems)} problem(s)")
    c3.metric("Newest line's SHA-256", check.last_sha256[:16] + "…",
              help=f"{md(check.last_sha256)}: note it elsewhere (a ticket, an e-mail); then a later cut-off of the "
                   f"newest records shows as a missing hash.")
    if not check.intact:
        st.error(f"The access log was changed after it was written: {md(check.problems[0])}"
                 + (f" (and {len(check.problems) - 1} more)" if len(check.problems) > 1 else ""), icon="🛑")
    if not records:
        st.info("Nothing logged yet: example rows, exports and refused pages are logged here as they happen.")
        return
    actions = sorted({r.action for r in records})
    c1, c2 = st.columns([1, 2])
    chosen = c1.multiselect("Actions", actions, default=actions, key="fw.log.actions")
    who = c2.text_input("Who (part of the name or e-mail)", key="fw.log.who").strip().lower()
    rows = [r for r in records if r.action in chosen and (not who or who in f"{r.who} {r.name}".lower())]
    frame = pd.DataFrame({
        "#": [r.seq for r in rows],
        "When (UTC)": [r.time.replace("T", " ")[:23] for r in rows],
        "Who": [r.who for r in rows],
        "Name": [r.name for r in rows],
        "Role": [r.role for r in rows],
        "Action": [r.action for r in rows],
        "What": [r.what for r in rows],
        "Detail": [json.dumps(r.detail, ensure_ascii=False) if r.detail else "" for r in rows],
    })
    show_table(frame, columns={})
    st.caption(f"Newest first; {len(rows):,} of the newest {len(records):,} records shown.")


run_page("Access log", ":material/policy:", draw, needs_source=False, permission="access_log")
