"""Monitoring over time end to end: windowed counts from the engine, then trends, drift, versions, checks.

Each function reads the source once with `fetch_task_window_counts` (binary and multiclass: the label/decision
cells per window; regression: the audit's sums per window) and hands the counts to metrics/; regression's
prediction shift reads the audit's prediction buckets per window too.
`run_check` is what `fairwatch check` calls: it evaluates alert rules on the latest window (the
window holding `now`, by default the newest row) or on the last N whole days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import pandas as pd

from fairwatch.connectors.source import OpenSource, opened
from fairwatch.connectors.window_counts import WindowCounts, fetch_prediction_buckets, fetch_task_window_counts
from fairwatch.metrics.monitoring.alerts import (
    CheckInputs,
    CheckResult,
    FindingIds,
    Period,
    Rule,
    evaluate_rules,
    evaluation_period,
    known_slices,
    parse_rules,
)
from fairwatch.metrics.stats.drift import DriftTable, drift_table
from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.stats.groups import compute_group_table
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter
from fairwatch.metrics.monitoring.trends import (VERSION, WINDOW, TrendTable, parse_instant, trend_table, window_floor,
                                                window_outcomes)
from fairwatch.metrics.monitoring.versions import VersionComparison, compare_versions
from fairwatch.metrics.monitoring.task_trends import compare_task_versions, prediction_shift, task_trend_table
from fairwatch.metrics.stats.multiclass import MulticlassCounts, compute_multiclass_table, multiclass_counts
from fairwatch.metrics.stats.regression import bucket_edges, compute_regression_table


def window_counts(spec: AuditSpec, grain: str | None = None, row_filter: RowFilter | None = None,
                  src: OpenSource | None = None, by_version: bool = False) -> WindowCounts:
    """The windowed counts of the spec's source (one aggregation)."""
    with opened(spec, src) as source:
        return fetch_task_window_counts(source, spec, grain, row_filter, by_version)


def run_trends(spec: AuditSpec, grain: str | None = None, row_filter: RowFilter | None = None,
               src: OpenSource | None = None) -> TrendTable:
    """Per-window group metrics and label coverage (the filter's model version only, if it names one)."""
    counts = window_counts(spec, grain, row_filter, src, by_version=False)
    if spec.task != "binary":
        return task_trend_table(counts.cells, spec, counts.grain)
    return trend_table(counts.cells, spec, counts.grain)


def population(cells: pd.DataFrame, spec: AuditSpec) -> pd.DataFrame:
    """Rows per (window, finest group), labelled or not."""
    if "all_rows" in cells:  # regression sums: n counts the evaluated rows, all_rows every row
        return (cells.groupby([WINDOW, *spec.sensitive], as_index=False, observed=True)["all_rows"].sum()
                .rename(columns={"all_rows": "n"}))
    return cells.groupby([WINDOW, *spec.sensitive], as_index=False, observed=True)["n"].sum()


def run_drift(spec: AuditSpec, grain: str | None = None, baseline: str | datetime | None = None,
              row_filter: RowFilter | None = None, src: OpenSource | None = None) -> DriftTable:
    """Group shares, PSI and chi-square per window against the baseline window (default: the first)."""
    counts = window_counts(spec, grain, row_filter, src, by_version=False)
    base = parse_instant(baseline, "baseline") if baseline is not None else None
    return drift_table(population(counts.cells, spec), spec, base)


def run_prediction_shift(spec: AuditSpec, grain: str | None = None, baseline: str | datetime | None = None,
                         row_filter: RowFilter | None = None, src: OpenSource | None = None) -> pd.DataFrame:
    """Regression: per window and group, the KS distance of the predictions from the baseline window's."""
    if spec.task != "regression":
        raise SpecError(f"the shift of a numeric prediction is for regression audits; this one is {spec.task} "
                        f"(its population drift is run_drift)")
    with opened(spec, src) as source:
        counts = fetch_task_window_counts(source, spec, grain, row_filter)
        edges = bucket_edges(counts.cells)
        buckets = fetch_prediction_buckets(source, spec, edges, counts.grain, row_filter)
    base = window_floor(parse_instant(baseline, "baseline"), counts.grain) if baseline is not None else None
    return prediction_shift(buckets, spec, base)


def run_version_comparison(spec: AuditSpec, version_a: str, version_b: str, row_filter: RowFilter | None = None,
                           src: OpenSource | None = None) -> VersionComparison:
    """Each rate per group under version A and B, the change B − A with interval, p and q."""
    if spec.model_version is None:
        raise SpecError("comparing model versions needs a model_version column: set [columns] model_version")
    if row_filter is not None and row_filter.model_version is not None:
        raise SpecError("a version comparison reads both versions; drop the model version filter")
    # Versions are compared over all their rows, so the coarsest windows keep the counts smallest.
    counts = window_counts(spec, "month", row_filter, src, by_version=True)
    if spec.task != "binary":
        return compare_task_versions(counts.cells, spec, version_a, version_b)
    outcomes = window_outcomes(counts.cells, spec, keys=(VERSION,))
    return compare_versions(outcomes.labelled, outcomes.population, spec, version_a, version_b)


def _period_frame(frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """The rows of windows in [start, end), relabelled to `start` (so a period counts as one window)."""
    inside = frame[(frame[WINDOW] >= start) & (frame[WINDOW] < end)]
    return inside.assign(**{WINDOW: start})


def _period_drift(base_pop: pd.DataFrame, period_pop: pd.DataFrame, period: Period, spec: AuditSpec,
                  overlap: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The period's group shares and its drift tests against the baseline (none when they overlap)."""
    empty_shares = pd.DataFrame(columns=["window", "grouping", "slice", "group", "n", "total", "share",
                                         "baseline_share"])
    empty_tests = pd.DataFrame(columns=["window", "grouping", "psi", "statistic", "dof", "p_value", "n",
                                        "baseline_n"])
    if period_pop.empty:
        return empty_shares, empty_tests
    if overlap:
        table = drift_table(period_pop, spec, period.start)
        return table.shares.assign(baseline_share=float("nan")), empty_tests
    table = drift_table(pd.concat([base_pop, period_pop], ignore_index=True), spec, period.baseline_start)
    return (table.shares[table.shares["window"] == period.start],
            table.tests[table.tests["window"] == period.start])


def run_check(spec: AuditSpec, rules: Sequence[str | Rule], now: str | datetime | None = None, *,
              last_days: int | None = None, grain: str | None = None, baseline: str | datetime | None = None,
              findings: FindingIds | None = None, src: OpenSource | None = None) -> CheckResult:
    """Evaluate alert rules on the latest window (or the last N days) and say which fired, where and why."""
    # `now` defaults to the newest row; rows after `now` are ignored, so a past date replays the check
    # (with the labels known today, though). With `last_days` the windows are days and the drift
    # baseline is the first `last_days` days (or the days from `baseline`).
    rules = [rules] if isinstance(rules, str) else list(rules)
    parsed = tuple(r if isinstance(r, Rule) else parse_rules([r], spec)[0] for r in rules) or parse_rules([], spec)
    if any(r.kind == "new_finding" for r in parsed) and findings is None:
        raise SpecError("the rule 'any new finding' needs the finding ids of the latest and previous window (--findings FILE)")
    now_ts = parse_instant(now, "now") if now is not None else None
    base_ts = parse_instant(baseline, "baseline") if baseline is not None else None
    row_filter = RowFilter(time_to=now_ts.isoformat()) if now_ts is not None else None
    counts = window_counts(spec, "day" if last_days is not None else grain, row_filter, src, by_version=False)
    cells = counts.cells
    period = evaluation_period(cells[WINDOW], counts.grain, now_ts or counts.span.last, last_days, base_ts)
    pop = population(cells, spec)
    period_pop = _period_frame(pop, period.start, period.end)
    base_pop = _period_frame(pop, period.baseline_start, period.baseline_end)
    notes = []
    # A baseline that overlaps the period (data shorter than two periods) would compare rows with
    # themselves: drift rules are then not evaluated, rather than reported as calm.
    overlap = period.baseline_end > period.start
    if overlap:
        notes.append("the drift baseline overlaps the checked period (the data spans less than two periods): "
                     "drift rules are not evaluated")
    elif base_pop.empty:
        raise SpecError(f"the baseline from {period.baseline_start:%Y-%m-%d} has no rows; choose another baseline")
    shares, tests = _period_drift(base_pop, period_pop, period, spec, overlap)
    groups = None
    period_cells = _period_frame(cells, period.start, period.end)
    labelled_rows = _labelled_rows(period_cells)
    if any(r.kind == "metric" for r in parsed) and spec.task != "binary":
        groups = _task_groups(cells, period, spec) if len(period_cells) else None
    elif any(r.kind == "metric" for r in parsed):
        # Positive labels are chosen over all rows, so a period with one label value still maps right.
        outcomes = window_outcomes(cells, spec)
        lab = _period_frame(outcomes.labelled, period.start, period.end).drop(columns=[WINDOW])
        popn = period_pop.drop(columns=[WINDOW])
        if len(popn):
            groups = compute_group_table(lab, popn, None, spec).rows
    rows = int(period_pop["n"].sum())
    if rows == 0:
        notes.append(f"no rows in the checked period {period.start:%Y-%m-%d} to {period.end:%Y-%m-%d}: "
                     f"is data still arriving?")
    inputs = CheckInputs(
        groups=groups if groups is not None else _empty_groups(),
        shares=shares,
        drift=tests,
        known_slices=known_slices(pop, spec),
        period_rows=rows,
        findings=findings,
    )
    outcomes_ = evaluate_rules(parsed, inputs, spec)
    return CheckResult(outcomes=outcomes_, period=period, grain=counts.grain, rows=rows,
                       labelled_rows=labelled_rows, fdr=spec.policy.fdr, notes=tuple(notes))


def _labelled_rows(cells: pd.DataFrame) -> int:
    """Rows with a label among the cells (regression sums count the unlabelled rows instead)."""
    if "all_rows" in cells:
        return int(cells["all_rows"].sum() - cells["unlabelled"].sum())
    return int(cells.loc[cells["label_raw"].notna(), "n"].sum())


def _task_groups(cells: pd.DataFrame, period: Period, spec: AuditSpec) -> pd.DataFrame | None:
    """The period's group table of a regression or multiclass audit (the audit's own computation)."""
    if spec.task == "regression":
        rows = _period_frame(cells, period.start, period.end).drop(columns=[WINDOW])
        if int(rows["n"].sum()) == 0:
            return None
        return compute_regression_table(rows, spec).rows
    # Classes are read over all windows, so a period missing a class still names it (as the audit's).
    every = multiclass_counts(cells, replace(spec, sensitive=(WINDOW, *spec.sensitive)))
    sens = list(spec.sensitive)

    def inside(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        """The frame's rows in the period, summed over its windows."""
        part = frame[(frame[WINDOW] >= period.start) & (frame[WINDOW] < period.end)]
        return part.groupby(keys, as_index=False, sort=True, observed=True)["n"].sum()

    labelled = inside(every.labelled, [*sens, "y_true", "y_pred"])
    if int(labelled["n"].sum()) == 0:
        return None
    counts = MulticlassCounts(labelled=labelled, population=inside(every.population, sens), classes=every.classes,
                              summary=every.summary, notes=every.notes)
    return compute_multiclass_table(counts, spec)[0].rows


def _empty_groups() -> pd.DataFrame:
    """A group table without rows (no labelled rows in the period): every metric rule lacks data."""
    return pd.DataFrame(columns=["grouping", "slice", "group", "metric", "value", "masked", "support", "ratio",
                                 "difference", "p_value", "verdict", "reference"])
