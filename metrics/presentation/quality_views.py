"""The Data quality page and the drill-down's quality section, the pure half: signal rows in, display frames out.

The signals and when one fires are defined in `metrics/discovery/quality.py`; this module only picks rows
(per sensitive feature, or the findings), words them, and shapes them for `versus_chart` and tables.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from fairwatch.metrics.presentation.charts import SLICE_COLOUR, group_colours
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.presentation.formats import fmt_pct, fmt_q, fmt_ratio
from fairwatch.metrics.discovery.quality import (CONFLICTS, LABEL_ERRORS, LABEL_ERRORS_NEG, LABEL_ERRORS_POS, MISSING_ANY, MISSING_COLUMN,
                             NEED_SIGNALS, OUTLIERS, QualityTable, describe_signal)
from fairwatch.metrics.presentation.slice_views import interval_text, versus_frame
from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.presentation.text import md_escape

# Outlying labels only exist in regression audits (a binary audit has no rows of them).
HEADLINE_SIGNALS = (MISSING_ANY, CONFLICTS, LABEL_ERRORS, OUTLIERS)
DETAIL_SIGNALS = (MISSING_COLUMN, LABEL_ERRORS_NEG, LABEL_ERRORS_POS)
SIGNAL_NAMES = {
    MISSING_ANY: "Missing values (any other column)",
    MISSING_COLUMN: "Missing {column}",
    CONFLICTS: "Conflicting duplicates",
    LABEL_ERRORS: "Suspected label errors",
    LABEL_ERRORS_NEG: "Suspected errors among negative labels",
    LABEL_ERRORS_POS: "Suspected errors among positive labels",
    OUTLIERS: "Outlying labels",
}
FINDINGS_SCOPE = "The findings of the slice search"


def fire_rule(ratio_high: float, fdr: float, label_errors: bool = True) -> str:
    """When a signal fires, in words."""
    return (f"A signal fires when its rate is significantly higher than in all other rows (q < {fdr:g}, "
            f"Benjamini-Hochberg over every signal and group checked) and at least {ratio_high:g} times as high"
            + ("; suspected label errors fire only when both the positive and the negative labels are contradicted "
               "more often (flipped labels do both; a model that scores a group too high or too low does one)."
               if label_errors else "."))


_TASK_SIGNALS = {
    "binary": "Three signals that the data, not the model, may be wrong, each counted per group and compared with all "
              "other rows: rows with a **missing value** in another column; labelled rows with an identical "
              "**duplicate** (same features and score) carrying the opposite label; and **suspected label errors**. ",
    "regression": "Two signals that the data, not the model, may be wrong, each counted per group and compared with "
                  "all other rows: rows with a **missing value** in another column; and **outlying labels**, beyond "
                  "1.5 interquartile ranges outside the quartiles of every label (numeric labels of identical rows "
                  "rarely coincide, so duplicates are not checked). ",
    "multiclass": "Two signals that the data, not the model, may be wrong, each counted per group and compared with all "
                  "other rows: rows with a **missing value** in another column; and labelled rows with an identical "
                  "**duplicate** (same features) carrying a different class. ",
}


def quality_intro(task: str, ratio_high: float, fdr: float) -> str:
    """The Data quality page's opening: the task's signals and when one fires (Markdown of fixed text)."""
    lead = "" if task == "binary" else f"For this {task} audit: "
    return lead + _TASK_SIGNALS.get(task, _TASK_SIGNALS["binary"]) + fire_rule(ratio_high, fdr, task == "binary")


def signal_name(signal: str, column: str | None) -> str:
    """A signal's short display name."""
    return SIGNAL_NAMES[signal].format(column=column)


def label_rule_text(quality: QualityTable | None) -> str:
    """The label-error rule with its thresholds, or why it was not computed."""
    if quality is None:
        return "The data-quality signals were not computed (the slice search has not run)."
    rule = quality.label_error_rule
    if rule is None and any(n.startswith("outlying label") for n in quality.notes):
        return next(n for n in quality.notes if n.startswith("outlying label")).capitalize() + "."
    if rule is None:
        return "Label errors: " + ("; ".join(quality.notes) or "not computed") + "."
    text = rule.describe()
    return f"{text[:1].upper()}{text[1:]}. (Confident Learning: the score confidently contradicts the recorded label.)"


def quality_scopes(spec: AuditSpec, features: Sequence[str]) -> list[str]:
    """What the page can show: each shown sensitive feature's groups, then the findings."""
    return [*[f for f in spec.sensitive if f in features], FINDINGS_SCOPE]


def scope_slices(quality: QualityTable, scope: str) -> list[tuple[tuple[str, str], ...]]:
    """The slices of a scope: the groups of one sensitive feature, or the findings the audit checked."""
    s = quality.slices
    if scope == FINDINGS_SCOPE:
        return [tuple(x) for x in s.loc[s["origin"].isin(["requested", "both"]), "slice"]]
    return [tuple(x) for x in s.loc[s["origin"].isin(["sensitive_group", "both"]), "slice"]
            if len(x) == 1 and x[0][0] == scope]


def scope_colours(scope: str, labels: Sequence[str]) -> dict[str, str]:
    """Each label's colour: a sensitive feature's groups in their colours of every page, slices in one colour."""
    return {label: SLICE_COLOUR for label in labels} if scope == FINDINGS_SCOPE else group_colours(labels)


def quality_rows(rows: pd.DataFrame, slices: Sequence, signals: Sequence[str] = HEADLINE_SIGNALS) -> pd.DataFrame:
    """The signal rows (of `QualityTable.rows`) of these slices and signals, by signal, slices in the given order."""
    order = {tuple(s): i for i, s in enumerate(slices)}
    keys = rows["slice"].map(tuple)
    sel = rows[keys.isin(list(order)) & rows["signal"].isin(list(signals))].copy()
    sel["_o"] = sel["slice"].map(lambda s: order[tuple(s)])
    sel["_s"] = sel["signal"].map({s: i for i, s in enumerate(signals)})
    return sel.sort_values(["_s", "_o"], kind="stable").drop(columns=["_o", "_s"]).reset_index(drop=True)


def quality_points(rows: pd.DataFrame, colours: dict[str, str], rest_colour: str) -> pd.DataFrame:
    """Chart data of `versus_chart`: per signal and slice, its rate and the rest's, fired ones flagged."""
    records = []
    for r in rows.to_dict("records"):
        name = signal_name(r["signal"], r["column"])
        flag = "fired" if r["fired"] else "did not fire"
        records.append({"metric_label": name, "label": r["group"], "side": "own", "value": r["rate"],
                        "ci_low": r["ci_low"], "ci_high": r["ci_high"], "n": int(r["n"]), "flag": bool(r["fired"]),
                        "flag_label": flag})
        records.append({"metric_label": name, "label": r["group"], "side": "rest", "value": r["complement_rate"],
                        "ci_low": r["complement_ci_low"], "ci_high": r["complement_ci_high"],
                        "n": int(r["complement_n"]), "flag": False, "flag_label": flag})
    frame = pd.DataFrame(records)
    if frame.empty:
        return versus_frame(frame, "", "", rest_colour)
    return versus_frame(frame, frame["label"], frame["label"].map(colours).fillna(rest_colour), rest_colour)


def quality_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per slice and signal: rate and the rest's, each with interval and n, ratio, q, fired."""
    return pd.DataFrame({
        "Group or slice": rows["group"].to_numpy(),
        "Signal": [signal_name(s, c) for s, c in zip(rows["signal"], rows["column"])],
        "Rate (95% interval)": [interval_text(v, lo, hi) for v, lo, hi in zip(rows["rate"], rows["ci_low"],
                                                                               rows["ci_high"])],
        "n": rows["n"].astype(np.int64).to_numpy(),
        "All other rows (95% interval)": [interval_text(v, lo, hi) for v, lo, hi in
                                          zip(rows["complement_rate"], rows["complement_ci_low"],
                                              rows["complement_ci_high"])],
        "Other rows n": rows["complement_n"].astype(np.int64).to_numpy(),
        "Ratio": [fmt_ratio(r) for r in rows["ratio"]],
        "q-value": [fmt_q(q) for q in rows["q_value"]],
        "Fired": np.where(rows["fired"], "yes", ""),
    })


def fired_lines(rows: pd.DataFrame) -> list[str]:
    """A Markdown sentence per fired need signal (not the label-error halves, which only support one): rate, n, q.

    Slice and column names come from the data, so they are escaped here (md_escape); the pages draw these as Markdown.
    """
    out = []
    for r in rows[rows["fired"] & rows["signal"].isin(NEED_SIGNALS)].to_dict("records"):
        signal = md_escape(describe_signal(r["signal"], r["column"]))
        out.append(f"**{md_escape(slice_label(r['slice']))}** — {signal}: "
                   f"{fmt_pct(r['rate'])} of n = {int(r['n']):,} against {fmt_pct(r['complement_rate'])} of "
                   f"{int(r['complement_n']):,} other rows (q = {fmt_q(r['q_value'])})")
    return out
