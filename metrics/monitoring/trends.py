"""Per-group metrics per time window, from counts per (window, finest group, raw label, raw prediction).

The engine sends one aggregation per source (connectors/window_counts.py); everything here is pure.
Each window's metrics are exactly what `metrics/stats/groups.py` computes for that window's rows: the same
RATES definitions, Wilson intervals and min_support masking, applied to all windows at once by adding
the window as a leading key (measured in bench/bench_trends.py: calling `compute_group_table` once
per window is far slower). A group with too little support in a window is a gap (NaN), never a zero;
every (window, group) pair appears, so a chart shows gaps instead of joining across them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

import numpy as np
import pandas as pd

from fairwatch.metrics.errors import SpecError
# Private helpers of the audit engine, reused so a window's numbers cannot drift from an audit's.
from fairwatch.metrics.stats.groups import (
    metric_rows,
    reference_slice,
    wide_table,
    grouping_name,
    groupings,
    reference_groups,
    slice_label,
)
from fairwatch.metrics.audit.outcomes import Outcomes, binarize
from fairwatch.metrics.audit.spec import AuditSpec

# Key columns added in front of the sensitive features in the counts; underscored so they cannot
# collide with a source column that the spec names as a sensitive feature.
WINDOW = "_window"
VERSION = "_version"
GRAINS = ("day", "week", "month")
# Auto grain: up to two months of data reads well day by day; up to a year and a bit (400 days,
# so a calendar year with a few days' slack stays weekly) week by week; longer spans by month.
DAY_SPAN_MAX_DAYS = 60
WEEK_SPAN_MAX_DAYS = 400
_OFFSETS = {"day": pd.DateOffset(days=1), "week": pd.DateOffset(weeks=1), "month": pd.DateOffset(months=1)}
_TREND_COLUMNS = ["window", "grouping", "slice", "group", "n", "labelled_n", "metric", "value", "ci_low",
                  "ci_high", "support", "masked", "reference", "ratio"]


@dataclass(frozen=True)
class TrendTable:
    """Per-window group metrics (long form) and per-window row and label coverage."""

    # window, grouping, slice, group, n, labelled_n, metric, value, ci_low, ci_high, support, masked,
    # reference, ratio (to the grouping's reference group in the same window).
    rows: pd.DataFrame
    # window, window_end, rows, labelled_rows, evaluated_rows, label_coverage.
    coverage: pd.DataFrame
    grain: str

    @property
    def total_rows(self) -> int:
        """Rows counted over all windows (rows without a time are in no window)."""
        return int(self.coverage["rows"].sum())


def choose_grain(first: pd.Timestamp, last: pd.Timestamp, override: str | None = None) -> str:
    """The window grain: the one asked for, else day/week/month from the time span of the data."""
    if override is not None:
        if override not in GRAINS:
            raise SpecError(f"unknown window grain {override!r}; choose one of {', '.join(GRAINS)}")
        return override
    span_days = (pd.Timestamp(last) - pd.Timestamp(first)) / pd.Timedelta(days=1)
    if span_days <= DAY_SPAN_MAX_DAYS:
        return "day"
    return "week" if span_days <= WEEK_SPAN_MAX_DAYS else "month"


def window_end(start: pd.Timestamp, grain: str) -> pd.Timestamp:
    """The exclusive end of the window that starts at `start`."""
    return pd.Timestamp(start) + _OFFSETS[grain]


def window_floor(instant: pd.Timestamp, grain: str) -> pd.Timestamp:
    """The start of the window holding `instant`, as the engine's date_trunc computes it."""
    day = pd.Timestamp(instant).normalize()
    if grain == "day":
        return day
    if grain == "week":
        return day - pd.Timedelta(days=day.weekday())  # ISO weeks start on Monday
    return day.replace(day=1)


def parse_instant(value: str | date | datetime | pd.Timestamp, what: str) -> pd.Timestamp:
    """A point in time given as text or a date/datetime, naive (UTC for aware values), or a SpecError."""
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = pd.NaT
    if pd.isna(stamp):
        raise SpecError(f"{what} {value!r} is not a date or time; write it as 2025-10-01 or 2025-10-01 12:00")
    # The engine compares naive timestamps; zone-aware times are compared in UTC (as the counts are).
    return stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo is not None else stamp


def window_outcomes(cells: pd.DataFrame, spec: AuditSpec, keys: Sequence[str] = (WINDOW,)) -> Outcomes:
    """binarize() with the window (and version) as leading keys: one positive label for all windows."""
    return binarize(cells, replace(spec, sensitive=tuple(keys) + spec.sensitive))


def label_coverage(cells: pd.DataFrame, grain: str) -> pd.DataFrame:
    """Per window: all rows, rows with a label, rows with a label and a decision, and labelled / all."""
    has_label = cells["label_raw"].notna()
    frame = pd.DataFrame({
        "window": cells[WINDOW],
        "rows": cells["n"].astype(np.int64),
        "labelled_rows": cells["n"].where(has_label, 0).astype(np.int64),
        "evaluated_rows": cells["n"].where(has_label & cells["pred_raw"].notna(), 0).astype(np.int64),
    })
    return label_coverage_rows(frame, grain)


def label_coverage_rows(frame: pd.DataFrame, grain: str) -> pd.DataFrame:
    """Coverage per window from (window, rows, labelled_rows, evaluated_rows) records of any task."""
    out = frame.groupby("window", as_index=False, sort=True).sum()
    out.insert(1, "window_end", out["window"].map(lambda w: window_end(w, grain)))
    out["label_coverage"] = out["labelled_rows"] / out["rows"]
    return out


def confusion_cells(labelled: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """tn, fp, fn, tp per combination of `keys`, from 0/1 counts (a pivot: MetricFrame per key is slow)."""
    cols = list(keys)
    code = labelled["y_true"].to_numpy() * 2 + labelled["y_pred"].to_numpy()
    frame = labelled[cols].copy()
    for i, name in enumerate(("tn", "fp", "fn", "tp")):
        frame[name] = np.where(code == i, labelled["n"].to_numpy(), 0).astype(np.int64)
    return frame.groupby(cols, as_index=False, sort=True, observed=True)[["tn", "fp", "fn", "tp"]].sum()


def _complete(wide: pd.DataFrame, key_values: pd.Series, cols: tuple[str, ...], key: str) -> pd.DataFrame:
    """Every key value × every group seen at any key value: an absent pair becomes n = 0 (a gap)."""
    groups = wide[list(cols)].drop_duplicates()
    grid = pd.DataFrame({key: key_values.to_numpy()}).merge(groups, how="cross")
    out = grid.merge(wide, on=[key, *cols], how="left")
    counts = ["n", "tn", "fp", "fn", "tp", "labelled_n"]
    out[counts] = out[counts].fillna(0).astype(np.int64)
    return out


def keyed_metric_rows(labelled: pd.DataFrame, population: pd.DataFrame, spec: AuditSpec, key: str) -> pd.DataFrame:
    """Every metric per (key value, group) of every grouping, via the audit's own metric rows."""
    # Columns: <key>, grouping, slice, group, n, labelled_n, metric, value, ci_low, ci_high, support,
    # successes, proportion, masked. Slices and groups do not mention the key.
    finest = confusion_cells(labelled, (key, *spec.sensitive))
    key_values = pd.Series(population[key].unique()).sort_values(ignore_index=True)
    lookup = {str(v): v for v in key_values}
    parts = []
    for cols in groupings(spec.sensitive):
        keyed = (key, *cols)
        wide = _complete(wide_table(finest, population, None, keyed, False), key_values, cols, key)
        rows = metric_rows(wide, keyed, spec, False, False)
        # metric_rows put the key into the slice; split it off so a slice names a group only
        # (once per distinct slice: row by row this was most of the time on a year of weeks).
        codes, uniques = pd.factorize(rows["slice"])
        rows[key] = pd.Series([lookup[u[0][1]] for u in uniques]).to_numpy()[codes]
        stripped = [u[1:] for u in uniques]
        rows["slice"] = pd.Series(stripped, dtype=object).to_numpy()[codes]
        rows["group"] = np.asarray([slice_label(u) for u in stripped], dtype=object)[codes]
        rows["grouping"] = grouping_name(cols)
        parts.append(rows)
    return pd.concat(parts, ignore_index=True)


def _with_reference_ratio(rows: pd.DataFrame, labelled: pd.DataFrame, population: pd.DataFrame,
                          spec: AuditSpec, key: str) -> pd.DataFrame:
    """Ratio of each group's value to its grouping's reference group at the same key value."""
    # The reference is chosen as the audit chooses it, once over all windows, so it does not jump
    # from window to window.
    total_pop = population.groupby(list(spec.sensitive), as_index=False, observed=True)["n"].sum()
    refs = reference_groups(total_pop, spec)
    finest = confusion_cells(labelled, spec.sensitive)
    reference = {}
    for cols in groupings(spec.sensitive):
        wide = wide_table(finest, total_pop, None, cols, False)
        reference[grouping_name(cols)] = reference_slice(wide, cols, spec, refs)
    rows = rows.copy()
    rows["reference"] = rows["grouping"].map(reference)
    is_ref = rows["group"] == rows["grouping"].map({g: slice_label(r or ()) for g, r in reference.items()})
    ref_values = rows.loc[is_ref].set_index([key, "grouping", "metric"])["value"]
    joined = pd.MultiIndex.from_frame(rows[[key, "grouping", "metric"]])
    ref_value = ref_values.reindex(joined).to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        rows["ratio"] = np.where(ref_value > 0, rows["value"].to_numpy() / np.where(ref_value > 0, ref_value, 1), np.nan)
    return rows


def trend_table(cells: pd.DataFrame, spec: AuditSpec, grain: str, version: str | None = None) -> TrendTable:
    """Metrics per window and group from windowed counts; one model version, or all rows mixed."""
    if version is not None:
        if spec.model_version is None:
            raise SpecError("a model version was chosen but the spec has no model_version column")
        if VERSION not in cells:
            raise SpecError("these counts have no model version key; count them with by_version=True")
        cells = cells[cells[VERSION] == version]
    cells = cells.drop(columns=[VERSION], errors="ignore")
    coverage = label_coverage(cells, grain)
    outcomes = window_outcomes(cells, spec)
    rows = keyed_metric_rows(outcomes.labelled, outcomes.population, spec, WINDOW)
    rows = _with_reference_ratio(rows, outcomes.labelled, outcomes.population, spec, WINDOW)
    rows = rows.rename(columns={WINDOW: "window"})[_TREND_COLUMNS]
    return TrendTable(rows=rows.sort_values(["metric", "grouping", "group", "window"], ignore_index=True),
                      coverage=coverage, grain=grain)
