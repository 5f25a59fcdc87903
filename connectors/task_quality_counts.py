"""Data-quality counts of regression and multiclass audits, per slice and sensitive group, in one query.

The signals (stated in `metrics/discovery/quality.py`) for these tasks: missing values (any other
column, and per column) as for binary audits; for multiclass conflicting duplicates, labelled rows in a
group of rows identical on every checked column whose labels differ; for regression, instead, outlying labels, beyond Tukey's fences from the quartiles of every audited finite
label (exact ranks, one query in the engine). The rows are grouped once into blocks of what the slices and
signals read, and every count per slice is a sum over blocks. With each signal, the slice search's error signal
(`connectors/task_slice_counts.py`: its denominator and the sum of the loss or of the 0/1 errors)
among the rows the signal does not flag, in the slice and over every row, so whether the flagged
rows explain a finding's gap is a matter of counts, as for binary audits. Only counts leave the engine; PostgreSQL and Spark run the same query
transpiled by `connectors/engines.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fairwatch.connectors.counts import run_query, where_sql
from fairwatch.connectors.quality_counts import (_FLOAT_TYPE, _check_slices, _predicate, _sensitive_groups,
                                                 _spec_columns, _used_params)
from fairwatch.connectors.source import OpenSource, quote_ident, resolve_spec_columns
from fairwatch.connectors.task_slice_counts import regression_values_sql, task_signal
from fairwatch.metrics.discovery.quality import (CELL_COLUMNS, CLEAN_COLUMNS, CONFLICTS, MISSING_ANY, MISSING_COLUMN,
                                                 OUTLIERS, SIGNAL_COLUMNS, QualityCounts, Slice)
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter

# Tukey's fences: this many interquartile ranges beyond the quartiles.
FENCE = 1.5


def label_fences(src: OpenSource, y: str, ok: str, where: str, params: dict) -> tuple[float, float, float, float] | None:
    """(Q1, Q3, low fence, high fence) of the finite labels, None without any; one query.

    Qj is the value of rank ceil(j * N / 4) (1-based) among the N finite labels, as DuckDB's
    quantile_disc(y, j / 4): the smallest value whose running count c has 4c >= jN (integers, exact on
    every engine).
    """
    got = run_query(
        src,
        f"SELECT min(CASE WHEN 4 * fw_cum >= fw_all THEN fw_v END) AS q1, "
        f"min(CASE WHEN 4 * fw_cum >= 3 * fw_all THEN fw_v END) AS q3 FROM (SELECT fw_v, sum(fw_c) OVER (ORDER BY fw_v "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS fw_cum, sum(fw_c) OVER () AS fw_all FROM (SELECT {y} "
        f"AS fw_v, count(*) AS fw_c FROM src WHERE ({where}) AND {ok} GROUP BY 1) AS fw_values) AS fw_run",
        params,
    ).iloc[0]
    if got["q1"] is None or pd.isna(got["q1"]):
        return None
    q1, q3 = float(got["q1"]), float(got["q3"])
    return q1, q3, q1 - FENCE * (q3 - q1), q3 + FENCE * (q3 - q1)


def fetch_task_quality_counts(src: OpenSource, spec: AuditSpec, slices: Sequence[Slice],
                              row_filter: RowFilter | None = None) -> QualityCounts:
    """Counts behind the data-quality signals of a regression or multiclass audit for each slice and sensitive group."""
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    spec_cols = _spec_columns(spec, cols)
    names = {n.lower(): j for j, (n, _) in enumerate(spec_cols)}
    types = [src.column_type(c) for _, c in spec_cols]
    origin: dict[Slice, str] = {s: "requested" for s in _check_slices(slices, names, src, spec_cols)}
    for s in _sensitive_groups(src, spec, cols, where, params):
        origin[s] = "both" if s in origin else "sensitive_group"
    all_slices = list(origin)
    sig = task_signal(src, spec, cols, where, params)
    labelled, den_sql, err_sql, q = sig.labelled, sig.den, sig.err, {**params, **sig.params}
    notes: list[str] = []
    regression = spec.task == "regression"
    if regression:
        y, _, _ = regression_values_sql(src, spec, cols)
        finite_y = f"({y} IS NOT NULL AND {y} - {y} = 0)"
        fences = label_fences(src, y, finite_y, where, params)
        if fences is None:
            outlier = "FALSE"
        else:
            q1, q3, lo, hi = fences
            q.update({"fw_lo": lo, "fw_hi": hi})
            outlier = f"({finite_y} AND ({y} < $fw_lo OR {y} > $fw_hi))"
            notes.append(f"outlying label: a finite label below {lo:.6g} or above {hi:.6g} (Q1 = {q1:.6g}, Q3 = "
                         f"{q3:.6g}, {FENCE:g} IQR beyond them, over every audited finite label)")
    else:
        outlier, finite_y = "FALSE", labelled
    width = len(spec_cols)
    selects = ", ".join(f"{quote_ident(c)} AS c{j}" for j, (_, c) in enumerate(spec_cols))
    missing = [f"(c{j} IS NULL" + (f" OR isnan(c{j}))" if _FLOAT_TYPE.match(types[j]) else ")") for j in range(width)]
    members, own, others = ["-1"], [0], []
    for k, s in enumerate(all_slices):
        pred, pp, own_missing = _predicate(s, k, names, types)
        q.update(pp)
        members.append(f"CASE WHEN {pred} THEN {k} END")
        own.append(own_missing)
        inside = {names[c.lower()] for c, _ in s}
        others.append(tuple(j for j in range(width) if j not in inside))
    membership = "list_filter([" + ", ".join(members) + "], lambda x: x IS NOT NULL)"
    own_cases = " ".join(f"WHEN {i - 1} THEN {d}" for i, d in enumerate(own) if d)
    own_missing_sql = f"CASE fw_k {own_cases} ELSE 0 END" if own_cases else "0"
    sets = sorted(set(others))
    used = sorted({names[c.lower()] for s in all_slices for c, _ in s})
    # Blocks: the rows grouped once by what the slices and signals read (the slices' columns, the other columns'
    # missing flags, the outlier flag); every count per slice is then a sum over its blocks (bench: 1M rows).
    flags = [f"m{j}" for j in range(width)]
    set_flags = [" OR ".join(flags[j] for j in js) if js else "FALSE" for js in sets]
    block_keys = [*(f"c{j}" for j in used), *(f"m{j}" for j in range(width) if j not in used), "fw_out"]

    def total(condition: str, n: str = "n_rows") -> str:
        """The sum of a block count where the condition holds."""
        return f"sum(CASE WHEN {condition} THEN {n} ELSE 0 END)"

    def clean(flagged: str, name: str) -> str:
        """The error signal's denominator and sum among the rows not flagged."""
        return (f"{total(f'NOT ({flagged})', 'n_den')} AS {name}_n, "
                f"sum(CASE WHEN NOT ({flagged}) THEN s_err ELSE CAST(0 AS DOUBLE) END) AS {name}_e")

    set_aggs = "".join(f", {total(f)} AS n_set{e}, {clean(f, f'ce_set{e}')}" for e, f in enumerate(set_flags))
    col_aggs = "".join(f", {total(f'm{j}')} AS n_m{j}, {clean(f'm{j}', f'ce_m{j}')}" for j in range(width))
    kept = ", ".join(["n_rows", "n_l", "n_fin", "n_den", "s_err", "fw_out", "fw_nmiss", *flags])
    if regression:
        # Numeric labels: rows identical on every checked column and the prediction are about one row each on a
        # real log, so the GROUP BY would hash every row (17-25 s at 10M rows) to find next to nothing; doubtful
        # labels are the outlying-label signal instead.
        conflict_ctes, final = "", "SELECT p.*, tot.* FROM per_slice AS p CROSS JOIN tot"
        notes.append("conflicting duplicates not checked for regression: numeric labels of identical rows rarely "
                     "coincide; outlying labels flag doubtful ones")
    else:
        conflict_ctes = f""",
dup AS (
  SELECT {", ".join(f"c{j}" for j in range(width))}, count_if(fw_l) AS fw_n, count_if(fw_den) AS fw_dn,
         sum(CASE WHEN fw_den THEN fw_err ELSE CAST(0 AS DOUBLE) END) AS fw_de
  FROM base GROUP BY {", ".join(f"c{j}" for j in range(width))} HAVING min(fw_y) <> max(fw_y)
),
dup_slice AS (
  SELECT fw_k, sum(fw_n) AS n_conflicts, sum(fw_dn) AS cd_n, sum(fw_de) AS cd_e
  FROM (SELECT unnest({membership}) AS fw_k, fw_n, fw_dn, fw_de FROM dup) AS fw_dup_members
  GROUP BY fw_k
)"""
        final = """SELECT p.*, coalesce(d.n_conflicts, 0) AS n_conflicts, coalesce(d.cd_n, 0) AS cd_n,
       coalesce(d.cd_e, 0) AS cd_e, tot.*
FROM per_slice AS p LEFT JOIN dup_slice AS d USING (fw_k) CROSS JOIN tot"""
    sql = f"""
WITH base AS (
  SELECT {selects}, coalesce({den_sql}, FALSE) AS fw_den,
         CASE WHEN coalesce({den_sql}, FALSE) THEN CAST({err_sql} AS DOUBLE) ELSE CAST(0 AS DOUBLE) END AS fw_err,
         {sig.label} AS fw_y, coalesce({labelled}, FALSE) AS fw_l, coalesce({finite_y}, FALSE) AS fw_fin,
         coalesce({outlier}, FALSE) AS fw_out
  FROM src WHERE {where}
),
pre AS (
  SELECT {", ".join([*(f"c{j}" for j in used), *(f"{missing[j]} AS m{j}" for j in range(width) if j not in used)])},
         fw_out, fw_l, fw_fin, fw_den, fw_err
  FROM base
),
blocks AS (
  SELECT {", ".join(block_keys)}, count(*) AS n_rows, count_if(fw_l) AS n_l, count_if(fw_fin) AS n_fin,
         count_if(fw_den) AS n_den, sum(fw_err) AS s_err
  FROM pre GROUP BY {", ".join(block_keys)}
),
flagged AS (
  SELECT bl.*{"".join(f", {missing[j]} AS m{j}" for j in used)},
         {" + ".join(f"CAST({missing[j] if j in used else flags[j]} AS INTEGER)" for j in range(width))} AS fw_nmiss,
         {membership} AS fw_in
  FROM blocks AS bl
),
tot AS (
  SELECT sum(n_rows) AS fw_all{set_aggs} FROM flagged
),
per_slice AS (
  SELECT fw_k, sum(n_rows) AS n_rows, sum(n_l) AS n_labelled, sum(n_fin) AS n_fin,
         {total("fw_out")} AS n_out, {total(f"fw_nmiss > {own_missing_sql}")} AS n_missing_any{col_aggs},
         {clean("FALSE", "ce_all")}, {clean(f"fw_nmiss > {own_missing_sql}", "ce_any")}, {clean("fw_out", "ce_out")}
  FROM (SELECT unnest(fw_in) AS fw_k, {kept} FROM flagged) AS fw_members
  GROUP BY fw_k
){conflict_ctes}
{final}"""
    result = run_query(src, sql, _used_params(q, sql))
    by_k = {int(r["fw_k"]): r for r in result.to_dict("records")}
    totals = result.iloc[0].to_dict() if len(result) else {}

    def val(k: int, name: str) -> float:
        """A count or sum of slice k (-1 = every row); 0 where no row is in the slice."""
        got = by_k.get(k, {}).get(name)
        return 0.0 if got is None or pd.isna(got) else float(got)

    def err(k: int, name: str) -> tuple[float, float]:
        """(denominator, sum of the error signal) among slice k's rows not flagged."""
        return val(k, f"{name}_n"), val(k, f"{name}_e")

    def err_conflicts(k: int) -> tuple[float, float]:
        """The error signal among slice k's rows outside conflicting-duplicate groups."""
        n_all, e_all = err(k, "ce_all")
        return n_all - val(k, "cd_n"), e_all - val(k, "cd_e")

    no_cells = (np.nan,) * len(CELL_COLUMNS)
    rows_all = int(val(-1, "n_rows"))
    signal_rows, slice_rows = [], []
    for k, s in enumerate(all_slices):
        rows, lab = int(val(k, "n_rows")), int(val(k, "n_labelled"))
        slice_rows.append({"slice": s, "group": slice_label(s), "origin": origin[s], "rows": rows,
                           "labelled_rows": lab, "checked_columns": tuple(spec_cols[j][0] for j in others[k])})
        e = sets.index(others[k])
        set_total = (float(totals.get(f"ce_set{e}_n") or 0), float(totals.get(f"ce_set{e}_e") or 0))
        signal_rows.append((s, MISSING_ANY, None, int(val(k, "n_missing_any")), rows,
                            int(totals.get(f"n_set{e}") or 0), rows_all, *err(k, "ce_any"), *set_total, *no_cells))
        for j in others[k]:
            signal_rows.append((s, MISSING_COLUMN, spec_cols[j][0], int(val(k, f"n_m{j}")), rows,
                                int(val(-1, f"n_m{j}")), rows_all, *err(k, f"ce_m{j}"), *err(-1, f"ce_m{j}"),
                                *no_cells))
        if not regression:
            signal_rows.append((s, CONFLICTS, None, int(val(k, "n_conflicts")), lab, int(val(-1, "n_conflicts")),
                                int(val(-1, "n_labelled")), *err_conflicts(k), *err_conflicts(-1), *no_cells))
        else:
            signal_rows.append((s, OUTLIERS, None, int(val(k, "n_out")), int(val(k, "n_fin")), int(val(-1, "n_out")),
                                int(val(-1, "n_fin")), *err(k, "ce_out"), *err(-1, "ce_out"), *no_cells))
    signals = pd.DataFrame(signal_rows, columns=SIGNAL_COLUMNS + CLEAN_COLUMNS + CELL_COLUMNS)
    signals = signals.astype({c: "int64" for c in ("x", "n", "total_x", "total_n")})
    notes.append("label-error signal not computed: it needs a binary audit's probability score")
    return QualityCounts(
        signals=signals,
        slices=pd.DataFrame(slice_rows, columns=["slice", "group", "origin", "rows", "labelled_rows", "checked_columns"]),
        total_rows=rows_all, labelled_rows=int(val(-1, "n_labelled")), positive_label="", label_error_rule=None,
        notes=tuple(notes),
    )
