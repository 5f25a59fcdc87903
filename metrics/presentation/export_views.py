"""Table shaping for the Audit export page: history entries, verify reports and snapshot diffs in, display
frames out (no Streamlit, no files here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from fairwatch.metrics.monitoring.diff import SnapshotDiff
from fairwatch.metrics.errors import SnapshotError
from fairwatch.metrics.presentation.formats import fmt_q

MAX_AUTHOR, MAX_NOTE = 120, 2000


def annotation_record(author: str, note: str, view: str) -> list[dict[str, str]]:
    """The snapshot's `annotation` table: who took it, why, and of which view; an author is required."""
    author, note = " ".join(author.split()), note.strip()
    if not author:
        raise SnapshotError("say who takes this snapshot: fill in the author (an audit record needs a name)")
    if len(author) > MAX_AUTHOR or len(note) > MAX_NOTE:
        raise SnapshotError(f"keep the author under {MAX_AUTHOR} and the note under {MAX_NOTE} characters")
    return [{"author": author, "note": note, "view": view}]


def snapshot_author(session: Mapping[str, str], typed: str, signed_in: bool) -> dict[str, str]:
    """The snapshot's author block: signed in, the person as signed in; in local mode the typed name.

    Local mode keeps the server account as the id (how the name was vouched for), but the name the
    snapshot, manifest and reports carry is the one the person typed: that is who signs the record.
    """
    return dict(session) if signed_in else {**session, "name": " ".join(typed.split())}


def _when(stamp: str | None) -> str:
    """'2026-11-29 10:34 UTC' from an ISO time."""
    return "—" if not stamp else f"{str(stamp)[:16].replace('T', ' ')} UTC"


def snapshot_label(entry: Any, annotation: Mapping[str, Any]) -> str:
    """'#3 · 2026-11-29 10:34 UTC · alice · quarterly review' for a picker."""
    parts = [f"#{entry.sequence if entry.sequence is not None else '?'}", _when(entry.exported_at)]
    parts += [str(annotation[k])[:48] for k in ("author", "note") if annotation.get(k)]
    return " · ".join(parts)


def history_table(entries: Sequence[Any], annotations: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per snapshot, newest first: number, times, author, note, rows, flagged gaps, fingerprint, link."""
    rows = []
    for e in reversed(entries):
        note = annotations.get(e.folder, {})
        rows.append({"#": e.sequence, "Exported": _when(e.exported_at), "Audit run": _when(e.created_at),
                     "Author": note.get("author", "—"), "Note": note.get("note") or "—",
                     "View": note.get("view", "—"), "n": e.rows, "Flagged gaps": e.flagged,
                     "Data fingerprint": (e.fingerprint or "—")[:16], "Chain link": e.link, "Folder": e.folder})
    return pd.DataFrame(rows, columns=["#", "Exported", "Audit run", "Author", "Note", "View", "n", "Flagged gaps",
                                       "Data fingerprint", "Chain link", "Folder"])


def problems_table(report: Any) -> pd.DataFrame:
    """What verify found, one row per problem: snapshot, file, kind, message."""
    return pd.DataFrame([{"Snapshot": p.snapshot, "File": p.file or "—", "Problem": p.kind, "Details": p.message}
                         for p in report.problems], columns=["Snapshot", "File", "Problem", "Details"])


def diff_figures(diff: SnapshotDiff) -> list[tuple[str, str, str]]:
    """(label, value, help) of the diff's headline counts."""
    clear = sum(1 for m in diff.moved if m.strength == "clear")
    data = ("unknown" if diff.fingerprint_changed is None else "changed" if diff.fingerprint_changed else "same rows")
    return [
        ("Data", data, "Compared by the data fingerprint of each snapshot"),
        ("New findings", f"{len(diff.new_findings):,}", "Flagged gaps in the newer snapshot only"),
        ("Resolved findings", f"{len(diff.resolved_findings):,}", "Flagged gaps in the older snapshot only"),
        ("Moved: clear / possible", f"{clear:,} / {len(diff.moved) - clear:,}",
         f"Metrics that moved beyond their intervals, of {diff.compared:,} compared; by chance alone about "
         f"{diff.expected_clear:.0f} clear and {diff.expected_possible:.0f} possible moves are expected"),
        ("Settings changed", f"{len(diff.spec_changes) + len(diff.data_changes):,}", "Spec, filter and data facts"),
    ]


def moves_table(diff: SnapshotDiff) -> pd.DataFrame:
    """Metrics that moved beyond their intervals, clear moves first."""
    return pd.DataFrame([{"Group": m.group, "Metric": m.metric.replace("_", " "),
                          "Older (95% interval)": f"{m.old_value:.3f} ({m.old_ci[0]:.3f}–{m.old_ci[1]:.3f})",
                          "Newer (95% interval)": f"{m.new_value:.3f} ({m.new_ci[0]:.3f}–{m.new_ci[1]:.3f})",
                          "Change": f"{m.new_value - m.old_value:+.3f}",
                          "Moved": "clearly (intervals apart)" if m.strength == "clear" else "possibly"}
                         for m in diff.moved],
                        columns=["Group", "Metric", "Older (95% interval)", "Newer (95% interval)", "Change", "Moved"])


def findings_table(diff: SnapshotDiff) -> pd.DataFrame:
    """New and resolved findings with their ratio and q-value where known."""
    rows = [{"Finding": i, "Status": status, "Ratio": "—" if f.get("ratio") is None else f"{f['ratio']:.2f}",
             "q-value": fmt_q(f.get("q_value"))}
            for status, items in (("new", diff.new_findings), ("resolved", diff.resolved_findings)) for i, f in items]
    return pd.DataFrame(rows, columns=["Finding", "Status", "Ratio", "q-value"])


def changes_table(diff: SnapshotDiff) -> pd.DataFrame:
    """Changed settings and data facts, and groups that appeared or went."""
    rows = [{"What": c.path, "Older": "—" if c.old is None else str(c.old), "Newer": "—" if c.new is None else str(c.new)}
            for c in (*diff.data_changes, *diff.spec_changes, *diff.sections)]
    rows += [{"What": "group", "Older": "—", "Newer": g} for g in diff.groups_added]
    rows += [{"What": "group", "Older": g, "Newer": "—"} for g in diff.groups_removed]
    return pd.DataFrame(rows, columns=["What", "Older", "Newer"])
