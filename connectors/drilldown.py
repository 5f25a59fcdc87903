"""Queries for one slice: its outcome counts against the rest, its other features' values, a page of its rows.

A slice is a tuple of (feature, value) predicates over the spec's sensitive features and features,
matched exactly as the data-quality counts match them (`connectors/quality_counts.py`, whose
predicate builder is used here): a value compares as text, '(missing)' means IS NULL, and on a
numeric column a range label such as ``[10, 20)`` means that interval (the slice search's bins).
Values are always parameters; identifiers come from the spec, resolved against the source and
quoted. Only counts leave the engine, except for the page of example rows, which never holds a
column the spec hides ([privacy] hide_columns; the entry ``id`` hides the id column, whatever
its name) nor, unless [privacy] show_columns lists it, one that looks like personal data.

`drill_down` puts the counts together with the audit's slice search and data-quality signals
into a `SliceAnalysis` (`metrics/presentation/slice_views.py`), for a slice the search found or one defined
by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import pandas as pd

from fairwatch.connectors.counts import MISSING, group_expr, prediction_expr, run_query, where_sql
from fairwatch.connectors.quality_counts import (_check_slices, _predicate, _spec_columns, fetch_quality_counts,
                                       is_numeric_type)
from fairwatch.connectors.slice_counts import bin_labels, quantile_edges
from fairwatch.connectors.source import OpenSource, check_privacy_columns, quote_ident, resolve_spec_columns
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.privacy.personal import personal_data_kind, shown_columns
from fairwatch.metrics.discovery.quality import compute_quality
from fairwatch.connectors.task_drilldown import (TaskSliceAnalysis, analyse_multiclass, analyse_regression,
                                                 membership_lead, regression_sides)
from fairwatch.connectors.task_quality_counts import fetch_task_quality_counts
from fairwatch.metrics.discovery.quality import QualityTable
from fairwatch.metrics.presentation.slice_views import (SIDE, SLICE_SIDE, SliceAnalysis, analyse_slice, canonical,
                                                        signal_analysis, signal_fields, task_error_counts)
from fairwatch.metrics.audit.snapshot import AuditSnapshot
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter

Slice = tuple[tuple[str, str], ...]
# The entry of [privacy] hide_columns that hides the id column by its role.
ID_ROLE = "id"
PAGE_SIZE = 25


@dataclass(frozen=True)
class _Parts:
    """The pieces every slice query shares: the row filter, the spec's columns as c<j>, the slice predicate."""

    cols: dict[str, str]
    where: str
    filter_params: dict  # the row filter's (every query uses them)
    params: dict  # the row filter's and the slice's
    spec_cols: list[tuple[str, str]]
    types: list[str]
    selects: str
    predicate: str


def _parts(src: OpenSource, spec: AuditSpec, slice_: Slice, row_filter: RowFilter | None) -> _Parts:
    """Resolve the columns, check the slice against them and build its predicate (FALSE for no slice)."""
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    spec_cols = _spec_columns(spec, cols)
    names = {n.lower(): j for j, (n, _) in enumerate(spec_cols)}
    types = [src.column_type(c) for _, c in spec_cols]
    predicate, more = "FALSE", {}
    if slice_:
        checked = _check_slices([slice_], names, src, spec_cols)[0]
        predicate, more, _ = _predicate(checked, 0, names, types)
    selects = ", ".join(f"{quote_ident(c)} AS c{j}" for j, (_, c) in enumerate(spec_cols))
    return _Parts(cols, where, params, {**params, **more}, spec_cols, types, selects, f"coalesce({predicate}, FALSE)")


def fetch_slice_cells(src: OpenSource, spec: AuditSpec, slice_: Slice,
                      row_filter: RowFilter | None = None) -> pd.DataFrame:
    """Rows per (in the slice or not, raw label, raw decision); with a score, its first four power sums.

    Columns: in_slice, label_raw, pred_raw, n, and with a score: scored (rows with a usable score),
    s1..s4 (sums of score^k over them), from which the squared score loss and its spread follow exactly.
    """
    p = _parts(src, spec, slice_, row_filter)
    params = dict(p.params)
    if spec.prediction is None:
        params["threshold"] = spec.threshold
    label = f"CAST({quote_ident(p.cols['label'])} AS VARCHAR)"
    score_cols, sums = "", ""
    if spec.score is not None:
        score_cols = f", CAST({quote_ident(p.cols['score'])} AS DOUBLE) AS fw_s"
        ok = "fw_s IS NOT NULL AND NOT isnan(fw_s)"
        sums = f", count_if({ok}) AS scored" + "".join(
            f", coalesce(sum(power(fw_s, {k})) FILTER (WHERE {ok}), 0) AS s{k}" for k in range(1, 5))
    sql = (f"WITH base AS (SELECT {p.selects}, {label} AS fw_label, {prediction_expr(spec, p.cols)} AS fw_pred"
           f"{score_cols} FROM src WHERE {p.where}) "
           f"SELECT {p.predicate} AS in_slice, fw_label AS label_raw, fw_pred AS pred_raw, count(*) AS n{sums} "
           f"FROM base GROUP BY ALL")
    out = run_query(src, sql, params)
    out["in_slice"] = out["in_slice"].astype(bool)
    return out


def fetch_value_counts(src: OpenSource, spec: AuditSpec, slice_: Slice,
                       row_filter: RowFilter | None = None) -> pd.DataFrame:
    """Rows per (feature, value, in the slice or not) for every spec feature the slice does not fix.

    Numeric features with more than [slices] bins values are cut into the slice search's bins and
    named by their range labels; NULL is '(missing)'. With an empty slice every row is outside it:
    the values of every feature with their counts (the filter builder's choices).
    """
    p = _parts(src, spec, slice_, row_filter)
    own = {c.lower() for c, _ in slice_}
    others = [j for j, (name, _) in enumerate(p.spec_cols) if name.lower() not in own]
    if not others:
        return pd.DataFrame({"feature": [], "value": [], "in_slice": [], "n": []})
    numeric = [j for j in others if is_numeric_type(p.types[j])]
    # As the slice search profiles them: distinct values, and for numbers the values a quantile ranks.
    profile = run_query(src, "SELECT " + ", ".join(
        [f"approx_count_distinct({quote_ident(p.spec_cols[j][1])}) AS d{j}" for j in others]
        + [f"count(CASE WHEN NOT isnan(CAST({quote_ident(p.spec_cols[j][1])} AS DOUBLE)) THEN 1 END) AS m{j}"
           for j in numeric])
        + f" FROM src WHERE {p.where}", p.filter_params).iloc[0]
    params, keys = dict(p.params), []
    for j in others:
        name, column = p.spec_cols[j]
        distinct = int(profile[f"d{j}"])
        if j in numeric and distinct > spec.slices.bins:
            # The slice search's bins, so a finding's range label names one of these bars.
            lo, edges, hi = quantile_edges(src, f"CAST({quote_ident(column)} AS DOUBLE)", p.where, p.filter_params,
                                           int(profile[f"m{j}"]), spec.slices.bins)
            labels = bin_labels(lo, edges, hi) if not math.isnan(lo) else []
            x = f"CAST(c{j} AS DOUBLE)"
            cases = " ".join(f"WHEN {x} < $b{j}_{i} THEN $l{j}_{i}" for i in range(len(edges)))
            params.update({f"b{j}_{i}": e for i, e in enumerate(edges)})
            params.update({f"l{j}_{i}": t for i, t in enumerate(labels)})
            last = f"$l{j}_{len(edges)}" if labels else f"'{MISSING}'"
            keys.append(f"CASE WHEN {x} IS NULL OR isnan({x}) THEN '{MISSING}' {cases} ELSE {last} END AS k{j}")
        elif distinct > spec.policy.max_groups:
            raise DataError(f"feature {name} has about {distinct:,} distinct values, more than max_groups "
                            f"({spec.policy.max_groups}), too many to show per value: map it to fewer categories")
        else:
            keys.append(f"{group_expr(f'c{j}', p.types[j])} AS k{j}")
    # One scan, one grouping set per feature: GROUPING SETS run on every engine (UNPIVOT is DuckDB's own).
    # A key is never NULL (missing values are '(missing)'), so the key that is not NULL names the set.
    listed = ", ".join(f"k{j}" for j in others)
    sets = ", ".join(f"(in_slice, k{j})" for j in others)
    sql = (f"WITH base AS (SELECT {p.selects} FROM src WHERE {p.where}), "
           f"keyed AS (SELECT {p.predicate} AS in_slice, {', '.join(keys)} FROM base) "
           f"SELECT in_slice, {listed}, count(*) AS n FROM keyed GROUP BY GROUPING SETS ({sets})")
    grouped = run_query(src, sql, params)
    out = pd.concat([pd.DataFrame({"feature": p.spec_cols[j][0], "value": grouped.loc[kept, f"k{j}"].astype(str),
                                   "in_slice": grouped.loc[kept, "in_slice"].astype(bool),
                                   "n": grouped.loc[kept, "n"].astype("int64"), "_j": j})
                     for j in others for kept in [grouped[f"k{j}"].notna()]], ignore_index=True)
    out = out.sort_values(["_j", "value", "in_slice"], kind="stable")
    return out.drop(columns="_j").reset_index(drop=True)


def personal_examples(src: OpenSource, names: list[str]) -> dict[str, list[str]]:
    """A few values of each column whose name suggests an e-mail or phone number, for the content check.

    Only those two kinds read values (a 'phone' column holding yes/no is no phone number); names,
    dates of birth and document numbers are judged by name alone, so no row of them is read.
    """
    out = {}
    for c in names:
        if personal_data_kind(c) in ("email", "phone"):
            frame = run_query(src, f"SELECT DISTINCT CAST({quote_ident(c)} AS VARCHAR) AS v FROM src "
                                   f"WHERE {quote_ident(c)} IS NOT NULL LIMIT 20")
            out[c] = [str(v) for v in frame["v"]]
    return out


def visible_columns(src: OpenSource, spec: AuditSpec, names: list[str] | None = None) -> list[str]:
    """The source's columns (or `names` among them) a person may see in example rows and queues.

    All but [privacy] hide_columns and the columns that look like personal data (names, dates of
    birth, e-mail, phone, document numbers: `metrics.privacy`), unless [privacy] show_columns lists
    them. A hide or show entry the source does not have is an error, not ignored: a misspelt entry
    would otherwise show the very column it meant to hide.
    """
    check_privacy_columns(spec, src)
    names = src.column_names() if names is None else names
    hide = list(spec.hidden_columns)
    if ID_ROLE in {h.lower() for h in hide} and spec.id:
        hide.append(spec.id)
    return shown_columns(names, hide, spec.shown_columns, personal_examples(src, names))


def fetch_example_rows(src: OpenSource, spec: AuditSpec, slice_: Slice, row_filter: RowFilter | None = None,
                       page: int = 1, page_size: int = PAGE_SIZE) -> pd.DataFrame:
    """One page of the slice's rows (labelled first, then newest), hidden columns left out."""
    if not slice_:
        raise DataError("choose a slice before asking for its rows")
    p = _parts(src, spec, slice_, row_filter)
    shown = visible_columns(src, spec)
    # Labelled rows first (their outcome can be checked), then the newest, then by id: a stable page order.
    order = ["o2"] + (["o0 DESC NULLS LAST"] if spec.time else []) + (["o1"] if spec.id else [])
    extra = [f"{quote_ident(p.cols['label'])} IS NULL AS o2"] + (
        [f"{quote_ident(p.cols['time'])} AS o0"] if spec.time else []) + (
        [f"{quote_ident(p.cols['id'])} AS o1"] if spec.id else [])
    if not spec.time and not spec.id:  # nothing identifies a row: order by every shown column
        order += [f"v{i}" for i in range(len(shown))]
    picked = ", ".join([f"{quote_ident(c)} AS v{i}" for i, c in enumerate(shown)] + extra)
    sql = (f"WITH base AS (SELECT {p.selects}, {picked} FROM src WHERE {p.where}) "
           f"SELECT {', '.join(f'v{i}' for i in range(len(shown)))} FROM base WHERE {p.predicate} "
           f"ORDER BY {', '.join(order)} LIMIT $fw_limit OFFSET $fw_offset")
    offset = max(int(page) - 1, 0) * int(page_size)
    out = run_query(src, sql, p.params | {"fw_limit": int(page_size), "fw_offset": offset})
    return out.rename(columns={f"v{i}": c for i, c in enumerate(shown)})


def _check_sides(inside: int, total: int, slice_: Slice, row_filter: RowFilter | None) -> None:
    """Refuse a slice with no rows in the view (a value that no longer occurs) or with no rest to compare it with."""
    if inside == 0:
        view = (row_filter or RowFilter()).describe()
        raise DataError(f"no rows match {slice_label(slice_)} in the chosen view ({view}); choose values that occur "
                        f"together")
    if inside == total:
        raise DataError(f"every row of the chosen view is in {slice_label(slice_)}, so there is no rest to compare it "
                        f"with; add a condition")


def _slice_quality(src: OpenSource, spec: AuditSpec, snapshot: AuditSnapshot | None, slice_: Slice,
                   row_filter: RowFilter | None) -> tuple[QualityTable, str]:
    """The audit's quality signals when it checked the slice ('audit'); else counted now for it ('on_demand')."""
    quality = snapshot.quality if snapshot is not None else None
    if quality is not None and quality.checked(slice_):
        return quality, "audit"
    if spec.task == "binary":
        counts = fetch_quality_counts(src, spec, [slice_], snapshot.data.positive_label, row_filter,
                                      positive_prediction=snapshot.data.positive_prediction)
    else:
        counts = fetch_task_quality_counts(src, spec, [slice_], row_filter)
    return compute_quality(counts, spec), "on_demand"


def _task_drill_down(src: OpenSource, spec: AuditSpec, snapshot: AuditSnapshot | None, slice_: Slice,
                     row_filter: RowFilter | None) -> TaskSliceAnalysis:
    """A regression or multiclass slice against the rest on the task's metrics (`connectors/task_drilldown.py`),
    its searched error signal tested as the search tests it, its quality signals and its other features."""
    if spec.task == "multiclass":
        cells = fetch_slice_cells(src, spec, slice_, row_filter)
        _check_sides(int(cells.loc[cells["in_slice"], "n"].sum()), int(cells["n"].sum()), slice_, row_filter)
        analysis = analyse_multiclass(slice_, cells, spec)
    else:
        p = _parts(src, spec, slice_, row_filter)
        cells, errors = regression_sides(src, spec, membership_lead(p.predicate, p.params, p.spec_cols), row_filter)
        inside = int(cells.loc[cells[SIDE] == SLICE_SIDE, "all_rows"].sum())
        _check_sides(inside, int(cells["all_rows"].sum()), slice_, row_filter)
        analysis = analyse_regression(slice_, cells, errors, spec)
    # The searched signal's counts per side come from the same cells or sums: no further scan.
    sides = task_error_counts(cells, spec)
    quality, family = _slice_quality(src, spec, snapshot, slice_, row_filter)
    signal = signal_analysis(slice_, sides, spec, snapshot, quality, family)
    return replace(analysis, values=fetch_value_counts(src, spec, slice_, row_filter), **signal_fields(signal))


def drill_down(src: OpenSource, spec: AuditSpec, snapshot: AuditSnapshot | None, slice_: Slice,
               row_filter: RowFilter | None = None) -> SliceAnalysis | TaskSliceAnalysis:
    """The analysis of one slice against the rest: outcomes, error signal, data need, quality signals, values.

    For a regression or multiclass audit the task's metrics in the slice against the rest
    (`TaskSliceAnalysis`) take the place of the binary outcomes; the rest is as for a binary audit.
    snapshot None (a task audit only): no search to compare with, the slice is tested alone.

    The quality signals come from the audit when it checked the slice (so the need matches the
    snapshot's); otherwise they are counted now for this slice (with the sensitive groups, whose
    tests then form the Benjamini-Hochberg family).
    """
    slice_ = canonical(slice_, spec)
    if spec.task != "binary":
        return _task_drill_down(src, spec, snapshot, slice_, row_filter)
    cells = fetch_slice_cells(src, spec, slice_, row_filter)
    _check_sides(int(cells.loc[cells["in_slice"], "n"].sum()), int(cells["n"].sum()), slice_, row_filter)
    quality, family = _slice_quality(src, spec, snapshot, slice_, row_filter)
    values = fetch_value_counts(src, spec, slice_, row_filter)
    return analyse_slice(slice_, cells, values, spec, snapshot, quality, family)
