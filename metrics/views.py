"""Table shaping for the pages: snapshot frames in, display frames out (no Streamlit here).

Masked values never appear as numbers: their text says "too few rows (n=…)" and their number is
empty, so a reader can neither see a 0 nor sort one in among real values.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from metrics.formats import fmt_num, fmt_q, headline_metrics, metric_label
from metrics.groups import metric_names
from metrics.overview import VERDICT_LABELS, grouping_features, shown_rows, supported_metrics


def too_few(n: int) -> str:
    """The text shown instead of a masked value."""
    return f"too few rows (n={int(n):,})"


def performance_metrics(snap: Any) -> tuple[list[str], list[str]]:
    """(metrics the Performance page offers, the ones it shows first), by the audit's task."""
    present = list(dict.fromkeys(snap.groups.rows["metric"]))
    if snap.spec.task == "binary":
        present = [m for m in metric_names(snap.spec.score is not None) if m in set(present)]
    default = [m for m in headline_metrics(snap.spec.task, supported_metrics(snap.groups.rows)) if m in present]
    return present, default


def confusion_cells(snap: Any, grouping: str) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], list[str]] | None:
    """Multiclass audits: (all cells, cells per group of the grouping, classes) for the heatmaps; None otherwise."""
    result = getattr(snap, "task_result", None)
    confusion = getattr(result, "confusion", None)
    if confusion is None:
        return None
    cells = confusion[confusion["grouping"] == grouping]
    return cells, {g: part for g, part in cells.groupby("group", sort=True)}, list(result.classes)


def histogram_cells(snap: Any, grouping: str, kind: str) -> pd.DataFrame | None:
    """Regression audits: one grouping's histogram bins of 'prediction' or 'error' with a group label; None otherwise."""
    hist = getattr(getattr(snap, "task_result", None), "histograms", None)
    if hist is None or not len(hist):
        return None
    part = hist[(hist["grouping"] == grouping) & (hist["kind"] == kind)]
    return part.assign(group=[", ".join(f"{k}={v}" for k, v in s.items()) for s in part["slice"]])


def groupings_shown(rows: pd.DataFrame, features: Iterable[str] | None, max_depth: int = 2) -> list[str]:
    """Groupings made only of shown features, single features first, up to `max_depth` features."""
    names = shown_rows(rows, features)["grouping"].drop_duplicates().tolist()
    names = [g for g in names if len(grouping_features(g)) <= max_depth]
    return sorted(names, key=lambda g: (len(grouping_features(g)), names.index(g)))


def estimate_text(value: float, low: float, high: float, masked: bool, support: int, digits: int = 3) -> str:
    """'0.116 (0.115–0.117)' or 'too few rows (n=12)'."""
    if masked:
        return too_few(support)
    if pd.isna(value):
        return "undefined (no rows)"
    if pd.isna(low) or pd.isna(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def metric_table(rows: pd.DataFrame, grouping: str, metrics: Sequence[str]) -> pd.DataFrame:
    """One row per group × metric: estimate with interval, n, ratio to reference with interval, verdict."""
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics)].copy()
    if sel.empty:
        return pd.DataFrame(columns=["Group", "Metric", "Estimate (95% interval)", "Value", "n", "Group rows",
                                     "Ratio to reference (95% interval)", "q-value", "Verdict"])
    order = {m: i for i, m in enumerate(metrics)}
    sel = sel.assign(_m=sel["metric"].map(order)).sort_values(["_m", "group"], kind="stable")
    ratio_text = [
        "reference" if v == "reference" else
        ("—" if m or pd.isna(r) else f"{r:.2f} ({fmt_num(lo)}–{fmt_num(hi)})")
        for v, m, r, lo, hi in zip(sel["verdict"], sel["masked"], sel["ratio"], sel["ratio_ci_low"],
                                   sel["ratio_ci_high"])
    ]
    return pd.DataFrame({
        "Group": sel["group"].to_numpy(),
        "Metric": sel["metric"].map(metric_label).to_numpy(),
        "Estimate (95% interval)": [estimate_text(v, lo, hi, m, s) for v, lo, hi, m, s in
                                    zip(sel["value"], sel["ci_low"], sel["ci_high"], sel["masked"], sel["support"])],
        "Value": sel["value"].astype(float).to_numpy(),
        "n": sel["support"].astype(np.int64).to_numpy(),
        "Group rows": sel["n"].astype(np.int64).to_numpy(),
        "Ratio to reference (95% interval)": ratio_text,
        "q-value": [fmt_q(q) for q in sel["q_value"]],
        "Verdict": sel["verdict"].map(VERDICT_LABELS).fillna(sel["verdict"]).to_numpy(),
    })


def rate_points(rows: pd.DataFrame, grouping: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Chart data for rates per group: unmasked points with intervals and n, labelled metrics."""
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics)]
    out = sel[["group", "metric", "value", "ci_low", "ci_high", "support", "masked", "verdict"]].copy()
    out["metric_label"] = out["metric"].map(metric_label)
    out["shown"] = np.where(out["masked"], out["support"].map(too_few),
                            [estimate_text(v, lo, hi, False, s) for v, lo, hi, s in
                             zip(out["value"], out["ci_low"], out["ci_high"], out["support"])])
    return out.reset_index(drop=True)


def disparity_points(rows: pd.DataFrame, grouping: str, metrics: Sequence[str]) -> pd.DataFrame:
    """Chart data for ratios to the reference group, with the ratio's interval (masked groups dropped)."""
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics) & ~rows["masked"]
               & rows["ratio"].notna() & (rows["ratio"] > 0)]
    out = sel[["group", "metric", "ratio", "ratio_ci_low", "ratio_ci_high", "support", "q_value", "verdict"]].copy()
    out["metric_label"] = out["metric"].map(metric_label)
    out["verdict_label"] = out["verdict"].map(VERDICT_LABELS)
    out["q"] = out["q_value"].map(fmt_q)
    # A reference group's own interval is not a comparison; draw its point only.
    ref = out["verdict"] == "reference"
    out.loc[ref, ["ratio_ci_low", "ratio_ci_high"]] = np.nan
    return out.reset_index(drop=True)


def masked_groups(rows: pd.DataFrame, grouping: str, metrics: Sequence[str]) -> list[str]:
    """'group: too few rows (n=…) for metric' lines for what the charts leave out."""
    sel = rows[(rows["grouping"] == grouping) & rows["metric"].isin(metrics) & rows["masked"]]
    return [f"{g} — {metric_label(m)}: {too_few(s)}" for g, m, s in zip(sel["group"], sel["metric"], sel["support"])]


def reference_options(rep: pd.DataFrame, feature: str) -> list[tuple[str, int]]:
    """A sensitive feature's groups as (value, rows), largest first: the choices of its reference group."""
    sel = rep[rep["grouping"] == feature].sort_values("n", ascending=False, kind="stable")
    return [(str(s[0][1]), int(n)) for s, n in zip(sel["slice"], sel["n"]) if len(s) == 1]


def representation_table(rep: pd.DataFrame, grouping: str) -> pd.DataFrame:
    """Shares per group with interval, n, reference share and ratio."""
    sel = rep[rep["grouping"] == grouping].sort_values("n", ascending=False)
    return pd.DataFrame({
        "Group": sel["group"].to_numpy(),
        "n": sel["n"].astype(np.int64).to_numpy(),
        "Share": sel["share"].astype(float).to_numpy(),
        "Share (95% interval)": [f"{100 * s:.2f}% ({100 * lo:.2f}–{100 * hi:.2f}%)"
                                 for s, lo, hi in zip(sel["share"], sel["ci_low"], sel["ci_high"])],
        "Reference share": sel["reference_share"].astype(float).to_numpy(),
        "Share ÷ reference": sel["ratio"].astype(float).to_numpy(),
        "Small group": np.where(sel["below_min_support"], "yes: below min_support", ""),
    })


def share_points(rep: pd.DataFrame, grouping: str) -> pd.DataFrame:
    """Chart data for shares: share, interval, reference share, n, text for tooltips."""
    sel = rep[rep["grouping"] == grouping].copy()
    sel["shown"] = [f"{100 * s:.2f}% ({100 * lo:.2f}–{100 * hi:.2f}%)"
                    for s, lo, hi in zip(sel["share"], sel["ci_low"], sel["ci_high"])]
    sel["reference_text"] = sel["reference_share"].map(lambda r: "none given" if pd.isna(r) else f"{100 * r:.2f}%")
    return sel[["group", "n", "share", "ci_low", "ci_high", "reference_share", "reference_text", "shown",
                "below_min_support"]].reset_index(drop=True)


def intersection_cells(rep: pd.DataFrame, first: str, second: str, min_support: int,
                       complete: bool = True) -> pd.DataFrame:
    """Counts of the two-feature intersection as a grid (first value, second value, n, below min_support).

    `complete=False` for a table with withheld groups left out (a viewer's): a missing cell is then
    'withheld' with no n, since it may be a withheld group rather than a real zero.
    """
    names = {f"{first} × {second}", f"{second} × {first}"}
    sel = rep[rep["grouping"].isin(names)]
    records = []
    for slice_, n in zip(sel["slice"], sel["n"]):
        values = dict(slice_)
        records.append({first: values[first], second: values[second], "n": int(n)})
    grid = pd.DataFrame(records, columns=[first, second, "n"])
    # Empty cells are real zeros of the intersection: show them, they are the smallest groups of all.
    if len(grid):
        # Each feature's values also from its own groups: a value whose every cell is withheld keeps its line.
        axes = [sorted(set(grid[f]) | {dict(s)[f] for s in rep.loc[rep["grouping"] == f, "slice"]})
                for f in (first, second)]
        full = pd.MultiIndex.from_product(axes, names=[first, second])
        grid = grid.set_index([first, second]).reindex(full, fill_value=0 if complete else None).reset_index()
    withheld = grid["n"].isna()
    grid["below_min_support"] = ~withheld & (grid["n"] < min_support)
    dark = grid["n"] > (grid["n"].max() / 3 if len(grid) else 0)
    grid["text_colour"] = np.where(grid["below_min_support"], "#d62728", np.where(dark, "white", "black"))
    grid["label"] = np.where(withheld, "withheld",
                             np.where(grid["below_min_support"], grid["n"].map(lambda n: f"{n:,.0f} (small)"),
                                      grid["n"].map(lambda n: f"{n:,.0f}")))
    return grid


def intersection_caption(cells: pd.DataFrame, min_support: int) -> str:
    """The heatmap's caption: how many cells are too small to judge, and how many are withheld at this role."""
    small, withheld = int(cells["below_min_support"].sum()), int(cells["n"].isna().sum())
    return (f"Red outline and '(small)': fewer than min_support = {min_support} rows, too few for any rate to be "
            f"shown. {small} of {len(cells)} cells are that small"
            + (f"; {withheld} are withheld at your role." if withheld else "."))


def fit_tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    """Goodness-of-fit results in words."""
    if tests is None or tests.empty:
        return pd.DataFrame(columns=["Feature", "Chi-square", "Degrees of freedom", "p-value", "Rows in unlisted groups",
                                     "Reading"])
    reading = ["no reference shares to compare with" if pd.isna(p) else
               ("differs from the reference population" if p < 0.05 else "consistent with the reference population")
               for p in tests["p_value"]]
    return pd.DataFrame({
        "Feature": tests["feature"].to_numpy(),
        "Chi-square": tests["statistic"].astype(float).round(1).to_numpy(),
        "Degrees of freedom": tests["dof"].to_numpy(),
        "p-value": [fmt_q(p) for p in tests["p_value"]],
        "Rows in unlisted groups": tests["unlisted_rows"].astype(np.int64).to_numpy(),
        "Reading": reading,
    })


def threshold_table(points: pd.DataFrame) -> pd.DataFrame:
    """Rates at one threshold per group and metric, with interval text and n."""
    out = points.copy()
    return pd.DataFrame({
        "Group": out["group"].to_numpy(),
        "Metric": out["metric"].map(metric_label).to_numpy(),
        "Estimate (95% interval)": [estimate_text(v, lo, hi, m, s) for v, lo, hi, m, s in
                                    zip(out["value"], out["ci_low"], out["ci_high"], out["masked"], out["support"])],
        "Value": out["value"].astype(float).to_numpy(),
        "n": out["support"].astype(np.int64).to_numpy(),
    })


def worst_table(worst: Sequence) -> pd.DataFrame:
    """The worst gaps as a table, verdict and q first (significant gaps lead): the interval agrees with the verdict."""
    def interval(d) -> str:
        low, high, level = d.interval
        return f"{d.ratio:.2f} ({fmt_num(low)}–{fmt_num(high)}, {level})"

    return pd.DataFrame({
        "Group": [d.group for d in worst],
        "Metric": [metric_label(d.metric) for d in worst],
        "Verdict": [VERDICT_LABELS.get(d.verdict, d.verdict) for d in worst],
        "q-value": [fmt_q(d.q_value) for d in worst],
        "Ratio (interval)": [interval(d) for d in worst],
        "Group rate": [f"{100 * d.value:.1f}% (n={d.support:,})" for d in worst],
        "Reference": [f"{d.reference_group}: {100 * d.reference_value:.1f}% (n={d.reference_support:,})"
                      if not pd.isna(d.reference_value) else d.reference_group for d in worst],
        "Why not significant": [d.chance_note for d in worst],
    })


def worst_points(worst: Sequence, colours: dict[tuple[str, str], str]) -> pd.DataFrame:
    """Chart data for the worst gaps; `colours` maps (grouping, group) to the group's colour."""
    return pd.DataFrame({
        "label": [f"{d.group} — {metric_label(d.metric)}" for d in worst],
        "group": [d.group for d in worst],
        "colour": [colours.get((d.grouping, d.group), "#4e79a7") for d in worst],
        "ratio": [d.ratio for d in worst],
        # The interval that agrees with the verdict (FCR-adjusted for a flagged gap), as in the table.
        "ratio_ci_low": [d.interval[0] for d in worst],
        "ratio_ci_high": [d.interval[1] for d in worst],
        "support": [d.support for d in worst],
        "q": [fmt_q(d.q_value) for d in worst],
        "verdict_label": [VERDICT_LABELS.get(d.verdict, d.verdict) for d in worst],
    })


def colours_by_group(rows: pd.DataFrame, palette) -> dict[tuple[str, str], str]:
    """(grouping, group) -> colour, each grouping coloured on its own (same as the per-grouping charts)."""
    out = {}
    for grouping, groups in rows.groupby("grouping", sort=False)["group"]:
        for g, c in palette(groups.unique()).items():
            out[(grouping, g)] = c
    return out
