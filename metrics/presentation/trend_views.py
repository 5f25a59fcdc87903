"""Table and chart shaping for the Trends page: TrendTable, DriftTable, VersionComparison, CheckResult in,
display frames out (no Streamlit here).

Chart frames share one shape, so one chart builder draws them all: window, group, value, ci_low,
ci_high, support, shown (the text of the tooltip, with n) and isolated (a window whose neighbours
are both gaps: its line has no segment, so the chart draws its interval as a bar). A window below
min_support keeps its row with an empty value: the chart leaves a gap there, never a zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from fairwatch.metrics.monitoring.alerts import CheckResult
from fairwatch.metrics.stats.groups import grouping_name, groupings, metric_names
from fairwatch.metrics.stats.intervals import wilson_interval
from fairwatch.metrics.presentation.formats import HEADLINE_METRICS, fmt_pct, fmt_q
from fairwatch.metrics.policy.overview import shown_rows, window_text
from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.presentation.views import estimate_text, groupings_shown, metric_label, too_few

GRAIN_CHOICES = ("auto", "day", "week", "month")
# What the Trends page shows first for the other tasks (issue 19): the errors and output, or accuracy.
TREND_HEADLINES = {"regression": ("mean_absolute_error", "root_mean_squared_error", "mean_prediction", "mean_error"),
                   "multiclass": ("accuracy", "balanced_accuracy")}
# Common reading of the population stability index (metrics/stats/drift.py).
PSI_MODERATE, PSI_LARGE = 0.1, 0.25
CHANGE_LABELS = {
    "worse": "significantly worse",
    "better": "significantly better",
    "changed": "changed significantly (no better direction)",
    "no_significant_change": "no significant change",
    "insufficient_data": "too few rows to compare",
    "descriptive": "describes the data (not tested)",
}
CHANGE_SHAPES = {"worse": "diamond", "better": "square", "changed": "triangle-up", "no_significant_change": "circle",
                 "insufficient_data": "cross", "descriptive": "stroke"}
STATUS_LABELS = {"fired": "🔴 fired", "ok": "🟢 ok", "insufficient_data": "⚪ too little data"}
_SERIES = ["window", "group", "value", "ci_low", "ci_high", "support", "shown", "isolated"]


def grain_arg(choice: str) -> str | None:
    """The grain to ask the engine for: None lets it choose from the time span."""
    return None if choice == "auto" else choice


def grain_caption(grain: str, choice: str) -> str:
    """'Windows are weeks (chosen from the time span of the data).'"""
    how = "chosen from the time span of the data" if choice == "auto" else "chosen above"
    return f"Windows are {grain}s ({how}; weeks start on Monday)."


def _isolated(frame: pd.DataFrame, keys: Sequence[str]) -> pd.Series:
    """A drawn window whose previous and next windows in its series are both gaps."""
    ordered = frame.sort_values([*keys, "window"])
    drawn = ordered["value"].notna()
    grouped = drawn.groupby([ordered[k] for k in keys], sort=False)
    before = grouped.shift(1, fill_value=False).astype(bool)
    after = grouped.shift(-1, fill_value=False).astype(bool)
    return (drawn & ~before & ~after).reindex(frame.index)


def _series(frame: pd.DataFrame, keys: Sequence[str] = ("group",)) -> pd.DataFrame:
    """The chart frame of one or more series, sorted by window, with the isolated flag."""
    out = frame.assign(isolated=_isolated(frame, list(keys)))
    return out.sort_values([*keys, "window"], kind="stable").reset_index(drop=True)


def trend_groupings(rows: pd.DataFrame, spec: AuditSpec, features: Iterable[str] | None) -> list[str]:
    """The groupings to offer, in the spec's order as on the other pages (single features first, up to pairs)."""
    shown = set(groupings_shown(rows, features))
    return [name for name in (grouping_name(c) for c in groupings(spec.sensitive)) if name in shown]


def trend_metrics(rows: pd.DataFrame, spec: AuditSpec) -> tuple[list[str], list[str]]:
    """(metrics the Trends page offers, the ones it shows first), by the audit's task."""
    present = set(rows["metric"])
    if spec.task == "binary":
        return [m for m in metric_names(spec.score is not None) if m in present], list(HEADLINE_METRICS)
    available = list(dict.fromkeys(rows["metric"]))
    return available, [m for m in TREND_HEADLINES[spec.task] if m in present]


def trend_metrics_key(task: str) -> str:
    """The metric picker's widget key: binary's as before; one per task, so a choice never names another task's metric."""
    return "fw.trend.metrics" if task == "binary" else f"fw.trend.metrics.{task}"


def trend_axis(task: str) -> tuple[str, str]:
    """(y axis title, d3 number format) of the metric charts: shares for classifiers, numbers for regression."""
    return ("value", ",.4~g") if task == "regression" else ("rate", "%")


def shows_prediction_shift(task: str) -> bool:
    """Whether the drift section draws the shift of the model's output: a number's distribution (regression);
    a classifier's outputs are the shares of its classes, which the population drift already follows."""
    return task == "regression"


def trend_points(rows: pd.DataFrame, grouping: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Chart frame of metrics per window for one grouping; masked windows keep an empty value."""
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics)]
    out = sel[["window", "group", "metric", "value", "ci_low", "ci_high", "support", "masked"]].copy()
    out.loc[out["masked"], ["value", "ci_low", "ci_high"]] = np.nan
    out["metric_label"] = out["metric"].map(metric_label)
    out["shown"] = [estimate_text(v, lo, hi, m, s) for v, lo, hi, m, s in
                    zip(out["value"], out["ci_low"], out["ci_high"], out["masked"], out["support"])]
    out["order"] = out["metric"].map({m: i for i, m in enumerate(metrics)})
    return _series(out, ("order", "group")).drop(columns="order")


def trend_gaps(rows: pd.DataFrame, grouping: str, metrics: Sequence[str], grain: str) -> list[str]:
    """'group — metric: 12 of 53 weeks below min_support (n up to 25)' for each series with gaps."""
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics)]
    out = []
    for (metric, group), part in sel.groupby(["metric", "group"], sort=True):
        small = part[part["masked"]]
        if len(small):
            out.append(f"{group} — {metric_label(metric)}: {len(small)} of {len(part)} {grain}s have too few rows "
                       f"(n ≤ {int(small['support'].max()):,})")
    return out


def trend_table(rows: pd.DataFrame, grouping: str, metrics: Sequence[str], grain: str) -> pd.DataFrame:
    """One row per window × group × metric: estimate with interval and its n."""
    pts = trend_points(rows, grouping, metrics)
    return pd.DataFrame({
        "Window": [window_text(w, grain) for w in pts["window"]],
        "Group": pts["group"].to_numpy(),
        "Metric": pts["metric_label"].to_numpy(),
        "Estimate (95% interval)": pts["shown"].to_numpy(),
        "Value": pts["value"].astype(float).to_numpy(),
        "n": pts["support"].astype(np.int64).to_numpy(),
    })


def coverage_points(coverage: pd.DataFrame) -> pd.DataFrame:
    """Chart frame of label coverage per window, with a Wilson interval and the rows it counts."""
    low, high = wilson_interval(coverage["labelled_rows"], coverage["rows"])
    out = pd.DataFrame({
        "window": coverage["window"].to_numpy(), "group": "labelled share of rows",
        "value": coverage["label_coverage"].astype(float).to_numpy(), "ci_low": low, "ci_high": high,
        "support": coverage["rows"].astype(np.int64).to_numpy(),
        "shown": [f"{fmt_pct(c)} ({fmt_pct(lo)}–{fmt_pct(hi)}): {int(x):,} of {int(n):,} rows labelled"
                  for c, lo, hi, x, n in zip(coverage["label_coverage"], low, high, coverage["labelled_rows"],
                                             coverage["rows"])],
    })
    return _series(out)


def coverage_table(coverage: pd.DataFrame, grain: str) -> pd.DataFrame:
    """Rows, labelled rows and coverage per window."""
    return pd.DataFrame({
        "Window": [window_text(w, grain) for w in coverage["window"]],
        "n": coverage["rows"].astype(np.int64).to_numpy(),
        "Labelled rows": coverage["labelled_rows"].astype(np.int64).to_numpy(),
        "Share": coverage["label_coverage"].astype(float).to_numpy(),
    })


def share_trend_points(shares: pd.DataFrame, grouping: str) -> pd.DataFrame:
    """Chart frame of each group's share of rows per window, with the baseline share in the tooltip."""
    sel = shares[shares["grouping"] == grouping]
    out = pd.DataFrame({
        "window": sel["window"].to_numpy(), "group": sel["group"].to_numpy(),
        "value": sel["share"].astype(float).to_numpy(), "ci_low": sel["ci_low"].to_numpy(),
        "ci_high": sel["ci_high"].to_numpy(), "support": sel["total"].astype(np.int64).to_numpy(),
        "shown": [f"{fmt_pct(s)} ({fmt_pct(lo)}–{fmt_pct(hi)}): {int(n):,} of {int(t):,} rows; baseline {fmt_pct(b)}"
                  for s, lo, hi, n, t, b in zip(sel["share"], sel["ci_low"], sel["ci_high"], sel["n"], sel["total"],
                                                sel["baseline_share"])],
    })
    return _series(out)


def psi_reading(psi: float) -> str:
    """'stable', 'moderate shift' or 'large shift'."""
    if pd.isna(psi):
        return "—"
    return "stable" if psi < PSI_MODERATE else ("moderate shift" if psi < PSI_LARGE else "large shift")


def psi_points(tests: pd.DataFrame, features: Iterable[str] | None) -> pd.DataFrame:
    """Chart frame of PSI per window for every shown grouping, with the test and both n in the tooltip."""
    sel = shown_rows(tests, features)
    return sel.assign(
        group=sel["grouping"], reading=sel["psi"].map(psi_reading), q=sel["q_value"].map(fmt_q),
        shown=[f"PSI {p:.3f} ({psi_reading(p)}); chi-square {s:.1f} on {d} df, q={fmt_q(q)}; "
               f"{int(n):,} rows vs {int(b):,} in the baseline"
               for p, s, d, q, n, b in zip(sel["psi"], sel["statistic"], sel["dof"], sel["q_value"], sel["n"],
                                           sel["baseline_n"])],
    ).reset_index(drop=True)


def drift_tests_table(tests: pd.DataFrame, window: pd.Timestamp, features: Iterable[str] | None,
                      fdr: float) -> pd.DataFrame:
    """PSI and chi-square per grouping for one window against the baseline."""
    sel = shown_rows(tests, features)
    sel = sel[sel["window"] == window]
    return pd.DataFrame({
        "Groups of": sel["grouping"].to_numpy(),
        "PSI": sel["psi"].astype(float).round(4).to_numpy(),
        "Reading": sel["psi"].map(psi_reading).to_numpy(),
        "Chi-square": sel["statistic"].astype(float).round(1).to_numpy(),
        "Degrees of freedom": sel["dof"].to_numpy(),
        "q-value": sel["q_value"].map(fmt_q).to_numpy(),
        "Significant": np.where(sel["q_value"] < fdr, "yes", "no"),
        "n": sel["n"].astype(np.int64).to_numpy(),
        "Baseline n": sel["baseline_n"].astype(np.int64).to_numpy(),
    })


def _sides(sel: pd.DataFrame, side: str) -> list[str]:
    """One version's estimates with their intervals and n ('_a' or '_b')."""
    cols = [sel[f"{c}{side}"] for c in ("value", "ci_low", "ci_high", "masked", "support")]
    return [too_few(n) if m else f"{estimate_text(v, lo, hi, m, n)}, n={int(n):,}" for v, lo, hi, m, n in zip(*cols)]


def _diff_text(d: float, low: float, high: float) -> str:
    """'+0.014 (+0.008 to +0.020)' or a dash."""
    return "—" if pd.isna(d) or pd.isna(low) else f"{d:+.3f} ({low:+.3f} to {high:+.3f})"


def version_points(rows: pd.DataFrame, grouping: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Chart frame of B − A per group and metric with its interval (pairs too small to compare dropped)."""
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics) & rows["diff_ci_low"].notna()]
    return pd.DataFrame({
        "group": sel["group"].to_numpy(), "metric": sel["metric"].to_numpy(),
        "metric_label": sel["metric"].map(metric_label).to_numpy(),
        "difference": sel["difference"].to_numpy(), "diff_ci_low": sel["diff_ci_low"].to_numpy(),
        "diff_ci_high": sel["diff_ci_high"].to_numpy(),
        "a": _sides(sel, "_a"), "b": _sides(sel, "_b"),
        "shown": [_diff_text(*r) for r in zip(sel["difference"], sel["diff_ci_low"], sel["diff_ci_high"])],
        "q": sel["q_value"].map(fmt_q).to_numpy(),
        "change_label": sel["change"].map(CHANGE_LABELS).to_numpy(),
        "shape": sel["change"].map(CHANGE_SHAPES).to_numpy(),
    })


def version_table(rows: pd.DataFrame, grouping: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Each metric per group under A and B with n, the difference with its interval, q and the change."""
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics)].sort_values(["metric", "group"])
    return pd.DataFrame({
        "Group": sel["group"].to_numpy(), "Metric": sel["metric"].map(metric_label).to_numpy(),
        "Version A (95% interval)": _sides(sel, "_a"), "Version B (95% interval)": _sides(sel, "_b"),
        "B − A (95% interval)": [_diff_text(*r) for r in zip(sel["difference"], sel["diff_ci_low"], sel["diff_ci_high"])],
        "q-value": sel["q_value"].map(fmt_q).to_numpy(),
        "Change": sel["change"].map(CHANGE_LABELS).to_numpy(),
    })


def version_changes(rows: pd.DataFrame, change: str, metrics: Sequence[str], features: Iterable[str] | None,
                    limit: int = 8) -> tuple[int, list[str]]:
    """How many groups changed significantly one way on the chosen metrics, and the most certain in words."""
    # One line per group, its most certain change: a group's TPR and FNR are the same change seen twice.
    shown = shown_rows(rows, features)
    hits = shown[(shown["change"] == change) & shown["metric"].isin(metrics)]
    hits = hits.sort_values("q_value", kind="stable").drop_duplicates("group")
    count, sel = len(hits), hits.head(limit)
    lines = [f"{g} — {metric_label(m)}: {a:.3f} (n={int(na):,}) → {b:.3f} (n={int(nb):,}), "
             f"B − A {_diff_text(d, lo, hi)}, q={fmt_q(q)}"
             for g, m, a, na, b, nb, d, lo, hi, q in zip(
                 sel["group"], sel["metric"], sel["value_a"], sel["support_a"], sel["value_b"], sel["support_b"],
                 sel["difference"], sel["diff_ci_low"], sel["diff_ci_high"], sel["q_value"])]
    return count, lines + ([f"… and {count - limit} more groups"] if count > limit else [])


def check_table(result: CheckResult) -> pd.DataFrame:
    """One row per rule: status, the rule, where and why it fired, and notes."""
    return pd.DataFrame({
        "Status": [STATUS_LABELS.get(o.status, o.status) for o in result.outcomes],
        "Rule": [o.rule.text for o in result.outcomes],
        "Fired for": ["; ".join(f"{h.group}: {h.why}" for h in o.hits) or "—" for o in result.outcomes],
        "Note": [o.note or "—" for o in result.outcomes],
    })


def example_rules(spec: AuditSpec) -> str:
    """Example rules written with the spec's own features, for the rule box's help (plain text: the page escapes it)."""
    first = spec.sensitive[0]
    if spec.task == "regression":
        return (f"mae ratio > 1.25 for any {first} group · mean_prediction ratio < 0.8 for any group · "
                f"rmse_ratio > 1.25 · psi of {first} > 0.1")
    if spec.task == "multiclass":
        return (f"accuracy difference < -0.05 for any {first} group · balanced_accuracy value < 0.7 · "
                f"true_positive_rate@<class> ratio < 0.8 for any group · psi of {first} > 0.1")
    return (f"false_negative_rate ratio > 1.25 for any {first} group · psi of {first} > 0.1 · "
            f"selection_rate value < 0.3 for any group · share of {first}=… < 0.05")


def trend_lines(trends: Any, grouping: str, metrics: Sequence[str]) -> list[str]:
    """`fairwatch trends` text: coverage per window, then each chosen metric per window and group with n and ratio."""
    rows = trends.rows
    known = list(dict.fromkeys(rows["grouping"]))
    if grouping not in known:
        raise SpecError(f"no grouping {grouping!r}; choose one of {', '.join(known[:12])}")
    missing = [m for m in metrics if m not in set(rows["metric"])]
    if missing:
        raise SpecError(f"no metric {', '.join(missing)} in these trends; they have {', '.join(dict.fromkeys(rows['metric']))}")
    out = [f"{len(trends.coverage)} {trends.grain}s, {trends.total_rows:,} rows"]
    for r in trends.coverage.itertuples():
        out.append(f"  {window_text(r.window, trends.grain)}: {r.rows:,} rows, {r.label_coverage:.0%} labelled")
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics)]
    for metric in metrics:
        out.append(f"{metric_label(metric)} by {grouping} (95% interval; ratio to the reference group):")
        part = sel[sel["metric"] == metric].sort_values(["window", "group"])
        for r in part.itertuples():
            ratio = "" if pd.isna(r.ratio) else f", ratio {r.ratio:.2f}"
            n = "" if r.masked else f", n={int(r.support):,}"
            out.append(f"  {window_text(r.window, trends.grain)} {r.group}: "
                       f"{estimate_text(r.value, r.ci_low, r.ci_high, r.masked, r.support)}{n}{ratio}")
    return out


def version_lines(comp: Any, metrics: Sequence[str]) -> list[str]:
    """`fairwatch trends --versions` text: the groups significantly worse, better or changed under B than A."""
    out = [f"{comp.version_b} against {comp.version_a} (q < FDR after Benjamini-Hochberg):"]
    for change in ("worse", "better", "changed"):
        count, lines = version_changes(comp.rows, change, metrics, None)
        out.append(f"  {CHANGE_LABELS[change]}: {count} group(s)")
        out += [f"    {line}" for line in lines]
    return out


def prediction_shift_points(shift: pd.DataFrame, grouping: str) -> pd.DataFrame:
    """Chart frame of each group's KS distance from the baseline window's predictions (regression)."""
    sel = shift[(shift["grouping"] == grouping) & shift["ks_statistic"].notna()]
    out = pd.DataFrame({
        "window": sel["window"].to_numpy(), "group": sel["group"].to_numpy(),
        "value": sel["ks_statistic"].astype(float).to_numpy(), "ci_low": np.nan, "ci_high": np.nan,
        "support": sel["n"].astype(np.int64).to_numpy(),
        "shown": [f"KS {d:.3f}, q={fmt_q(q)}" for d, q in zip(sel["ks_statistic"], sel["q_value"])]})
    return _series(out)
