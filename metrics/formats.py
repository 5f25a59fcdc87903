"""The display vocabulary, once for the dashboard, the notebook view and the report: metric names, the headline
metrics and the number formatters.

The report (metrics/report_model.py) used to carry its own names, its own shorter headline list (without the
true positive rate the dashboard's verdicts use) and its own formatters ("1.98" vs "1.98×", "< 0.001" vs
"1.2e-04"); it now speaks the dashboard's words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

# The metrics the verdicts, the worst gaps, the group diagnosis and the report's headline table judge (in this order:
# the order breaks ties between equally serious problems of one group).
HEADLINE_METRICS = ("selection_rate", "true_positive_rate", "false_negative_rate", "false_positive_rate")
MISSING = "—"


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



def metric_label(metric: str) -> str:
    """Display name of a metric ('False negative rate', 'True positive rate (recall) (high)'); unknown: its words."""
    info = explain(metric)
    return info.name if info else metric.replace("_", " ")


def metric_meaning(metric: str) -> str:
    """What a metric measures, in plain words ('' for an unknown metric)."""
    info = METRIC_EXPLANATIONS.get(metric)
    return info.plain if info else ""


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas NA, and anything that is not a number (a bool, a text) from a document."""
    if value is None or isinstance(value, (bool, str)):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


def fmt_pct(value: Any, digits: int = 1) -> str:
    """A rate as a percentage ('78.4%'), or an em dash when undefined."""
    return MISSING if is_missing(value) else f"{100 * float(value):.{digits}f}%"


def fmt_num(value: Any, digits: int = 2) -> str:
    """A number with fixed decimals, or an em dash when undefined."""
    return MISSING if is_missing(value) else f"{float(value):.{digits}f}"


def fmt_ratio(value: Any) -> str:
    """A ratio as '1.98×'."""
    return MISSING if is_missing(value) else f"{float(value):.2f}×"


def fmt_q(value: Any) -> str:
    """A p- or q-value: scientific below 0.001."""
    if is_missing(value):
        return MISSING
    value = float(value)
    if value == 0:
        return "< 1e-300"  # below double precision: the test is beyond any doubt, not exactly zero
    return f"{value:.1e}" if value < 0.001 else f"{value:.3f}"
