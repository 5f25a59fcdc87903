"""The counting queries: the only place rows are touched. Only grouped counts leave DuckDB."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fairwatch.connectors.source import OpenSource, quote_ident, read_failure, resolve_spec_columns
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter

MISSING = "(missing)"
# The cardinality guard reads at least this many leading rows (see check_cardinality_prefix).
GUARD_ROWS = 10_000


@dataclass(frozen=True)
class GroupCounts:
    """Counts per (sensitive groups, raw label, raw prediction); optional counts per score bucket."""

    cells: pd.DataFrame  # sensitive..., label_raw, pred_raw (text), n
    # sensitive..., label_raw (categorical), score, n over the rows with a label and a score: one row per
    # (groups, label, prediction, bucket), so (groups, label, score) repeats once per prediction value.
    scores: pd.DataFrame | None
    sensitive: tuple[str, ...]


FLOAT_TYPES = frozenset({"DOUBLE", "FLOAT", "REAL", "FLOAT4", "FLOAT8", "DOUBLE PRECISION"})
# Whole floats below this are written with '.0'; beyond it every engine writes an exponent anyway.
_WHOLE_FLOAT_LIMIT = "1e15"


def text_expr(expr: str, kind: str = "") -> str:
    """A value as text, the same on every engine; `kind` is its DuckDB type ('' when not known).

    A float-coded category (1.0, 2.0) is written as DuckDB and Spark write it, '1.0', where
    PostgreSQL writes '1'; NaN as 'nan' (Spark writes 'NaN'). Other types are cast as they are. NULL stays NULL.
    """
    if kind.strip().upper() not in FLOAT_TYPES:
        return f"CAST({expr} AS VARCHAR)"
    # CASE, not OR: Spark evaluates every operand of OR, and floor(NaN) cannot become its BIGINT.
    return (f"CASE WHEN isnan({expr}) THEN 'nan' WHEN abs({expr}) < {_WHOLE_FLOAT_LIMIT} AND {expr} = floor({expr}) "
            f"THEN CAST(CAST({expr} AS BIGINT) AS VARCHAR) || '.0' ELSE CAST({expr} AS VARCHAR) END")


def group_expr(column: str, kind: str = "") -> str:
    """A grouping key as text (`text_expr`), with NULL as an explicit '(missing)' group (never silently dropped)."""
    return f"COALESCE({text_expr(quote_ident(column), kind)}, '{MISSING}')"


def where_sql(spec: AuditSpec, cols: dict[str, str], row_filter: RowFilter | None) -> tuple[str, dict]:
    """The WHERE clause of a row filter, with values as parameters."""
    clauses, params = ["TRUE"], {}
    if row_filter is None:
        return "TRUE", params
    if row_filter.model_version is not None:
        if "model_version" not in cols:
            raise DataError("a model version was chosen but the spec has no model_version column")
        clauses.append(f"CAST({quote_ident(cols['model_version'])} AS VARCHAR) = $model_version")
        params["model_version"] = row_filter.model_version
    for bound, op in (("time_from", ">="), ("time_to", "<=")):
        value = getattr(row_filter, bound)
        if value is not None:
            if "time" not in cols:
                raise DataError("a time window was chosen but the spec has no time column")
            clauses.append(f"CAST({quote_ident(cols['time'])} AS TIMESTAMP) {op} CAST(${bound} AS TIMESTAMP)")
            params[bound] = value
    return " AND ".join(clauses), params


def used_params(sql: str, params: dict | None) -> dict:
    """The parameters `sql` names as `$name`: DuckDB refuses a query given any parameter it does not use.

    Query builders collect every value of a family (threshold, bin edges, positive spellings) in one
    dict and run several statements from it; binding here keeps each statement to its own names, so a
    value one statement needs can never break another (the score + threshold + numeric-feature crash).
    """
    return {k: v for k, v in (params or {}).items() if re.search(rf"\${re.escape(k)}(?!\w)", sql)}


def run_query(src: OpenSource, sql: str, params: dict | None = None, categorical: Sequence[str] = ()) -> pd.DataFrame:
    """Run one query on a fresh cursor and materialise it inside the block (safe across sessions).

    `categorical` names text columns to return dictionary-coded, as pandas categoricals with sorted
    categories. For a few values repeated over many rows, fetching Arrow and encoding it there costs
    a third of building one Python string per row (74k rows, 5 text columns: 20 ms against 55 ms).
    """
    params = used_params(sql, params)
    if src.runner is not None:
        frame = src.runner.query(sql, params)
    else:
        try:
            with src.cursor() as cur:
                if not categorical:
                    return cur.execute(sql, params).df()
                table = cur.sql(sql, params=params).to_arrow_table()
        except duckdb.Error as exc:
            raise read_failure(exc) from None
        frame = pa.table([pc.dictionary_encode(table[c]) if c in categorical else table[c] for c in table.column_names],
                         names=table.column_names).to_pandas()
    for col in categorical:
        codes = frame[col].astype("category")
        frame[col] = codes.cat.reorder_categories(sorted(codes.cat.categories))
    return frame


def check_cardinality(src: OpenSource, spec: AuditSpec, columns: list[str], where: str, params: dict,
                      relation: str = "src") -> None:
    """Refuse a grouping column with more distinct values than the policy allows, before counting by it."""
    exprs = ", ".join(f"approx_count_distinct({quote_ident(c)}) AS c{i}" for i, c in enumerate(columns))
    row = run_query(src, f"SELECT {exprs} FROM {relation} WHERE {where}", params).iloc[0]
    for i, col in enumerate(columns):
        if int(row[f"c{i}"]) > spec.policy.max_groups:
            raise DataError(
                f"column {col} has about {int(row[f'c{i}']):,} distinct values, more than max_groups "
                f"({spec.policy.max_groups}); it looks like an id or a number: bin it into bands, "
                f"or raise [policy] max_groups"
            )


def prediction_expr(spec: AuditSpec, cols: dict[str, str]) -> str:
    """The raw decision: the prediction column as text, or '1'/'0' from score >= threshold."""
    if spec.prediction is not None:
        return f"CAST({quote_ident(cols['prediction'])} AS VARCHAR)"
    score = f"CAST({quote_ident(cols['score'])} AS DOUBLE)"
    # NaN sorts above every number in DuckDB, so it must be treated as missing explicitly.
    return f"CASE WHEN {score} IS NULL OR isnan({score}) THEN NULL WHEN {score} >= $threshold THEN '1' ELSE '0' END"


def _refuse(column: str, distinct: int, spec: AuditSpec, qualifier: str = "") -> DataError:
    """The error for a grouping column with more distinct values than the policy allows."""
    return DataError(
        f"column {column} has {qualifier}{distinct:,} distinct values, more than max_groups "
        f"({spec.policy.max_groups}); it looks like an id or a number: bin it into bands, "
        f"or raise [policy] max_groups"
    )


def guard_rows(spec: AuditSpec) -> int:
    """How many leading rows the cheap cardinality guard reads: enough to see an id column overflow."""
    return max(GUARD_ROWS, 10 * spec.policy.max_groups)


def check_cardinality_prefix(src: OpenSource, spec: AuditSpec, columns: list[str], where: str, params: dict,
                             relation: str = "src") -> None:
    """Refuse a grouping column that has more than max_groups distinct values among its first rows.

    A guard, not the check: it reads only a prefix (the engine stops the scan there), so an id-like
    column is refused before the counting query would build a group per row. The exact check runs
    on the grouped result (`fetch_group_counts`), which needs no scan of its own.
    """
    picked = ", ".join(quote_ident(c) for c in columns)
    # count(DISTINCT) is exact: a column within the limit is never refused here.
    exprs = ", ".join(f"count(DISTINCT {quote_ident(c)}) AS c{i}" for i, c in enumerate(columns))
    row = run_query(src, f"SELECT {exprs} FROM (SELECT {picked} FROM {relation} WHERE {where} "
                         f"LIMIT {guard_rows(spec)})", params).iloc[0]
    for i, col in enumerate(columns):
        if int(row[f"c{i}"]) > spec.policy.max_groups:
            raise _refuse(col, int(row[f"c{i}"]), spec, "at least ")


def score_bucket_expr(score: str, decimals: int) -> str:
    """The score's bucket as a whole number: floor(score * 10^d + 0.5), round half up, as a DOUBLE.

    Written with IEEE arithmetic only (a multiply, an add, a floor), so DuckDB, PostgreSQL and Spark
    put every score in the same bucket: their round() functions differ at halves (half-even in
    PostgreSQL's float round, half away from zero in DuckDB). A score with at most d decimals lands
    exactly on its bucket. It is also cheaper than round(score, d). NaN and NULL become NULL (no
    score) before the floor: Spark's floor returns a BIGINT, to which NaN cannot be cast.
    """
    return (f"CASE WHEN isnan({score}) THEN NULL "
            f"ELSE floor({score} * CAST({10**decimals} AS DOUBLE) + CAST(0.5 AS DOUBLE)) END")


def fetch_group_counts(src: OpenSource, spec: AuditSpec, row_filter: RowFilter | None = None) -> GroupCounts:
    """Counts per finest intersection of the sensitive features, raw label, raw prediction and score bucket.

    One scan of the source. The engine groups on the raw columns and a whole-number score bucket
    (`score_bucket_expr`; the bucket's score is bucket / 10^d); keys become
    text, with NULL as '(missing)', in an outer query over the grouped result (tens of thousands of
    rows, not millions): grouping on text casts and a rounded decimal score cost the engine about
    twice as much. The label/prediction cells and the score-bucket counts are both sums over that
    result. The score-bucket table's text columns are categorical: a few values over many rows.
    """
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    sens_cols = [cols[f"sensitive:{s}"] for s in spec.sensitive]
    check_cardinality_prefix(src, spec, sens_cols, where, params,
                             relation=src.relation_for([*sens_cols, *_filter_cols(cols, row_filter)]))
    query_params = dict(params)
    if spec.prediction is None:
        query_params["threshold"] = spec.threshold
        pred = prediction_expr(spec, cols)
    else:
        pred = quote_ident(cols["prediction"])
    decimals = int(spec.policy.score_decimals)
    bucket = "NULL::DOUBLE"
    if spec.score is not None:
        bucket = score_bucket_expr(f"CAST({quote_ident(cols['score'])} AS DOUBLE)", decimals)
    inner_keys = ", ".join(f"{quote_ident(c)} AS k{i}" for i, c in enumerate(sens_cols))
    outer_keys = ", ".join(f"{group_expr(f'k{i}', src.column_type(c))} AS g{i}" for i, c in enumerate(sens_cols))
    raw = run_query(
        src,
        f"SELECT {outer_keys}, CAST(l AS VARCHAR) AS label_raw, CAST(p AS VARCHAR) AS pred_raw, b AS score_bucket, n "
        f"FROM (SELECT {inner_keys}, {quote_ident(cols['label'])} AS l, {pred} AS p, {bucket} AS b, "
        f"count(*)::BIGINT AS n FROM src WHERE {where} GROUP BY ALL)",
        query_params,
        # Text as codes: every later grouping then works on integers.
        categorical=[*(f"g{i}" for i in range(len(sens_cols))), "label_raw", "pred_raw"],
    )
    sens = list(spec.sensitive)
    raw = raw.rename(columns={f"g{i}": s for i, s in enumerate(sens)})
    text = [*sens, "label_raw", "pred_raw"]
    for feat, col in zip(sens, sens_cols):
        distinct = len(raw[feat].cat.categories.difference([MISSING]))
        if distinct > spec.policy.max_groups:
            raise _refuse(col, distinct, spec)
        if distinct == 0 and not raw.empty:  # no rows at all is its own error (binarize)
            # One '(missing)' group has nothing to be compared with: an audit of it would pass vacuously.
            raise DataError(f"sensitive column {col} is empty (NULL in every row audited): choose a column "
                            f"that holds the groups, or fill it in the source")
    cells = raw.groupby(text, dropna=False, as_index=False, observed=True)["n"].sum()
    cells[text] = cells[text].astype("str")
    scores = None
    if spec.score is not None:
        scored = raw[raw["label_raw"].notna() & raw["score_bucket"].notna()]
        # Rows that differ only in the prediction stay apart: binarize_scores sums them with its own grouping.
        # pred_raw rides along for the what-if (today's decision per bucket); the audit ignores it.
        scores = scored[[*sens, "label_raw", "pred_raw"]].assign(score=scored["score_bucket"].to_numpy(np.float64) / 10**decimals,
                                                     n=scored["n"].to_numpy())
    return GroupCounts(cells=cells, scores=scores, sensitive=spec.sensitive)


def _filter_cols(cols: dict[str, str], row_filter: RowFilter | None) -> list[str]:
    """Columns a row filter reads."""
    if row_filter is None:
        return []
    out = []
    if row_filter.model_version is not None and "model_version" in cols:
        out.append(cols["model_version"])
    if (row_filter.time_from or row_filter.time_to) and "time" in cols:
        out.append(cols["time"])
    return out
