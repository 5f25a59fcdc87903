"""The dashboard's snapshot history: where it lives, a snapshot of the current view with who took it and why,
and the files of a snapshot for download (the writing, chaining and checking are connectors/export.py's).

The author and the note go into the audit document as a one-record table `annotation`: the export
writes every table of the document as a CSV and as a section of report.html and report.pdf, and the
manifest hashes them with the rest, so the note cannot be changed without `verify` saying so.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fairwatch.connectors.datapaths import REPO_ROOT
from fairwatch.connectors.export import (REPORT_HTML, REPORT_PDF, SNAPSHOT_FILE, ExportResult, HistoryEntry, export_document,
                               now_iso,
                               history, load_snapshot, snapshot_folders)
from fairwatch.connectors.fingerprint import fingerprint_source
from fairwatch.connectors.source import OpenSource
from fairwatch.metrics.errors import SnapshotError
from fairwatch.metrics.monitoring.followup import doc_target
from fairwatch.metrics.audit.snapshot import AuditSnapshot

SNAPSHOT_DIR_ENV = "FAIRWATCH_SNAPSHOT_DIR"
ANNOTATION = "annotation"
# What a snapshot offers for download besides its zip: file in the folder, MIME type.
FILES = {"html": (REPORT_HTML, "text/html"), "pdf": (REPORT_PDF, "application/pdf"),
         "json": (SNAPSHOT_FILE, "application/json")}


def snapshot_dir() -> Path:
    """The history folder: $FAIRWATCH_SNAPSHOT_DIR, else <repo>/snapshots (created by the first export)."""
    return Path(os.environ.get(SNAPSHOT_DIR_ENV) or REPO_ROOT / "snapshots").expanduser().resolve()


def export_view(snapshot: AuditSnapshot, annotation: Sequence[Mapping[str, Any]], history_dir: Path,
                src: OpenSource, author: Mapping[str, Any] | None = None) -> ExportResult:
    """Fingerprint the view's rows and write its audit, with the annotation table, as the history's newest snapshot.

    `author` is the signed-in person's block (name, id, role, how signed in), recorded in the export and manifest.
    """
    fingerprint = fingerprint_source(src, snapshot.spec, snapshot.row_filter)
    # The snapshot's time is when it is taken: the cached audit may have run long before, on the same rows
    # (the cache is keyed on the source's stamp, and the fingerprint above re-reads them now).
    document = {**snapshot.to_dict(), "created_at": now_iso(), ANNOTATION: [dict(r) for r in annotation]}
    return export_document(document, history=history_dir, fingerprint=fingerprint, author=author)


def list_history(history_dir: Path) -> tuple[HistoryEntry, ...]:
    """The history's snapshots in order of creation; none for a new or empty folder."""
    return history(history_dir) if snapshot_folders(history_dir) else ()


def snapshot_folder(history_dir: Path, name: str) -> Path:
    """A snapshot folder of the history by name (nothing outside the history is ever read)."""
    for folder in snapshot_folders(history_dir):
        if folder.name == name:
            return folder
    raise SnapshotError(f"no snapshot {name!r} in {history_dir}; it may have been moved or deleted")


def snapshot_file(folder: Path, kind: str) -> bytes:
    """The bytes of a snapshot's report.html, report.pdf or snapshot.json."""
    name = FILES[kind][0]
    try:
        return (folder / name).read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read {folder.name}/{name}: {exc.strerror or exc}; run verify on it") from None


def annotation_of(folder: Path) -> dict[str, Any]:
    """The author and note of a snapshot; the recorded author's name when it has no annotation (the CLI's)."""
    doc = load_snapshot(folder)
    records = doc.get(ANNOTATION)
    if isinstance(records, list) and records and isinstance(records[0], Mapping):
        return dict(records[0])
    author = (doc.get("export") or {}).get("author")
    return {"author": author["name"]} if isinstance(author, Mapping) and author.get("name") else {}


def snapshot_target(folder: Path) -> str | None:
    """What a snapshot audited (its spec and view, `metrics.monitoring.followup.doc_target`); None when it cannot be read."""
    try:
        return doc_target(load_snapshot(folder))
    except SnapshotError:
        return None  # a damaged snapshot is named by verify on the Audit export page; it is no baseline here
