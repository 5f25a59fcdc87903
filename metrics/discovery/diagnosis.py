"""The data need of each finding and of each sensitive group that falls short: more data, better data, or the model.

After Chen, Johansson & Sontag, "Why Is My Classifier Discriminatory?" (NeurIPS 2018): a gap in
error rates comes from too little data (variance), bad data (noise), or the model (bias). Here,
from counts alone, a slice or group with a problem gets exactly one need, the first that applies:

1. ``better_data`` when a data-quality signal fired for it (`metrics/discovery/quality.py`: missing values,
   conflicting duplicates, label errors) and its flagged rows explain the gap by magnitude: without
   them the slice is no longer materially worse than the rest, the group no longer materially and
   significantly worse than its reference as its verdict judges it (`metrics.discovery.quality.gap_without_flagged`,
   from SQL counts; for a group the BH level of the group table's family, the others held fixed). A
   signal that fired but does not explain the gap is reported beside a ``model`` need; a group whose
   gap is not yet decided has no gap to explain, so a signal there is reported beside ``more_data``.
2. ``more_data`` when the gap cannot be decided (verdict 'insufficient_data': support below
   ``min_support`` or no ratio; 'inconclusive': beyond the tolerance but not significant) or the
   group is under-represented against its reference population share.
3. ``model`` otherwise: enough data, clean by those signals, and still significantly worse.

A problem is a verdict of 'insufficient_data', or 'outside'/'inconclusive' in the worse direction
(higher for error rates, lower for selection and true-positive rates: a positive decision is taken
to be the favourable one), or under-representation. A group with none of these gets no need.

``additional_rows`` of a ``more_data`` need: the rows at which the gap would be detected at 80%
power by a two-sided test (Cohen's h, statsmodels' `NormalIndPower`), the comparison group kept at
its current size, at the significance level the verdict itself would need: the verdict is
'outside' when the Benjamini-Hochberg q-value over every comparison of the audit is below the
policy's fdr, so the test's alpha is the BH level the slice's p-value must reach with the other
comparisons' p-values fixed (`metrics.stats.intervals.bh_level`; the fdr itself for a lone test). See
`rows_plan` for the exact rule and its edge cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import brentq
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, samplesize_confint_proportion

from fairwatch.metrics.presentation.formats import HEADLINE_METRICS
from fairwatch.metrics.stats.groups import LOWER_IS_BETTER, RATES, GroupTable, slice_label
from fairwatch.metrics.stats.intervals import bh_level, two_proportion_pvalue, wilson_interval
from fairwatch.metrics.discovery.quality import (
    CONFLICTS,
    LABEL_ERRORS,
    MISSING_COLUMN,
    OUTLIERS,
    QualityTable,
    fired_summary,
    gap_without_flagged,
    signal_name,
)
from fairwatch.metrics.discovery.slices import MISSING_VALUE
from fairwatch.metrics.audit.spec import AuditSpec

Slice = tuple[tuple[str, str], ...]

# The 95% interval of the slice's own rate quoted when power cannot be reached.
ALPHA = 0.05
POWER = 0.80
NEEDS = ("more_data", "better_data", "model")
UNDECIDED = ("insufficient_data", "inconclusive")
# Error signals of the slice search count errors, so higher is worse, as for the error-rate metrics.
HIGHER_IS_WORSE = frozenset(LOWER_IS_BETTER | {"misclassification", "false_negative", "false_positive", "error_rate",
                                               "score_loss", "absolute_error", "squared_error",
                                               "mean_absolute_error", "mean_squared_error", "root_mean_squared_error",
                                               "mean_overprediction", "mean_underprediction"})
# Means, not proportions: no Wilson interval; their rows to settle a gap come from `means_plan` (power for means).
NOT_PROPORTIONS = frozenset({"score_loss", "absolute_error", "squared_error", "mean_prediction", "mean_label",
                             "mean_error", "mean_absolute_error", "mean_squared_error", "root_mean_squared_error",
                             "mean_overprediction", "mean_underprediction", "r2_score"})
METRIC_TEXT = {
    "misclassification": "error rate", "error_rate": "error rate",
    "false_negative": "false-negative rate", "false_positive": "false-positive rate",
    "selection_rate": "selection rate", "true_positive_rate": "true-positive rate",
    "false_positive_rate": "false-positive rate", "false_negative_rate": "false-negative rate",
    "true_negative_rate": "true-negative rate", "accuracy": "accuracy", "precision": "precision",
    "false_discovery_rate": "false-discovery rate", "false_omission_rate": "false-omission rate",
    "negative_predictive_value": "negative predictive value", "score_loss": "mean squared score loss",
    "absolute_error": "mean absolute error", "squared_error": "mean squared error",
    "mean_absolute_error": "mean absolute error", "root_mean_squared_error": "root mean squared error",
    "mean_prediction": "mean prediction",
}
# Power is searched up to this many rows; beyond it, a slice cannot realistically be decided.
_MAX_ROWS = 1e12
_TIER = {"outside": 0, "inconclusive": 1, "insufficient_data": 2}


@dataclass(frozen=True)
class RowsPlan:
    """How many more rows would decide a gap, and on what basis."""

    additional_rows: int | None
    basis: str  # observed_gap | tolerance_boundary | target_gap | comparison_too_small | no_gap | no_comparison
    rows_needed: int | None
    target_rate: float | None
    comparison_rate: float | None
    explanation: str
    alpha: float | None = None  # the two-sided test's level the power is computed at


@dataclass(frozen=True)
class Diagnosis:
    """The one data need of a slice (None when it has no problem), with its message and evidence."""

    need: str | None
    additional_rows: int | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def article(word: str) -> str:
    """'a' or 'an' before a metric's name ('an error rate', 'a false positive rate')."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def metric_text(metric: str) -> str:
    """A metric's name in plain words ('true-positive rate of class low' for a multiclass 'true_positive_rate@low')."""
    base, _, cls = metric.partition("@")
    text = METRIC_TEXT.get(base, base.replace("_", " "))
    return f"{text} of class {cls}" if cls else text


def higher_is_worse(metric: str) -> bool:
    """Whether a higher value of the metric (a multiclass one per class: 'false_positive_rate@c') is the worse side."""
    return metric.partition("@")[0] in HIGHER_IS_WORSE


def _pct(p: float | None) -> str:
    """A proportion as a percentage for a message."""
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{100 * p:.1f}%"


def _dec(v: float | None) -> str:
    """A mean (not a proportion, e.g. a score loss) for a message."""
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _num(v: float | None) -> float | None:
    """A JSON-safe float (None for NaN)."""
    if v is None:
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def _power(h: float, n1: float, n2: float, alpha: float) -> float:
    """Power of the two-sided two-sample z-test at `alpha` on Cohen's h with group sizes n1 and n2."""
    return float(NormalIndPower().power(effect_size=h, nobs1=n1, alpha=alpha, ratio=n2 / n1, alternative="two-sided"))


def _rows_for_power(h: float, n2: float, alpha: float) -> int | None:
    """Smallest slice size n1 with power >= POWER against a comparison of fixed size n2; None if unreachable.

    `NormalIndPower.solve_power` holds the ratio n2/n1 fixed; here n2 is fixed instead, so the root
    is found with brentq on the same statsmodels power function, bracketed by the near-tail closed
    form (effective size ((z_a/2 + z_b) / h)^2 = 1 / (1/n1 + 1/n2)) to keep the calls few.
    """
    if _power(h, _MAX_ROWS, n2, alpha) < POWER:
        return None
    if _power(h, 1.0, n2, alpha) >= POWER:
        return 1
    effective = ((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)) / h) ** 2
    guess = 1.0 / (1.0 / effective - 1.0 / n2) if effective < n2 else _MAX_ROWS
    high = min(_MAX_ROWS, 2.0 * guess + 2.0)
    if _power(h, high, n2, alpha) < POWER:
        high = _MAX_ROWS
    root = brentq(lambda n: _power(h, n, n2, alpha) - POWER, 1.0, high, xtol=0.05)
    n = max(1, math.ceil(root))
    while _power(h, n, n2, alpha) < POWER:
        n += 1
    while n > 1 and _power(h, n - 1, n2, alpha) >= POWER:
        n -= 1
    return n


def rows_plan(x1: int | None, n1: int, x2: int | None, n2: int, spec: AuditSpec,
              target_gap: float | None = None, alpha: float | None = None) -> RowsPlan:
    """The additional rows (in the metric's denominator) that would decide a slice's gap, and why.

    p1 = x1/n1 is the slice's rate (x1 None: withheld, e.g. below min_support), p2 = x2/n2 the
    comparison's. The target rate p* is p2 + target_gap when given; else the observed p1 when it
    lies beyond the tolerance band [ratio_low * p2, ratio_high * p2]; else (inside the band, or no
    usable estimate) the band's boundary on the side of p1 (ratio_high * p2 when unknown).
    Rows needed: the smallest n1' with power >= 0.8 for a two-sided test at `alpha` of p* against
    p2, effect size Cohen's h = 2 asin(sqrt p*) - 2 asin(sqrt p2), comparison size n2 fixed. alpha:
    the level the verdict needs (the Benjamini-Hochberg level of the slice's family, `diagnose`);
    None is the policy's fdr, the level of a lone test.
    additional = max(n_needed - n1, min_support - n1, 0): a rate is withheld below min_support
    whatever the power says.
    Edge cases, each with its basis in the plan: no comparison rows (or its rate withheld) -> None
    ('no_comparison'); even unlimited slice rows cannot reach 80% power because the comparison is
    too small -> None ('comparison_too_small'; the explanation gives the n at which the slice's own
    95% interval half-width would shrink to |p* - p2|, `samplesize_confint_proportion`, which alone
    would not decide it); a zero gap (p* = p2, e.g. no errors anywhere, so no ratio exists) ->
    min_support - n1 when positive (the rows before the rate is shown at all), else None ('no_gap').
    Returning None rather than a smaller interval-width figure keeps the answer monotone: a bigger
    gap never needs more rows.
    """
    min_support, low, high = spec.policy.min_support, spec.policy.ratio_low, spec.policy.ratio_high
    alpha = spec.policy.fdr if alpha is None else float(alpha)
    floor = max(min_support - n1, 0)
    if n2 <= 0 or x2 is None:
        return RowsPlan(None, "no_comparison", None, None, None,
                        "the comparison group has no usable rows, so no number of rows in the slice can decide the gap",
                        alpha)
    p2 = x2 / n2
    p1 = x1 / n1 if (x1 is not None and n1 > 0) else None
    if target_gap is not None:
        target, basis = min(max(p2 + target_gap, 0.0), 1.0), "target_gap"
    elif p1 is not None and (p1 > high * p2 or p1 < low * p2):
        target, basis = p1, "observed_gap"
    else:
        below = p1 is not None and p1 < p2
        target, basis = min(max((low if below else high) * p2, 0.0), 1.0), "tolerance_boundary"
    if target == p2:
        add = floor or None
        return RowsPlan(add, "no_gap", None, target, p2,
                        "the gap to detect is zero (no errors in the comparison group, so no ratio exists)"
                        + (f"; {floor} more rows reach min_support" if floor else "; no number of rows decides it"),
                        alpha)
    h = abs(float(proportion_effectsize(target, p2)))
    needed = _rows_for_power(h, float(n2), alpha)
    if needed is not None:
        what = {"observed_gap": "the observed gap", "tolerance_boundary": "a gap at the tolerance boundary",
                "target_gap": "the requested gap"}[basis]
        explanation = (f"{what} ({_pct(target)} against {_pct(p2)}) is detected with 80% power at alpha {alpha:.2g} "
                       f"(two-sided) once the slice has {needed:,} rows, the comparison kept at {n2:,}")
    else:
        p = target if 0 < target < 1 else 0.5
        width_rows = math.ceil(float(samplesize_confint_proportion(p, abs(target - p2), alpha=ALPHA)))
        return RowsPlan(None, "comparison_too_small", None, target, p2,
                        f"with only {n2:,} comparison rows, no number of slice rows reaches 80% power at alpha "
                        f"{alpha:.2g} for a gap of {abs(target - p2):.3f}; the slice's own 95% interval would be that "
                        f"narrow at {width_rows:,} rows, but the comparison's uncertainty alone keeps the test undecided",
                        alpha)
    return RowsPlan(max(needed - n1, floor, 0), basis, needed, target, p2, explanation, alpha)


def means_plan(m1: float | None, sd1: float, n1: int, m2: float | None, sd2: float, n2: int, spec: AuditSpec,
               alpha: float | None = None, *, squared: bool = False) -> RowsPlan:
    """The additional rows that would decide the gap between two means (a regression group's MAE, RMSE, mean prediction).

    The target mean m* is m1 when it lies beyond the band [ratio_low * m2, ratio_high * m2], else the
    band's boundary on m1's side (`rows_plan`'s rule for rates). Rows needed: the smallest n1' at which a
    two-sided two-sample test at `alpha` detects m* - m2 with 80% power, the comparison kept at n2 rows,
    in the normal approximation of Welch's test: (m* - m2)^2 / (sd1^2 / n1' + sd2^2 / n2) >=
    (z_{1-alpha/2} + z_{0.8})^2, so n1' = sd1^2 / ((m* - m2)^2 / (z_a + z_b)^2 - sd2^2 / n2). With equal
    standard deviations it is statsmodels' `NormalIndPower` on Cohen's d (tests/test_task_findings.py holds
    it there). squared: the values are roots of the tested means (RMSE, tested as MSE), so the target
    and the comparison are squared before the gap is taken; sd1, sd2 are on the tested scale.
    When the comparison alone is too uncertain (the bracket is <= 0) no number of slice rows decides it.
    """
    low, high, min_support = spec.policy.ratio_low, spec.policy.ratio_high, spec.policy.min_support
    alpha = spec.policy.fdr if alpha is None else float(alpha)
    floor = max(min_support - n1, 0)
    if m2 is None or n2 <= 1 or not np.isfinite(sd2):
        return RowsPlan(None, "no_comparison", None, None, m2,
                        "the comparison group has no usable mean, so no number of rows in the slice can decide the gap",
                        alpha)
    if m1 is not None and (m1 > high * m2 or m1 < low * m2):
        target, basis = m1, "observed_gap"
    else:
        below = m1 is not None and m1 < m2
        target, basis = (low if below else high) * m2, "tolerance_boundary"
    gap = (target**2 - m2**2) if squared else (target - m2)
    sd1 = sd1 if np.isfinite(sd1) and sd1 > 0 else sd2
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(POWER)
    room = gap**2 / z**2 - sd2**2 / n2
    if gap == 0:
        return RowsPlan(floor or None, "no_gap", None, target, m2,
                        "the gap to detect is zero (the comparison's mean is 0, so no ratio exists)", alpha)
    if room <= 0 or sd1 <= 0:
        return RowsPlan(None, "comparison_too_small", None, target, m2,
                        f"with only {n2:,} comparison rows, no number of slice rows reaches 80% power at alpha "
                        f"{alpha:.2g} for a gap of {abs(target - m2):.4g} in the mean", alpha)
    needed = max(2, math.ceil(sd1**2 / room - 1e-9))
    what = {"observed_gap": "the observed gap", "tolerance_boundary": "a gap at the tolerance boundary"}[basis]
    explanation = (f"{what} ({_dec(target)} against {_dec(m2)}) is detected with 80% power at alpha {alpha:.2g} "
                   f"(two-sided, normal approximation of Welch's test) once the slice has {needed:,} rows, the "
                   f"comparison kept at {n2:,}")
    return RowsPlan(max(needed - n1, floor, 0), basis, needed, target, m2, explanation, alpha)


def additional_rows_needed(x1: int | None, n1: int, x2: int | None, n2: int, spec: AuditSpec,
                           target_gap: float | None = None, alpha: float | None = None) -> int | None:
    """Additional rows in the slice (in the metric's denominator) that would decide its gap (see `rows_plan`)."""
    return rows_plan(x1, n1, x2, n2, spec, target_gap, alpha).additional_rows


def derive_verdict(x1: int | None, n1: int, x2: int | None, n2: int, spec: AuditSpec,
                   q_value: float | None = None) -> str:
    """The group table's verdict from counts: insufficient_data, within, outside or inconclusive.

    Significance uses q_value when given, else the unadjusted two-proportion p-value.
    """
    if n1 < spec.policy.min_support or x1 is None or x2 is None or n2 <= 0:
        return "insufficient_data"
    p1, p2 = x1 / n1, x2 / n2
    if p2 == 0:
        if p1 == 0:
            return "within"
        return "insufficient_data"  # no ratio exists, as in the group table
    ratio = p1 / p2
    if spec.policy.ratio_low <= ratio <= spec.policy.ratio_high:
        return "within"
    sig = q_value if q_value is not None else float(two_proportion_pvalue(x1, n1, x2, n2)[0])
    return "outside" if sig < spec.policy.fdr else "inconclusive"


def _worse(p1: float | None, p2: float | None, metric: str) -> bool:
    """Whether the slice's rate is on the unfavourable side of the comparison's."""
    if p1 is None or p2 is None:
        return False
    return p1 > p2 if higher_is_worse(metric) else p1 < p2


def _quality_evidence(quality: QualityTable | None, slice_: Slice) -> tuple[list[dict], dict[str, Any]]:
    """Fired need signals of the slice and the quality part of the evidence."""
    if quality is None or not quality.checked(slice_):
        return [], {"checked": False, "note": "no data-quality check was run for this slice"}
    fired = fired_summary(quality, slice_)
    rule = quality.label_error_rule
    ev: dict[str, Any] = {"checked": True, "signals_fired": [f["signal"] for f in fired], "fired": fired,
                          "label_errors": rule.describe() if rule is not None else "; ".join(quality.notes)
                          or "label-error signal not computed"}
    rows = quality.for_slice(slice_)
    ev["signals"] = {
        signal_name(s, c): {"rate": _num(r), "rows": int(n), "complement_rate": _num(cr), "q_value": _num(q),
                            "fired": bool(f)}
        for s, c, r, n, cr, q, f in zip(rows["signal"], rows["column"], rows["rate"], rows["n"],
                                        rows["complement_rate"], rows["q_value"], rows["fired"])
    }
    return fired, ev


def diagnose(slice_: Slice, n: int, errors: int | None, comparison_n: int, comparison_errors: int | None,
             spec: AuditSpec, *, metric: str = "misclassification", verdict: str | None = None,
             q_value: float | None = None, comparison: str = "the rest of the data", labelled_n: int | None = None,
             representation_ratio: float | None = None, under_represented: bool | None = None,
             rows_to_reference_share: int | None = None, quality: QualityTable | None = None,
             family_pvalues: Sequence[float] | None = None, rest_rate: float | None = None,
             rate: float | None = None, spread: tuple[float, float, bool] | None = None) -> Diagnosis:
    """The one data need of a slice from its counts, verdict, representation and quality signals.

    n, errors: the slice's denominator and numerator of `metric` (errors None: rate withheld);
    comparison_n/_errors: the complement's or the reference group's. verdict: the group table's, or
    'outside' for a slice-search finding; None derives it from the counts (`derive_verdict`).
    labelled_n: the slice's labelled rows, to turn extra denominator rows (e.g. positives) into
    extra labelled rows. representation_ratio: observed share / reference share; under_represented
    overrides the default test ratio < ratio_low. family_pvalues: the p-values of the other
    comparisons in the slice's Benjamini-Hochberg family, so the rows that would settle it are
    counted at the BH level its verdict needs (`bh_level`); None counts them at the fdr (a lone test).
    rest_rate: the comparison's value where it is not a rate of counts (a mean loss); rate: the slice's.
    spread: for a mean (regression), the standard deviations of the slice's and the comparison's rows on the
    tested scale and whether that scale is the square of the value's (RMSE, tested as MSE): the rows that
    would settle its gap then come from `means_plan` (power for means).
    """
    key = tuple(tuple(p) for p in slice_)
    label = slice_label(key)
    proportion = metric not in NOT_PROPORTIONS
    fmt = _pct if proportion else _dec
    p1 = errors / n if (errors is not None and n > 0) else None
    p2 = comparison_errors / comparison_n if (comparison_errors is not None and comparison_n > 0) else None
    if not proportion and (rate is not None or spread is not None):  # a mean given by its values, not counts
        p1 = _num(rate)
        p2 = _num(rest_rate)
    search_finding = verdict == "finding"
    if search_finding:
        verdict = "outside"  # the slice search's word for significantly worse
    if verdict is None:
        if not proportion:
            raise ValueError(f"give the verdict of a {metric} slice: it cannot be derived from counts")
        verdict = derive_verdict(errors, n, comparison_errors, comparison_n, spec, q_value)
    worse = _worse(p1, p2, metric)
    metric_problem = verdict == "insufficient_data" or (verdict in ("outside", "inconclusive") and worse)
    under = under_represented if under_represented is not None else (
        representation_ratio is not None and representation_ratio < spec.policy.ratio_low)
    fired, quality_ev = _quality_evidence(quality, key)
    low, high = wilson_interval(errors, n) if (p1 is not None and proportion) else ([np.nan], [np.nan])
    evidence: dict[str, Any] = {
        "slice": dict(key), "group": label, "metric": metric, "verdict": verdict, "support": int(n),
        "numerator": None if errors is None else int(errors), "rate": _num(p1), "ci_low": _num(low[0]),
        "ci_high": _num(high[0]), "comparison": comparison, "comparison_support": int(comparison_n),
        "comparison_numerator": None if comparison_errors is None else int(comparison_errors),
        "comparison_rate": _num(p2), "ratio": _num(p1 / p2) if (p1 is not None and p2) else None,
        "q_value": _num(q_value), "worse_direction": "higher" if higher_is_worse(metric) else "lower",
        "tolerance": [spec.policy.ratio_low, spec.policy.ratio_high], "min_support": spec.policy.min_support,
        "labelled_rows": None if labelled_n is None else int(labelled_n),
        "representation": {"ratio": _num(representation_ratio), "under_represented": bool(under),
                           "rows_to_reference_share": rows_to_reference_share},
        "quality": quality_ev,
    }
    what = metric_text(metric)
    if not metric_problem and not under:
        evidence["rule"] = "no problem: the verdict is within the tolerance (or better) and the slice is not under-represented"
        if verdict == "reference":
            return Diagnosis(None, None, f"{label} needs nothing: it is the reference group, its {what} is "
                                         f"{fmt(p1)}, and it is not under-represented.", evidence)
        state = "within the tolerance" if verdict == "within" else f"{verdict.replace('_', ' ')} but not worse"
        return Diagnosis(None, None, f"{label} needs nothing: its {what} of {fmt(p1)} against {fmt(p2)} for "
                                     f"{comparison} is {state}.", evidence)

    undecided = metric_problem and verdict in UNDECIDED
    plan = None
    if undecided:
        alpha, family = _alpha(family_pvalues, spec)
        plan = rows_plan(errors, n, comparison_errors, comparison_n, spec, alpha=alpha) if proportion else (
            means_plan(p1, spread[0], n, p2, spread[1], comparison_n, spec, alpha, squared=spread[2])
            if spread is not None else RowsPlan(None, "not_a_proportion", None, None, p2,
                                  f"the power rule is for rates; {article(what)} {what} is a mean", alpha))
    if plan is not None:
        extra = _to_labelled(plan.additional_rows, n, labelled_n)
        evidence["additional_rows_plan"] = {
            "basis": plan.basis, "explanation": plan.explanation, "rows_needed": plan.rows_needed,
            "additional_metric_rows": plan.additional_rows, "additional_labelled_rows": extra,
            "target_rate": _num(plan.target_rate), "power": POWER, "alpha": alpha, "family_size": family,
            "note": _alpha_note(alpha, family, spec),
        }

    explaining = fired
    holes = [f for f, v in key if v == MISSING_VALUE]
    if search_finding and holes:
        # A slice defined by a missing value: every row is flagged by its own column's missingness, so without the
        # flagged rows nothing is left of the gap: the missing values are the problem to fix.
        quality_ev["without_flagged"] = [{"signal": f"missing_column:{holes[0]}", "rate_without_flagged": None,
                                          "rest_rate": _num(p2), "rest_rate_without_its_flagged": None,
                                          "ratio_without_flagged": None, "rows_left": 0, "explains_gap": True}]
        evidence["rule"] = "better_data: the slice is defined by a missing value; without those rows no gap is left"
        return Diagnosis("better_data", None,
                         f"Every row of {label} lacks {holes[0]}, and its {what} is {fmt(p1)} against {fmt(p2)} for "
                         f"{comparison}, so fill in {holes[0]} before blaming the model.", evidence)
    if fired:
        # A need by magnitude: a signal explains the gap only if, without its flagged rows, the slice is no
        # longer materially worse (a group: materially and significantly, as its verdict judges it).
        if search_finding:
            gaps = gap_without_flagged(quality, key, spec, p2 if p2 is not None else rest_rate)
        elif verdict == "outside" and worse and proportion:
            # A group metric from the unflagged confusion cells; a slice's error signal from its own counts.
            gaps = gap_without_flagged(quality, key, spec, p2, metric=metric if metric in RATES else None,
                                       alpha=_alpha(family_pvalues, spec)[0],
                                       rest_counts=(comparison_errors, comparison_n))
        else:
            gaps = []  # an undecided gap: nothing to explain yet
        quality_ev["without_flagged"] = [g.to_dict() for g in gaps]
        names = {g.signal for g in gaps if g.explains}
        explaining = sorted((f for f in fired if f["signal"] in names),
                            key=lambda f: [g.signal for g in gaps].index(f["signal"]))
    if explaining:
        evidence["rule"] = ("better_data: without the rows a data-quality signal flags, the slice is no longer "
                            "materially worse than the rest" if search_finding else
                            "better_data: without the rows a data-quality signal flags, the group is no longer "
                            "materially and significantly worse than its reference")
        message = _better_data_message(label, explaining[0], what, fmt(p1), fmt(p2), comparison)
        g = next(g for g in gaps if g.signal == explaining[0]["signal"])
        message += (f" Without those rows its {what} would be {fmt(g.rate)} against {fmt(g.rest_rate)}, "
                    + ("within the policy band." if search_finding else "no longer a significant gap outside the "
                                                                        "policy band."))
        return Diagnosis("better_data", None, message, evidence)

    if undecided or under:
        evidence["rule"] = ("more_data: " + ("the gap cannot be decided yet" if plan is not None else "")
                            + (" and " if plan is not None and under else "")
                            + ("the slice is under-represented against its reference share" if under else "")
                            + ("; the fired data-quality signals are reported beside it" if fired else ""))
        if plan is not None:
            extra = evidence["additional_rows_plan"]["additional_labelled_rows"]
            return Diagnosis("more_data", extra, _more_data_message(label, what, verdict, n, fmt(p1), fmt(p2),
                                                                    comparison, comparison_n, extra, plan, spec),
                             evidence)
        share = (f" (its share of the rows is {representation_ratio:.2f} times its reference share)"
                 if _num(representation_ratio) is not None else " against its reference population share")
        tail = (f", so about {rows_to_reference_share:,} more rows from it would bring it to its reference share."
                if rows_to_reference_share else "; collect more rows from it.")
        return Diagnosis("more_data", rows_to_reference_share, f"{label} is under-represented{share}{tail}", evidence)

    evidence["rule"] = "model: enough data, no data-quality signal fired, and significantly worse"
    checked = "no data-quality signal fired" if quality_ev.get("checked") else "no data-quality check was available"
    if fired:  # signals fired, but without their rows the slice stays materially worse: reported alongside
        evidence["rule"] = ("model: significantly and materially worse, and still so without the rows any fired "
                            "data-quality signal flags")
        stays = "material" if search_finding else "material and significant"
        checked = (f"{', '.join(f['signal'] for f in fired)} fired but its rows do not explain the gap (it stays "
                   f"{stays} without them)" if quality_ev.get("without_flagged") else
                   f"{', '.join(f['signal'] for f in fired)} fired (whether its rows explain the gap was not counted)")
    return Diagnosis("model", None,
                     f"{label} has {article(what)} {what} of {fmt(p1)} against {fmt(p2)} for {comparison} on {n:,} rows, a "
                     f"significant gap with enough data and {checked}, so the model itself is the likely cause.",
                     evidence)


def _alpha(family_pvalues: Sequence[float] | None, spec: AuditSpec) -> tuple[float, int]:
    """The level a slice's test must reach for its verdict to turn, and the size of its BH family."""
    if family_pvalues is None:
        return spec.policy.fdr, 1
    others = np.asarray(family_pvalues, dtype=float)
    return bh_level(others, spec.policy.fdr), int((~np.isnan(others)).sum()) + 1


def _alpha_note(alpha: float, family: int, spec: AuditSpec) -> str:
    """How the power's alpha was chosen, for the evidence."""
    if family <= 1:
        return f"power at alpha {alpha:.2g}: the policy's fdr, the level of a lone test"
    return (f"power at alpha {alpha:.2g}: the Benjamini-Hochberg level the verdict needs, i.e. the largest p-value "
            f"that gets a q-value below the fdr of {spec.policy.fdr:g} among the audit's {family:,} comparisons, the "
            f"others' p-values held fixed")


def _to_labelled(additional: int | None, support: int, labelled_n: int | None) -> int | None:
    """Extra rows of a metric's denominator (e.g. positives) as extra labelled rows, at the slice's mix."""
    if additional is None or labelled_n is None or support <= 0 or labelled_n <= support:
        return additional
    return math.ceil(additional * labelled_n / support)


def _better_data_message(label: str, top: dict, what: str, r1: str, r2: str, comparison: str) -> str:
    """The one-sentence message of a better_data need, worded for the strongest fired signal."""
    sig, col = (top["signal"].split(":", 1) + [None])[:2]
    rate, other = _pct(top["rate"]), _pct(top["complement_rate"])
    blame = f"before blaming the model for its {what} of {r1} ({r2} for {comparison})"
    if sig == LABEL_ERRORS:
        return (f"In {label} the model's score confidently contradicts the recorded outcome for {rate} of labelled rows "
                f"against {other} elsewhere, on both positive and negative outcomes, so check those labels {blame}.")
    if sig == MISSING_COLUMN:
        return f"In {label} {col} is missing in {rate} of rows against {other} elsewhere, so fill it in {blame}."
    if sig == OUTLIERS:
        return (f"In {label} {rate} of labels lie far outside the usual range (beyond 1.5 IQR of the quartiles) against "
                f"{other} elsewhere, so check those labels {blame}.")
    if sig == CONFLICTS:
        return (f"In {label} {rate} of labelled rows have an identical twin with the opposite outcome against {other} "
                f"elsewhere, so resolve those duplicates {blame}.")
    return (f"In {label} {rate} of rows have a missing value in another column against {other} elsewhere, so fill "
            f"those values in {blame}.")


def _more_data_message(label: str, what: str, verdict: str, n: int, r1: str, r2: str,
                       comparison: str, comparison_n: int, extra: int | None, plan: RowsPlan, spec: AuditSpec) -> str:
    """The one-sentence message of a more_data need."""
    if extra is None:
        tail = {"no_gap": "no number of extra rows in it would decide this",
                "no_comparison": f"{comparison} has no usable rate to compare with, so no number of rows can be given",
                "not_a_proportion": "the rows needed are only computed for rates, not for a mean loss",
                }.get(plan.basis, f"no number of extra rows in it would decide this while {comparison} has "
                                  f"{comparison_n:,}")
    else:
        tail = f"about {extra:,} more labelled rows would settle it"
    if verdict == "insufficient_data" and n < spec.policy.min_support:
        return (f"{label} has only {n:,} rows for its {what} (at least {spec.policy.min_support} are needed to judge it), "
                f"so it cannot yet be compared with {r2} for {comparison}; {tail}.")
    if verdict == "insufficient_data":
        return f"{label}'s {what} ({r1}) cannot be compared with {r2} for {comparison}; {tail}."
    return (f"{label} has {article(what)} {what} of {r1} against {r2} for {comparison}, but with {n:,} rows the gap "
            f"could be chance; {tail}.")


def is_under_represented(rep_row: dict | pd.Series, spec: AuditSpec) -> bool:
    """Share below ratio_low x the reference share, and its 95% interval entirely below the reference share."""
    ref = rep_row.get("reference_share")
    ratio = rep_row.get("ratio")
    if ref is None or ratio is None or pd.isna(ref) or pd.isna(ratio):
        return False
    return bool(ratio < spec.policy.ratio_low and rep_row.get("ci_high", np.nan) < ref)


def rows_to_reach_share(n: int, total: int, reference_share: float) -> int | None:
    """Rows to add to a group so that its share reaches the reference share: (s*N - n) / (1 - s)."""
    if reference_share is None or pd.isna(reference_share) or reference_share >= 1:
        return None
    need = (reference_share * total - n) / (1 - reference_share)
    return max(math.ceil(need - 1e-9), 0)


def _counts(row: dict) -> tuple[int | None, int]:
    """(successes, support) of a group-table row; successes None when the rate is withheld."""
    support = int(row["support"])
    if "successes" in row and not pd.isna(row["successes"]):
        return int(round(float(row["successes"]))), support
    if pd.isna(row["value"]):
        return None, support
    return int(round(float(row["value"]) * support)), support


METRIC_CHOICE_RULE = ("the most serious problem among the tracked metrics: outside before inconclusive before "
                      "insufficient_data, then the largest observed gap to the reference (|log ratio|; for a rate "
                      "withheld below min_support, the ratio of the raw rates with 0.5 added to each count), then "
                      "the metrics' list order")


def _observed_gap(row: dict, lookup: dict) -> dict[str, Any]:
    """A problem row's ratio to its reference as judged ('table') or, when withheld, from the raw counts ('raw counts').

    A masked group's rates are withheld but its counts are not, and which tracked metric shows the gap
    matters (a false-negative gap is barely visible as a true-positive ratio): 0.5 is added to each count
    (Haldane-Anscombe) so a zero count ranks as a large gap rather than an infinite or undefined one.
    """
    if not pd.isna(row["ratio"]) and row["ratio"] > 0:
        return {"ratio": float(row["ratio"]), "ratio_from": "table"}
    ref = row["reference"]
    ref_row = lookup.get((row["grouping"], tuple(ref), row["metric"])) if ref is not None else None
    x1, n1 = _counts_raw(row)
    x2, n2 = _counts_raw(ref_row) if ref_row is not None else (None, 0)
    if x1 is None or x2 is None or n1 <= 0 or n2 <= 0:
        return {"ratio": None, "ratio_from": "no counts"}
    return {"ratio": ((x1 + 0.5) / (n1 + 1)) / ((x2 + 0.5) / (n2 + 1)), "ratio_from": "raw counts"}


def _counts_raw(row: dict) -> tuple[float | None, int]:
    """(successes, support) of a group-table row from its raw counts, masked or not (None: not a proportion)."""
    support = int(row["support"])
    if "successes" not in row or pd.isna(row["successes"]):
        return None, support
    return float(row["successes"]), support


def _mean_spread(row: dict | None) -> tuple[float, float]:
    """(value on the tested scale, standard deviation of its rows) of a regression group-table row, from its t interval.

    The table's upper bound is the mean plus t(0.975, n-1) standard errors (never clipped; RMSE's is the
    root of MSE's, and RMSE is tested as MSE), so sd = (upper - mean) / t * sqrt(n). NaN where withheld.
    """
    if row is None or pd.isna(row["value"]) or pd.isna(row.get("ci_high", np.nan)) or int(row["support"]) < 2:
        return np.nan, np.nan
    n, value, high = int(row["support"]), float(row["value"]), float(row["ci_high"])
    if row["metric"] == "root_mean_squared_error":
        value, high = value**2, high**2
    t = float(stats.t.ppf(0.5 + (1 - ALPHA) / 2, n - 1))
    return value, (high - value) / t * math.sqrt(n)


def _mean_arguments(row: dict, ref_row: dict | None) -> dict[str, Any]:
    """The rate, comparison value and spread `diagnose` takes for a mean (regression) metric."""
    value = None if pd.isna(row["value"]) else float(row["value"])
    ref_value = None if ref_row is None or pd.isna(ref_row["value"]) else float(ref_row["value"])
    return {"rate": value, "rest_rate": ref_value,
            "spread": (_mean_spread(row)[1], _mean_spread(ref_row)[1], row["metric"] == "root_mean_squared_error")}


def diagnose_groups(group_rows: pd.DataFrame | GroupTable, representation: pd.DataFrame | None,
                    quality: QualityTable | None, spec: AuditSpec,
                    metrics: Sequence[str] = HEADLINE_METRICS) -> pd.DataFrame:
    """A diagnosis for every group of each sensitive feature (need None where it has no problem).

    Each group's problems are its headline-metric rows with verdict 'insufficient_data', or
    'outside'/'inconclusive' on the worse side, plus under-representation. The diagnosed metric is
    the most serious problem (`METRIC_CHOICE_RULE`, stated in the evidence's `metric_choice`):
    'outside' before 'inconclusive' before 'insufficient_data', then the largest observed gap to the
    reference, from the raw counts where the rate is withheld; it is compared with the group's
    reference group, as in the group table.
    Its rows to settle it are counted at the Benjamini-Hochberg level of the group table's family
    (every tested comparison: the rows with a q-value); at the same level a fired signal's rows are
    judged: better_data only when, without them, the group is no longer materially and significantly worse.
    Columns: grouping, slice, group, metric, verdict, need, additional_rows, message, evidence, problems.
    """
    rows = group_rows.rows if isinstance(group_rows, GroupTable) else group_rows
    chosen = (rows["slice"].map(len).eq(1) & rows["metric"].isin(list(metrics))).to_numpy(bool)
    single = rows[chosen]
    rep_by_slice: dict[Slice, dict] = {}
    totals: dict[str, int] = {}
    if representation is not None and len(representation):
        for r in representation.to_dict("records"):
            rep_by_slice[tuple(r["slice"])] = r
            totals[r["grouping"]] = totals.get(r["grouping"], 0) + int(r["n"])
    # Each record keeps its position in `rows`, to leave it out of its own BH family.
    records = [r | {"_pos": int(i)} for i, r in zip(np.flatnonzero(chosen), single.to_dict("records"))]
    # The BH family of the verdicts: every comparison with a q-value (a table without q-values has none).
    family = (rows["p_value"].where(rows["q_value"].notna()).to_numpy(float)
              if {"p_value", "q_value"} <= set(rows.columns) else None)
    by_slice: dict[Slice, list[dict]] = {}
    for r in records:
        by_slice.setdefault(tuple(r["slice"]), []).append(r)
    lookup = {(r["grouping"], tuple(r["slice"]), r["metric"]): r for r in records}
    order = {m: i for i, m in enumerate(metrics)}
    out = []
    for key, group in by_slice.items():
        problems = []
        gaps: dict[str, dict[str, Any]] = {}
        for r in group:
            ratio = r["ratio"]
            worse = not pd.isna(ratio) and (ratio > 1 if higher_is_worse(r["metric"]) else ratio < 1)
            if r["verdict"] == "insufficient_data" or (r["verdict"] in ("outside", "inconclusive") and worse):
                gap = _observed_gap(r, lookup)
                gaps[r["metric"]] = gap
                size = abs(math.log(gap["ratio"])) if gap["ratio"] else -1.0
                problems.append((_TIER[r["verdict"]], -size, order[r["metric"]], r))
        rep = rep_by_slice.get(key)
        under = is_under_represented(rep, spec) if rep is not None else False
        to_share = (rows_to_reach_share(int(rep["n"]), totals[rep["grouping"]], rep["reference_share"])
                    if rep is not None and under else None)
        ranked = sorted(problems, key=lambda t: t[:3])
        # Without a problem, the first headline metric stands for the group in the message.
        primary = ranked[0][3] if ranked else min(group, key=lambda r: order[r["metric"]])
        ref = primary["reference"]
        ref_row = lookup.get((primary["grouping"], tuple(ref), primary["metric"])) if ref is not None else None
        mean = primary["metric"] in NOT_PROPORTIONS
        x1, n1 = _counts(primary) if not mean else (None, int(primary["support"]))
        x2, n2 = (_counts(ref_row) if not mean else (None, int(ref_row["support"]))) if ref_row is not None else (None, 0)
        d = diagnose(key, n1, x1, n2, x2, spec, metric=primary["metric"],
                     **(_mean_arguments(primary, ref_row) if mean else {}),
                     verdict=primary["verdict"],
                     q_value=None if pd.isna(primary.get("q_value", np.nan)) else float(primary["q_value"]),
                     comparison=slice_label(ref) if ref is not None else "the reference group",
                     labelled_n=int(primary["labelled_n"]),
                     representation_ratio=None if rep is None or pd.isna(rep.get("ratio")) else float(rep["ratio"]),
                     under_represented=under, rows_to_reference_share=to_share, quality=quality,
                     family_pvalues=None if family is None else np.delete(family, primary["_pos"]))
        listed = [(p[3]["metric"], p[3]["verdict"]) for p in ranked]
        d.evidence["problems"] = [{"metric": m, "verdict": v} | gaps[m] for m, v in listed]
        if ranked:
            d.evidence["metric_choice"] = {"metric": primary["metric"], "rule": METRIC_CHOICE_RULE,
                                           **gaps[primary["metric"]]}
        out.append({"grouping": primary["grouping"], "slice": key, "group": slice_label(key),
                    "metric": primary["metric"], "verdict": primary["verdict"], "need": d.need,
                    "additional_rows": d.additional_rows, "message": d.message, "evidence": d.evidence,
                    "problems": tuple(listed)})
    columns = ["grouping", "slice", "group", "metric", "verdict", "need", "additional_rows", "message", "evidence",
               "problems"]
    frame = pd.DataFrame(out, columns=columns)
    # Object and nullable-integer columns keep None as None (pandas 3 would turn it into NaN).
    frame["need"] = pd.Series([r["need"] for r in out], index=frame.index, dtype=object)
    frame["additional_rows"] = pd.array([r["additional_rows"] for r in out], dtype="Int64")
    return frame
