"""The windowed counting query: counts per time window × model version × finest group × label × decision.

One aggregation serves the trends, the drift and the version comparison, so a monitoring check
reads the source once (plus a small scan of the time column and the cardinality guard).

Windows are `date_trunc(<grain>, t)`: days, ISO weeks starting on Monday, calendar months, in the
time column's own clock (UTC for zone-aware columns). `time_bucket` gives the same windows (a test
checks both against `metrics.monitoring.trends.window_floor`) and measured no faster here (bench/bench_trends.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from fairwatch.connectors.counts import check_cardinality, group_expr, prediction_expr, run_query, where_sql
from fairwatch.connectors.source import OpenSource, quote_ident, resolve_spec_columns
from fairwatch.connectors.task_counts import LeadKeys, fetch_regression_buckets, fetch_regression_counts
from fairwatch.metrics.stats.regression import BucketEdges
from fairwatch.metrics.errors import DataError, SpecError
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter
from fairwatch.metrics.monitoring.trends import GRAINS, VERSION, WINDOW, choose_grain, parse_instant

_TIME_TYPES = ("TIMESTAMP", "DATE")
_TEXT_TYPES = ("VARCHAR",)


@dataclass(frozen=True)
class TimeSpan:
    """First and last instant of the (filtered) rows, and how many rows have no time."""

    first: pd.Timestamp
    last: pd.Timestamp
    rows: int
    untimed_rows: int


@dataclass(frozen=True)
class WindowCounts:
    """Counts per (_window, [_version], sensitive..., label_raw, pred_raw) with n; rows without a time apart."""

    cells: pd.DataFrame
    grain: str
    span: TimeSpan
    sensitive: tuple[str, ...]
    by_version: bool


def time_sql(spec: AuditSpec, src: OpenSource, column: str) -> str:
    """The time column as a naive TIMESTAMP expression; zone-aware columns are read in UTC."""
    kind = src.column_type(column).upper()
    ident = quote_ident(column)
    if "WITH TIME ZONE" in kind or kind == "TIMESTAMPTZ":
        # Casting to TIMESTAMP would use the session's zone; UTC keeps windows the same everywhere.
        return f"timezone('UTC', {ident})"
    if kind.startswith(_TIME_TYPES):
        return f"CAST({ident} AS TIMESTAMP)"
    if kind.startswith(_TEXT_TYPES):
        return f"TRY_CAST({ident} AS TIMESTAMP)"
    raise DataError(
        f"the time column {spec.time} is {kind}, not a date or time; give a TIMESTAMP/DATE column or "
        f"ISO text such as 2025-03-01 12:00:00 (convert epoch numbers with to_timestamp first)"
    )


def _version_filter(row_filter: RowFilter | None) -> RowFilter | None:
    """The filter without its time bounds: those are applied to the validated time expression instead."""
    if row_filter is None:
        return None
    return RowFilter(model_version=row_filter.model_version)


def _version_column(cols: dict[str, str], row_filter: RowFilter | None) -> list[str]:
    """The model version column when the filter reads it (to pick the cheapest relation)."""
    return [cols["model_version"]] if row_filter is not None and row_filter.model_version is not None else []


def _time_bounds(t: str, row_filter: RowFilter | None) -> tuple[str, dict]:
    """WHERE clauses for the filter's time bounds (inclusive), with parsed values as parameters."""
    clauses, params = [], {}
    for bound, op in (("time_from", ">="), ("time_to", "<=")):
        value = getattr(row_filter, bound, None) if row_filter is not None else None
        if value is not None:
            clauses.append(f"{t} {op} ${bound}")
            params[bound] = parse_instant(value, bound.replace("_", " ")).to_pydatetime()
    return "".join(f" AND {c}" for c in clauses), params


def fetch_time_span(src: OpenSource, spec: AuditSpec, row_filter: RowFilter | None = None) -> TimeSpan:
    """First and last time of the rows; a DataError naming the column when values are not times."""
    if spec.time is None:
        raise SpecError("monitoring over time needs a time column: set [columns] time (or {field})", field="time")
    cols = resolve_spec_columns(spec, src)
    t = time_sql(spec, src, cols["time"])
    where, params = where_sql(spec, cols, _version_filter(row_filter))
    bounds, bound_params = _time_bounds("t", row_filter)
    raw = quote_ident(cols["time"])
    # The time (and version) live in the predictions: a labels join would only slow this scan down.
    relation = src.relation_for([cols["time"], *_version_column(cols, row_filter)])
    frame = run_query(
        src,
        f"SELECT min(t) FILTER (WHERE TRUE{bounds}) AS first, max(t) FILTER (WHERE TRUE{bounds}) AS last, "
        f"count(t) FILTER (WHERE TRUE{bounds}) AS timed, count(t) AS timed_all, min(t) AS first_all, "
        f"max(t) AS last_all, count(*) - count(raw) AS untimed, count(raw) - count(t) AS bad "
        f"FROM (SELECT {raw} AS raw, {t} AS t FROM {relation} WHERE {where})",
        params | bound_params,
    ).iloc[0]
    if int(frame["bad"]):
        # Only on this error path: casting every time to text costs as much as the whole aggregation.
        example = run_query(src, f"SELECT min(CAST({raw} AS VARCHAR)) AS v FROM {relation} WHERE {where} "
                                 f"AND {raw} IS NOT NULL AND {t} IS NULL", params).iloc[0]["v"]
        raise DataError(
            f"the time column {spec.time} has {int(frame['bad']):,} value(s) that are not dates or times, "
            f"e.g. {example!r}; fix them or write times as ISO text such as 2025-03-01 12:00:00"
        )
    if int(frame["timed_all"]) == 0 and int(frame["untimed"]):
        raise DataError(f"the time column {spec.time} is empty in all {int(frame['untimed']):,} rows; "
                        f"choose another time column")
    if int(frame["timed_all"]) == 0:
        raise DataError("the source has no rows (after the chosen filters); check the file or the model version")
    if int(frame["timed"]) == 0:
        raise DataError(f"no rows in the chosen time window; the data runs from {frame['first_all']} to "
                        f"{frame['last_all']}: widen the window")
    return TimeSpan(first=pd.Timestamp(frame["first"]), last=pd.Timestamp(frame["last"]),
                    rows=int(frame["timed"]), untimed_rows=int(frame["untimed"]))


def _window_setup(src: OpenSource, spec: AuditSpec, grain: str | None, row_filter: RowFilter | None,
                  by_version: bool) -> tuple[TimeSpan, str, dict[str, str], bool]:
    """(time span, grain, resolved columns, by version) of a window count, after checking the grain and names."""
    if grain is not None and grain not in GRAINS:
        raise SpecError(f"unknown window grain {grain!r}; choose one of {', '.join(GRAINS)}")
    for name in spec.sensitive:
        if name in (WINDOW, VERSION):
            raise SpecError(f"a sensitive feature may not be called {name}; rename the column")
    span = fetch_time_span(src, spec, row_filter)
    return (span, choose_grain(span.first, span.last, grain), resolve_spec_columns(spec, src),
            by_version and spec.model_version is not None)


def fetch_window_counts(src: OpenSource, spec: AuditSpec, grain: str | None = None,
                        row_filter: RowFilter | None = None, by_version: bool = False) -> WindowCounts:
    """Counts per window (grain chosen from the span unless given) in one GROUP BY; NULL times are counted apart."""
    span, grain, cols, by_version = _window_setup(src, spec, grain, row_filter, by_version)
    where, params = where_sql(spec, cols, _version_filter(row_filter))
    t = time_sql(spec, src, cols["time"])
    bounds, bound_params = _time_bounds(t, row_filter)
    sens_cols = [cols[f"sensitive:{s}"] for s in spec.sensitive]
    check_cardinality(src, spec, sens_cols, where, params,
                      relation=src.relation_for([*sens_cols, *_version_column(cols, row_filter)]))
    # Count by the raw values first and turn the few resulting keys into text after: casting every
    # row's keys to text before grouping cost about 10-25% more on 10M rows (bench/bench_trends.py).
    inner = [f"date_trunc('{grain}', {t}) AS {WINDOW}"]
    outer = [WINDOW]
    if by_version:
        inner.append(f"{quote_ident(cols['model_version'])} AS v")
        outer.append(f"{group_expr('v')} AS {VERSION}")
    inner += [f"{quote_ident(c)} AS g{i}" for i, c in enumerate(sens_cols)]
    outer += [f"{group_expr(f'g{i}', src.column_type(c))} AS g{i}" for i, c in enumerate(sens_cols)]
    cell_params = params | bound_params
    if spec.prediction is None:
        # A decision from a score is made per row (grouping by raw scores would explode the cells).
        cell_params["threshold"] = spec.threshold
        inner_pred, outer_pred = prediction_expr(spec, cols), "p"
    else:
        inner_pred, outer_pred = quote_ident(cols["prediction"]), prediction_expr(spec, {**cols, "prediction": "p"})
    cells = run_query(
        src,
        f"SELECT {', '.join(outer)}, CAST(l AS VARCHAR) AS label_raw, {outer_pred} AS pred_raw, "
        f"sum(n)::BIGINT AS n FROM (SELECT {', '.join(inner)}, {quote_ident(cols['label'])} AS l, {inner_pred} AS p, "
        f"count(*) AS n FROM src WHERE {where} AND {t} IS NOT NULL{bounds} GROUP BY ALL) GROUP BY ALL",
        cell_params,
    )
    cells = cells.rename(columns={f"g{i}": s for i, s in enumerate(spec.sensitive)})
    cells[WINDOW] = pd.to_datetime(cells[WINDOW])
    return WindowCounts(cells=cells, grain=grain, span=span, sensitive=spec.sensitive, by_version=by_version)


def fetch_task_window_counts(src: OpenSource, spec: AuditSpec, grain: str | None = None,
                             row_filter: RowFilter | None = None, by_version: bool = False) -> WindowCounts:
    """The task's counts per window: regression sums per (window, group), else the label/decision cells above."""
    if spec.task != "regression":
        # Multiclass reads the same (label, decision) cells as binary: the classes are the raw values.
        return fetch_window_counts(src, spec, grain, row_filter, by_version)
    span, grain, cols, by_version = _window_setup(src, spec, grain, row_filter, by_version)
    t = time_sql(spec, src, cols["time"])
    bounds, bound_params = _time_bounds(t, row_filter)
    keys = [(WINDOW, f"date_trunc('{grain}', {t})", WINDOW)]
    if by_version:
        keys.append((VERSION, quote_ident(cols["model_version"]), group_expr(VERSION)))
    # The audit's own regression query, grouped by the window (and version) too: one scan, the same sums.
    lead = LeadKeys(keys=tuple(keys), where=f" AND {t} IS NOT NULL{bounds}", params=bound_params)
    cells = fetch_regression_counts(src, spec, _version_filter(row_filter), lead=lead)
    cells[WINDOW] = pd.to_datetime(cells[WINDOW])
    return WindowCounts(cells=cells, grain=grain, span=span, sensitive=spec.sensitive, by_version=by_version)


def fetch_prediction_buckets(src: OpenSource, spec: AuditSpec, edges: BucketEdges, grain: str,
                             row_filter: RowFilter | None = None) -> pd.DataFrame:
    """Regression: rows per (window, finest group, prediction bucket), the audit's bucket query with the window key."""
    cols = resolve_spec_columns(spec, src)
    t = time_sql(spec, src, cols["time"])
    bounds, bound_params = _time_bounds(t, row_filter)
    lead = LeadKeys(keys=((WINDOW, f"date_trunc('{grain}', {t})", WINDOW),), where=f" AND {t} IS NOT NULL{bounds}",
                    params=bound_params)
    buckets = fetch_regression_buckets(src, spec, edges, _version_filter(row_filter), lead=lead)
    buckets = buckets[buckets["kind"] == "prediction"].drop(columns=["kind"])
    return buckets.assign(**{WINDOW: pd.to_datetime(buckets[WINDOW])}).reset_index(drop=True)

