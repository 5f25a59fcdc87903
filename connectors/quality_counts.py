"""Data-quality counts per slice, in one query: missing values, conflicting duplicates, label errors.

Only counts leave the engine (DuckDB; PostgreSQL and Spark get the same query transpiled by
`connectors/engines.py`). For every requested slice and every group of each sensitive feature the
query counts rows, labelled rows, rows with a missing value (in any of the slice's other columns,
and per column), labelled rows in conflicting-duplicate groups, and suspected label errors
(Confident Learning thresholds, from a scan of the label and score first); plus the same totals
over every audited row, so that each slice's complement is total minus slice. The rows are
aggregated once, into blocks of what the slices read; every count is a sum over blocks (the score
loss, a double per row, is summed per row). The rules are stated in `metrics/discovery/quality.py`.

Slice predicates: a value compares as text, the column written as `group_expr` groups it
(`text_expr`: a whole float is '1.0' on every engine), '(missing)' means IS NULL, and on a
numeric column a range label such as ``[10, 20)``, ``(-inf, 5]`` or ``[1e3, inf)`` means that
interval (the slice search's bins). Values are always parameters; identifiers are the spec's
columns, resolved against the source and quoted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairwatch.connectors.cell_scan import CellScan, SharedCells
from fairwatch.connectors.cell_scan import spec_columns as _spec_columns
from fairwatch.connectors.counts import MISSING, check_cardinality, group_expr, run_query, text_expr, where_sql
from fairwatch.connectors.slice_counts import decision_sql, error_signal_sql
from fairwatch.connectors.source import OpenSource, quote_ident, resolve_spec_columns
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.audit.outcomes import choose_positive, normalise_value, positive_set
from fairwatch.metrics.discovery.quality import (
    CONFLICTS,
    LABEL_ERRORS,
    LABEL_ERRORS_NEG,
    LABEL_ERRORS_POS,
    MISSING_ANY,
    MISSING_COLUMN,
    CELL_COLUMNS,
    CLEAN_COLUMNS,
    SIGNAL_COLUMNS,
    LabelErrorRule,
    QualityCounts,
    Slice,
)
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter

_NUMBER = r"[-+]?(?:inf|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
RANGE_PATTERN = re.compile(rf"^\s*([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])\s*$", re.IGNORECASE)
_NUMERIC_TYPE = re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|INT[1248]|FLOAT[48]?|DOUBLE|REAL|DECIMAL|NUMERIC)\b",
                           re.IGNORECASE)
_FLOAT_TYPE = re.compile(r"^(FLOAT[48]?|DOUBLE|REAL)\b", re.IGNORECASE)
_SALT = "fairwatch-quality"
# Tests set this to count every error signal per row (the score loss's query) and compare with the blocks.
_PER_ROW = False


def is_numeric_type(duck_type: str) -> bool:
    """Whether a DuckDB column type is a number (INTERVAL is not, despite containing INT)."""
    return bool(_NUMERIC_TYPE.match(duck_type.strip()))


def parse_range(value: str) -> tuple[float, bool, float, bool] | None:
    """A range label '[a, b)' as (low, low_inclusive, high, high_inclusive), or None if it is not one."""
    m = RANGE_PATTERN.match(value)
    if not m:
        return None
    low, high = float(m.group(2)), float(m.group(3))
    if math.isnan(low) or math.isnan(high) or low > high:
        return None
    return low, m.group(1) == "[", high, m.group(4) == "]"


def _check_slices(slices: Sequence[Slice], names: dict[str, int], src: OpenSource,
                  spec_cols: list[tuple[str, str]]) -> list[Slice]:
    """Validate the requested slices: tuples of (column, value) text pairs over the spec's columns."""
    out = []
    listed = ", ".join(n for n, _ in spec_cols)
    source_names = {c.lower() for c in src.column_names()}
    for slice_ in slices:
        if not isinstance(slice_, (tuple, list)) or not slice_:
            raise DataError(f"a slice must be a non-empty tuple of (column, value) pairs, got {slice_!r}")
        pairs = []
        for pair in slice_:
            if (not isinstance(pair, (tuple, list)) or len(pair) != 2 or not isinstance(pair[0], str)
                    or not isinstance(pair[1], str)):
                raise DataError(f"slice {slice_!r} has a condition that is not a (column, value) pair of strings")
            if pair[0].lower() not in names:
                if pair[0].lower() in source_names:
                    raise DataError(f"slice {slice_label(slice_)} uses column {pair[0]!r}, which is not a sensitive "
                                    f"feature or feature of the audit ({listed}); add it to [columns] features")
                raise DataError(f"slice {slice_label(slice_)} names column {pair[0]!r}, which the source does not "
                                f"have; slices may use: {listed}")
            pairs.append((pair[0], pair[1]))
        used = [names[c.lower()] for c, _ in pairs]
        if len(set(used)) != len(used):
            raise DataError(f"slice {slice_label(slice_)} names a column twice; give one condition per column")
        out.append(tuple(pairs))
    return out


def _predicate(slice_: Slice, k: int, names: dict[str, int], types: list[str]) -> tuple[str, dict, int]:
    """SQL for 'row is in the slice' (over the aliases c<j>), its parameters, and its count of '(missing)' conditions."""
    clauses, params, own_missing = [], {}, 0
    for i, (name, value) in enumerate(slice_):
        j = names[name.lower()]
        col, key = f"c{j}", f"s{k}_{i}"
        rng = parse_range(value) if is_numeric_type(types[j]) else None
        if value == MISSING:
            clauses.append(f"{col} IS NULL")
            own_missing += 1
        elif rng is not None:
            low, low_inc, high, high_inc = rng
            parts = [f"{col} IS NOT NULL AND NOT isnan(CAST({col} AS DOUBLE))"]
            # NaN compares above every number in DuckDB: a range never holds a missing value.
            if not math.isinf(low):
                parts.append(f"CAST({col} AS DOUBLE) {'>=' if low_inc else '>'} ${key}_lo")
                params[f"{key}_lo"] = low
            if not math.isinf(high):
                parts.append(f"CAST({col} AS DOUBLE) {'<=' if high_inc else '<'} ${key}_hi")
                params[f"{key}_hi"] = high
            clauses.append("(" + " AND ".join(parts) + ")")
        else:
            clauses.append(f"{text_expr(col, types[j])} = ${key}")
            params[key] = value
            # A float NaN casts to 'nan': that slice holds exactly the rows where the column is NaN.
            own_missing += int(bool(_FLOAT_TYPE.match(types[j])) and value.lower() == "nan")
    return "(" + " AND ".join(clauses) + ")", params, own_missing


def _positive_raw_labels(src: OpenSource, label: str, spec: AuditSpec, where: str, params: dict,
                         positive_label: str, scan: CellScan | None = None) -> tuple[str, list[str]]:
    """The raw label texts that count as positive, chosen exactly as `binarize` chooses (`scan`: its label texts)."""
    if scan is not None:
        raw = list(scan.labels)  # the same distinct CAST(label AS VARCHAR) of the same rows, counted by the scan
    else:
        raw = run_query(src, f"SELECT DISTINCT CAST({quote_ident(label)} AS VARCHAR) AS v FROM src "
                             f"WHERE ({where}) AND {quote_ident(label)} IS NOT NULL LIMIT 1000", params)["v"].tolist()
    normalised = {normalise_value(v) for v in raw}
    positive = choose_positive(normalised, positive_label, "label", spec.label, "positive_label")
    wanted = positive_set(positive)
    return positive, [v for v in raw if normalise_value(v) in wanted]


def _sensitive_groups(src: OpenSource, spec: AuditSpec, cols: dict[str, str], where: str, params: dict,
                      scan: CellScan | None = None) -> list[Slice]:
    """Every group of each sensitive feature, as one-condition slices (NULL as '(missing)')."""
    sens = [cols[f"sensitive:{s}"] for s in spec.sensitive]
    from_scan = _scanned_groups(src, spec, sens, scan) if scan is not None else None
    if from_scan is not None:
        return from_scan
    check_cardinality(src, spec, sens, where, params)
    out = []
    for name, col in zip(spec.sensitive, sens):
        values = run_query(src, f"SELECT DISTINCT {group_expr(col, src.column_type(col))} AS v FROM src WHERE {where} ORDER BY 1", params)
        out.extend(((name, str(v)),) for v in values["v"])
    return out


# Types whose text is one-to-one with the equality the scan's dictionaries use (a float's -0.0 and 0.0 are one value
# there but two texts, so floats and other types ask the rows).
_EXACT_TEXT = re.compile(r"^(VARCHAR|BOOLEAN|U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)$", re.IGNORECASE)


def _scanned_groups(src: OpenSource, spec: AuditSpec, sens: list[str], scan: CellScan) -> list[Slice] | None:
    """`_sensitive_groups` from the cell scan: its dictionaries hold every value, its cells say where NULL occurs.

    The slice search's profile refused any column over max_groups before the scan was made (a scan has no
    binned column), so the row path's cardinality check cannot fire here. None when a column's type is not
    one `_EXACT_TEXT` names, or over max_groups after all: the rows are asked then.
    """
    idx = [scan.index(c) for c in sens]
    if any(not _EXACT_TEXT.match(src.column_type(c).strip()) or scan.cards[j] - 1 > spec.policy.max_groups
           for c, j in zip(sens, idx)):
        return None
    nulls = run_query(src, "SELECT " + ", ".join(f"bool_or({scan.code_sql(j)} = {scan.cards[j] - 1}) AS m{i}"
                                                 for i, j in enumerate(idx)) + f" FROM {scan.cells}").iloc[0]
    out = []
    for i, (name, col, j) in enumerate(zip(spec.sensitive, sens, idx)):
        # UNION, not UNION ALL: a text '(missing)' and NULLs are one group, as in the rows' DISTINCT.
        missing = f" UNION SELECT '{MISSING}'" if bool(nulls[f"m{i}"]) else ""
        values = run_query(src, f"SELECT v FROM ({scan.texts_sql(j, src.column_type(col))}{missing}) AS fw_g "
                                f"GROUP BY v ORDER BY 1")
        out.extend(((name, str(v)),) for v in values["v"])
    return out


def fetch_quality_counts(src: OpenSource, spec: AuditSpec, slices: Sequence[Slice], positive_label: str,
                         row_filter: RowFilter | None = None,
                         positive_prediction: str | None = None, cells: SharedCells | None = None) -> QualityCounts:
    """Counts behind the data-quality signals for each slice and each sensitive group, in one query.

    `cells`: the slice search's cell scan of the same rows, if it made one (connectors/cell_scan.py); without
    a score, the counts are then sums over its cells instead of counts over the rows.

    With `positive_prediction`, also the slice search's error signal (its denominator and errors) among
    the rows each signal does not flag, per slice and over every row: whether a signal's rows explain a
    slice's gap is then a matter of counts (`metrics.discovery.quality.gap_without_flagged`).
    """
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    spec_cols = _spec_columns(spec, cols)
    names = {n.lower(): j for j, (n, _) in enumerate(spec_cols)}
    types = [src.column_type(c) for _, c in spec_cols]
    requested = _check_slices(slices, names, src, spec_cols)
    has_score = spec.score is not None
    scan = cells.get(spec, row_filter) if cells is not None and not has_score and not _PER_ROW else None
    if scan is not None and scan.columns != tuple(spec_cols):
        scan = None
    groups = _sensitive_groups(src, spec, cols, where, params, scan)
    origin: dict[Slice, str] = {}
    for s in requested:
        origin.setdefault(s, "requested")
    for s in groups:
        origin[s] = "both" if origin.get(s) in ("requested", "both") else "sensitive_group"
    all_slices = list(origin)

    positive, pos_raw = _positive_raw_labels(src, cols["label"], spec, where, params, positive_label, scan)
    q = dict(params)
    pos_params = {f"lp{i}": v for i, v in enumerate(pos_raw)}
    q.update(pos_params)
    label = quote_ident(cols["label"])
    is_pos = (f"CAST({label} AS VARCHAR) IN (" + ", ".join(f"${k}" for k in pos_params) + ")") if pos_params else "FALSE"
    score = f"CAST({quote_ident(cols['score'])} AS DOUBLE)" if has_score else "CAST(NULL AS DOUBLE)"
    width = len(spec_cols)
    selects = ", ".join(f"{quote_ident(c)} AS c{j}" for j, (_, c) in enumerate(spec_cols))
    missing = [f"(c{j} IS NULL" + (f" OR isnan(c{j}))" if _FLOAT_TYPE.match(types[j]) else ")") for j in range(width)]
    # Duplicates: identical on every checked column (and the score); NULLs group together, as in GROUP BY.
    keys = ", ".join([f"c{j}" for j in range(width)] + (["fw_s"] if has_score else []))

    # Each row carries the list of slices it belongs to (-1 = every row, for the totals); unnesting
    # it and grouping by slice counts every slice in one pass, at a cost that grows with the
    # memberships per row rather than with slices x columns (DuckDB's FILTER aggregates were 20x
    # slower here). A row of slice k has a missing value in one of the slice's other columns iff
    # its number of missing columns exceeds the slice's '(missing)' conditions: every other
    # condition implies a present value.
    members, own, others, preds, used = ["-1"], [0], [], {}, set()
    for k, s in enumerate(all_slices):
        pred, p, own_missing = _predicate(s, k, names, types)
        preds[s] = pred
        q.update(p)
        members.append(f"CASE WHEN {pred} THEN {k} END")
        own.append(own_missing)
        in_slice = {names[c.lower()] for c, _ in s}
        used |= in_slice
        others.append(tuple(j for j in range(width) if j not in in_slice))
    membership = "list_filter([" + ", ".join(members) + "], lambda x: x IS NOT NULL)"
    # The '(missing)' conditions of slice k (generated integers, not user values), as a CASE over
    # the few slices that have any: portable, where a list indexed by k is 1-based in DuckDB and
    # PostgreSQL but 0-based in Spark.
    own_cases = " ".join(f"WHEN {i - 1} THEN {d}" for i, d in enumerate(own) if d)
    own_missing_sql = f"CASE fw_k {own_cases} ELSE 0 END" if own_cases else "0"
    kept = ["fw_y", "fw_ok", "fw_sus_neg", "fw_sus_pos", "fw_nmiss", "fw_den", "fw_err", "fw_c",
            *(f"m{j}" for j in range(width))]
    sets = sorted(set(others))
    set_aggs = "".join(
        f", count_if({' OR '.join(missing[j] for j in js) if js else 'FALSE'}) AS n_set{e}" for e, js in enumerate(sets))

    if scan is not None:
        # The scan's outcome table holds the label's text as fw_l and the decision's as fw_p.
        is_pos = ("fw_l IN (" + ", ".join(f"${k}" for k in pos_params) + ")") if pos_params else "FALSE"
    errors = positive_prediction is not None
    if errors:
        _, den_sql, err_sql, signal_params = error_signal_sql(src, spec, cols, where, params, positive_label,
                                                              positive_prediction, scan)
        q.update(signal_params)
        yhat_sql = decision_sql(spec, cols, signal_params, None if scan is None else "fw_p")
    else:
        den_sql, err_sql, yhat_sql = "FALSE", "0", "CAST(NULL AS INTEGER)"

    def clean(flagged: str, name: str) -> str:
        """Aggregates of the error signal among rows not flagged (`flagged` a boolean SQL expression)."""
        keep = f"fw_den AND NOT ({flagged})"
        return (f"count_if({keep}) AS {name}_n, "
                f"sum(CASE WHEN {keep} THEN CAST(fw_err AS DOUBLE) ELSE CAST(0 AS DOUBLE) END) AS {name}_e")

    def cells(flagged: str, name: str) -> str:
        """Confusion cells (tn, fp, fn, tp) of the labelled, decided rows not flagged: any group metric's counts."""
        return ", ".join(f"count_if(coalesce(fw_c = {c}, FALSE) AND NOT ({flagged})) AS {name}_c{c}" for c in range(4))

    set_err = "".join(
        ", " + clean(" OR ".join(missing[j] for j in js) if js else "FALSE", f"ce_set{e}") for e, js in enumerate(sets))
    col_err = "".join(", " + clean(f"m{j}", f"ce_m{j}") for j in range(width))
    # Cells among unflagged rows only in the slices (a sensitive group is compared with its reference as it is).
    cell_aggs = "".join(", " + cells(flag, name) for flag, name in
                        [("FALSE", "ce_all"), (f"fw_nmiss > {own_missing_sql}", "ce_any"), ("fw_sus_neg OR fw_sus_pos", "ce_le"),
                         *((f"m{j}", f"ce_m{j}") for j in range(width))]) if errors else ""
    if _PER_ROW or (errors and spec.slices.error == "score_loss"):
        # The score loss is a double per row: summed per row, so its sums keep every bit.
        sql = f"""
WITH base AS (
  SELECT {selects},
         coalesce({den_sql}, FALSE) AS fw_den,
         CASE WHEN coalesce({den_sql}, FALSE) THEN CAST({err_sql} AS DOUBLE) ELSE CAST(0 AS DOUBLE) END AS fw_err,
         CASE WHEN {label} IS NULL THEN NULL WHEN {is_pos} THEN 1 ELSE 0 END AS fw_y,
         {score} AS fw_s,
         CASE WHEN {label} IS NULL THEN NULL WHEN {is_pos} THEN 2 ELSE 0 END + ({yhat_sql}) AS fw_c,
         coalesce(NOT isnan({score}), FALSE) AS fw_ok
  FROM src WHERE {where}
),
thr AS (
  SELECT avg(fw_s) FILTER (WHERE fw_ok AND fw_y = 1) AS t1,
         avg(1 - fw_s) FILTER (WHERE fw_ok AND fw_y = 0) AS t0,
         min(fw_s) FILTER (WHERE fw_ok) AS smin,
         max(fw_s) FILTER (WHERE fw_ok) AS smax{set_aggs}{set_err}
  FROM base
),
flagged AS (
  SELECT b.*,
         coalesce(b.fw_ok AND b.fw_y = 0 AND b.fw_s >= thr.t1, FALSE) AS fw_sus_neg,
         coalesce(b.fw_ok AND b.fw_y = 1 AND 1 - b.fw_s >= thr.t0, FALSE) AS fw_sus_pos,
         {", ".join(f"{m} AS m{j}" for j, m in enumerate(missing))},
         {" + ".join(f"CAST({m} AS INTEGER)" for m in missing)} AS fw_nmiss,
         {membership} AS fw_in
  FROM base AS b CROSS JOIN thr
),
per_slice AS (
  SELECT fw_k, count(*) AS n_rows, count(fw_y) AS n_labelled,
         count_if(fw_nmiss > {own_missing_sql}) AS n_missing_any,
         {", ".join(f"count_if(m{j}) AS n_m{j}" for j in range(width))},
         count_if(coalesce(fw_ok AND fw_y = 0, FALSE)) AS n_neg, count_if(coalesce(fw_ok AND fw_y = 1, FALSE)) AS n_pos,
         count_if(fw_sus_neg) AS n_sus_neg, count_if(fw_sus_pos) AS n_sus_pos,
         {clean("FALSE", "ce_all")}, {clean(f"fw_nmiss > {own_missing_sql}", "ce_any")},
         {clean("fw_sus_neg OR fw_sus_pos", "ce_le")}{col_err}{cell_aggs}
  FROM (SELECT unnest(fw_in) AS fw_k, {", ".join(kept)} FROM flagged) AS fw_members
  GROUP BY fw_k
),
dup AS (
  SELECT {", ".join(f"c{j}" for j in range(width))}, count(fw_y) AS fw_n, count_if(fw_den) AS fw_dn,
         sum(CASE WHEN fw_den THEN fw_err ELSE CAST(0 AS DOUBLE) END) AS fw_de,
         {", ".join(f"count_if(coalesce(fw_c = {c}, FALSE)) AS fw_c{c}" for c in range(4))}
  FROM base GROUP BY {keys} HAVING min(fw_y) <> max(fw_y)
),
dup_slice AS (
  SELECT fw_k, sum(fw_n) AS n_conflicts, sum(fw_dn) AS cd_n, sum(fw_de) AS cd_e,
         {", ".join(f"sum(fw_c{c}) AS cd_c{c}" for c in range(4))}
  FROM (SELECT unnest({membership}) AS fw_k, fw_n, fw_dn, fw_de, fw_c0, fw_c1, fw_c2, fw_c3 FROM dup) AS fw_dup_members
  GROUP BY fw_k
)
SELECT p.*, coalesce(d.n_conflicts, 0) AS n_conflicts, coalesce(d.cd_n, 0) AS cd_n,
       coalesce(d.cd_e, 0) AS cd_e, {", ".join(f"coalesce(d.cd_c{c}, 0) AS cd_c{c}" for c in range(4))}, thr.*
FROM per_slice AS p LEFT JOIN dup_slice AS d USING (fw_k) CROSS JOIN thr"""
        result = run_query(src, sql, _used_params(q, sql))
        # Thresholds and the per-column-set totals repeat on every result row; none when no row was counted.
        thr_row = result.iloc[0].to_dict() if len(result) else {}
    else:
        result, thr_row = _block_counts(src, spec, q, _BlockQuery(
            selects=selects, label=label, is_pos=is_pos, score=score, where=where, missing=missing,
            membership=membership, own_missing_sql=own_missing_sql, width=width, used=used, sets=sets, keys=keys,
            errors=errors, den_sql=den_sql, err_sql=err_sql, yhat_sql=yhat_sql, scan=scan))
    by_k = {int(r["fw_k"]): r for r in result.to_dict("records")}
    empty = {"n_rows": 0, "n_labelled": 0, "n_missing_any": 0, "n_neg": 0, "n_pos": 0, "n_sus_neg": 0,
             "n_sus_pos": 0, "n_conflicts": 0, "cd_n": 0, "cd_e": 0.0} | {f"n_m{j}": 0 for j in range(width)} | {
        f"ce_{c}_{v}": 0 for c in ("all", "any", "le", *(f"m{j}" for j in range(width)))
        for v in ("n", "e", "c0", "c1", "c2", "c3")} | {f"cd_c{c}": 0 for c in range(4)}

    def val(k: int, name: str) -> int:
        """A count of slice k (-1 = all rows); 0 where no row is in the slice."""
        return int(by_k.get(k, empty)[name])

    def err(k: int, name: str) -> tuple:
        """(denominator, errors) of the error signal among slice k's rows not flagged (NaN: not counted)."""
        if not errors:
            return (np.nan, np.nan)
        got = by_k.get(k, empty)
        return (float(got[f"{name}_n"] or 0), float(got[f"{name}_e"] or 0))

    def err_conflicts(k: int) -> tuple:
        """(denominator, errors) among slice k's rows outside conflicting-duplicate groups."""
        if not errors:
            return (np.nan, np.nan)
        n_all, e_all = err(k, "ce_all")
        got = by_k.get(k, empty)
        return (n_all - float(got["cd_n"] or 0), e_all - float(got["cd_e"] or 0))

    def cells_of(k: int, name: str) -> tuple:
        """Confusion cells (tn, fp, fn, tp) among slice k's rows not flagged (NaN: not counted)."""
        if not errors:
            return (np.nan,) * 4
        got = by_k.get(k, empty)
        return tuple(float(got[f"{name}_c{c}"] or 0) for c in range(4))

    def cells_conflicts(k: int) -> tuple:
        """Confusion cells among slice k's rows outside conflicting-duplicate groups."""
        if not errors:
            return (np.nan,) * 4
        got = by_k.get(k, empty)
        return tuple(a - float(got[f"cd_c{c}"] or 0) for c, a in enumerate(cells_of(k, "ce_all")))

    rule, notes = _label_rule(spec, thr_row, val(-1, "n_neg"), val(-1, "n_pos"))
    signal_rows, slice_rows = [], []
    for k, s in enumerate(all_slices):
        checked = tuple(spec_cols[j][0] for j in others[k])
        rows, labelled = val(k, "n_rows"), val(k, "n_labelled")
        slice_rows.append({"slice": s, "group": slice_label(s), "origin": origin[s], "rows": rows,
                           "labelled_rows": labelled, "checked_columns": checked})
        e_set = sets.index(others[k])
        set_total = ((float(thr_row.get(f"ce_set{e_set}_n") or 0), float(thr_row.get(f"ce_set{e_set}_e") or 0))
                     if errors else (np.nan, np.nan))
        signal_rows.append((s, MISSING_ANY, None, val(k, "n_missing_any"), rows,
                            int(thr_row.get(f"n_set{e_set}", 0)), val(-1, "n_rows"), *err(k, "ce_any"), *set_total,
                            *cells_of(k, "ce_any")))
        for j in others[k]:
            signal_rows.append((s, MISSING_COLUMN, spec_cols[j][0], val(k, f"n_m{j}"), rows,
                                val(-1, f"n_m{j}"), val(-1, "n_rows"), *err(k, f"ce_m{j}"), *err(-1, f"ce_m{j}"),
                                *cells_of(k, f"ce_m{j}")))
        signal_rows.append((s, CONFLICTS, None, val(k, "n_conflicts"), labelled,
                            val(-1, "n_conflicts"), val(-1, "n_labelled"), *err_conflicts(k), *err_conflicts(-1),
                            *cells_conflicts(k)))
        if rule is not None:
            sides = {side: (val(k, f"n_sus_{side}"), val(k, f"n_{side}"), val(-1, f"n_sus_{side}"), val(-1, f"n_{side}"))
                     for side in ("neg", "pos")}
            both = tuple(a + b for a, b in zip(sides["neg"], sides["pos"]))
            signal_rows.append((s, LABEL_ERRORS, None, *both, *err(k, "ce_le"), *err(-1, "ce_le"),
                                *cells_of(k, "ce_le")))
            signal_rows.append((s, LABEL_ERRORS_NEG, None, *sides["neg"], *(np.nan,) * 8))
            signal_rows.append((s, LABEL_ERRORS_POS, None, *sides["pos"], *(np.nan,) * 8))
    signals = pd.DataFrame(signal_rows, columns=SIGNAL_COLUMNS + CLEAN_COLUMNS + CELL_COLUMNS)
    signals = signals.astype({c: "int64" for c in ("x", "n", "total_x", "total_n")})
    return QualityCounts(
        signals=signals,
        slices=pd.DataFrame(slice_rows, columns=["slice", "group", "origin", "rows", "labelled_rows", "checked_columns"]),
        total_rows=val(-1, "n_rows"),
        labelled_rows=val(-1, "n_labelled"),
        positive_label=positive,
        label_error_rule=rule,
        notes=notes,
    )


@dataclass(frozen=True)
class _BlockQuery:
    """The SQL pieces `fetch_quality_counts` builds, handed to the grouped query."""

    selects: str
    label: str
    is_pos: str
    score: str
    where: str
    missing: list[str]
    membership: str
    own_missing_sql: str
    width: int
    used: set[int]
    sets: list[tuple[int, ...]]
    keys: str
    errors: bool
    den_sql: str
    err_sql: str
    yhat_sql: str
    scan: CellScan | None = None  # read the cells of this scan instead of the rows (no score)


def _used_params(q: dict, sql: str) -> dict:
    """The parameters the SQL names (PostgreSQL and Spark refuse others)."""
    return {k: v for k, v in q.items() if re.search(rf"\${re.escape(k)}\b", sql)}


def _block_counts(src: OpenSource, spec: AuditSpec, q: dict, b: _BlockQuery) -> tuple[pd.DataFrame, dict]:
    """Every count per slice (fw_k, -1 = all rows) from rows grouped once into blocks, and the thresholds row.

    Every signal is a count of rows (or a sum of a 0/1 error) and a function of the row's checked
    values, label, score and error signal, so the rows are first aggregated into blocks of what the
    slices and signals read (the slices' columns, which of the other columns are missing, the score's
    flags and, with a score, the label): a count over a slice's rows is the sum over its blocks, the
    same integers as per row. Conflicting duplicates are counted over cells of identical checked values
    (and score), then added to the blocks; when the slices read every checked column and there is no
    score, a block is such a cell and one GROUP BY counts everything.
    """
    has_score = spec.score is not None
    y_expr = f"CASE WHEN {b.label} IS NULL THEN NULL WHEN {b.is_pos} THEN 1 ELSE 0 END"
    thr_row = _thresholds(src, b.score, y_expr, b.where, q) if has_score else {}
    q = {**q, "fw_t1": thr_row.get("t1"), "fw_t0": thr_row.get("t0")}
    width, used_idx = b.width, sorted(b.used or {0})  # no slice at all (no rows): any column will do
    used_cols = [f"c{j}" for j in used_idx]
    masks = [f"m{j}" for j in range(width)]
    s_col = "fw_s" if has_score else "CAST(NULL AS DOUBLE)"
    ok = f"coalesce(NOT isnan({s_col}), FALSE)"
    signal = (f", coalesce({b.den_sql}, FALSE) AS fw_den, CASE WHEN coalesce({b.den_sql}, FALSE) THEN CAST({b.err_sql} AS DOUBLE) "
              f"ELSE CAST(0 AS DOUBLE) END AS fw_err, CASE WHEN {b.label} IS NULL THEN NULL WHEN {b.is_pos} THEN 2 ELSE 0 END "
              f"+ ({b.yhat_sql}) AS fw_c") if b.errors else ""
    rows_sql = f"(SELECT {b.selects}, {y_expr} AS fw_y, {b.score} AS fw_s{signal} FROM src WHERE {b.where}) AS fw_rows"
    flags = {"fw_ok": ok, "fw_sneg": f"coalesce({ok} AND {s_col} >= CAST($fw_t1 AS DOUBLE), FALSE)",
             "fw_spos": f"coalesce({ok} AND 1 - {s_col} >= CAST($fw_t0 AS DOUBLE), FALSE)"}
    # Grouped: the slices' columns, the missing flags of the others, the score's flags and the label
    # (a label error is a score flag of the row's class); the rest follows from them.
    grouped = (used_cols + [b.missing[j] for j in range(width) if j not in used_idx]
               + ([*flags.values(), "fw_y"] if has_score else []))
    selected = (used_cols + [f"{m} AS m{j}" for j, m in enumerate(b.missing)] + [f"{e} AS {a}" for a, e in flags.items()]
                + [f"{'fw_y' if has_score else 'CAST(NULL AS INTEGER)'} AS fw_yb"])
    u_sql = ", ".join(used_cols)
    cond = "sum(fw_y) > 0 AND sum(fw_y) < count(fw_y)"
    conflicting = f"CASE WHEN {cond} THEN count(fw_y) ELSE 0 END"
    # The error signal per block, and among a cell's rows when the cell's labels conflict.
    sig = ["count_if(fw_den)", "sum(fw_err)", *(f"count_if(coalesce(fw_c = {c}, FALSE))" for c in range(4))]
    sig_names = ["n_den", "n_err", *(f"n_c{c}" for c in range(4))]
    cd_names = ["cd_n", "cd_e", *(f"cd_c{c}" for c in range(4))]
    zeros = ["0", "CAST(0 AS DOUBLE)", "0", "0", "0", "0"]
    cd_in_cell = [f"CASE WHEN {cond} THEN {a} ELSE {z} END" for a, z in zip(sig, zeros)] if b.errors else []
    one_pass = len(used_idx) == width and not has_score
    if src.runner is None:
        # DuckDB: cells keyed by two 64-bit hashes of their values, not by the values (grouping 10M
        # rows by 8 text columns took twice the CPU and memory). DuckDB's hash, like its GROUP BY,
        # equates 0.0 with -0.0 and every NaN, and NULLs hash alike; two different keys would have
        # to agree on both hashes (128 bits) to be counted together.
        block_id = f"hash({u_sql}) AS fw_b1, hash('{_SALT}', {u_sql}) AS fw_b2"
        cell_id = f"any_value(hash({u_sql})) AS fw_b1, any_value(hash('{_SALT}', {u_sql})) AS fw_b2"
        cell_key, block_key = f"hash({b.keys}), hash('{_SALT}', {b.keys})", "fw_b1, fw_b2"
        match = "u.fw_b1 = c.fw_b1 AND u.fw_b2 = c.fw_b2"
    else:
        block_id = "0 AS fw_b1"
        cell_id, cell_key, block_key = u_sql, b.keys, u_sql
        match = " AND ".join(f"u.{c} IS NOT DISTINCT FROM c.{c}" for c in used_cols)
    conf = (f"SELECT {block_key}, sum(fw_nc) AS n_conf{''.join(f', sum(fw_{n}) AS {n}' for n in cd_names if b.errors)} "
            f"FROM (SELECT {cell_id}, {conflicting} AS fw_nc{''.join(f', {a} AS fw_{n}' for a, n in zip(cd_in_cell, cd_names))} "
            f"FROM {rows_sql} GROUP BY {cell_key}) AS fw_cells GROUP BY {block_key}")
    le = "coalesce((fw_sneg AND fw_yb = 0) OR (fw_spos AND fw_yb = 1), FALSE)" if has_score else "FALSE"
    counts = ("CASE WHEN fw_ok THEN n_y0 ELSE 0 END AS n_neg, CASE WHEN fw_ok THEN n_y1 ELSE 0 END AS n_pos, "
              "CASE WHEN fw_sneg THEN n_y0 ELSE 0 END AS n_sus_neg, CASE WHEN fw_spos THEN n_y1 ELSE 0 END AS n_sus_pos")
    extra = sig_names + cd_names if b.errors else []
    block_sig = "".join(f", {a} AS {n}" for a, n in zip(sig, sig_names)) if b.errors else ""
    if one_pass:
        block_sig += "".join(f", {a} AS {n}" for a, n in zip(cd_in_cell, cd_names))
        counted = f"""counted AS (
  SELECT {", ".join(used_cols + masks)}, n_rows, n_labelled, {counts}, n_conf{"".join(f", {n}" for n in extra)},
         {le} AS fw_le FROM blocks
),"""
    else:
        no_masks = ", ".join(f"FALSE AS m{j}" for j in range(width))
        counted = f"""conf AS (
  {conf}
),
counted AS (
  SELECT {", ".join(used_cols + masks)}, n_rows, n_labelled, {counts}, 0 AS n_conf{"".join(f", {n}" for n in sig_names if b.errors)}{"".join(f", {z} AS {n}" for z, n in zip(zeros, cd_names) if b.errors)}, {le} AS fw_le
  FROM blocks
  UNION ALL
  SELECT {", ".join(f"u.{c}" for c in used_cols)}, {no_masks}, 0, 0, 0, 0, 0, 0, c.n_conf{"".join(f", {z}" for z, n in zip(zeros, sig_names) if b.errors)}{"".join(f", c.{n}" for n in cd_names if b.errors)}, FALSE
  FROM (SELECT DISTINCT {u_sql}, {block_id} FROM blocks) AS u JOIN conf AS c ON {match}
),"""
    sums = ["n_rows", "n_labelled", "n_neg", "n_pos", "n_sus_neg", "n_sus_pos", "n_conf", *extra]

    def total(condition: str, n: str = "n_rows") -> str:
        """The sum of n over the blocks where the condition holds (a count of rows), as BIGINT."""
        return f"CAST(coalesce(sum(CASE WHEN {condition} THEN {n} ELSE 0 END), 0) AS BIGINT)"

    def dsum(condition: str, n: str) -> str:
        """The sum of a double n (0/1 errors: exact in any order) over the blocks where the condition holds."""
        return f"coalesce(sum(CASE WHEN {condition} THEN {n} ELSE CAST(0 AS DOUBLE) END), CAST(0 AS DOUBLE))"

    def clean(flagged: str, name: str) -> list[str]:
        """The error signal's denominator, errors and cells among the rows not flagged (block-level flags)."""
        keep = f"NOT ({flagged})"
        return [f"{total(keep, 'n_den')} AS {name}_n", f"{dsum(keep, 'n_err')} AS {name}_e",
                *(f"{total(keep, f'n_c{c}')} AS {name}_c{c}" for c in range(4))]

    set_flags = [" OR ".join(f"m{j}" for j in js) if js else "FALSE" for js in b.sets]
    aggs = [f"{total('TRUE')} AS n_rows", f"{total('TRUE', 'n_labelled')} AS n_labelled",
            f"{total(f'fw_nmiss > {b.own_missing_sql}')} AS n_missing_any",
            *(f"{total(f'm{j}')} AS n_m{j}" for j in range(width)),
            *(f"{total('TRUE', n)} AS {n}" for n in ("n_neg", "n_pos", "n_sus_neg", "n_sus_pos")),
            f"{total('TRUE', 'n_conf')} AS n_conflicts",
            *(f"{total(f)} AS n_set{e}" for e, f in enumerate(set_flags))]
    if b.errors:
        for flagged, name in [("FALSE", "ce_all"), (f"fw_nmiss > {b.own_missing_sql}", "ce_any"), ("fw_le", "ce_le"),
                              *((f"m{j}", f"ce_m{j}") for j in range(width))]:
            aggs += clean(flagged, name)
        aggs += [f"{total(f'NOT ({f})', 'n_den')} AS ce_set{e}_n" for e, f in enumerate(set_flags)]
        aggs += [f"{dsum(f'NOT ({f})', 'n_err')} AS ce_set{e}_e" for e, f in enumerate(set_flags)]
        aggs += [f"{dsum('TRUE', n) if n == 'cd_e' else total('TRUE', n)} AS {n}" for n in cd_names]
    if b.scan is not None:
        counted = _scan_counted(src, q, b, used_idx)
    else:
        counted = f"""blocks AS (
  SELECT {", ".join(selected)}, count(*) AS n_rows, count(fw_y) AS n_labelled,
         count_if(fw_y = 0) AS n_y0, count_if(fw_y = 1) AS n_y1{f", {conflicting} AS n_conf" if one_pass else ""}{block_sig}
  FROM {rows_sql}
  GROUP BY {", ".join(grouped)}
),
{counted}"""
    sql = f"""
WITH {counted}
flagged AS (
  SELECT {", ".join(sums + masks)}, fw_le, {" + ".join(f"CAST(m{j} AS INTEGER)" for j in range(width))} AS fw_nmiss,
         {b.membership} AS fw_in
  FROM counted
)
SELECT fw_k, {", ".join(aggs)}
FROM (SELECT unnest(fw_in) AS fw_k, {", ".join(sums + masks)}, fw_le, fw_nmiss FROM flagged) AS fw_members
GROUP BY fw_k"""
    result = run_query(src, sql, _used_params(q, sql))
    # The per-column-set totals are those of the all-rows member (-1); none when no row was counted.
    total_row = result[result["fw_k"] == -1].to_dict("records")
    if total_row:
        thr_row = {**thr_row, **{k: v for k, v in total_row[0].items() if k.startswith(("n_set", "ce_set"))}}
    return result, thr_row


def _per_outcome(column: pd.Series, codes: pd.Series, kind: str) -> str:
    """SQL: a value per outcome code o, as a CASE over generated literals (NULL where the value is missing)."""
    whens = []
    for o, v in zip(codes, column):
        if pd.isna(v):
            continue
        literal = ("TRUE" if v else "FALSE") if kind == "BOOLEAN" else f"CAST({float(v)!r} AS {kind})"
        whens.append(f"WHEN {int(o)} THEN {literal}")
    return f"CASE o {' '.join(whens)} ELSE NULL END" if whens else f"CAST(NULL AS {kind})"


def _scan_counted(src: OpenSource, q: dict, b: _BlockQuery, used_idx: list[int]) -> str:
    """The `counted` blocks of `_block_counts` from a cell scan (no score): sums of its cells' rows, not row counts.

    A block is a combination of the slices' columns' value codes and the other columns' missing flags; a
    cell (every column's value) holds conflicting duplicates when it has labelled rows of both classes,
    and its labelled rows, error signal and confusion cells then count toward the conflict sums too.
    """
    scan, width = b.scan, b.width
    used = [f"r{j}" for j in used_idx]
    others = [j for j in range(width) if j not in used_idx]
    codes = [f"{scan.code_sql(j)} AS r{j}" for j in used_idx] + [f"{scan.missing_sql(j)} AS m{j}" for j in others]
    flags = (f"CASE WHEN fw_l IS NULL THEN NULL WHEN {b.is_pos} THEN 1 ELSE 0 END AS fw_y, "
             f"coalesce({b.den_sql}, FALSE) AS fw_den, CASE WHEN coalesce({b.den_sql}, FALSE) THEN CAST({b.err_sql} AS DOUBLE) "
             f"ELSE CAST(0 AS DOUBLE) END AS fw_err, CASE WHEN fw_l IS NULL THEN NULL WHEN {b.is_pos} THEN 2 ELSE 0 END "
             f"+ ({b.yhat_sql}) AS fw_c")
    # The row signals are functions of the outcome code: evaluated once per code (a few rows), then written
    # into the cells' query as CASEs over generated literals (cheaper than joining every cell with them).
    # fw_rows is read twice but not materialised: recomputing its codes cost ~10% less than storing 4M rows.
    per_o = run_query(src, f"SELECT o, {flags} FROM {scan.outcomes}", q)
    flags = ", ".join(f"{_per_outcome(per_o[name], per_o['o'], kind)} AS {name}" for name, kind in
                      (("fw_y", "INTEGER"), ("fw_den", "BOOLEAN"), ("fw_err", "DOUBLE"), ("fw_c", "INTEGER")))

    def rows(cond: str) -> str:
        """The rows of a block's cells where `cond` holds (a sum of n, 0 for none)."""
        return f"sum(CASE WHEN {cond} THEN n ELSE 0 END)"

    sig = [rows("fw_den"), "sum(fw_err * n)", *(rows(f"coalesce(fw_c = {c}, FALSE)") for c in range(4))]
    sig_names = ["n_den", "n_err", *(f"n_c{c}" for c in range(4))]
    cd = [rows("fw_cf AND fw_den"), "sum(CASE WHEN fw_cf THEN fw_err * n ELSE CAST(0 AS DOUBLE) END)",
          *(rows(f"fw_cf AND coalesce(fw_c = {c}, FALSE)") for c in range(4))]
    cd_names = ["cd_n", "cd_e", *(f"cd_c{c}" for c in range(4))]
    aggs = "".join(f", {a} AS {n}" for a, n in zip(sig + cd, sig_names + cd_names)) if b.errors else ""
    decoded = ", ".join(f"d{j}.v AS c{j}" for j in used_idx)
    masks = ", ".join(f"(r{j} >= {scan.present[j]}) AS m{j}" if j in used_idx else f"m{j}" for j in range(width))
    joins = " ".join(f"LEFT JOIN {scan.dicts[j]} AS d{j} ON fw_coded.r{j} = d{j}.r" for j in used_idx)
    extra = "".join(f", {n}" for n in sig_names + cd_names) if b.errors else ""
    return f"""fw_rows AS NOT MATERIALIZED (
  SELECT k, n, {", ".join(codes)}, {flags} FROM {scan.cells}
),
fw_conf AS (
  SELECT k, TRUE AS fw_cf FROM fw_rows WHERE fw_y IS NOT NULL GROUP BY k HAVING min(fw_y) <> max(fw_y)
),
fw_coded AS (
  SELECT {", ".join(used + [f"m{j}" for j in others])}, sum(n) AS n_rows, {rows("fw_y IS NOT NULL")} AS n_labelled,
         {rows("fw_cf AND fw_y IS NOT NULL")} AS n_conf{aggs}
  FROM (SELECT fw_rows.*, coalesce(fw_conf.fw_cf, FALSE) AS fw_cf FROM fw_rows LEFT JOIN fw_conf USING (k)) AS fw_r
  GROUP BY {", ".join(used + [f"m{j}" for j in others])}
),
counted AS (
  SELECT {decoded}, {masks}, n_rows, n_labelled, 0 AS n_neg, 0 AS n_pos, 0 AS n_sus_neg, 0 AS n_sus_pos, n_conf{extra},
         FALSE AS fw_le
  FROM fw_coded {joins}
),"""


def _thresholds(src: OpenSource, score: str, y_expr: str, where: str, params: dict) -> dict:
    """Confident Learning's per-class thresholds and the score's range, over the rows (a scan of two columns)."""
    # Averages over rows, not over cells: a sum in another order could move the last bit of a threshold.
    sql = f"""
SELECT avg(fw_s) FILTER (WHERE fw_ok AND fw_y = 1) AS t1,
       avg(1 - fw_s) FILTER (WHERE fw_ok AND fw_y = 0) AS t0,
       min(fw_s) FILTER (WHERE fw_ok) AS smin,
       max(fw_s) FILTER (WHERE fw_ok) AS smax
FROM (SELECT {y_expr} AS fw_y, {score} AS fw_s, coalesce(NOT isnan({score}), FALSE) AS fw_ok
      FROM src WHERE {where}) AS fw_rows"""
    row = run_query(src, sql, _used_params(params, sql)).iloc[0].to_dict()
    # NaN (an empty class) back to None: a parameter, and the same 'absent' as before.
    return {k: (None if v is None or v != v else float(v)) for k, v in row.items()}


def _label_rule(spec: AuditSpec, row: dict, negatives: int, positives: int) -> tuple[LabelErrorRule | None, tuple[str, ...]]:
    """The Confident Learning thresholds, or why the label-error signal is absent."""
    if spec.score is None:
        return None, ("label-error signal not computed: the audit has no score column",)
    if positives == 0 or negatives == 0:
        return None, ("label-error signal not computed: it needs labelled rows with a score in both classes, "
                      f"found {positives:,} positive and {negatives:,} negative",)
    smin, smax = float(row["smin"]), float(row["smax"])
    if smin < 0 or smax > 1:
        return None, (f"label-error signal not computed: the score {spec.score} ranges over [{smin:g}, {smax:g}], "
                      "not a probability in [0, 1]",)
    return LabelErrorRule(t1=float(row["t1"]), t0=float(row["t0"]), positives=positives, negatives=negatives), ()


def fetch_overlap_counts(src: OpenSource, spec: AuditSpec, findings: Sequence[Slice], positive_label: str,
                         positive_prediction: str, row_filter: RowFilter | None = None) -> pd.DataFrame:
    """The search's error signal per pattern of membership in the findings: which findings a row is in.

    One GROUP BY over a text pattern ('1' or '0' per finding, in the given order); only the patterns of
    rows in the error signal's denominator. Every question of the kind "the rows of X outside the
    findings S" is then a sum over patterns (`metrics.discovery.slices.merge_overlaps`). Columns: pattern, n, errors.
    """
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    spec_cols = _spec_columns(spec, cols)
    names = {n.lower(): j for j, (n, _) in enumerate(spec_cols)}
    types = [src.column_type(c) for _, c in spec_cols]
    wanted = _check_slices(findings, names, src, spec_cols)
    _, den_sql, err_sql, q = error_signal_sql(src, spec, cols, where, params, positive_label, positive_prediction)
    q = {**params, **q}
    bits = []
    for k, s in enumerate(wanted):
        pred, p, _ = _predicate(s, k, names, types)
        q.update(p)
        bits.append(f"CASE WHEN {pred} THEN '1' ELSE '0' END")
    selects = ", ".join(f"{quote_ident(c)} AS c{j}" for j, (_, c) in enumerate(spec_cols))
    pattern = " || ".join(bits) if bits else "''"
    sql = (f"SELECT fw_pat AS pattern, count(*) AS n, sum(fw_err) AS errors FROM (SELECT {pattern} AS fw_pat, "
           f"CAST({err_sql} AS DOUBLE) AS fw_err FROM (SELECT {selects}, * FROM src WHERE {where}) AS fw_b "
           f"WHERE coalesce({den_sql}, FALSE)) AS fw_p GROUP BY fw_pat")
    got = run_query(src, sql, {k: v for k, v in q.items() if re.search(rf"\${re.escape(k)}\b", sql)})
    return pd.DataFrame({"pattern": got["pattern"].astype(str), "n": got["n"].astype(float),
                         "errors": got["errors"].astype(float)})
