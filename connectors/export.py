"""Audit snapshots for compliance: write a snapshot folder, zip it, load it, verify it, list a history.

A snapshot folder holds `snapshot.json` (the suppressed audit document with the data fingerprint,
tool versions and times), `report.html`, `report.pdf`, one CSV per table, and `manifest.json`
(every file's SHA-256, and the SHA-256 of the previous snapshot's manifest in the same history).
A history is a parent folder of snapshot folders; the manifests chain them in order of creation.

Writing is atomic and never overwrites: everything is built in a hidden temporary folder beside
the target, then renamed into place; an existing target is refused before anything is written.
Concurrent exports into one history are serialised by a lock on the history folder, so two cannot
claim the same previous snapshot.

What the hashes prove: any change to a file (or an added or removed file) in a snapshot, and any
removed, replaced or edited snapshot before the newest one. They cannot prove that the newest
snapshot was not replaced wholesale by someone who rewrote it consistently: keep the newest
manifest hash somewhere else (a ticket, an e-mail) to anchor the chain.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import os
import secrets
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fairwatch.connectors.fingerprint import DataFingerprint, fingerprint_source
from fairwatch.connectors.report import render_charts, render_html, render_pdf, warm_up_charts
from fairwatch.connectors.report_worker import ReportWorker
from fairwatch.connectors.source import OpenSource, open_source
from fairwatch.metrics.errors import SnapshotError
from fairwatch.metrics.privacy.withholding import jsonable, withhold
from fairwatch.metrics.presentation.report_model import build_report, csv_tables
from fairwatch.metrics.privacy.suppression import SuppressionSummary

if TYPE_CHECKING:  # the snapshot type pulls in the statistics (scipy): `fairwatch audit` imports this module first
    from fairwatch.metrics.audit.snapshot import AuditSnapshot

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent exports into one history are not serialised there
    fcntl = None  # type: ignore[assignment]

SNAPSHOT_FILE = "snapshot.json"
MANIFEST_FILE = "manifest.json"
REPORT_HTML = "report.html"
REPORT_PDF = "report.pdf"
MANIFEST_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schema" / "snapshot.schema.json"
_EXPORT_LIBRARIES = ("fpdf2", "vl-convert-python", "jsonschema")
# Who created a snapshot: the keys of an author block (metrics/privacy/roles.py Principal.author()), name required.
AUTHOR_KEYS = ("name", "id", "role", "signed_in")
MAX_AUTHOR_TEXT = 200
# Cells that a spreadsheet would run as a formula (OWASP CSV injection): group names come from the data.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class ExportResult:
    """What one export wrote."""

    path: Path
    snapshot_id: str
    sequence: int
    files: tuple[str, ...]
    manifest_sha256: str
    previous: str | None
    suppression: SuppressionSummary
    fingerprint: str | None
    zip_path: Path | None = None
    timings: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Problem:
    """One integrity problem: which snapshot, which file (if any), and what is wrong."""

    snapshot: str
    file: str | None
    kind: str  # changed, missing, unexpected, manifest, chain
    message: str

    def line(self) -> str:
        """'2026-..._ab12/report.html: content changed ...'."""
        where = f"{self.snapshot}/{self.file}" if self.file else self.snapshot
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verify`: what was checked and every problem found."""

    target: str
    snapshots: tuple[str, ...]
    files_checked: int
    links_checked: int
    problems: tuple[Problem, ...] = ()

    @property
    def intact(self) -> bool:
        """True when every hash and every link matched."""
        return not self.problems

    @property
    def tampered_files(self) -> tuple[str, ...]:
        """Names of files whose content does not match the manifest (or that are missing or extra)."""
        return tuple(p.file for p in self.problems if p.file)

    def lines(self) -> list[str]:
        """The report for people."""
        if self.intact:
            return [f"intact: {len(self.snapshots)} snapshot(s), {self.files_checked} file(s) and "
                    f"{self.links_checked} chain link(s) match their hashes"]
        kinds = {p.kind for p in self.problems}
        head = "TAMPERED" if kinds - {"chain"} else "CHAIN BROKEN"
        return [f"{head}: {len(self.problems)} problem(s) in {self.target}"] + [f"  {p.line()}" for p in self.problems]


@dataclass(frozen=True)
class HistoryEntry:
    """One snapshot of a history, with its link to the previous one."""

    folder: str
    sequence: int | None
    created_at: str | None
    exported_at: str | None
    snapshot_id: str | None
    manifest_sha256: str
    previous: str | None
    link: str  # first, ok, or what is wrong
    rows: int | None = None
    fingerprint: str | None = None
    flagged: int | None = None
    notes: tuple[str, ...] = field(default=())


# ----------------------------------------------------------------------------- small helpers


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def now_iso() -> str:
    """UTC now, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def snapshot_folder_name(created_at: str, snapshot_id: str) -> str:
    """'2026-11-29T10-00-00Z_ab12cd34': sorts by time, safe on every file system."""
    try:
        when = datetime.fromisoformat(created_at).astimezone(timezone.utc)
    except (TypeError, ValueError):
        when = datetime.now(timezone.utc)
    return f"{when:%Y-%m-%dT%H-%M-%SZ}_{snapshot_id}"


def dump_json(document: Any) -> bytes:
    """The document as UTF-8 JSON text, one key per line (diffable), no NaN."""
    return (json.dumps(document, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _canonical_manifest(manifest: Mapping[str, Any]) -> bytes:
    """The one byte form of a manifest: sorted keys, fixed indent, trailing newline."""
    return (json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _manifest_digest(manifest: Mapping[str, Any]) -> str:
    """SHA-256 of the manifest without its own digest: catches edits that leave the JSON valid."""
    return sha256_bytes(_canonical_manifest({k: v for k, v in manifest.items() if k != "digest"}))


def library_versions(names: tuple[str, ...] = _EXPORT_LIBRARIES) -> dict[str, str]:
    """Versions of the libraries that wrote the files."""
    return dict(_versions(tuple(names)))


@functools.cache
def _versions(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """(name, version) of each library, looked up once per process (an audit asks twice; 10-30 ms each)."""
    out = []
    for name in names:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return tuple(out)


def _csv_cell(value: Any) -> Any:
    """A CSV cell: empty for null, true/false, full-precision numbers, formula-safe text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    """Rows as CSV (header = every key in first-seen order), UTF-8 with a BOM so spreadsheets read accents."""
    columns: list[str] = []
    seen = set()
    for r in rows:
        for c in r:
            if c not in seen:
                seen.add(c)
                columns.append(c)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([_csv_cell(r.get(c)) for c in columns])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


# ----------------------------------------------------------------------------- schema


def load_schema() -> dict[str, Any]:
    """The published JSON schema of snapshot.json (schema/ beside connectors/, in the checkout and in the wheel)."""
    if SCHEMA_PATH.is_file():
        return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    raise SnapshotError(f"the snapshot schema {SCHEMA_PATH} is missing; reinstall fairwatch")


def _inline_refs(node: Any, defs: Mapping[str, Any]) -> Any:
    """The schema with every local `#/$defs/...` reference replaced by its definition (the schema has no cycles)."""
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) == 1:
            return _inline_refs(defs[ref.rsplit("/", 1)[-1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


@lru_cache(maxsize=1)
def _validator() -> Any:
    """A validator of the published schema, references inlined (resolving them per node made validation 10x slower)."""
    import jsonschema

    schema = load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(_inline_refs(schema, schema.get("$defs", {})))


def validation_wanted(validate: bool | None) -> bool:
    """Whether an export checks its document against the schema: when asked, or with FAIRWATCH_VALIDATE=1 (tests).

    Off by default: the document is built by code whose output the tests validate on every export,
    and validating a large document cost a second of a 10M-row audit (importing jsonschema included).
    """
    if validate is not None:
        return validate
    return os.environ.get("FAIRWATCH_VALIDATE", "").strip().lower() in ("1", "true", "yes")


def validate_document(doc: Mapping[str, Any]) -> None:
    """Raise a SnapshotError naming the first place where the document breaks the schema."""
    validator = _validator()
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "/".join(str(p) for p in e.absolute_path) or "(top level)"
        raise SnapshotError(f"snapshot document does not match schema/snapshot.schema.json at {where}: "
                            f"{e.message[:200]} ({len(errors)} error(s)); this is a bug, please report it")


# ----------------------------------------------------------------------------- the history


def _read_manifest(folder: Path) -> tuple[dict[str, Any] | None, bytes | None]:
    """(manifest, its bytes) of a snapshot folder; (None, bytes) when unreadable; (None, None) when absent."""
    path = folder / MANIFEST_FILE
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None, None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, raw
    return (manifest if isinstance(manifest, dict) and "fairwatch_manifest" in manifest else None), raw


def snapshot_folders(history_dir: Path) -> list[Path]:
    """Snapshot folders (sub-folders with a manifest.json) of a history, unordered; temporaries skipped."""
    try:
        entries = list(os.scandir(history_dir))
    except FileNotFoundError:
        return []
    except NotADirectoryError:
        return []
    return [Path(e.path) for e in entries
            if e.is_dir(follow_symlinks=False) and not e.name.startswith(".") and (Path(e.path) / MANIFEST_FILE).exists()]


def _order_key(folder: Path, manifest: Mapping[str, Any] | None) -> tuple:
    """Order of creation: the manifest's sequence, then its export time, then the folder name."""
    seq = manifest.get("sequence") if manifest else None
    return (seq if isinstance(seq, int) else 10**9, str((manifest or {}).get("exported_at", "")), folder.name)


def latest_snapshot(history_dir: Path) -> tuple[Path, dict[str, Any], bytes] | None:
    """The newest readable snapshot of a history (highest sequence), or None for a new history."""
    best = None
    for folder in snapshot_folders(history_dir):
        manifest, raw = _read_manifest(folder)
        if manifest is None or raw is None:
            continue
        if best is None or _order_key(folder, manifest) > _order_key(best[0], best[1]):
            best = (folder, manifest, raw)
    return best


@contextmanager
def _history_lock(history_dir: Path) -> Iterator[None]:
    """An exclusive lock on the history folder itself (no lock file), held while choosing the previous link."""
    if fcntl is None:
        yield
        return
    fd = os.open(history_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ----------------------------------------------------------------------------- writing


def author_block(author: Mapping[str, Any] | str | None) -> dict[str, str] | None:
    """The `author` of a snapshot as recorded: {name, id, role, signed_in} strings, or None when not known."""
    if author is None:
        return None
    raw = {"name": author} if isinstance(author, str) else dict(author)
    unknown = sorted(set(raw) - set(AUTHOR_KEYS))
    if unknown:
        raise SnapshotError(f"unknown author key {unknown[0]!r}; an author has {', '.join(AUTHOR_KEYS)}")
    block = {k: " ".join(str(raw[k]).split()) for k in AUTHOR_KEYS if raw.get(k) is not None}
    if not block.get("name"):
        raise SnapshotError("the author needs a name (--author NAME), or leave the author out")
    if any(len(v) > MAX_AUTHOR_TEXT for v in block.values()):
        raise SnapshotError(f"keep the author's name and id under {MAX_AUTHOR_TEXT} characters")
    return block


def check_target(out: str | os.PathLike) -> Path:
    """The absolute target folder; a SnapshotError when it exists (snapshots are never overwritten)."""
    target = Path(out).expanduser().absolute()
    if target.exists() or target.is_symlink():
        what = "snapshot folder" if (target / MANIFEST_FILE).exists() or (target / SNAPSHOT_FILE).exists() else "path"
        raise SnapshotError(f"{target} exists ({what}); audits are never overwritten: choose a new --out folder")
    return target


def prepare_document(doc: Mapping[str, Any], *, fingerprint: DataFingerprint | Mapping[str, Any] | None,
                     k: int | None, snapshot_id: str, exported_at: str, validate: bool = True,
                     author: Mapping[str, Any] | str | None = None) -> tuple[dict[str, Any], SuppressionSummary]:
    """The exported document: JSON-safe, secrets redacted, small cells withheld, fingerprint and export blocks added.

    The export block records who created the snapshot (`author`, None when not known).
    """
    from fairwatch.metrics.monitoring.diff import check_schema_version  # with the statistics: imported when used

    base = jsonable(doc)
    check_schema_version(base, "the audit document")
    if fingerprint is not None:
        fp = fingerprint.to_dict() if isinstance(fingerprint, DataFingerprint) else dict(fingerprint)
        rows = (base.get("data") or {}).get("rows")
        if rows is not None and fp.get("rows") != rows:
            raise SnapshotError(f"the data changed between the audit ({rows:,} rows) and its fingerprint "
                                f"({fp.get('rows'):,} rows); run the audit again")
        base["fingerprint"] = fp
    out, summary = withhold(base, k)
    out["export"] = {"snapshot_id": snapshot_id, "exported_at": exported_at, "format": MANIFEST_VERSION,
                     "tool": library_versions(), "author": author_block(author)}
    if validate:
        validate_document(out)
    return out, summary


def export_snapshot(snapshot: AuditSnapshot, out: str | os.PathLike | None = None, *,
                    history: str | os.PathLike | None = None, src: OpenSource | None = None, k: int | None = None,
                    zip_path: str | os.PathLike | None = None,
                    author: Mapping[str, Any] | str | None = None, validate: bool | None = None,
                    fingerprint: DataFingerprint | None = None, renderer: ReportWorker | None = None) -> ExportResult:
    """Fingerprint the audited rows and write the full snapshot folder (and optionally a zip of it).

    Give `out` (the new folder; its parent is the history it chains into) or `history` (a folder of
    snapshots; the new one is named `<time>_<id>` inside it). `src` reuses the audit's open source.
    `author` (a name, or a {name, id, role, signed_in} block) goes into snapshot.json and the manifest.
    `validate` checks snapshot.json against the published schema first (default: `validation_wanted`).
    `fingerprint`: the audited rows' fingerprint when the caller computed it already (the CLI does, while
    the audit runs); it is checked against the audit's row count as one computed here would be.
    `renderer`: a started report worker process that draws the HTML and PDF (see `export_document`).
    """
    author_block(author)  # a bad author is refused before the fingerprint is spent
    if out is not None:
        check_target(out)
    if renderer is None:
        warm_up_charts()
    started = time.perf_counter()
    fp = fingerprint
    if fp is None:
        own = src is None
        src = src or open_source(snapshot.spec.source)
        try:
            fp = fingerprint_source(src, snapshot.spec, snapshot.row_filter)
        finally:
            if own:
                src.close()
    took = time.perf_counter() - started
    result = export_document(snapshot.to_dict(), out, history=history, fingerprint=fp, k=k, zip_path=zip_path,
                             author=author, validate=validate, renderer=renderer)
    return replace(result, timings=(("fingerprint", took), *result.timings))


def export_document(doc: Mapping[str, Any], out: str | os.PathLike | None = None, *,
                    history: str | os.PathLike | None = None,
                    fingerprint: DataFingerprint | Mapping[str, Any] | None = None, k: int | None = None,
                    zip_path: str | os.PathLike | None = None,
                    author: Mapping[str, Any] | str | None = None, snapshot_id: str | None = None,
                    exported_at: str | None = None, validate: bool | None = None,
                    renderer: ReportWorker | None = None) -> ExportResult:
    """Write an audit document as a snapshot folder, atomically, chained to the newest snapshot beside it.

    `snapshot_id` and `exported_at` default to a new random id and now; the notebook API fixes them
    earlier so that `Audit.to_dict()` is the very document written here. With a `renderer` (a started
    `ReportWorker`, as `fairwatch audit` passes) the charts, HTML and PDF are drawn in that process while
    this one validates and writes the JSON and CSVs; the files are the same bytes either way.
    """
    author_block(author)  # refused before anything is written
    if (out is None) == (history is None):
        raise SnapshotError("give either an output folder (--out) or a history folder (--history), not both or neither")
    snapshot_id = snapshot_id or secrets.token_hex(4)
    if history is not None:
        out = Path(history).expanduser() / snapshot_folder_name(str(doc.get("created_at", "")), snapshot_id)
    target = check_target(out)
    if zip_path is not None and Path(zip_path).exists():
        raise SnapshotError(f"{zip_path} exists; snapshots are never overwritten: choose a new --zip path")
    timings: list[tuple[str, float]] = []
    clock = time.perf_counter()

    def lap(name: str) -> None:
        """Record the time since the last lap under `name`."""
        nonlocal clock
        now = time.perf_counter()
        timings.append((name, now - clock))
        clock = now

    exported_at = exported_at or now_iso()
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        # The build folder first: an unwritable place fails now, not after the reports are drawn.
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    except OSError as exc:
        raise SnapshotError(f"cannot write in {parent}: {exc.strerror or exc}; choose a folder you can write to "
                            f"(--out)") from None
    try:
        if renderer is None:
            warm_up_charts()
        document, summary = prepare_document(doc, fingerprint=fingerprint, k=k, snapshot_id=snapshot_id,
                                             exported_at=exported_at, validate=False, author=author)
        tables = csv_tables(document)
        listed = sorted([SNAPSHOT_FILE, REPORT_HTML, REPORT_PDF, *(f"{name}.csv" for name in tables)])
        if renderer is not None:
            # The worker builds the report model and draws charts, HTML and PDF (its libraries, Altair and
            # fpdf2 among them, loaded while the audit counted) while this process writes the data files.
            pending = renderer.submit(document, listed)
            lap("suppress")
            files = _data_files(document, tables, validate)
            lap("validate+json+csv")
            files[REPORT_HTML], files[REPORT_PDF] = renderer.result(pending, document, listed)
            lap("reports (rest)")
        else:
            model = build_report(document, files=listed)
            lap("suppress+model")
            # Charts render in a thread beside the tables; vl-convert holds the GIL, so this overlaps little in one
            # process (the CLI's report worker draws them in its own process instead).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fairwatch-charts") as pool:
                drawing = pool.submit(render_charts, model)
                files = _data_files(document, tables, validate)
                lap("validate+json+csv")
                charts = drawing.result()
            lap("charts (rest)")
            files[REPORT_HTML] = render_html(model, charts).encode("utf-8")
            lap("html")
            files[REPORT_PDF] = render_pdf(model, charts)
            lap("pdf")
        _write_files(tmp, files)
        with _history_lock(parent):
            check_target(target)
            previous = latest_snapshot(parent)
            manifest = _write_manifest(tmp, files, document, snapshot_id, exported_at, previous)
            # Renaming a folder is atomic: readers see no snapshot or the whole snapshot.
            os.rename(tmp, target)
            fsync_dir(parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SnapshotError(f"cannot write the snapshot to {target}: {exc.strerror or exc}; check the space and "
                            f"permissions of {parent}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    lap("write")
    zipped = None
    if zip_path is not None:
        zipped = write_zip(target, zip_path)
        lap("zip")
    return ExportResult(
        path=target, snapshot_id=snapshot_id, sequence=manifest["sequence"], files=tuple(sorted(files)),
        manifest_sha256=sha256_bytes(_canonical_manifest(manifest)),
        previous=previous[0].name if previous else None, suppression=summary,
        fingerprint=(document.get("fingerprint") or {}).get("digest"), zip_path=zipped, timings=tuple(timings),
    )


def _data_files(document: Mapping[str, Any], tables: Mapping[str, list[dict[str, Any]]],
                validate: bool | None) -> dict[str, bytes]:
    """snapshot.json and one CSV per table, the document validated first when asked."""
    if validation_wanted(validate):
        validate_document(document)
    files: dict[str, bytes] = {SNAPSHOT_FILE: dump_json(document)}
    for name, rows in tables.items():
        files[f"{name}.csv"] = csv_bytes(rows)
    return files


def _write_files(tmp: Path, files: Mapping[str, bytes]) -> None:
    """Write the files into the build folder, each synced to disk."""
    os.chmod(tmp, 0o755)
    for name in sorted(files):
        with open(tmp / name, "wb") as fh:
            fh.write(files[name])
            fh.flush()
            os.fsync(fh.fileno())


def _write_manifest(tmp: Path, files: Mapping[str, bytes], document: Mapping[str, Any], snapshot_id: str,
                    exported_at: str, previous: tuple[Path, dict[str, Any], bytes] | None) -> dict[str, Any]:
    """Write manifest.json (every file's hash, the link to the previous snapshot) and sync the folder; return it."""
    entries = [{"path": name, "sha256": sha256_bytes(files[name]), "bytes": len(files[name])} for name in sorted(files)]
    prev_seq = previous[1].get("sequence") if previous else 0
    manifest: dict[str, Any] = {
        "fairwatch_manifest": MANIFEST_VERSION,
        "snapshot_id": snapshot_id,
        "created_at": document.get("created_at"),
        "exported_at": exported_at,
        "schema_version": document.get("schema_version"),
        "sequence": (prev_seq if isinstance(prev_seq, int) else 0) + 1,
        "author": (document.get("export") or {}).get("author"),  # under the digest: who made it cannot be changed
        "previous": None if previous is None else {
            "folder": previous[0].name, "snapshot_id": previous[1].get("snapshot_id"),
            "manifest_sha256": sha256_bytes(previous[2])},
        "files": entries,
    }
    manifest["digest"] = _manifest_digest(manifest)
    with open(tmp / MANIFEST_FILE, "wb") as fh:
        fh.write(_canonical_manifest(manifest))
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    return manifest


def fsync_dir(path: Path) -> None:
    """Sync a folder's entries to disk (a rename is durable only then)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- zip


def zip_bytes(folder: str | os.PathLike) -> bytes:
    """A snapshot folder as one zip (entries under the folder's name), byte-identical for the same folder."""
    folder = Path(folder)
    manifest, _ = _read_manifest(folder)
    if manifest is None:
        raise SnapshotError(f"{folder} is not a snapshot folder (no readable {MANIFEST_FILE})")
    try:
        stamp = datetime.fromisoformat(str(manifest.get("exported_at"))).astimezone(timezone.utc)
        date_time = (max(stamp.year, 1980), stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    except ValueError:
        date_time = (1980, 1, 1, 0, 0, 0)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in folder.iterdir() if p.is_file()):
            info = zipfile.ZipInfo(f"{folder.name}/{path.name}", date_time=date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    return buf.getvalue()


def write_zip(folder: str | os.PathLike, zip_path: str | os.PathLike) -> Path:
    """Write a snapshot folder as a zip file, atomically and never over an existing file."""
    final = Path(zip_path).expanduser().absolute()
    data = zip_bytes(folder)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.partial-", dir=final.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            # link() fails when the target exists, so a zip that appeared meanwhile is never replaced.
            os.link(tmp, final)
        finally:
            os.unlink(tmp)
    except FileExistsError:
        raise SnapshotError(f"{final} exists; snapshots are never overwritten: choose a new --zip path") from None
    except OSError as exc:
        raise SnapshotError(f"cannot write {final}: {exc.strerror or exc}; choose a folder you can write to") from None
    return final


def _open_zip(path: Path, data: bytes | None = None) -> zipfile.ZipFile:
    """A readable zip (from `data` when given, else the file), or a SnapshotError that says it is damaged."""
    try:
        return zipfile.ZipFile(io.BytesIO(data) if data is not None else path)
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise SnapshotError(f"{path} is not a readable zip file (truncated or damaged: {exc}); download or copy it "
                            f"again") from None


# ----------------------------------------------------------------------------- reading


def load_snapshot(path: str | os.PathLike) -> dict[str, Any]:
    """The document of a snapshot folder, zip or snapshot.json; clear errors for damaged or newer ones."""
    path = Path(path).expanduser()
    if path.is_dir():
        source, where = path / SNAPSHOT_FILE, f"{path}/{SNAPSHOT_FILE}"
        if not source.exists():
            raise SnapshotError(f"{path} holds no {SNAPSHOT_FILE}; point to a snapshot folder written by fairwatch audit")
        raw = source.read_bytes()
    elif zipfile.is_zipfile(path) or path.suffix.lower() == ".zip":
        with _open_zip(path) as zf:
            names = [n for n in zf.namelist() if n.rsplit("/", 1)[-1] == SNAPSHOT_FILE]
            if not names:
                raise SnapshotError(f"{path} holds no {SNAPSHOT_FILE}; it is not a fairwatch snapshot zip")
            try:
                raw = zf.read(names[0])
            except (zipfile.BadZipFile, EOFError, OSError) as exc:
                raise SnapshotError(f"{path} is damaged ({exc}); download or copy it again") from None
        where = f"{path}:{names[0]}"
    elif path.is_file():
        raw, where = path.read_bytes(), str(path)
    else:
        raise SnapshotError(f"{path} not found; give a snapshot folder, a snapshot zip or a snapshot.json")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SnapshotError(f"{where} is not valid JSON ({exc}); the file is damaged: run fairwatch verify on it") from None
    from fairwatch.metrics.monitoring.diff import check_schema_version

    check_schema_version(doc, where)
    return doc


# ----------------------------------------------------------------------------- verify


def _check_manifest(name: str, manifest: dict[str, Any] | None, raw: bytes | None) -> list[Problem]:
    """Problems with a manifest itself: missing, not JSON, not canonical, or its digest does not match."""
    if raw is None:
        return [Problem(name, MANIFEST_FILE, "missing", "missing: this snapshot cannot be verified")]
    if manifest is None:
        return [Problem(name, MANIFEST_FILE, "manifest", "damaged: not a readable fairwatch manifest")]
    if raw != _canonical_manifest(manifest) or manifest.get("digest") != _manifest_digest(manifest):
        return [Problem(name, MANIFEST_FILE, "manifest", "changed after export (its content does not match its digest)")]
    return []


def _listed(manifest: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The manifest's file entries by name; names with a path separator are rejected as forged."""
    out = {}
    for entry in manifest.get("files") or []:
        name = str(entry.get("path", ""))
        if name and "/" not in name and "\\" not in name and name not in (".", ".."):
            out[name] = entry
    return out


def _verify_folder(folder: Path) -> tuple[list[Problem], int, dict[str, Any] | None, bytes | None]:
    """(problems, files checked, manifest, manifest bytes) of one snapshot folder."""
    manifest, raw = _read_manifest(folder)
    problems = _check_manifest(folder.name, manifest, raw)
    if manifest is None:
        return problems, 0, None, raw
    listed = _listed(manifest)
    checked = 0
    for name, entry in sorted(listed.items()):
        path = folder / name
        if not path.is_file():
            problems.append(Problem(folder.name, name, "missing", "missing (listed in the manifest)"))
            continue
        checked += 1
        if sha256_file(path) != entry.get("sha256"):
            problems.append(Problem(folder.name, name, "changed", "content changed (SHA-256 does not match the manifest)"))
    for path in sorted(folder.iterdir()):
        if path.name not in listed and path.name != MANIFEST_FILE:
            problems.append(Problem(folder.name, path.name, "unexpected", "not in the manifest (added after export)"))
    return problems, checked, manifest, raw


def _chain_problems(items: Mapping[str, tuple[dict[str, Any] | None, bytes | None]],
                    only: set[str] | None = None) -> tuple[list[Problem], int]:
    """Problems with the links between snapshots of one history (only those in `only`, when given)."""
    problems, links = [], 0
    followers: dict[str, list[str]] = {}
    for name, (manifest, _) in sorted(items.items()):
        if manifest is None or (only is not None and name not in only):
            continue
        prev = manifest.get("previous")
        seq = manifest.get("sequence")
        if not prev:
            if seq != 1:
                problems.append(Problem(name, None, "chain", f"chain broken: snapshot number {seq} has no link to a previous one"))
            followers.setdefault("", []).append(name)
            continue
        followers.setdefault(str(prev.get("folder")), []).append(name)
        links += 1
        before = items.get(str(prev.get("folder")))
        if before is None:
            problems.append(Problem(name, None, "chain", f"chain broken: the previous snapshot {prev.get('folder')} "
                                                         f"is missing from the history"))
            continue
        prev_manifest, prev_raw = before
        if prev_raw is None or sha256_bytes(prev_raw) != prev.get("manifest_sha256"):
            problems.append(Problem(name, None, "chain", f"chain broken: {prev.get('folder')}/{MANIFEST_FILE} does not "
                                                         f"match the hash recorded here (replaced or edited)"))
        elif prev_manifest is not None and isinstance(seq, int) and prev_manifest.get("sequence") != seq - 1:
            problems.append(Problem(name, None, "chain", f"chain broken: number {seq} follows number "
                                                         f"{prev_manifest.get('sequence')}"))
    if only is None:
        for prev, names in sorted(followers.items()):
            if len(names) > 1:
                what = f"snapshot {prev}" if prev else "the start of the history"
                problems.append(Problem(", ".join(sorted(names)), None, "chain",
                                        f"chain forked: {len(names)} snapshots follow {what}"))
    return problems, links


def _verify_zip(path: Path, data: bytes | None = None) -> VerifyReport:
    """Verify a snapshot zip: every entry against the manifest inside it (a zip holds no chain)."""
    problems: list[Problem] = []
    checked = 0
    with _open_zip(path, data) as zf:
        names = zf.namelist()
        manifests = [n for n in names if n.rsplit("/", 1)[-1] == MANIFEST_FILE]
        if not manifests:
            raise SnapshotError(f"{path} holds no {MANIFEST_FILE}; it is not a fairwatch snapshot zip")
        prefix = manifests[0][: -len(MANIFEST_FILE)]
        label = prefix.rstrip("/") or path.name

        def read(name: str) -> bytes | None:
            """An entry's bytes, or None when the zip's CRC check fails on it."""
            try:
                return zf.read(name)
            except (zipfile.BadZipFile, EOFError, OSError, KeyError):
                return None

        raw = read(manifests[0])
        try:
            manifest = json.loads(raw.decode("utf-8")) if raw is not None else None
            manifest = manifest if isinstance(manifest, dict) and "fairwatch_manifest" in manifest else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            manifest = None
        if raw is None:
            problems.append(Problem(label, MANIFEST_FILE, "changed", "damaged inside the zip (CRC check failed)"))
        else:
            problems += _check_manifest(label, manifest, raw)
        listed = _listed(manifest) if manifest else {}
        present = {n[len(prefix):]: n for n in names if n.startswith(prefix) and not n.endswith("/")}
        for name, entry in sorted(listed.items()):
            if name not in present:
                problems.append(Problem(label, name, "missing", "missing from the zip (listed in the manifest)"))
                continue
            checked += 1
            data = read(present[name])
            if data is None:
                problems.append(Problem(label, name, "changed", "damaged inside the zip (CRC check failed)"))
            elif sha256_bytes(data) != entry.get("sha256"):
                problems.append(Problem(label, name, "changed", "content changed (SHA-256 does not match the manifest)"))
        for name in sorted(set(present) - set(listed) - {MANIFEST_FILE}):
            problems.append(Problem(label, name, "unexpected", "not in the manifest (added after export)"))
    return VerifyReport(str(path), (label,), checked, 0, tuple(problems))


def verify_zip_bytes(data: bytes, name: str) -> VerifyReport:
    """Verify a snapshot zip held in memory (an upload) under its file name; nothing is written to disk."""
    if not data:
        raise SnapshotError(f"{name} is empty; upload the snapshot zip downloaded from the Audit export page")
    return _verify_zip(Path(Path(name).name), data)


def verify(path: str | os.PathLike) -> VerifyReport:
    """Check a snapshot folder (files and its link back), a history folder (every snapshot and the chain) or a zip."""
    path = Path(path).expanduser()
    if path.is_file():
        if path.name in (SNAPSHOT_FILE, MANIFEST_FILE):
            raise SnapshotError(f"verify checks a whole snapshot: give the folder {path.parent}, not {path.name}")
        return _verify_zip(path)
    if not path.is_dir():
        raise SnapshotError(f"{path} not found; give a snapshot folder, a history folder or a snapshot zip")
    if (path / MANIFEST_FILE).exists() or (path / SNAPSHOT_FILE).exists():
        problems, checked, manifest, raw = _verify_folder(path)
        links = 0
        prev = (manifest or {}).get("previous")
        if manifest is not None and prev:
            history = _history_items(path.parent)
            history.setdefault(path.name, (manifest, raw))
            chain, links = _chain_problems(history, only={path.name})
            problems += chain
        return VerifyReport(str(path), (path.name,), checked, links, tuple(problems))
    folders = snapshot_folders(path)
    if not folders:
        raise SnapshotError(f"{path} holds no fairwatch snapshot (no folder with a {MANIFEST_FILE}); "
                            f"give a snapshot folder, a history folder or a zip")
    problems, checked, items = [], 0, {}
    for folder in sorted(folders, key=lambda f: _order_key(f, _read_manifest(f)[0])):
        p, c, manifest, raw = _verify_folder(folder)
        problems += p
        checked += c
        items[folder.name] = (manifest, raw)
    chain, links = _chain_problems(items)
    return VerifyReport(str(path), tuple(items), checked, links, tuple(problems + chain))


def _history_items(history_dir: Path) -> dict[str, tuple[dict[str, Any] | None, bytes | None]]:
    """Every snapshot folder of a history with its manifest and manifest bytes."""
    return {f.name: _read_manifest(f) for f in snapshot_folders(history_dir)}


def history(path: str | os.PathLike) -> tuple[HistoryEntry, ...]:
    """The snapshots of a history in order of creation, each with the state of its link to the previous one."""
    path = Path(path).expanduser()
    if (path / MANIFEST_FILE).exists():
        path = path.parent
    if not path.is_dir():
        raise SnapshotError(f"{path} not found; give a history folder (a folder of snapshot folders)")
    items = _history_items(path)
    if not items:
        raise SnapshotError(f"{path} holds no fairwatch snapshot (no folder with a {MANIFEST_FILE})")
    chain, _ = _chain_problems(items)
    by_name: dict[str, list[str]] = {}
    for p in chain:
        for name in p.snapshot.split(", "):
            by_name.setdefault(name, []).append(p.message)
    out = []
    for name in sorted(items, key=lambda n: _order_key(path / n, items[n][0])):
        manifest, raw = items[name]
        m = manifest or {}
        rows = fp = flagged = None
        notes: tuple[str, ...] = ()
        try:
            doc = json.loads((path / name / SNAPSHOT_FILE).read_text(encoding="utf-8"))
            rows = (doc.get("data") or {}).get("rows")
            fp = (doc.get("fingerprint") or {}).get("digest")
            flagged = sum(1 for g in doc.get("groups") or [] for d in (g.get("disparities") or {}).values()
                          if d.get("verdict") == "outside")
        except (OSError, ValueError, AttributeError):
            notes = ("snapshot.json unreadable",)
        prev = m.get("previous") or {}
        link = "; ".join(by_name.get(name, [])) or ("first" if not prev else "ok")
        if manifest is None:
            link = "manifest unreadable"
        out.append(HistoryEntry(
            folder=name, sequence=m.get("sequence"), created_at=m.get("created_at"), exported_at=m.get("exported_at"),
            snapshot_id=m.get("snapshot_id"), manifest_sha256=sha256_bytes(raw or b""),
            previous=prev.get("folder"), link=link, rows=rows, fingerprint=fp, flagged=flagged, notes=notes))
    return tuple(out)
