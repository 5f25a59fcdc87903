"""Open a source in a hardened, read-only DuckDB and expose it as one view, `src`.

Everything downstream queries `src` (the prediction rows, with the delayed labels joined in when
they live apart). Identifiers are only ever the source's own column names, quoted; values are
parameters; the database cannot read files outside the source's folders once the view exists.

DuckDB's `allowed_directories` grants write access as well as read (checked on 2.0.1: `COPY ... TO`
into an allowed folder, even over the source file itself, succeeds), and it has no read-only
variant. So files are never given to DuckDB by their plain path: every source file is read through
`ReadOnlyFiles`, the local file system with each write refused, under its own protocol
(`fairwatch-ro:///abs/path`). Only that protocol's source folders are allowed; plain paths are not
allowed at all, so no statement can write a file anywhere. DuckDB database files are attached
READ_ONLY before the lock and need no allowed folder afterwards (the open handle is enough).
"""

from __future__ import annotations

import glob
import io
import re
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from fsspec.implementations.local import LocalFileSystem

from fairwatch.metrics.errors import DataError, SourceError, SpecError
from fairwatch.metrics.audit.spec import AuditSpec, SourceSpec

DUCKDB_SUFFIXES = (".duckdb", ".db", ".ddb")
READONLY_PROTOCOL = "fairwatch-ro"
_READONLY_PREFIX = READONLY_PROTOCOL + "://"
_READERS = {
    ".parquet": "read_parquet({p}, union_by_name = true, hive_partitioning = true)",
    ".csv": "read_csv({p}, union_by_name = true, hive_partitioning = true)",
    ".tsv": "read_csv({p}, union_by_name = true, hive_partitioning = true, delim = '\t')",
    ".txt": "read_csv({p}, union_by_name = true, hive_partitioning = true)",
    ".json": "read_json_auto({p}, union_by_name = true, hive_partitioning = true)",
    ".ndjson": "read_json_auto({p}, union_by_name = true, hive_partitioning = true, format = 'newline_delimited')",
    ".jsonl": "read_json_auto({p}, union_by_name = true, hive_partitioning = true, format = 'newline_delimited')",
}


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB SQL by doubling embedded quotes."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote a string literal (only for file paths in view definitions, where parameters are not allowed)."""
    return "'" + text.replace("'", "''") + "'"


class PositionalReader(io.RawIOBase):
    """A read-only file read with os.pread, where a seek followed by a read on one thread is one unit.

    DuckDB shares one handle among its scan threads and reads through Python as seek(location)
    then read(n). With a plain file the position is shared, and another thread can seek between
    the two (read releases the GIL, and Python may switch threads between the calls): Parquet
    scans then failed now and then ("TProtocolException: Invalid data", 8 of 12 queries in a
    3-thread test). Here a seek is remembered for the thread that made it and consumed by that
    thread's next read, which pread serves at exactly that offset. Reads without a seek continue
    from the shared position, as a plain file does (the JSON reader opens on one thread and reads
    on another).
    """

    def __init__(self, path: str) -> None:
        super().__init__()
        self._fd = os.open(path, os.O_RDONLY)
        self._size = os.fstat(self._fd).st_size
        self._shared = 0
        self._pending = threading.local()
        self.name = path

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        pending = getattr(self._pending, "pos", None)
        return self._shared if pending is None else pending

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.tell(), os.SEEK_END: self._size}[whence]
        self._pending.pos = self._shared = base + offset
        return base + offset

    def read(self, size: int = -1) -> bytes:
        pos = getattr(self._pending, "pos", None)
        self._pending.pos = None
        pos = self._shared if pos is None else pos
        want = self._size - pos if size is None or size < 0 else size
        chunks = []
        while want > 0:  # pread may return fewer bytes than asked (signals, large reads)
            chunk = os.pread(self._fd, want, pos)
            if not chunk:
                break
            chunks.append(chunk)
            pos += len(chunk)
            want -= len(chunk)
        self._shared = pos
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


class ReadOnlyFiles(LocalFileSystem):
    """The local file system under the `fairwatch-ro://` protocol, with every write refused."""

    protocol = (READONLY_PROTOCOL,)

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        """Open for reading only, with per-thread positions (`PositionalReader`)."""
        if any(flag in mode for flag in "wax+"):
            raise PermissionError(f"{self._strip_protocol(path)}: fairwatch opens sources read-only")
        if "b" in mode:
            return PositionalReader(self._strip_protocol(path))
        return super()._open(path, mode=mode, **kwargs)

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        """Every call that would change the file system."""
        raise PermissionError("fairwatch opens sources read-only")

    mkdir = makedirs = rm = rm_file = rmdir = mv = touch = cp_file = put_file = pipe_file = link = symlink = _refuse


def readonly_path(path: str) -> str:
    """An absolute local path as DuckDB should read it: through the read-only file system."""
    return _READONLY_PREFIX + os.path.abspath(path)


@dataclass(frozen=True)
class OpenSource:
    """A DuckDB connection with the `src` view and the source's column names and types."""

    con: duckdb.DuckDBPyConnection
    columns: tuple[tuple[str, str], ...]
    description: str
    # Columns of the predictions alone (view src_main); empty when src is not a join.
    main_columns: tuple[str, ...] = ()
    # For PostgreSQL and Spark: runs the transpiled queries there (con is then None).
    runner: Any = None

    @property
    def engine(self) -> str:
        """duckdb, postgres or spark."""
        return "duckdb" if self.runner is None else self.runner.dialect

    def close(self) -> None:
        """Release the engine."""
        if self.runner is not None:
            self.runner.close()
        elif self.con is not None:
            self.con.close()

    def relation_for(self, columns: list[str]) -> str:
        """`src_main` when every column lives in the predictions (no join needed), else `src`."""
        if self.main_columns and all(c in self.main_columns for c in columns):
            return "src_main"
        return "src"

    def column_names(self) -> tuple[str, ...]:
        """Column names of `src`, as the source spells them."""
        return tuple(c for c, _ in self.columns)

    def column_type(self, name: str) -> str:
        """DuckDB type of one column of `src`."""
        return dict(self.columns)[name]

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A fresh cursor: each query gets its own, so concurrent sessions never share one."""
        return self.con.cursor()


def expand_path(path: str) -> tuple[str, list[str]]:
    """Resolve a file, glob or folder to (the pattern DuckDB should read, the files it matches)."""
    p = os.path.expanduser(path)
    if os.path.isdir(p):
        files = [f for f in glob.glob(os.path.join(p, "**", "*"), recursive=True) if os.path.isfile(f)]
        suffixes = sorted({Path(f).suffix.lower() for f in files if Path(f).suffix.lower() in _READERS})
        if not suffixes:
            raise SourceError(f"folder {path} holds no CSV, Parquet or JSON files; point to a file or a folder of them")
        if len(suffixes) > 1:
            raise SourceError(f"folder {path} mixes {', '.join(suffixes)} files; point to one kind with a glob such as {path}/**/*{suffixes[0]}")
        return os.path.join(p, "**", "*" + suffixes[0]), files
    if any(ch in p for ch in "*?["):
        files = [f for f in glob.glob(p, recursive=True) if os.path.isfile(f)]
        if not files:
            raise SourceError(f"no file matches {path}; check the pattern")
        return p, files
    if not os.path.exists(p):
        raise SourceError(f"file not found: {path}; check the path (it is read relative to {os.getcwd()})")
    if not os.path.isfile(p):
        raise SourceError(f"{path} is not a regular file")
    return p, [p]


def _truncated_json_array(path: str) -> bool:
    """A JSON array whose closing bracket is missing (DuckDB reads the complete objects and ignores the rest)."""
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
        if not head.startswith(b"["):
            return False
        fh.seek(max(0, os.path.getsize(path) - 64))
        return not fh.read().rstrip().endswith(b"]")


def _reader_sql(pattern: str, files: list[str]) -> str:
    """The DuckDB table function that reads these files."""
    if all(os.path.getsize(f) == 0 for f in files):
        raise SourceError(f"{pattern} is empty (0 bytes); export the data again or point to another file")
    suffix = Path(files[0]).suffix.lower()
    if suffix.endswith(".gz"):
        suffix = Path(Path(files[0]).stem).suffix.lower()
    if suffix == ".json" and not Path(files[0]).name.lower().endswith(".gz"):
        for f in files:
            if _truncated_json_array(f):
                raise SourceError(f"{f} starts a JSON array ('[') that never ends (']'): the file is truncated; "
                                  "export it again")
    if suffix not in _READERS:
        raise SourceError(
            f"cannot read {files[0]}: unknown file type {suffix or '(none)'}; use CSV, Parquet, JSON/NDJSON or a DuckDB file"
        )
    return _READERS[suffix].format(p=quote_literal(readonly_path(pattern)))


def _relation_sql(con: duckdb.DuckDBPyConnection, path: str, table: str | None, alias: str) -> tuple[str, list[str]]:
    """SQL for one relation (a file set, or a table of an attached DuckDB file) and the folders it reads."""
    pattern, files = expand_path(path)
    if Path(files[0]).suffix.lower() in DUCKDB_SUFFIXES and len(files) == 1:
        try:
            con.execute(f"ATTACH {quote_literal(os.path.abspath(files[0]))} AS {quote_ident(alias)} (READ_ONLY)")
        except duckdb.Error as exc:
            raise SourceError(f"cannot open DuckDB file {path}: {engine_message(exc)}") from None
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = $db ORDER BY 1", {"db": alias}
        ).fetchall()]
        if table is None:
            if len(tables) != 1:
                raise SpecError(f"{path} holds tables {', '.join(tables) or '(none)'}; name one with {{field}}",
                              field="table")
            table = tables[0]
        matches = [t for t in tables if t.lower() == table.lower()]
        if not matches:
            raise SpecError(f"no table {table} in {path}; it holds: {', '.join(tables) or '(none)'}")
        # Attached READ_ONLY: the open handle keeps reading after the lock, so no folder is allowed for it.
        return f"{quote_ident(alias)}.{quote_ident(matches[0])}", []
    if table is not None:
        raise SpecError(f"--table is only for DuckDB database files, but {path} is not one")
    # DuckDB checks the pattern itself against the allowed folders, so allow the folder it starts in.
    base = os.path.abspath(pattern)
    while any(ch in base for ch in "*?["):
        base = os.path.dirname(base)
    folder = base if os.path.isdir(base) else os.path.dirname(base)
    return _reader_sql(pattern, files), [folder]


def engine_message(exc: BaseException) -> str:
    """The first line of an engine error, without DuckDB's hints and context, with plain paths."""
    lines = str(exc).strip().splitlines()
    if not lines:
        return type(exc).__name__
    # An error raised inside ReadOnlyFiles arrives as a Python traceback: its last line says what happened.
    line = lines[-1] if lines[0].endswith("Traceback (most recent call last):") else lines[0]
    return line.replace(_READONLY_PREFIX, "")


_HINTS = (("Invalid unicode", "the file is not UTF-8 encoded (latin-1 or UTF-16?); save it as UTF-8"),)


def _read_error(message: str, full: str) -> str:
    """An engine's reading error (first line, whole text) in a user's words: what could not be read, what to do."""
    hint = next((h for key, h in _HINTS if key in full), None)
    sniffed = re.search(r'Error when sniffing file "([^"]+)"', message)
    if sniffed:
        # DuckDB's own words ("sniffing", "dialect") mean nothing to a user: say what was tried and what to check.
        return (f"could not read {Path(sniffed.group(1)).name} as CSV: its delimiter, quoting or header could not be "
                f"detected; check that it is a text file with one header row and the same number of fields on every "
                f"line, or export it again")
    line = re.search(r"CSV Error on Line: (\d+)", message)
    typed = re.search(r'converting column "([^"]+)"\. Could not convert string "([^"]{0,60})[^"]*" to \'(\w+)\'', full)
    if line and typed and not hint:
        # Types are guessed from the first rows; a later row that does not fit is the data's doing, so say which.
        return (f"could not read the CSV file: line {line.group(1)}: column {typed.group(1)} holds {typed.group(2)!r} "
                f"where the rows before it read as {typed.group(3)}; fix that value, or export the column as text")
    if line:
        return f"could not read the CSV file: line {line.group(1)}: " + (hint or "a row that does not fit the others")
    return f"cannot read the source: {message}" + (f": {hint}" if hint else "")


# A text file (CSV, TSV, JSON) behind a view is parsed again by every query, and an audit makes dozens of them
# (COMPAS's 2.5 MB, 53-column CSV: 0.15 s a query, 36 queries). Up to this size the rows are parsed once, when the
# source opens, into a table of the source's own in-memory database (it spills to the private temporary folder
# past the memory limit); larger text files keep the view: Parquet is the format for those. Compressed files
# count at 8 times their size.
TEXT_PARSED_ONCE_BYTES = 64 * 1024 * 1024
_TEXT_READERS = ("read_csv(", "read_json_auto(")


def read_failure(exc: duckdb.Error) -> SourceError:
    """The one-line error for a query the engine could not run over the source (a CSV line, a type, a file)."""
    return SourceError(_read_error(engine_message(exc), str(exc)))


def _parsed_once(con: duckdb.DuckDBPyConnection, sql: str, path: str, name: str) -> str:
    """`sql` read into the table `name` when it reads small text files (TEXT_PARSED_ONCE_BYTES), else `sql`."""
    if not sql.startswith(_TEXT_READERS):
        return sql
    try:
        size = sum(os.path.getsize(f) * (8 if f.lower().endswith((".gz", ".zst")) else 1) for f in expand_path(path)[1])
    except OSError:  # a file gone since it was listed: the view reports it, as any read would
        return sql
    if size > TEXT_PARSED_ONCE_BYTES:
        return sql
    try:
        con.execute(f"CREATE TABLE {quote_ident(name)} AS SELECT * FROM {sql}")
    except duckdb.Error as exc:
        raise read_failure(exc) from None
    return quote_ident(name)


def _describe(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[str, str]]:
    """Column names and types of a relation, reading as little as possible."""
    try:
        cols = [(r[0], r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {sql}").fetchall()]
    except duckdb.Error as exc:
        raise read_failure(exc) from None
    if sql.startswith("read_csv(") and len(cols) == 1 and any(d in cols[0][0] for d in ",;\t|"):
        # The sniffer gave up splitting rows (a truncated or ragged row) and read each line as one text.
        raise SourceError(f"cannot split the rows of the CSV into columns (header {cols[0][0][:80]!r}): some rows have "
                          "a different number of fields (truncated or ragged file?); fix or export it again")
    return cols


def _raw_header(con: duckdb.DuckDBPyConnection, file: str) -> list[str]:
    """The column names as written in the file, before DuckDB renames repeats (sex, sex -> sex, sex_1)."""
    suffix = Path(file).suffix.lower()
    lit = quote_literal(readonly_path(file))
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(file).names)
        if suffix in (".csv", ".tsv", ".txt"):
            delim = ", delim = '\t'" if suffix == ".tsv" else ""
            rows = con.execute(f"SELECT * FROM read_csv({lit}, header = false, all_varchar = true{delim}) LIMIT 1").fetchall()
            return [str(v) for v in rows[0]] if rows else []
        if suffix in (".json", ".ndjson", ".jsonl"):
            rows = con.execute(f"SELECT json_keys(json) FROM read_json_objects({lit}) LIMIT 1").fetchall()
            return list(rows[0][0] or []) if rows else []
    except Exception:  # noqa: BLE001 - only a diagnosis; the real read reports real errors
        return []
    return []


def _check_repeated_names(con: duckdb.DuckDBPyConnection, cols: list[tuple[str, str]], files: list[str],
                          what: str) -> None:
    """Refuse a header with names that differ only in case (DuckDB would silently rename one to name_1)."""
    lowered = {c.lower() for c, _ in cols}
    renamed = [c for c, _ in cols if re.fullmatch(r"(.+)_\d+", c) and re.fullmatch(r"(.+)_\d+", c).group(1).lower() in lowered]
    if not renamed or Path(files[0]).suffix.lower() in DUCKDB_SUFFIXES:
        return
    header = _raw_header(con, files[0])
    # The same name twice (COMPAS has decile_score twice) stays readable: DuckDB calls the second name_1, as the
    # column list shows. Names that differ only in case cannot be told apart in SQL, so they are refused.
    seen: dict[str, str] = {}
    for name in header:
        if name.lower() in seen and seen[name.lower()] != name:
            raise SourceError(f"{what} has columns {seen[name.lower()]!r} and {name!r} that differ only in case; "
                              "rename one before auditing")
        seen.setdefault(name.lower(), name)


def _check_case_collisions(cols: list[tuple[str, str]], what: str) -> None:
    """DuckDB identifiers ignore case even when quoted, so `Age` and `age` cannot both be addressed."""
    seen: dict[str, str] = {}
    for name, _ in cols:
        if name.lower() in seen:
            raise SourceError(
                f"{what} has columns {seen[name.lower()]!r} and {name!r} that differ only in case; rename one before auditing"
            )
        seen[name.lower()] = name


def _spill_privately(con: duckdb.DuckDBPyConnection) -> None:
    """Spill queries larger than memory into a new folder under the system temp dir.

    DuckDB's default is `.tmp` in the working directory, which may be the data folder; it creates the
    folder on the first spill and removes it when the connection closes.
    """
    folder = os.path.join(tempfile.gettempdir(), f"fairwatch-duckdb-{uuid.uuid4().hex}")
    con.execute(f"SET temp_directory = {quote_literal(folder)}")


def open_source(source: SourceSpec, *, memory_limit: str | None = None, threads: int | None = None) -> OpenSource:
    """Open the source read-only with the `src` view; lock the engine to the source's folders."""
    if source.engine != "duckdb":
        return open_remote(source)
    con = duckdb.connect(":memory:")
    try:
        con.register_filesystem(ReadOnlyFiles())
        _spill_privately(con)
        if memory_limit:
            con.execute(f"SET memory_limit = {quote_literal(memory_limit)}")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        main_sql, folders = _relation_sql(con, source.path, source.table, "src_db")
        main_cols = _describe(con, main_sql)
        _check_case_collisions(main_cols, f"source {source.path}")
        _check_repeated_names(con, main_cols, expand_path(source.path)[1], f"source {source.path}")
        main_sql = _parsed_once(con, main_sql, source.path, "src_rows")
        if source.labels_path or source.labels_table:
            labels_sql, more = (
                _relation_sql(con, source.labels_path, None, "labels_db") if source.labels_path
                else _relation_sql(con, source.path, source.labels_table, "src_db_labels")
            )
            if source.labels_path:
                labels_sql = _parsed_once(con, labels_sql, source.labels_path, "labels_rows")
            folders += more
            view_sql = _joined_sql(con, main_sql, main_cols, labels_sql, source.id_column or "")
            # Queries that need no label column (cardinality checks) skip the join.
            con.execute(f"CREATE VIEW src_main AS SELECT * FROM {main_sql}")
            main_names = tuple(c for c, _ in main_cols)
        else:
            view_sql = f"SELECT * FROM {main_sql}"
            main_names = ()
        con.execute(f"CREATE VIEW src AS {view_sql}")
        cols = [(r[0], r[1]) for r in con.execute("DESCRIBE src").fetchall()]
        # From here on the engine may read only the source's own folders, through the read-only file system,
        # and nobody may widen that: no plain path is allowed, so nothing can be written anywhere.
        allowed = sorted({readonly_path(f).rstrip("/") + "/" for f in folders})
        con.execute("SET allowed_directories = [" + ", ".join(quote_literal(f) for f in allowed) + "]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except Exception:
        con.close()
        raise
    return OpenSource(con=con, columns=tuple(cols), description=source.describe(), main_columns=main_names)


def open_frame(frame: Any, description: str = "in-memory frame") -> OpenSource:
    """Expose a pandas DataFrame or Arrow table as `src` (for library use and tests)."""
    con = duckdb.connect(":memory:")
    _spill_privately(con)
    con.register("src_frame", frame)
    cols = _describe(con, "src_frame")
    _check_case_collisions(cols, description)
    # A registered frame is visible to this connection only; cursors need a real table.
    con.execute("CREATE TABLE src AS SELECT * FROM src_frame")
    con.unregister("src_frame")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return OpenSource(con=con, columns=tuple(cols), description=description)


def _joined_sql(con: duckdb.DuckDBPyConnection, main_sql: str, main_cols: list[tuple[str, str]],
                labels_sql: str, id_column: str) -> str:
    """Predictions left-joined to their labels: rows without a label yet stay, with a NULL label."""
    label_cols = _describe(con, labels_sql)
    _check_case_collisions(label_cols, "labels table")
    main_id = resolve_column(tuple(main_cols), id_column, "id column (predictions)")
    label_id = resolve_column(tuple(label_cols), id_column, "id column (labels)")
    main_names = {c.lower() for c, _ in main_cols}
    extra = [c for c, _ in label_cols if c.lower() != label_id.lower()]
    clash = [c for c in extra if c.lower() in main_names]
    if clash:
        raise SourceError(f"predictions and labels both have column(s) {', '.join(clash)}; rename them in one of the two")
    picked = ", ".join(f"l.{quote_ident(c)}" for c in extra)
    join = f"{main_sql} AS p LEFT JOIN {labels_sql} AS l ON p.{quote_ident(main_id)} = l.{quote_ident(label_id)}"
    aligned = _aligned_labels(con, main_sql, main_id, join, picked, label_id, labels_sql)
    if aligned is not None:
        return aligned
    _refuse_repeated_labels(con, labels_sql, label_id)
    return f"SELECT p.*{', ' + picked if picked else ''} FROM {join}"


def _refuse_repeated_labels(con: duckdb.DuckDBPyConnection, labels_sql: str, label_id: str) -> None:
    """Refuse a labels table with an id twice: the join would count that prediction twice."""
    dupes = con.execute(
        f"SELECT count(*) - count(DISTINCT {quote_ident(label_id)}) FROM {labels_sql}"
    ).fetchall()[0][0]
    if dupes:
        raise SourceError(f"the labels table has {dupes} repeated {label_id} value(s); keep one label per id")


def _aligned_labels(con: duckdb.DuckDBPyConnection, main_sql: str, main_id: str, join: str, picked: str,
                    label_id: str, labels_sql: str) -> str | None:
    """The join done once: label columns in the predictions' row order, zipped back by POSITIONAL JOIN.

    A hash join of millions of predictions to their labels costs every query a second or more
    (10M rows: 1.0-1.7 s against 0.2 s for the same GROUP BY on a zip), and a dashboard runs many.
    So the label columns are joined once, in row order (rowid: only a DuckDB table has one), into a
    table of this private in-memory database (10M rows: 2.5 s, about 20 bytes a row), and `src` zips
    it to the predictions. The zip is checked id by id before it is used; anything else (files,
    views, a zip that does not line up) keeps the plain join, which is always right.
    """
    if not picked or not main_sql.startswith('"'):  # not a table of an attached DuckDB file
        return None
    try:
        con.execute(f"CREATE TABLE fw_labels AS SELECT p.{quote_ident(main_id)} AS fw_id, {picked} "
                    f"FROM {join} ORDER BY p.rowid")
    except duckdb.Error:  # no rowid (a view): the plain join
        return None
    main_rows = con.execute(f"SELECT count(*) FROM {main_sql}").fetchall()[0][0]
    joined_rows = con.execute("SELECT count(*) FROM fw_labels").fetchall()[0][0]
    if joined_rows != main_rows:  # a prediction matched two labels
        _refuse_repeated_labels(con, labels_sql, label_id)
    misaligned = con.execute(f"SELECT count(*) FROM {main_sql} AS p POSITIONAL JOIN fw_labels AS a "
                             f"WHERE p.{quote_ident(main_id)} IS DISTINCT FROM a.fw_id").fetchall()[0][0]
    if joined_rows != main_rows or misaligned:
        con.execute("DROP TABLE fw_labels")
        return None
    con.execute("ALTER TABLE fw_labels DROP COLUMN fw_id")
    return f"SELECT p.*, {picked} FROM {main_sql} AS p POSITIONAL JOIN fw_labels AS l"


def resolve_column(columns: tuple[tuple[str, str], ...], name: str, role: str) -> str:
    """The source's own spelling of a column named in the spec (case-insensitive), or a clear error."""
    for col, _ in columns:
        if col == name:
            return col
    matches = [c for c, _ in columns if c.lower() == name.lower()]
    if len(matches) == 1:
        return matches[0]
    raise SpecError(f"the {role} {name!r} is not a column of the source; columns are: {_column_list(columns)}")


def _column_list(columns: tuple[tuple[str, str], ...]) -> str:
    """The source's column names for a message, the first 30."""
    names = [c for c, _ in columns]
    return ", ".join(names[:30]) + (f", … ({len(names)} in all)" if len(names) > 30 else "")


def resolve_spec_columns(spec: AuditSpec, src: OpenSource) -> dict[str, str]:
    """Map every column the spec names to the source's spelling; errors name the role and list the columns."""
    roles: dict[str, str] = {"label": spec.label}
    for role in ("prediction", "score", "time", "model_version", "id"):
        value = getattr(spec, role)
        if value is not None:
            roles[role] = value
    out = {role: resolve_column(src.columns, name, f"{role} column") for role, name in roles.items()}
    for name in spec.sensitive:
        out[f"sensitive:{name}"] = resolve_column(src.columns, name, "sensitive feature")
    for name in spec.features:
        out[f"feature:{name}"] = resolve_column(src.columns, name, "feature")
    check_privacy_columns(spec, src)
    if spec.score is not None:
        kind = src.column_type(out["score"]).upper()
        if kind.startswith("INTERVAL") or not any(t in kind for t in ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC")):
            raise SpecError(f"the score column {spec.score!r} is {kind}, not a number; choose a numeric score column")
    return out


def check_privacy_columns(spec: AuditSpec, src: OpenSource) -> None:
    """Refuse [privacy] hide_columns/show_columns naming a column the source lacks: a typo would show the column."""
    lower = {c.lower() for c, _ in src.columns}
    for key, names in (("hide_columns", spec.hidden_columns), ("show_columns", spec.shown_columns)):
        # 'id' in hide_columns hides the id column by its role, whatever its name.
        unknown = sorted(h for h in names if h.lower() not in lower and not (key == "hide_columns" and h.lower() == "id"))
        if unknown:
            raise DataError(f"[privacy] {key} names {', '.join(unknown)}, which the source does not have "
                            f"(columns: {_column_list(src.columns)}); fix the spelling")


def open_remote(source: SourceSpec) -> OpenSource:
    """A PostgreSQL or Spark source: the counting queries run there, only their results come back."""
    from fairwatch.connectors.engines import PostgresRunner, SparkRunner, postgres_base

    if source.labels_path or source.labels_table:
        raise SpecError(f"separate label tables are joined only on DuckDB; on {source.engine}, give a table or "
                        "query (PostgreSQL) that already joins them")
    if source.engine == "postgres":
        runner: Any = PostgresRunner(url=source.path, base=postgres_base(source.table, source.query))
    else:
        runner = SparkRunner(master=source.master, location=source.table or source.path)
    try:
        cols = runner.columns()
        _check_case_collisions(cols, source.describe())
    except Exception:
        runner.close()
        raise
    return OpenSource(con=None, columns=tuple(cols), description=source.describe(), runner=runner)


@contextmanager
def opened(spec: AuditSpec, src: OpenSource | None = None) -> Iterator[OpenSource]:
    """The given open source, or the spec's source opened for the block and closed after it."""
    if src is not None:
        yield src
        return
    own = open_source(spec.source)
    try:
        yield own
    finally:
        own.close()
