"""One scan of the rows shared by the slice search and the data-quality counts (DuckDB, binary audits).

The slice search groups the rows into cells of the searched features, and the quality counts group
them again into blocks and into cells of every checked column (conflicting duplicates): three
hashings of every row, most of the 5-feature audit's time at 10M rows. Here the rows are grouped
once, into a table of (k, o, n): k packs the code of every audited column's value (its rank in the
column's distinct values, NULL the last code), o the codes of the label's and the decision's text,
and n the rows. Both searches then read this table instead of the rows: every count they make is a
count of rows, a function of the values that k and o encode, so it is a sum of n.

Exactness: the codes come from a join on each column's distinct values, the equality that GROUP BY
uses (NaN equals NaN, -0.0 equals 0.0); a value without a code (the source changed between the
two queries) leaves the table unused, as does a key that would not fit a BIGINT. The tests compare
every count with and without the scan (tests/test_cell_scan.py).

Measured on 10M rows and 8 audited columns (bench/bench_cli.py --only 5): grouping the rows by one
BIGINT key and the outcome code with count(*) costs about a third of grouping them by the 8 text
columns with the counts as aggregates, and about 4M rows remain.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass

import duckdb

from fairwatch.connectors.counts import group_expr, run_query
from fairwatch.connectors.source import OpenSource, quote_ident, read_failure
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter

_FLOAT_TYPE = re.compile(r"^(FLOAT[48]?|DOUBLE|REAL)\b", re.IGNORECASE)
# Nested values have no single text or order to code them by: such a column keeps the row scans.
_NESTED = re.compile(r"\[|STRUCT|MAP|UNION|LIST", re.IGNORECASE)
# The packed key is a BIGINT: the product of the columns' codes and the outcomes must stay below this.
_KEY_LIMIT = 2 ** 62
# More label or decision texts than this is not a binary audit's outcome: keep the row scans.
_MAX_OUTCOME_TEXTS = 64


def spec_columns(spec: AuditSpec, cols: dict[str, str]) -> list[tuple[str, str]]:
    """(spec name, source column) of every sensitive feature and feature, sensitive first, no repeats."""
    out, seen = [], set()
    for key in [f"sensitive:{s}" for s in spec.sensitive] + [f"feature:{f}" for f in spec.features]:
        name, col = key.split(":", 1)[1], cols[key]
        if col.lower() not in seen:
            seen.add(col.lower())
            out.append((name, col))
    return out


@dataclass(frozen=True)
class CellScan:
    """The rows of one audit grouped by every audited column's value code, label and decision (see module doc)."""

    spec: AuditSpec
    row_filter: RowFilter
    cells: str  # table (k BIGINT, o INTEGER, n BIGINT)
    outcomes: str  # table (o INTEGER, fw_l VARCHAR, fw_p VARCHAR): the label's and decision's text per code
    dicts: tuple[str, ...]  # per column, a table (v, r): its distinct values and their codes
    columns: tuple[tuple[str, str], ...]  # (spec name, source column), as `spec_columns`
    cards: tuple[int, ...]  # codes per column: its distinct values and one for NULL (the last)
    present: tuple[int, ...]  # codes below this are values; from it on, missing (NaN, then NULL)
    strides: tuple[int, ...]
    labels: tuple[str, ...]  # the label's distinct texts
    decisions: tuple[str, ...]  # the decision's distinct texts

    def code_sql(self, j: int, key: str = "k") -> str:
        """SQL: column j's value code, from the packed key."""
        return f"CAST(({key} // {self.strides[j]}) % {self.cards[j]} AS INTEGER)"

    def missing_sql(self, j: int, key: str = "k") -> str:
        """SQL: column j's value is missing (NULL, or NaN for a float), from the packed key."""
        return f"({self.code_sql(j, key)} >= {self.present[j]})"

    def texts_sql(self, j: int, kind: str) -> str:
        """SQL: column j's distinct values as the search's text keys (column `v`; NULL is not among them)."""
        return f"SELECT {group_expr('v', kind)} AS v FROM {self.dicts[j]}"

    def index(self, column: str) -> int:
        """The position of a source column among the scanned ones."""
        return [c.lower() for _, c in self.columns].index(column.lower())


class SharedCells:
    """At most one `CellScan` of an audit: built by the slice search, read by the quality counts, dropped on close."""

    def __init__(self, src: OpenSource):
        """Nothing is scanned until the slice search asks."""
        self.src = src
        self.scan: CellScan | None = None
        self._tables: list[str] = []

    def get(self, spec: AuditSpec, row_filter: RowFilter | None) -> CellScan | None:
        """The scan of these rows, or None (none built, or of another spec or filter)."""
        scan = self.scan
        if scan is None or scan.spec != spec or scan.row_filter != (row_filter or RowFilter()):
            return None
        return scan

    def build(self, spec: AuditSpec, row_filter: RowFilter | None, cols: dict[str, str], where: str, params: dict,
              label_sql: str, decision_sql: str) -> CellScan | None:
        """Scan the rows once into cells (see module doc); None when they cannot be coded (the row scans then run)."""
        if self.src.runner is not None or spec.task != "binary":
            return None
        columns = spec_columns(spec, cols)
        types = [self.src.column_type(c) for _, c in columns]
        if any(_NESTED.search(t) for t in types):
            return None
        base = f"fw_cells_{uuid.uuid4().hex[:12]}"
        lists = ", ".join(f"list(DISTINCT {quote_ident(c)}) AS d{j}" for j, (_, c) in enumerate(columns))
        self._create(f"{base}_lists", f"SELECT {lists}, list(DISTINCT {label_sql}) AS dl, list(DISTINCT {decision_sql}) "
                                      f"AS dp FROM src WHERE {where}", params)
        texts = run_query(self.src, f"SELECT dl, dp FROM {base}_lists").iloc[0]
        labels = tuple(sorted(str(v) for v in texts["dl"] if v is not None))
        decisions = tuple(sorted(str(v) for v in texts["dp"] if v is not None))
        if len(labels) > _MAX_OUTCOME_TEXTS or len(decisions) > _MAX_OUTCOME_TEXTS:
            return None
        dicts, cards, present = [], [], []
        for j, kind in enumerate(types):
            nan = "isnan(v), " if _FLOAT_TYPE.match(kind) else ""
            dicts.append(self._create(
                f"{base}_d{j}", f"SELECT v, CAST(row_number() OVER (ORDER BY {nan}v) - 1 AS INTEGER) AS r "
                                f"FROM (SELECT unnest(d{j}) AS v FROM {base}_lists) AS fw_u WHERE v IS NOT NULL"))
            got = run_query(self.src, f"SELECT count(*) AS n, count(*) FILTER (WHERE NOT {'isnan(v)' if nan else 'FALSE'}) "
                                      f"AS p FROM {dicts[-1]}").iloc[0]
            cards.append(int(got["n"]) + 1)
            present.append(int(got["p"]))
        outcomes = (len(labels) + 1) * (len(decisions) + 1)
        if math.prod(cards) * outcomes >= _KEY_LIMIT:
            return None
        strides = [math.prod(cards[:j]) for j in range(len(cards))]
        key = " + ".join(f"CAST(coalesce(d{j}.r, CASE WHEN fw_s.c{j} IS NULL THEN {cards[j] - 1} END) AS BIGINT) * {strides[j]}"
                         for j in range(len(columns))) or "CAST(0 AS BIGINT)"
        q = {**params, "fw_labels": list(labels), "fw_decisions": list(decisions)}
        code = ("CASE WHEN fw_s.{x} IS NULL THEN {none} ELSE list_position(${p}, fw_s.{x}) - 1 END")
        outcome = (f"({code.format(x='fw_l', none=len(labels), p='fw_labels')}) * {len(decisions) + 1} + "
                   f"({code.format(x='fw_p', none=len(decisions), p='fw_decisions')})")
        selects = "".join(f"{quote_ident(c)} AS c{j}, " for j, (_, c) in enumerate(columns))
        joins = " ".join(f"LEFT JOIN {d} AS d{j} ON fw_s.c{j} = d{j}.v" for j, d in enumerate(dicts))
        cells = self._create(
            f"{base}_k", f"SELECT {key} AS k, CAST({outcome} AS INTEGER) AS o, count(*) AS n FROM (SELECT {selects}"
                         f"{label_sql} AS fw_l, {decision_sql} AS fw_p FROM src WHERE {where}) AS fw_s {joins} GROUP BY ALL", q)
        # A value the dictionaries lack (rows changed between the two scans) would have no code: keep the row scans.
        if int(run_query(self.src, f"SELECT count(*) AS n FROM {cells} WHERE k IS NULL OR o IS NULL").iloc[0]["n"]):
            return None
        pairs = [(i * (len(decisions) + 1) + p, lv, pv) for i, lv in enumerate([*labels, None])
                 for p, pv in enumerate([*decisions, None])]
        values = ", ".join(f"({o}, $l{o}, $p{o})" for o, _, _ in pairs)
        self._create(f"{base}_o", f"SELECT CAST(o AS INTEGER) AS o, CAST(l AS VARCHAR) AS fw_l, CAST(p AS VARCHAR) AS fw_p "
                                  f"FROM (VALUES {values}) AS fw_v(o, l, p)",
                     {**{f"l{o}": lv for o, lv, _ in pairs}, **{f"p{o}": pv for o, _, pv in pairs}})
        self.scan = CellScan(spec=spec, row_filter=row_filter or RowFilter(), cells=cells, outcomes=f"{base}_o",
                             dicts=tuple(dicts), columns=tuple(columns), cards=tuple(cards), present=tuple(present),
                             strides=tuple(strides), labels=labels, decisions=decisions)
        return self.scan

    def _create(self, name: str, sql: str, params: dict | None = None) -> str:
        """Create table `name` from a SELECT in the source's private in-memory database; dropped on close."""
        self._tables.append(name)
        try:
            with self.src.cursor() as cur:
                statement = f"CREATE TABLE {name} AS {sql}"
                cur.execute(statement, {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", statement)})
        except duckdb.Error as exc:
            raise read_failure(exc) from None
        return name

    def close(self) -> None:
        """Drop the scan's tables (they live in the source's in-memory database)."""
        self.scan = None
        if not self._tables:
            return
        with self.src.cursor() as cur:
            for name in reversed(self._tables):
                cur.execute(f"DROP TABLE IF EXISTS {name}")
        self._tables = []

    def __enter__(self) -> SharedCells:
        """Use as `with SharedCells(src) as cells:`."""
        return self

    def __exit__(self, *exc) -> None:
        """Drop the tables."""
        self.close()
