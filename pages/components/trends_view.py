"""The sections of the Trends page: metrics over time, label coverage, model versions, drift, alerts."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from fairwatch.metrics.monitoring.alerts import CheckResult
from fairwatch.metrics.presentation.charts import psi_chart, trend_chart, version_chart
from fairwatch.metrics.policy.overview import window_text
from fairwatch.metrics.presentation.trend_views import (PSI_LARGE, PSI_MODERATE, check_table, coverage_points, coverage_table,
                                 drift_tests_table, example_rules, prediction_shift_points, psi_points, shows_prediction_shift, trend_axis, share_trend_points, trend_gaps,
                                 trend_points, trend_table, version_changes, version_points, version_table)
from fairwatch.metrics.monitoring.trends import TrendTable
from fairwatch.pages.components.auth import md
from fairwatch.pages.components.frame import SHARE_COLUMNS, PageContext, guard, show_chart, show_table
from fairwatch.pages.components.loaders import (load_check, load_drift, load_filter_options, load_prediction_shift,
                                                load_versions, stamp_of)


def _counts(*names: str) -> dict:
    """Column formats for whole counts (thousands separators)."""
    return {n: st.column_config.NumberColumn(n, format="localized") for n in names}


def render_metric_trends(trends: TrendTable, grouping: str, metrics: Sequence[str], groups: Sequence[str],
                         min_support: int, task: str = "binary") -> None:
    """Each metric per window and group as lines with interval bands; gaps listed below."""
    st.caption(f"Each line is a group's value per {trends.grain}, the band its 95% interval; hover for the "
               f"estimate and n. A {trends.grain} where a group has fewer than {min_support} rows for a metric is a "
               f"gap, never a zero; a lone {trends.grain} between gaps shows its interval as a bar. The axes zoom to "
               f"the data, so read a change against its band.")
    y_title, y_format = trend_axis(task)
    show_chart(trend_chart(trend_points(trends.rows, grouping, metrics), groups,
                           y_title, facet=True, height=170, y_format=y_format))
    gaps = trend_gaps(trends.rows, grouping, metrics, trends.grain)
    with st.expander(f"Gaps: too few rows ({len(gaps)} series)"):
        st.markdown("\n".join(f"- {md(line)}" for line in gaps) or "None: every window has enough rows.")
    with st.expander("The numbers per window"):
        show_table(trend_table(trends.rows, grouping, metrics, trends.grain), height=400)


def render_coverage(trends: TrendTable) -> None:
    """The labelled share of each window's rows, with its interval and n."""
    st.caption("How complete each window is: the share of its rows whose outcome is known. Outcomes arrive "
               "late, so the latest windows are the least complete and their error rates rest on fewer rows; "
               "a window's rates are computed from its labelled rows only.")
    show_chart(trend_chart(coverage_points(trends.coverage), ["labelled share of rows"], "labelled share"))
    show_table(coverage_table(trends.coverage, trends.grain), {**SHARE_COLUMNS, **_counts("Labelled rows")},
               height=300)


def render_versions(ctx: PageContext, grouping: str, metrics: Sequence[str], groups: Sequence[str]) -> None:
    """Two model versions side by side: what got significantly worse or better, per group and metric."""
    sel = ctx.selection
    versions = load_filter_options(sel.spec, stamp_of(sel.spec)).model_versions
    if len(versions) < 2:
        st.info(f"Comparing versions needs a model version column with at least two versions; found: "
                f"{md(', '.join(versions) or 'none')}.")
        return
    c1, c2 = st.columns(2)
    a = c1.selectbox("Version A (before)", versions, index=0, key="fw.trend.version_a")
    others = [v for v in versions if v != a]
    b = c2.selectbox("Version B (after)", others, index=len(others) - 1, key=f"fw.trend.version_b.{a}")
    comp = load_versions(sel.spec, sel.row_filter, a, b, stamp_of(sel.spec))
    st.caption(f"Each version on the labelled rows it decided (in the sidebar's time window; its model version "
               f"choice does not apply here). A change is significant when q < {sel.spec.policy.fdr:g} after "
               f"Benjamini-Hochberg over all groups and metrics; the rows each version saw may differ (see the "
               f"drift below). Lists: the chosen metrics, each group once with its most certain change.")
    c1, c2 = st.columns(2)
    for col, change, title in ((c1, "worse", "Significantly worse"), (c2, "better", "Significantly better")):
        count, lines = version_changes(comp.rows, change, metrics, sel.features)
        col.markdown(f"**{title} under {md(b)} than under {md(a)}: {count} group(s)**\n"
                     + "\n".join(f"- {md(t)}" for t in lines))
    show_chart(version_chart(version_points(comp.rows, grouping, metrics), groups))
    show_table(version_table(comp.rows, grouping, metrics), columns={})


def render_drift(ctx: PageContext, trends: TrendTable, grouping: str, groups: Sequence[str]) -> None:
    """Group shares per window against a baseline window; PSI and chi-square per grouping."""
    sel, windows = ctx.selection, list(trends.coverage["window"])
    c1, c2 = st.columns(2)
    base = c1.selectbox("Baseline window", windows, format_func=lambda w: window_text(w, trends.grain),
                        key=f"fw.trend.baseline.{trends.grain}")
    drift = load_drift(sel.spec, sel.row_filter, trends.grain, pd.Timestamp(base).isoformat(), stamp_of(sel.spec))
    st.caption("Each group's share of all rows (labelled or not) per window, with its 95% interval; dashed: the "
               "baseline window.")
    show_chart(trend_chart(share_trend_points(drift.shares, grouping), groups,
                           "share of rows", marker=drift.baseline))
    show_chart(psi_chart(psi_points(drift.tests, sel.features), PSI_MODERATE, PSI_LARGE))
    window = c2.selectbox("Window to test against the baseline", windows[::-1],
                          format_func=lambda w: window_text(w, trends.grain), key=f"fw.trend.tested.{trends.grain}")
    st.caption(f"PSI is the size of the shift (< {PSI_MODERATE:g} stable, up to {PSI_LARGE:g} moderate, above large); "
               f"the chi-square test says whether it could be chance (q over the groupings of the window). With "
               f"many rows even a tiny shift is significant: read q with the PSI.")
    show_table(drift_tests_table(drift.tests, window, sel.features, sel.spec.policy.fdr), _counts("n", "Baseline n"))
    if shows_prediction_shift(sel.spec.task):
        shift = load_prediction_shift(sel.spec, sel.row_filter, trends.grain, pd.Timestamp(base).isoformat(),
                                      stamp_of(sel.spec))
        st.caption("How far each group's predictions moved from its own predictions in the baseline window: the "
                   "Kolmogorov-Smirnov distance between the two distributions (0 = the same, 1 = apart), from 100 "
                   "buckets over the labelled rows (a lower bound on the exact distance); hover for q.")
        show_chart(trend_chart(prediction_shift_points(shift, grouping), groups, "KS distance from baseline",
                               y_format=".2f"))


def _show_check(result: CheckResult) -> None:
    """A check's period, notes and one row per rule."""
    st.caption(md("; ".join(result.lines()[: 1 + len(result.notes)])))
    show_table(check_table(result), columns={})


def render_alerts(ctx: PageContext) -> None:
    """The config's [alerts] rules checked as `fairwatch check` does, and a box to try a rule."""
    sel = ctx.selection
    spec, now = sel.spec, sel.row_filter.time_to
    st.caption(f"Checked as `fairwatch check` checks them: on the latest window up to the sidebar's end date, "
               f"drift against the first window. A rule fires only when the estimate is beyond its threshold and "
               f"q < {spec.policy.fdr:g}; a group below min_support never fires one.")
    if spec.alerts.rules:
        with guard():
            _show_check(load_check(spec, spec.alerts.rules, now, stamp_of(spec)))
    else:
        st.info("The config has no [alerts] rules yet: add `rules = [...]` under [alerts] in fairwatch.toml, or "
                "try one below.")
    rule = st.text_input("Try a rule", key="fw.trend.rule", help="For example: " + md(example_rules(spec)),
                         placeholder=f"psi of {spec.sensitive[0]} > 0.1")
    if rule.strip():
        with guard():
            _show_check(load_check(spec, (rule,), now, stamp_of(spec)))
