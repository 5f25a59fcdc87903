"""The counting queries: the only place rows are touched. Only grouped counts leave DuckDB."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from connectors.source import OpenSource, quote_ident, resolve_spec_columns
from metrics.errors import DataError, SourceError
from metrics.spec import AuditSpec, RowFilter

MISSING = "(missing)"


@dataclass(frozen=True)
class GroupCounts:
    """Counts per (sensitive groups, raw label, raw prediction); optional counts per score bucket."""

    cells: pd.DataFrame
    scores: pd.DataFrame | None
    sensitive: tuple[str, ...]


def group_expr(column: str) -> str:
    """A grouping key as text, with NULL as an explicit '(missing)' group (never silently dropped)."""
    return f"COALESCE(CAST({quote_ident(column)} AS VARCHAR), '{MISSING}')"


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


def run_query(src: OpenSource, sql: str, params: dict | None = None) -> pd.DataFrame:
    """Run one query on a fresh cursor and materialise it inside the block (safe across sessions)."""
    if src.runner is not None:
        return src.runner.query(sql, params or {})
    try:
        with src.cursor() as cur:
            return cur.execute(sql, params or {}).df()
    except duckdb.Error as exc:
        msg = str(exc).strip().splitlines()[0]
        raise SourceError(f"the source could not be read: {msg}") from None


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


def fetch_group_counts(src: OpenSource, spec: AuditSpec, row_filter: RowFilter | None = None) -> GroupCounts:
    """Counts per finest intersection of the sensitive features, raw label, raw prediction and score bucket.

    One scan of the source: the label/prediction cells and the score-bucket counts are both sums
    over its result (a few hundred thousand rows at most), which halves the work on a joined source.
    """
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    sens_cols = [cols[f"sensitive:{s}"] for s in spec.sensitive]
    check_cardinality(src, spec, sens_cols, where, params, relation=src.relation_for([*sens_cols, *_filter_cols(cols, row_filter)]))
    keys = ", ".join(f"{group_expr(c)} AS g{i}" for i, c in enumerate(sens_cols))
    label = f"CAST({quote_ident(cols['label'])} AS VARCHAR)"
    query_params = dict(params)
    if spec.prediction is None:
        query_params["threshold"] = spec.threshold
    bucket = "NULL::DOUBLE"
    if spec.score is not None:
        score = f"CAST({quote_ident(cols['score'])} AS DOUBLE)"
        bucket = f"CASE WHEN isnan({score}) THEN NULL ELSE round({score}, {int(spec.policy.score_decimals)}) END"
    raw = run_query(
        src,
        f"SELECT {keys}, {label} AS label_raw, {prediction_expr(spec, cols)} AS pred_raw, {bucket} AS score, "
        f"count(*)::BIGINT AS n FROM src WHERE {where} GROUP BY ALL",
        query_params,
    )
    names = {f"g{i}": s for i, s in enumerate(spec.sensitive)}
    raw = raw.rename(columns=names)
    sens = list(spec.sensitive)
    cells = raw.groupby(sens + ["label_raw", "pred_raw"], dropna=False, as_index=False, observed=True)["n"].sum()
    scores = None
    if spec.score is not None:
        scored = raw[raw["label_raw"].notna() & raw["score"].notna()]
        scores = scored.groupby(sens + ["label_raw", "score"], as_index=False, observed=True)["n"].sum()
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
