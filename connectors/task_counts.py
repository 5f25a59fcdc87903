"""Counting queries of regression audits: sums per group and bucket counts; only aggregates leave the engine.

A regression audit needs, per finest intersection of the sensitive features, the count and the sums
of e, e², e⁴, |e|, max(e,0), max(e,0)², max(-e,0), y, ŷ, ŷ² (e = prediction - label), and the label's
sum of squared deviations (from DuckDB's var_pop, stable where y² sums would cancel), for R². One
scan groups each cell's rows by the sign of e as well (usable with e > 0, usable with e <= 0, and the
rest: no label, no prediction, NaN or infinite) and sums e, e², e⁴, y, ŷ, ŷ² per part; the sums of
|e|, max(e,0), max(e,0)², max(-e,0) and the label's m2 follow exactly from the parts (`_combine_signs`).
Rows whose label or prediction is NaN or infinite are counted apart and never summed.
A second scan counts rows per (group, prediction bucket) and per (group, error bucket) with
GROUPING SETS, for histograms and the distribution gap; its bucket edges come from the first scan's
minima and maxima.

Cost at 10M rows (issue 19, `bench/bench_tasks.py --split`): each scan's price is its aggregation,
not its reading; the sums scan is about 12 aggregates on 144 groups, the bucket scan two hash
aggregations on ~9,400 groups. Measured and slower: one joint (prediction, error) bucket key
(164k groups), the buckets as a third and fourth key of the sums scan after a min/max pass, and
three aggregations fanned out from one scan.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fairwatch.connectors.counts import MISSING, _filter_cols, _refuse, check_cardinality_prefix, group_expr, run_query, where_sql
from fairwatch.connectors.source import OpenSource, quote_ident, resolve_spec_columns
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.regression import ERROR_BUCKETS, PREDICTION_BUCKETS, BucketEdges
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter

@dataclass(frozen=True)
class LeadKeys:
    """Extra leading keys of the regression sums: (name, inner SQL expression, outer SQL expression) each, and a filter."""

    keys: tuple[tuple[str, str, str], ...]
    where: str = ""  # appended to the WHERE clause, e.g. " AND t IS NOT NULL"
    params: dict = field(default_factory=dict)


_NUMERIC = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC")
SUMS = ("s_e", "s_e2", "s_e4", "s_ae", "s_over", "s_over2", "s_under", "s_y", "s_y2", "s_p", "s_p2")
# What the engine sums per (cell, sign) part; the rest of SUMS follow from them (`_combine_signs`).
_PART_SUMS = ("s_e", "s_e2", "s_e4", "s_y", "s_p", "s_p2")
_EXTREMES = ("p_min", "p_max", "e_min", "e_max")


def _is_numeric(kind: str) -> bool:
    """True for the engine's number types (not intervals)."""
    kind = kind.upper()
    return not kind.startswith("INTERVAL") and any(t in kind for t in _NUMERIC)


def check_numeric(src: OpenSource, spec: AuditSpec, cols: dict[str, str], where: str, params: dict) -> None:
    """Refuse a label or prediction column with values that are not numbers, naming the first ones."""
    for role in ("label", "prediction"):
        col = cols[role]
        if _is_numeric(src.column_type(col)):
            continue
        q = quote_ident(col)
        bad = run_query(src, f"SELECT CAST({q} AS VARCHAR) AS v, count(*) AS n FROM src WHERE {where} AND {q} IS NOT NULL "
                             f"AND TRY_CAST(CAST({q} AS VARCHAR) AS DOUBLE) IS NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5",
                        params)
        if len(bad):
            shown = ", ".join(repr(str(v)) for v in bad["v"])
            raise DataError(f"a regression audit needs numbers, but the {role} column {col} holds {shown}: clean the "
                            f"column, or audit classes with {{task=multiclass}}")


def _number(col: str, kind: str) -> str:
    """A column as DOUBLE (text columns were checked to hold numbers)."""
    q = quote_ident(col)
    return f"CAST({q} AS DOUBLE)" if _is_numeric(kind) else f"CAST(CAST({q} AS VARCHAR) AS DOUBLE)"


def _keys(spec: AuditSpec, cols: dict[str, str], src: OpenSource) -> tuple[list[str], str, str]:
    """Sensitive columns, their inner select list and their outer text keys."""
    sens_cols = [cols[f"sensitive:{s}"] for s in spec.sensitive]
    inner = ", ".join(f"{quote_ident(c)} AS k{i}" for i, c in enumerate(sens_cols))
    outer = ", ".join(f"{group_expr(f'k{i}', src.column_type(c))} AS g{i}" for i, c in enumerate(sens_cols))
    return sens_cols, inner, outer


def fetch_regression_counts(src: OpenSource, spec: AuditSpec, row_filter: RowFilter | None = None,
                            lead: LeadKeys | None = None) -> pd.DataFrame:
    """Per finest group cell: rows, unlabelled, unpredicted, nonfinite, n and the sums (one scan).

    `lead` adds keys in front of the groups (a time window, a model version) for monitoring, so a
    window's sums are this very query's, grouped by one more key.
    """
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    if lead is not None:
        where, params = f"{where}{lead.where}", params | lead.params
    sens_cols, inner, outer = _keys(spec, cols, src)
    if lead is not None:
        inner = ", ".join([*(f"{expr} AS {name}" for name, expr, _ in lead.keys), inner])
        outer = ", ".join([*(f"{out} AS {name}" for name, _, out in lead.keys), outer])
    check_cardinality_prefix(src, spec, sens_cols, where, params,
                             relation=src.relation_for([*sens_cols, *_filter_cols(cols, row_filter)]))
    check_numeric(src, spec, cols, where, params)
    y = _number(cols["label"], src.column_type(cols["label"]))
    p = _number(cols["prediction"], src.column_type(cols["prediction"]))
    lead_names = [name for name, _, _ in (lead.keys if lead is not None else ())]
    keys = ", ".join([*lead_names, *(f"k{i}" for i in range(len(sens_cols)))])
    # One more key splits each cell's rows in three (issue 19: half the CPU of one CASE per value and a FILTER per
    # count): usable with e > 0 (sg 1), usable with e <= 0 (sg 0), and the rest (NULL: no label, no prediction, or
    # NaN/inf). x - x = 0 holds exactly for finite x (NaN and ±inf give NaN), on DuckDB, PostgreSQL and Spark alike.
    # For finite p and y, p > y exactly when p - y > 0 (IEEE subtraction keeps the sign of the exact difference).
    # The sums of the rest group are never used (they may be NaN); its counts tell its rows apart.
    sign = "CASE WHEN y - y = 0 AND p - p = 0 THEN p > y END"
    rows = (f"SELECT {keys}, y, p, p - y AS e, {sign} AS sg FROM (SELECT {inner}, {y} AS y, {p} AS p FROM src "
            f"WHERE {where})")
    aggs = ", ".join([
        "count(*)::BIGINT AS rows", "count(y)::BIGINT AS with_y", "count(e)::BIGINT AS with_both",
        "sum(e) AS s_e", "sum(e * e) AS s_e2", "sum((e * e) * (e * e)) AS s_e4", "sum(y) AS s_y", "sum(p) AS s_p",
        "sum(p * p) AS s_p2", "var_pop(y) AS var_y", "min(p) AS p_min", "max(p) AS p_max", "min(e) AS e_min",
        "max(e) AS e_max",
    ])
    names = ", ".join(["rows", "with_y", "with_both", *_PART_SUMS, "var_y", *_EXTREMES])
    raw = run_query(src, f"SELECT {outer}, CAST(sg AS INTEGER) AS sg, {names} FROM (SELECT {keys}, sg, {aggs} "
                         f"FROM ({rows}) GROUP BY ALL)", params)
    raw = _combine_signs(raw, [*lead_names, *(f"g{i}" for i in range(len(sens_cols)))])
    raw = raw.rename(columns={f"g{i}": s_ for i, s_ in enumerate(spec.sensitive)})
    for feat, col in zip(spec.sensitive, sens_cols):
        distinct = raw[feat].astype(str).drop_duplicates()
        distinct = distinct[distinct != MISSING]
        if len(distinct) > spec.policy.max_groups:
            raise _refuse(col, len(distinct), spec)
        if len(distinct) == 0 and len(raw) and int(raw["all_rows"].sum()):
            raise DataError(f"sensitive column {col} is empty (NULL in every row audited): choose a column "
                            f"that holds the groups, or fill it in the source")
    for c in spec.sensitive:
        raw[c] = raw[c].astype(str)
    return raw


def _combine_signs(raw: pd.DataFrame, cell: list[str]) -> pd.DataFrame:
    """One row per cell from its (e > 0, e <= 0, rest) rows: the counts, the sums of SUMS, the label's mean and m2.

    Exact in real arithmetic: Σ|e| = Σ⁺e - Σ⁻e, Σmax(e,0) = Σ⁺e, Σmax(-e,0) = -Σ⁻e, Σmax(e,0)² = Σ⁺e², and
    the label's m2 is Chan et al.'s combination of the two parts' var_pop; Σy² = m2 + (Σy)²/n is derived (no
    metric reads it). In floats each differs from one sum over all rows by the order of additions only (a
    relative 1e-16 or so, far inside the oracle tests' 1e-9).
    """
    sg = pd.to_numeric(raw["sg"], errors="coerce").astype(float).to_numpy()
    # Every key is text or a window start, never NULL (group_expr writes '(missing)'): one row per (cell, part).
    code = raw.groupby(cell, sort=False).ngroup().to_numpy() if len(raw) else np.zeros(0, dtype=np.int64)
    out = raw.loc[~pd.Series(code).duplicated().to_numpy(), cell].reset_index(drop=True)
    size = len(out)

    def part(mask: np.ndarray) -> dict[str, np.ndarray]:
        """One part's numbers per cell: counts and sums 0 where the cell has no such rows, extremes NaN."""
        got = {}
        for c in ("rows", "with_y", "with_both", "var_y", *_PART_SUMS, *_EXTREMES):
            column = np.full(size, np.nan if c in _EXTREMES else 0.0)
            column[code[mask]] = pd.to_numeric(raw[c], errors="coerce").to_numpy(np.float64)[mask]
            got[c] = column
        return got

    pos, neg, rest = part(sg == 1), part(sg == 0), part(np.isnan(sg))
    n_pos, n_neg = pos["rows"], neg["rows"]
    n = n_pos + n_neg
    out["all_rows"] = (n + rest["rows"]).astype("int64")
    out["unlabelled"] = (rest["rows"] - rest["with_y"]).astype("int64")
    out["unpredicted"] = (rest["with_y"] - rest["with_both"]).astype("int64")
    out["nonfinite"] = rest["with_both"].astype("int64")
    out["n"] = n.astype("int64")
    plus, minus = pos["s_e"], neg["s_e"]
    out["s_e"] = plus + minus
    out["s_e2"] = pos["s_e2"] + neg["s_e2"]
    out["s_e4"] = pos["s_e4"] + neg["s_e4"]
    out["s_ae"] = plus - minus
    out["s_over"] = plus
    out["s_over2"] = pos["s_e2"]
    out["s_under"] = -minus
    s_y = pos["s_y"] + neg["s_y"]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_pos = np.where(n_pos > 0, pos["s_y"] / np.where(n_pos > 0, n_pos, 1), 0.0)
        mean_neg = np.where(n_neg > 0, neg["s_y"] / np.where(n_neg > 0, n_neg, 1), 0.0)
        m2 = (n_pos * pos["var_y"] + n_neg * neg["var_y"]
              + np.where(n > 0, n_pos * n_neg / np.where(n > 0, n, 1), 0.0) * (mean_pos - mean_neg) ** 2)
        out["s_y"] = s_y
        out["s_y2"] = np.where(n > 0, m2 + s_y * s_y / np.where(n > 0, n, 1), 0.0)
        out["s_p"] = pos["s_p"] + neg["s_p"]
        out["s_p2"] = pos["s_p2"] + neg["s_p2"]
        out["mean_y"] = np.where(n > 0, s_y / np.where(n > 0, n, 1), np.nan)
        out["var_y"] = np.where(n > 0, m2 / np.where(n > 0, n, 1), 0.0)
    out["m2_y"] = m2
    # Extremes over the usable rows only (NaN where a cell has none).
    for c, pick in (("p_min", np.fmin), ("p_max", np.fmax), ("e_min", np.fmin), ("e_max", np.fmax)):
        out[c] = pick(pos[c], neg[c])
    return out


def fetch_regression_buckets(src: OpenSource, spec: AuditSpec, edges: BucketEdges,
                             row_filter: RowFilter | None = None, lead: LeadKeys | None = None) -> pd.DataFrame:
    """Rows per (finest group cell, kind, bucket), kind 'prediction' or 'error', over the usable rows (`lead`: as above)."""
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    if lead is not None:
        where, params = f"{where}{lead.where}", params | lead.params
    sens_cols, inner, outer = _keys(spec, cols, src)
    lead_names = [name for name, _, _ in (lead.keys if lead is not None else ())]
    if lead is not None:
        inner = ", ".join([*(f"{expr} AS {name}" for name, expr, _ in lead.keys), inner])
        outer = ", ".join([*(f"{out} AS {name}" for name, _, out in lead.keys), outer])
    y = _number(cols["label"], src.column_type(cols["label"]))
    p = _number(cols["prediction"], src.column_type(cols["prediction"]))
    params = dict(params) | {"p_lo": edges.p_lo, "p_w": edges.p_width, "e_lo": edges.e_lo, "e_w": edges.e_width}

    def bucket(expr: str, lo: str, width: str) -> str:
        """The bucket of a value: floor((x - lo) / width); clamped into range below (the top edge in the last one)."""
        return f"floor(({expr} - ${lo}) / ${width})"

    # The clamp and the cast to an integer are done on the few result rows, not per row: a third of this scan's
    # CPU at 10M rows (issue 19). The same floor of the same quotient, so the same buckets.
    keys = ", ".join([*lead_names, *(f"k{i}" for i in range(len(sens_cols)))])
    raw = run_query(
        src,
        f"SELECT {outer}, pb, eb, n FROM (SELECT {keys}, pb, eb, count(*)::BIGINT AS n FROM ("
        f"SELECT {keys}, {bucket('p', 'p_lo', 'p_w')} AS pb, "
        f"{bucket('p - y', 'e_lo', 'e_w')} AS eb FROM (SELECT {inner}, {y} AS y, {p} AS p FROM src "
        f"WHERE {where}) WHERE y IS NOT NULL AND p IS NOT NULL AND y - y = 0 AND p - p = 0) "
        f"GROUP BY GROUPING SETS (({keys}, pb), ({keys}, eb)))",
        params,
    )
    raw = raw.rename(columns={f"g{i}": s_ for i, s_ in enumerate(spec.sensitive)})
    for c in spec.sensitive:
        raw[c] = raw[c].astype(str)
    cell = [*lead_names, *spec.sensitive]
    parts = []
    for kind, col, count in (("prediction", "pb", PREDICTION_BUCKETS), ("error", "eb", ERROR_BUCKETS)):
        part = raw[raw[col].notna()]
        # floor(±inf) (an error that overflows) is ±inf here and the largest integer on Spark: both clamp alike.
        bucket = np.clip(part[col].to_numpy(np.float64), 0, count - 1).astype(np.int64)
        parts.append(part[cell].assign(kind=kind, bucket=bucket, n=part["n"].to_numpy(np.int64))
                     .groupby([*cell, "kind", "bucket"], as_index=False, sort=False)["n"].sum())
    out = pd.concat(parts, ignore_index=True)
    return out[[*cell, "kind", "bucket", "n"]].astype({"n": "int64"})
