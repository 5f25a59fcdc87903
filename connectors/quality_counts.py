"""Data-quality counts per slice, in one query: missing values, conflicting duplicates, label errors.

Only counts leave the engine (DuckDB; PostgreSQL and Spark get the same query transpiled by
`connectors/engines.py`). For every requested slice and every group of each sensitive feature the
query counts rows, labelled rows, rows with a missing value (in any of the slice's other columns,
and per column), labelled rows in conflicting-duplicate groups, and suspected label errors
(Confident Learning thresholds, from a scan of the label and score first); plus the same totals
over every audited row, so that each slice's complement is total minus slice. The rows are
aggregated once, into cells of identical checked values; every count is a sum over cells. The rules are stated in
`metrics/quality.py`.

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

import pandas as pd

from connectors.counts import MISSING, check_cardinality, group_expr, run_query, text_expr, where_sql
from connectors.source import OpenSource, quote_ident, resolve_spec_columns
from metrics.errors import DataError
from metrics.groups import slice_label
from metrics.outcomes import choose_positive, normalise_value
from metrics.quality import (
    CONFLICTS,
    LABEL_ERRORS,
    LABEL_ERRORS_NEG,
    LABEL_ERRORS_POS,
    MISSING_ANY,
    MISSING_COLUMN,
    SIGNAL_COLUMNS,
    LabelErrorRule,
    QualityCounts,
    Slice,
)
from metrics.spec import AuditSpec, RowFilter

_NUMBER = r"[-+]?(?:inf|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
RANGE_PATTERN = re.compile(rf"^\s*([\[(])\s*({_NUMBER})\s*,\s*({_NUMBER})\s*([\])])\s*$", re.IGNORECASE)
_NUMERIC_TYPE = re.compile(r"^(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|INT[1248]|FLOAT[48]?|DOUBLE|REAL|DECIMAL|NUMERIC)\b",
                           re.IGNORECASE)
_SALT = "fairwatch-quality"
_FLOAT_TYPE = re.compile(r"^(FLOAT[48]?|DOUBLE|REAL)\b", re.IGNORECASE)


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


def _spec_columns(spec: AuditSpec, cols: dict[str, str]) -> list[tuple[str, str]]:
    """(spec name, source column) of every sensitive feature and feature, sensitive first, no repeats."""
    out, seen = [], set()
    for key in [f"sensitive:{s}" for s in spec.sensitive] + [f"feature:{f}" for f in spec.features]:
        name, col = key.split(":", 1)[1], cols[key]
        if col.lower() not in seen:
            seen.add(col.lower())
            out.append((name, col))
    return out


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
                         positive_label: str) -> tuple[str, list[str]]:
    """The raw label texts that count as positive, chosen exactly as `binarize` chooses."""
    raw = run_query(src, f"SELECT DISTINCT CAST({quote_ident(label)} AS VARCHAR) AS v FROM src "
                         f"WHERE ({where}) AND {quote_ident(label)} IS NOT NULL LIMIT 1000", params)["v"].tolist()
    normalised = {normalise_value(v) for v in raw}
    positive = choose_positive(normalised, positive_label, "label", spec.label, "--positive-label")
    return positive, [v for v in raw if normalise_value(v) == positive]


def _sensitive_groups(src: OpenSource, spec: AuditSpec, cols: dict[str, str], where: str, params: dict) -> list[Slice]:
    """Every group of each sensitive feature, as one-condition slices (NULL as '(missing)')."""
    sens = [cols[f"sensitive:{s}"] for s in spec.sensitive]
    check_cardinality(src, spec, sens, where, params)
    out = []
    for name, col in zip(spec.sensitive, sens):
        values = run_query(src, f"SELECT DISTINCT {group_expr(col, src.column_type(col))} AS v FROM src WHERE {where} ORDER BY 1", params)
        out.extend(((name, str(v)),) for v in values["v"])
    return out


def fetch_quality_counts(src: OpenSource, spec: AuditSpec, slices: Sequence[Slice], positive_label: str,
                         row_filter: RowFilter | None = None) -> QualityCounts:
    """Counts behind the data-quality signals for each slice and each sensitive group, in one query."""
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    spec_cols = _spec_columns(spec, cols)
    names = {n.lower(): j for j, (n, _) in enumerate(spec_cols)}
    types = [src.column_type(c) for _, c in spec_cols]
    requested = _check_slices(slices, names, src, spec_cols)
    groups = _sensitive_groups(src, spec, cols, where, params)
    origin: dict[Slice, str] = {}
    for s in requested:
        origin.setdefault(s, "requested")
    for s in groups:
        origin[s] = "both" if origin.get(s) in ("requested", "both") else "sensitive_group"
    all_slices = list(origin)

    positive, pos_raw = _positive_raw_labels(src, cols["label"], spec, where, params, positive_label)
    q = dict(params)
    pos_params = {f"lp{i}": v for i, v in enumerate(pos_raw)}
    q.update(pos_params)
    label = quote_ident(cols["label"])
    is_pos = (f"CAST({label} AS VARCHAR) IN (" + ", ".join(f"${k}" for k in pos_params) + ")") if pos_params else "FALSE"
    has_score = spec.score is not None
    score = f"CAST({quote_ident(cols['score'])} AS DOUBLE)" if has_score else "CAST(NULL AS DOUBLE)"
    width = len(spec_cols)
    selects = ", ".join(f"{quote_ident(c)} AS c{j}" for j, (_, c) in enumerate(spec_cols))
    missing = [f"(c{j} IS NULL" + (f" OR isnan(c{j}))" if _FLOAT_TYPE.match(types[j]) else ")") for j in range(width)]
    y_expr = f"CASE WHEN {label} IS NULL THEN NULL WHEN {is_pos} THEN 1 ELSE 0 END"
    # Duplicates: identical on every checked column (and the score); NULLs group together, as in GROUP BY.
    keys = [f"c{j}" for j in range(width)] + (["fw_s"] if has_score else [])
    thr_row = _thresholds(src, score, y_expr, where, q) if has_score else {}
    q.update({"fw_t1": thr_row.get("t1"), "fw_t0": thr_row.get("t0")})

    # Each slice's membership is a list (-1 = every row, for the totals); unnesting it and grouping
    # by slice counts every slice at once (DuckDB's FILTER aggregates were 20x slower here). A row
    # of slice k has a missing value in one of the slice's other columns iff its number of missing
    # columns exceeds the slice's '(missing)' conditions: every other condition implies a present value.
    members, own, others, used = ["-1"], [0], [], set()
    for k, s in enumerate(all_slices):
        pred, p, own_missing = _predicate(s, k, names, types)
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
    sets = sorted(set(others))
    used_cols = [f"c{j}" for j in sorted(used or {0})]  # no slice at all (no rows): any column will do
    masks = [f"m{j}" for j in range(width)]
    sums = ["n_rows", "n_labelled", "n_neg", "n_pos", "n_sus_neg", "n_sus_pos", "n_conf"]

    def total(condition: str, n: str = "n_rows") -> str:
        """The sum of n over the cells where the condition holds (a count of rows), as BIGINT."""
        return f"CAST(coalesce(sum(CASE WHEN {condition} THEN {n} ELSE 0 END), 0) AS BIGINT)"

    set_aggs = "".join(f", {total(' OR '.join(f'm{j}' for j in js) if js else 'FALSE')} AS n_set{e}"
                       for e, js in enumerate(sets))
    # Every signal is a count of rows and a function of the row's checked values, label and score,
    # so the rows are first aggregated into blocks of what the slices and signals read (the slices'
    # columns, which of the other columns are missing, the score's flags): a count over a slice's
    # rows is the sum over its blocks, the same integers as per row. Conflicting duplicates are
    # counted over cells of identical checked values (and score), then added to the blocks; when
    # the slices read every checked column and there is no score, a block is such a cell and one
    # GROUP BY counts everything. Measured on 10M rows (2 shared cores): with the 3 sensitive
    # columns, about one GROUP BY (0.6 CPU-s, 95 MB, was 10x and 2 GB with 8 columns); with 8 text
    # columns and 50 slices, half the memory of listing every row's slices (1.3 against 2.3 GB).
    s_col = "fw_s" if has_score else "CAST(NULL AS DOUBLE)"
    ok = f"coalesce(NOT isnan({s_col}), FALSE)"
    rows_sql = (f"(SELECT {selects}, {y_expr} AS fw_y, {score} AS fw_s FROM src WHERE {where}) AS fw_rows")
    used_idx = sorted(used or {0})
    flags = {"fw_ok": ok, "fw_sneg": f"coalesce({ok} AND {s_col} >= CAST($fw_t1 AS DOUBLE), FALSE)",
             "fw_spos": f"coalesce({ok} AND 1 - {s_col} >= CAST($fw_t0 AS DOUBLE), FALSE)"}
    # Grouped: the slices' columns, the missing flags of the others, the score's flags; the rest follows from them.
    grouped = used_cols + [missing[j] for j in range(width) if j not in used_idx] + (list(flags.values()) if has_score else [])
    selected = used_cols + [f"{m} AS m{j}" for j, m in enumerate(missing)] + [f"{e} AS {a}" for a, e in flags.items()]
    u_sql, key_sql = ", ".join(used_cols), ", ".join(keys)
    conflicting = "CASE WHEN sum(fw_y) > 0 AND sum(fw_y) < count(fw_y) THEN count(fw_y) ELSE 0 END"
    one_pass = len(used_idx) == width and not has_score
    if src.runner is None:
        # DuckDB: cells keyed by two 64-bit hashes of their values, not by the values (grouping 10M
        # rows by 8 text columns took twice the CPU and memory). DuckDB's hash, like its GROUP BY,
        # equates 0.0 with -0.0 and every NaN, and NULLs hash alike; two different keys would have
        # to agree on both hashes (128 bits) to be counted together.
        block_id = f"hash({u_sql}) AS fw_b1, hash('{_SALT}', {u_sql}) AS fw_b2"
        conf = (f"SELECT fw_b1, fw_b2, sum(fw_nc) AS n_conf FROM (SELECT any_value(hash({u_sql})) AS fw_b1, "
                f"any_value(hash('{_SALT}', {u_sql})) AS fw_b2, {conflicting} AS fw_nc FROM {rows_sql} "
                f"GROUP BY hash({key_sql}), hash('{_SALT}', {key_sql})) AS fw_cells GROUP BY fw_b1, fw_b2")
        match = "u.fw_b1 = c.fw_b1 AND u.fw_b2 = c.fw_b2"
    else:
        block_id = "0 AS fw_b1"
        conf = (f"SELECT {u_sql}, sum(fw_nc) AS n_conf FROM (SELECT {u_sql}, {conflicting} AS fw_nc FROM {rows_sql} "
                f"GROUP BY {key_sql}) AS fw_cells GROUP BY {u_sql}")
        match = " AND ".join(f"u.{c} IS NOT DISTINCT FROM c.{c}" for c in used_cols)
    no_masks = ", ".join(f"FALSE AS m{j}" for j in range(width))
    counts = ("CASE WHEN fw_ok THEN n_y0 ELSE 0 END AS n_neg, CASE WHEN fw_ok THEN n_y1 ELSE 0 END AS n_pos, "
              "CASE WHEN fw_sneg THEN n_y0 ELSE 0 END AS n_sus_neg, CASE WHEN fw_spos THEN n_y1 ELSE 0 END AS n_sus_pos")
    if one_pass:
        counted = f"""counted AS (
  SELECT {", ".join(used_cols + masks)}, n_rows, n_labelled, {counts}, n_conf FROM blocks
),"""
    else:
        counted = f"""conf AS (
  {conf}
),
counted AS (
  SELECT {", ".join(used_cols + masks)}, n_rows, n_labelled, {counts}, 0 AS n_conf
  FROM blocks
  UNION ALL
  SELECT {", ".join(f"u.{c}" for c in used_cols)}, {no_masks}, 0, 0, 0, 0, 0, 0, c.n_conf
  FROM (SELECT DISTINCT {u_sql}, {block_id} FROM blocks) AS u JOIN conf AS c ON {match}
),"""
    sql = f"""
WITH blocks AS (
  SELECT {", ".join(selected)}, count(*) AS n_rows, count(fw_y) AS n_labelled,
         count_if(fw_y = 0) AS n_y0, count_if(fw_y = 1) AS n_y1{f", {conflicting} AS n_conf" if one_pass else ""}
  FROM {rows_sql}
  GROUP BY {", ".join(grouped)}
),
{counted}
flagged AS (
  SELECT {", ".join(sums + masks)}, {" + ".join(f"CAST(m{j} AS INTEGER)" for j in range(width))} AS fw_nmiss,
         {membership} AS fw_in
  FROM counted
)
SELECT fw_k, {total("TRUE")} AS n_rows, {total("TRUE", "n_labelled")} AS n_labelled,
       {total(f"fw_nmiss > {own_missing_sql}")} AS n_missing_any,
       {", ".join(f"{total(f'm{j}')} AS n_m{j}" for j in range(width))},
       {", ".join(f"{total('TRUE', n)} AS {n}" for n in ("n_neg", "n_pos", "n_sus_neg", "n_sus_pos"))},
       {total("TRUE", "n_conf")} AS n_conflicts{set_aggs}
FROM (SELECT unnest(fw_in) AS fw_k, {", ".join(sums + masks)}, fw_nmiss FROM flagged) AS fw_members
GROUP BY fw_k"""
    result = run_query(src, sql, q)
    by_k = {int(r["fw_k"]): r for r in result.to_dict("records")}
    empty = {"n_rows": 0, "n_labelled": 0, "n_missing_any": 0, "n_neg": 0, "n_pos": 0, "n_sus_neg": 0,
             "n_sus_pos": 0, "n_conflicts": 0} | {f"n_m{j}": 0 for j in range(width)}
    # The per-column-set totals are those of the all-rows member (-1); none when no row was counted.
    thr_row = {**thr_row, **{f"n_set{e}": by_k[-1][f"n_set{e}"] for e in range(len(sets)) if -1 in by_k}}

    def val(k: int, name: str) -> int:
        """A count of slice k (-1 = all rows); 0 where no row is in the slice."""
        return int(by_k.get(k, empty)[name])

    rule, notes = _label_rule(spec, thr_row, val(-1, "n_neg"), val(-1, "n_pos"))
    signal_rows, slice_rows = [], []
    for k, s in enumerate(all_slices):
        checked = tuple(spec_cols[j][0] for j in others[k])
        rows, labelled = val(k, "n_rows"), val(k, "n_labelled")
        slice_rows.append({"slice": s, "group": slice_label(s), "origin": origin[s], "rows": rows,
                           "labelled_rows": labelled, "checked_columns": checked})
        signal_rows.append((s, MISSING_ANY, None, val(k, "n_missing_any"), rows,
                            int(thr_row.get(f"n_set{sets.index(others[k])}", 0)), val(-1, "n_rows")))
        for j in others[k]:
            signal_rows.append((s, MISSING_COLUMN, spec_cols[j][0], val(k, f"n_m{j}"), rows,
                                val(-1, f"n_m{j}"), val(-1, "n_rows")))
        signal_rows.append((s, CONFLICTS, None, val(k, "n_conflicts"), labelled,
                            val(-1, "n_conflicts"), val(-1, "n_labelled")))
        if rule is not None:
            sides = {side: (val(k, f"n_sus_{side}"), val(k, f"n_{side}"), val(-1, f"n_sus_{side}"), val(-1, f"n_{side}"))
                     for side in ("neg", "pos")}
            both = tuple(a + b for a, b in zip(sides["neg"], sides["pos"]))
            signal_rows.append((s, LABEL_ERRORS, None, *both))
            signal_rows.append((s, LABEL_ERRORS_NEG, None, *sides["neg"]))
            signal_rows.append((s, LABEL_ERRORS_POS, None, *sides["pos"]))
    signals = pd.DataFrame(signal_rows, columns=SIGNAL_COLUMNS)
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
    row = run_query(src, sql, params).iloc[0].to_dict()
    # NaN (an empty class) back to None: a parameter, and the same 'absent' as before.
    return {k: (None if v is None or v != v else float(v)) for k, v in row.items()}
