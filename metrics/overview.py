"""The Overview in plain terms: a verdict per sensitive feature, the worst gaps, and what the metrics mean.

Verdict rule (per sensitive feature, on the headline metrics, judged by the audit's own per-row
verdicts, i.e. the ratio to the reference group against [ratio_low, ratio_high] with q < fdr):
- "fails policy" when any group of the feature, or of an intersection containing it, is outside the
  band with significance; intersections count because a gap can hide inside them (the demo's v2 gap
  is invisible in each feature alone);
- "cannot be judged" when, in the feature's own groups, a gap is outside the band but not significant,
  or a group is too small to measure (an unknown gap is not a passed test);
- "meets policy" otherwise. Small intersection cells alone do not block "meets"; they are counted.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from metrics.groups import slice_label
from metrics.intervals import CONFIDENCE, difference_interval, ratio_interval
from metrics.outcomes import DataSummary
from metrics.spec import AuditSpec, Policy
from metrics.trends import TrendTable

HEADLINE_METRICS = ("selection_rate", "true_positive_rate", "false_negative_rate", "false_positive_rate")
STATUS_LABELS = {"meets": "meets policy", "fails": "fails policy", "cannot_judge": "cannot be judged"}
VERDICT_LABELS = {
    "reference": "reference group",
    "within": "within the band",
    "outside": "outside the band (significant)",
    "inconclusive": "outside the band, not significant",
    "insufficient_data": "too few rows to judge",
    "descriptive": "describes the data (no verdict)",
}
_VERDICT_ORDER = {"outside": 0, "inconclusive": 1, "within": 2}
NEEDS = ("more_data", "better_data", "model")
NEED_LABELS = {"more_data": "More data", "better_data": "Better data", "model": "Model"}


@dataclass(frozen=True)
class MetricExplanation:
    """A metric in words for someone who does not know the jargon."""

    name: str
    plain: str
    question: str
    better: str  # "higher", "lower" or "neither"
    often: str = ""  # "were wrongly turned down": completes "<group> ... 1.5× as often as <reference>"


METRIC_EXPLANATIONS: dict[str, MetricExplanation] = {
    "base_rate": MetricExplanation(
        "Base rate", "share of people whose actual outcome was positive",
        "How common is the positive outcome in this group? (describes the data, not the model)", "neither"),
    "selection_rate": MetricExplanation(
        "Selection rate", "share of people who got the positive decision",
        "Of everyone in the group, how many did the model say yes to?", "neither",
        often="got the positive decision"),
    "accuracy": MetricExplanation(
        "Accuracy", "share of decisions that matched the actual outcome",
        "How often was the model right?", "higher"),
    "true_positive_rate": MetricExplanation(
        "True positive rate (recall)", "share of people with a positive outcome whom the model said yes to",
        "Of the people who deserved a yes, how many got it?", "higher",
        often="got the positive decision they deserved"),
    "false_negative_rate": MetricExplanation(
        "False negative rate", "share of people with a positive outcome whom the model said no to",
        "Of the people who deserved a yes, how many were wrongly turned down?", "lower",
        often="were wrongly given the negative decision"),
    "false_positive_rate": MetricExplanation(
        "False positive rate", "share of people with a negative outcome whom the model said yes to",
        "Of the people who should have got a no, how many wrongly got a yes?", "lower",
        often="were wrongly given the positive decision"),
    "true_negative_rate": MetricExplanation(
        "True negative rate", "share of people with a negative outcome whom the model said no to",
        "Of the people who should have got a no, how many got it?", "higher"),
    "precision": MetricExplanation(
        "Precision", "share of yes decisions whose actual outcome was positive",
        "When the model said yes, how often was it right?", "higher"),
    "false_discovery_rate": MetricExplanation(
        "False discovery rate", "share of yes decisions whose actual outcome was negative",
        "When the model said yes, how often was it wrong?", "lower"),
    "negative_predictive_value": MetricExplanation(
        "Negative predictive value", "share of no decisions whose actual outcome was negative",
        "When the model said no, how often was it right?", "higher"),
    "false_omission_rate": MetricExplanation(
        "False omission rate", "share of no decisions whose actual outcome was positive",
        "When the model said no, how often was it wrong?", "lower"),
    "balanced_accuracy": MetricExplanation(
        "Balanced accuracy", "average of the true positive and true negative rates",
        "How right was the model, giving both outcomes equal weight?", "higher"),
    "f1": MetricExplanation(
        "F1 score", "balance of precision and recall (0 to 1)",
        "How well does the model find positives without false alarms?", "higher"),
    "roc_auc": MetricExplanation(
        "ROC AUC", "chance that a random positive person scores higher than a random negative one",
        "How well does the score rank people, whatever the threshold? (0.5 = coin flip)", "higher"),
    "brier_score": MetricExplanation(
        "Brier score", "mean squared gap between the score and the actual outcome",
        "How far off are the scores as probabilities?", "lower"),
    "expected_calibration_error": MetricExplanation(
        "Calibration error", "average gap between predicted and actual positive rates",
        "When the score says 70%, does it happen 70% of the time?", "lower"),
    # Regression audits (issue 19): e = prediction - label.
    "mean_prediction": MetricExplanation(
        "Mean prediction", "average of the model's output",
        "How much does the model give this group on average? (parity of a numeric output)", "neither"),
    "mean_label": MetricExplanation(
        "Mean label", "average actual outcome", "How large is the actual outcome in this group? (describes the data)",
        "neither"),
    "mean_error": MetricExplanation(
        "Mean error", "average of prediction minus actual outcome", "Does the model predict too high (+) or too "
        "low (−) for this group?", "neither"),
    "mean_absolute_error": MetricExplanation(
        "Mean absolute error", "average size of the error", "How far off is the model for this group?", "lower"),
    "mean_squared_error": MetricExplanation(
        "Mean squared error", "average squared error", "How far off is the model, large misses weighted more?",
        "lower"),
    "root_mean_squared_error": MetricExplanation(
        "Root mean squared error", "square root of the mean squared error, in the outcome's unit",
        "How far off is the model, large misses weighted more?", "lower"),
    "r2_score": MetricExplanation(
        "R²", "share of the outcome's variation the model explains", "How much of the differences within the group "
        "does the model capture? (1 = all)", "higher"),
    "mean_overprediction": MetricExplanation(
        "Mean overprediction", "average amount predicted above the actual outcome", "How much too high, on "
        "average?", "lower"),
    "mean_underprediction": MetricExplanation(
        "Mean underprediction", "average amount predicted below the actual outcome", "How much too low, on "
        "average?", "lower"),
}
REGRESSION_METRICS = frozenset({"mean_prediction", "mean_label", "mean_error", "mean_absolute_error",
                                "mean_squared_error", "root_mean_squared_error", "r2_score", "mean_overprediction",
                                "mean_underprediction"})
# Headline measures per task: binary's rates; regression's output and errors; multiclass: accuracy and recall per class.
TASK_HEADLINES = {"regression": ("mean_prediction", "mean_absolute_error", "root_mean_squared_error"),
                  "multiclass": ("accuracy", "balanced_accuracy")}


def explain(metric: str) -> MetricExplanation | None:
    """A metric in words; a multiclass one-vs-rest measure 'true_positive_rate@high' as that rate for class high."""
    base, _, cls = metric.partition("@")
    info = METRIC_EXPLANATIONS.get(base)
    if info is None or not cls:
        return info
    return MetricExplanation(f"{info.name} ({cls})", f"{info.plain}, for class {cls} against all others",
                             info.question, info.better)


def headline_metrics(task: str, available: Sequence[str] = ()) -> tuple[str, ...]:
    """The measures the Overview judges and the Performance page shows first, by the audit's task."""
    if task == "multiclass":
        return (*TASK_HEADLINES["multiclass"], *(m for m in available if m.startswith("true_positive_rate@")))
    return TASK_HEADLINES.get(task, HEADLINE_METRICS)


def supported_metrics(rows: pd.DataFrame) -> list[str]:
    """Metrics of a group table that some group has rows for (a class never seen as a label has no recall)."""
    return rows.loc[rows["support"] > 0, "metric"].drop_duplicates().tolist()


def task_scope_note(task: str) -> str | None:
    """What the dashboard does not yet cover for a regression or multiclass audit (None for binary)."""
    if task == "binary":
        return None
    return (f"This is a {task} audit: groups, intervals, disparities and the exports cover it; the slice search, "
            f"data-quality signals, trends and the threshold explorer cover binary decisions only so far.")

GLOSSARY: dict[str, str] = {
    "ratio to reference": "the group's rate divided by the reference group's rate (1 = the same; "
                          "0.5 = half as often; 2 = twice as often)",
    "reference group": "the group every other group is compared with: the one named in the config, "
                       "else the largest",
    "95% interval": "the range the true value lies in with 95% confidence, given how many rows we have; "
                    "wide means uncertain",
    "policy band": "ratios between the lower and upper tolerance (by default 0.8 to 1.25, the "
                   "'four-fifths rule') count as fair enough",
    "q-value": "the chance-of-a-fluke measure after correcting for testing many groups at once; below "
               "the false-discovery rate (0.05) the gap is called significant",
    "n": "how many rows a number is computed from (its denominator)",
}


@dataclass(frozen=True)
class Disparity:
    """One group's gap on one metric, against its reference group, with intervals and sizes."""

    grouping: str
    group: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    support: int
    reference_group: str
    reference_value: float
    reference_support: int
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float
    q_value: float
    verdict: str

    def sentence(self) -> str:
        """The gap in one plain sentence, with every number's n and the ratio's interval."""
        what = explain(self.metric)
        if what and what.often:
            head = f"{self.group} {what.often} {fmt_ratio(self.ratio)} as often as {self.reference_group}"
        else:
            name = what.name if what else self.metric
            head = f"{self.group}: {name} is {fmt_ratio(self.ratio)} that of {self.reference_group}"
        # Regression measures are amounts in the outcome's unit, not shares.
        fmt = fmt_num if self.metric in REGRESSION_METRICS else fmt_pct
        return (f"{head} "
                f"({fmt(self.value)} of n={self.support:,} vs {fmt(self.reference_value)} of "
                f"n={self.reference_support:,}; 95% interval of the ratio {fmt_num(self.ratio_ci_low)}–"
                f"{fmt_num(self.ratio_ci_high)}, q={fmt_q(self.q_value)})")


@dataclass(frozen=True)
class FeatureVerdict:
    """The policy verdict of one sensitive feature, with the reasons behind it."""

    feature: str
    status: str  # "meets", "fails" or "cannot_judge"
    reasons: tuple[str, ...]
    groups: int
    small_intersection_cells: int
    worst: Disparity | None

    @property
    def label(self) -> str:
        """'meets policy', 'fails policy' or 'cannot be judged'."""
        return STATUS_LABELS[self.status]


@dataclass(frozen=True)
class Coverage:
    """How many rows have a label, which error rates need."""

    rows: int
    labelled: int
    unlabelled: int
    unpredicted: int
    share: float


@dataclass(frozen=True)
class FindingsBoard:
    """The 'findings by need' slot: whether the slice search ran and its findings per need."""

    ran: bool
    message: str
    by_need: tuple[tuple[str, tuple[str, ...]], ...]


def fmt_pct(value: float | None) -> str:
    """A rate as a percentage with one decimal, or an em dash when undefined."""
    return "—" if value is None or _nan(value) else f"{100 * value:.1f}%"


def fmt_num(value: float | None, digits: int = 2) -> str:
    """A number with fixed decimals, or an em dash when undefined."""
    return "—" if value is None or _nan(value) else f"{value:.{digits}f}"


def fmt_ratio(value: float | None) -> str:
    """A ratio as '1.98×'."""
    return "—" if value is None or _nan(value) else f"{value:.2f}×"


def fmt_q(value: float | None) -> str:
    """A q-value: scientific below 0.001."""
    if value is None or _nan(value):
        return "—"
    if value == 0:
        return "< 1e-300"  # below double precision: the test is beyond any doubt, not exactly zero
    return f"{value:.1e}" if value < 0.001 else f"{value:.3f}"


def _nan(value: Any) -> bool:
    """True for None, NaN and pandas NA."""
    try:
        return value is None or bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def grouping_features(grouping: str) -> tuple[str, ...]:
    """The features of a grouping name ('race × sex' -> ('race', 'sex'))."""
    return tuple(part.strip() for part in grouping.split("×"))


def shown_rows(rows: pd.DataFrame, features: Iterable[str] | None) -> pd.DataFrame:
    """The rows of groupings made only of the features the user chose to show."""
    if features is None:
        return rows
    keep = set(features)
    mask = rows["grouping"].map(lambda g: set(grouping_features(g)) <= keep)
    return rows[mask.astype(bool)]


def _with_reference(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows with the reference group's label, value and support of the same grouping and metric."""
    if "reference_group" in rows.columns:
        return rows
    out = rows.copy()
    is_ref = out["verdict"] == "reference"
    ref = out.loc[is_ref, ["grouping", "metric", "group", "value", "support"]].rename(
        columns={"group": "reference_group", "value": "reference_value", "support": "reference_support"})
    ref = ref.drop_duplicates(["grouping", "metric"])
    out = out.merge(ref, on=["grouping", "metric"], how="left")
    missing = out["reference_group"].isna()
    if missing.any():
        out.loc[missing, "reference_group"] = out.loc[missing, "reference"].map(
            lambda r: slice_label(r) if r else "—")
    return out


def _disparity(r: dict) -> Disparity:
    """A Disparity from one merged row."""
    def f(key: str) -> float:
        return float("nan") if _nan(r.get(key)) else float(r[key])

    return Disparity(
        grouping=r["grouping"], group=r["group"], metric=r["metric"], value=f("value"), ci_low=f("ci_low"),
        ci_high=f("ci_high"), support=int(r["support"]), reference_group=str(r["reference_group"]),
        reference_value=f("reference_value"),
        reference_support=0 if _nan(r.get("reference_support")) else int(r["reference_support"]),
        ratio=f("ratio"), ratio_ci_low=f("ratio_ci_low"), ratio_ci_high=f("ratio_ci_high"),
        q_value=f("q_value"), verdict=r["verdict"],
    )


def worst_disparities(rows: pd.DataFrame, features: Iterable[str] | None = None, limit: int = 5,
                      metrics: Sequence[str] = HEADLINE_METRICS) -> list[Disparity]:
    """The largest gaps on the headline metrics: significant ones first, then by size of the log-ratio."""
    sel = _with_reference(shown_rows(rows, features))
    sel = sel[sel["metric"].isin(metrics) & sel["verdict"].isin(list(_VERDICT_ORDER))]
    sel = sel[sel["ratio"].notna() & (sel["ratio"] > 0)]
    if sel.empty:
        return []
    # Significant gaps first; among them minimal ones (a gap's halves inside finer groups add nothing).
    sel = sel.assign(_rank=sel["verdict"].map(_VERDICT_ORDER), _size=-np.abs(np.log(sel["ratio"].astype(float))),
                     _redundant=~_minimal(sel, rows if "slice" in rows.columns else sel))
    # A gap whose coarser group is itself outside adds nothing (its halves by sex, say): leave it out.
    sel = sel[~(sel["_redundant"] & (sel["verdict"] == "outside"))]
    sel = sel.sort_values(["_rank", "_size", "support"], ascending=[True, True, False], kind="stable")
    # One line per group: its worst metric (FNR and TPR of one group are the same gap seen twice).
    sel = sel.drop_duplicates(["grouping", "group"])
    return [_disparity(r) for r in sel.head(limit).to_dict("records")]


def _too_small(r: dict) -> str:
    """Why a group could not be judged because it is small."""
    metric = explain(r["metric"])
    name = metric.name.lower() if metric else r["metric"]
    return f"{r['group']}: too few rows for the {name} (n={int(r['support']):,})"


def _minimal(rows: pd.DataFrame, every: pd.DataFrame) -> pd.Series:
    """Per row: is this gap its own, or just a coarser gap seen inside a finer group?

    A row is redundant when a coarser group inside it (drop any features) is outside the band on the
    same metric with a ratio interval overlapping this row's: the gap planted in race × age shows up
    again in race × age × sex for each sex, and sex adds nothing. A finer gap clearly larger than the
    coarser one (non-overlapping intervals) is its own: a diluted marginal gap does not hide it.
    """
    outside = {(frozenset(s), m): (lo, hi) for s, m, v, lo, hi in
               zip(every["slice"], every["metric"], every["verdict"], every["ratio_ci_low"], every["ratio_ci_high"])
               if v == "outside"}
    flags = []
    for slice_, metric, lo, hi in zip(rows["slice"], rows["metric"], rows["ratio_ci_low"], rows["ratio_ci_high"]):
        own = True
        for k in range(1, len(slice_)):
            for coarser in itertools.combinations(slice_, k):
                span = outside.get((frozenset(coarser), metric))
                if span is not None and not (span[1] < lo or hi < span[0]):
                    own = False
        flags.append(own)
    return pd.Series(flags, index=rows.index, dtype=bool)


def feature_verdicts(rows: pd.DataFrame, features: Sequence[str],
                     metrics: Sequence[str] = HEADLINE_METRICS) -> list[FeatureVerdict]:
    """A policy verdict per sensitive feature (see the module docstring for the rule)."""
    head = _with_reference(rows[rows["metric"].isin(metrics)])
    out = []
    for feat in features:
        involves = head["grouping"].map(lambda g, f=feat: f in grouping_features(g)).astype(bool)
        own = head[head["grouping"] == feat]
        related = head[involves]
        outside = related[(related["verdict"] == "outside") & _minimal(related, head)]
        inconclusive = own[own["verdict"] == "inconclusive"]
        small = own[own["verdict"] == "insufficient_data"]
        judged = own[own["verdict"].isin(["within", "outside", "inconclusive"])]
        small_cells = related[(related["grouping"] != feat) & (related["verdict"] == "insufficient_data")]
        worst = worst_disparities(related, None, 1, metrics)
        if len(outside):
            ranked = outside.assign(_d=outside["slice"].map(len), _s=-np.abs(np.log(outside["ratio"].astype(float))))
            ranked = ranked.sort_values(["_d", "_s"])
            ranked = ranked.drop_duplicates(["grouping", "group"])
            reasons = tuple(_disparity(r).sentence() for r in ranked.head(3).to_dict("records"))
            status = "fails"
        elif len(inconclusive) or len(small) or judged.empty:
            reasons = tuple(
                [f"{_disparity(r).sentence()}: outside the band but not significant — more data would decide it"
                 for r in inconclusive.drop_duplicates("group").head(3).to_dict("records")]
                + [_too_small(r) for r in small.drop_duplicates("group").head(3).to_dict("records")]
            ) or (f"{feat} has only one group with enough rows; there is nothing to compare",)
            status = "cannot_judge"
        else:
            reasons = ("every group's headline rates are within the policy band of the reference group",)
            status = "meets"
        out.append(FeatureVerdict(feature=feat, status=status, reasons=reasons,
                                  groups=int(own["group"].nunique()),
                                  small_intersection_cells=int(small_cells["group"].nunique()),
                                  worst=worst[0] if worst else None))
    return out


def coverage(data: DataSummary) -> Coverage:
    """Label coverage of the audited rows."""
    return Coverage(rows=data.rows, labelled=data.labelled_rows, unlabelled=data.unlabelled_rows,
                    unpredicted=data.unpredicted_rows, share=data.label_coverage)


def plain_summary(data: DataSummary, verdicts: Sequence[FeatureVerdict], worst: Sequence[Disparity],
                  policy: Policy, label: str, prediction: str, task: str = "binary") -> tuple[str, ...]:
    """A few sentences for someone who does not know what FNR means."""
    cov = coverage(data)
    if task == "binary":
        lines = _binary_policy_lines(data, policy, label, prediction)
    else:
        what = ("the model's number and its errors (mean prediction, mean absolute error, RMSE)" if task == "regression"
                else "accuracy and each class's rates (one class against all others)")
        lines = [
            f"This audit looked at {cov.rows:,} predictions of {label} by {prediction}. {cov.labelled:,} of them "
            f"({fmt_pct(cov.share)}) already have a known outcome; every measure below uses those with a prediction"
            + (f" ({data.nonfinite_rows:,} NaN or infinite values left out)" if data.nonfinite_rows else "") + ".",
            f"The policy: for each group, {what} must be between {policy.ratio_low:g} and {policy.ratio_high:g} times "
            f"those of the reference group, and a gap only counts when it is very unlikely to be chance "
            f"(q < {policy.fdr:g}).",
        ]
    return lines_by_status(lines, verdicts, worst)


def _binary_policy_lines(data: DataSummary, policy: Policy, label: str, prediction: str) -> list[str]:
    """The binary audit's first two sentences: what was audited and the policy."""
    cov = coverage(data)
    return [
        f"This audit looked at {cov.rows:,} decisions. {cov.labelled:,} of them ({fmt_pct(cov.share)}) already "
        f"have a known outcome ({label} = {data.positive_label} counts as positive). Every rate below "
        f"uses only those; the others count in the group shares.",
        f"The policy: for each group, the rate of yes decisions ({prediction} = {data.positive_prediction}) and "
        f"the rates of mistakes must be between {policy.ratio_low:g} and {policy.ratio_high:g} times those of "
        f"the reference group, and a gap only counts when it is very unlikely to be chance "
        f"(q < {policy.fdr:g}).",
    ]


def lines_by_status(lines: list[str], verdicts: Sequence[FeatureVerdict], worst: Sequence[Disparity]) -> tuple[str, ...]:
    """The summary's sentences after the first two: features by verdict, then the largest gap."""
    by_status: dict[str, list[str]] = {}
    for v in verdicts:
        by_status.setdefault(v.status, []).append(v.feature)
    if by_status.get("fails"):
        lines.append(f"It fails the policy for {', '.join(by_status['fails'])}.")
    if by_status.get("cannot_judge"):
        lines.append(f"For {', '.join(by_status['cannot_judge'])} it cannot be judged yet: some groups are too "
                     f"small, or a gap is large but could still be chance. More labelled rows would settle it.")
    if by_status.get("meets"):
        lines.append(f"It meets the policy for {', '.join(by_status['meets'])}.")
    significant = [d for d in worst if d.verdict == "outside"]
    if significant:
        lines.append("The largest significant gap — " + significant[0].sentence() + ".")
    elif worst:
        lines.append("No gap is both outside the band and significant. The largest one — " + worst[0].sentence() + ".")
    return tuple(lines)


def findings_by_need(findings: Sequence[Any] | None = None) -> FindingsBoard:
    """Group the slice-search findings by what would fix them; None means the search has not run.

    A finding is anything with a `need` ('more_data', 'better_data' or 'model') and a `summary`
    (or `description`, or its str) — the shape the slice search will produce.
    """
    if findings is None:
        return FindingsBoard(ran=False, message="slice search not yet run", by_need=())
    grouped: dict[str, list[str]] = {need: [] for need in NEEDS}
    for item in findings:
        need = getattr(item, "need", None) or (item.get("need") if isinstance(item, dict) else None)
        text = (getattr(item, "summary", None) or getattr(item, "description", None)
                or (item.get("summary") if isinstance(item, dict) else None) or str(item))
        grouped.setdefault(need if need in grouped else "model", []).append(str(text))
    total = sum(len(v) for v in grouped.values())
    message = f"{total} finding(s)" if total else "the slice search found nothing to act on"
    return FindingsBoard(ran=True, message=message, by_need=tuple((k, tuple(v)) for k, v in grouped.items()))


def status_icon(status: str) -> str:
    """A glyph for a verdict, so colour is never the only signal."""
    return {"meets": ":green[:material/check_circle:]", "fails": ":red[:material/cancel:]",
            "cannot_judge": ":orange[:material/help:]"}.get(status, ":material/circle:")


def finite(value: float) -> bool:
    """True for a real number."""
    return value is not None and not _nan(value) and math.isfinite(value)


# --------------------------------------------------------------------------- trend arrows
# A headline number's latest window against the window before it. The arrow shows only when the
# change is beyond its 95% interval, else "→ steady" (a wiggle inside the noise is not a trend):
# - label coverage: Newcombe's interval of the difference of the two windows' labelled shares;
# - the largest gap: the change of its log-ratio against z · √(se₁² + se₀²), each window's standard
#   error read off the Katz interval the audit uses for ratios, over the two latest windows in which
#   both the group and its reference group have enough rows (min_support).

STEADY = "→ steady"
_Z = float(stats.norm.ppf(0.5 + CONFIDENCE / 2))


@dataclass(frozen=True)
class TrendArrow:
    """The change of a headline number from the previous window to the latest, as a metric's delta."""

    delta: str | None
    arrow: str = "off"  # up, down or off
    colour: str = "gray"
    description: str | None = None  # a few words beside the delta: which windows
    detail: str = ""  # the numbers behind it, each with its n (for the metric's help)

    def as_delta(self) -> dict[str, Any]:
        """The delta keyword arguments of a metric (none when there is nothing to compare)."""
        if self.delta is None:
            return {}
        return {"delta": self.delta, "delta_color": self.colour, "delta_arrow": self.arrow,
                "delta_description": self.description}


@dataclass(frozen=True)
class TrendArrows:
    """The Overview's arrows: label coverage and the largest gap."""

    coverage: TrendArrow
    gap: TrendArrow
    gap_label: str = ""


NO_TREND = TrendArrow(None)


def window_text(window: Any, grain: str) -> str:
    """'week of 2025-03-03', 'March 2025' or '2025-03-03'."""
    ts = pd.Timestamp(window)
    if grain == "month":
        return f"{ts:%B %Y}"
    return f"week of {ts:%Y-%m-%d}" if grain == "week" else f"{ts:%Y-%m-%d}"


def coverage_arrow(coverage: pd.DataFrame, grain: str) -> TrendArrow:
    """Label coverage of the latest window against the previous one."""
    if len(coverage) < 2:
        return NO_TREND
    prev, last = coverage.iloc[-2], coverage.iloc[-1]
    lo, hi = difference_interval(last["labelled_rows"], last["rows"], prev["labelled_rows"], prev["rows"])
    change = float(last["label_coverage"] - prev["label_coverage"])
    text = (f"{window_text(last['window'], grain)} vs {window_text(prev['window'], grain)}: "
            f"{fmt_pct(last['label_coverage'])} of {int(last['rows']):,} rows vs "
            f"{fmt_pct(prev['label_coverage'])} of {int(prev['rows']):,}")
    which = f"vs previous {grain}"
    if not (lo[0] > 0 or hi[0] < 0):
        return TrendArrow(STEADY, description=which, detail=f"{text}; the change is within its 95% interval")
    return TrendArrow(f"{100 * change:+.1f} pts", "up" if change > 0 else "down",
                      "green" if change > 0 else "orange", which, text)


def _gap_windows(rows: pd.DataFrame, worst: Disparity) -> pd.DataFrame:
    """Per window: the group's and its reference group's value and n, where both are measurable."""
    sel = rows[(rows["grouping"] == worst.grouping) & (rows["metric"] == worst.metric)]
    cols = ["window", "value", "support", "masked"]
    own = sel.loc[sel["group"] == worst.group, cols].set_index("window")
    ref = sel.loc[sel["group"] == worst.reference_group, cols].set_index("window")
    both = own.merge(ref, left_index=True, right_index=True, suffixes=("", "_ref")).sort_index()
    return both[~both["masked"] & ~both["masked_ref"] & (both["value"] > 0) & (both["value_ref"] > 0)]


def gap_arrow(rows: pd.DataFrame, worst: Disparity | None, grain: str) -> TrendArrow:
    """The largest gap's ratio in the latest window where it can be measured, against the one before."""
    if worst is None:
        return NO_TREND
    both = _gap_windows(rows, worst).tail(2)
    if len(both) < 2:
        return TrendArrow("no trend: too few rows per window",
                          detail=f"fewer than two {grain}s with enough labelled rows for both groups")
    x, n = np.rint(both["value"] * both["support"]), both["support"]
    x_ref, n_ref = np.rint(both["value_ref"] * both["support_ref"]), both["support_ref"]
    lo, hi = ratio_interval(x, n, x_ref, n_ref)
    log_ratio = np.log(both["value"].to_numpy() / both["value_ref"].to_numpy())
    se = (np.log(hi) - np.log(lo)) / (2 * _Z)
    change = log_ratio[1] - log_ratio[0]
    r0, r1 = np.exp(log_ratio)
    (w0, w1), (n0, n1), (m0, m1) = both.index, n.to_numpy(), n_ref.to_numpy()
    text = (f"{window_text(w1, grain)} vs {window_text(w0, grain)}: {fmt_ratio(r1)} (n={int(n1):,} vs "
            f"{int(m1):,}) vs {fmt_ratio(r0)} (n={int(n0):,} vs {int(m0):,})")
    which = f"{window_text(w1, grain)} vs {window_text(w0, grain)}"
    if not abs(change) > _Z * float(np.hypot(se[0], se[1])):  # NaN (no interval) counts as steady
        return TrendArrow(STEADY, description=which, detail=f"{text}; the change is within its 95% interval")
    widening = abs(log_ratio[1]) > abs(log_ratio[0])
    return TrendArrow(f"{r1 - r0:+.2f}× ({'widening' if widening else 'narrowing'})", "up" if change > 0 else "down",
                      "red" if widening else "green", which, text)


def arrow_spec(spec: AuditSpec, worst: Disparity | None) -> AuditSpec:
    """The spec the Overview's arrows need: only the sensitive features of the largest gap's grouping.

    The arrows read label coverage per window (the same whatever the features) and one grouping's
    values per window, which depend only on that grouping's own counts and its reference (chosen per
    feature, as the audit does). Counting and computing every intersection per window instead took
    most of a cold Overview's time at 10M rows; the Trends page still computes them all.
    """
    chosen = set(worst.grouping.split(" × ")) if worst is not None else set(spec.sensitive[:1])
    return replace(spec, sensitive=tuple(f for f in spec.sensitive if f in chosen))


def trend_arrows(trends: TrendTable | None, worst: Disparity | None) -> TrendArrows:
    """Both arrows of the Overview; none without windows (no time column)."""
    if trends is None:
        return TrendArrows(NO_TREND, NO_TREND)
    label = ""
    if worst is not None:
        info = explain(worst.metric)
        name = info.name if info else worst.metric
        label = f"Largest gap: {worst.group}, {name.lower()} vs {worst.reference_group}"
    return TrendArrows(coverage_arrow(trends.coverage, trends.grain), gap_arrow(trends.rows, worst, trends.grain),
                       label)
