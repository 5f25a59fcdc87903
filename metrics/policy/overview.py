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

import functools
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from fairwatch.metrics.presentation.formats import (HEADLINE_METRICS, REGRESSION_METRICS, explain,
                             fmt_num, fmt_pct, fmt_q, fmt_ratio, is_missing)
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.stats.intervals import CONFIDENCE, difference_interval, ratio_interval
from fairwatch.metrics.audit.outcomes import DataSummary, positive_text
from fairwatch.metrics.audit.spec import AuditSpec, Policy
from fairwatch.metrics.monitoring.trends import TrendTable

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


def supported_metrics(rows: pd.DataFrame) -> list[str]:
    """Metrics of a group table that some group has rows for (a class never seen as a label has no recall)."""
    return rows.loc[rows["support"] > 0, "metric"].drop_duplicates().tolist()


def drilldown_scope_note(task: str) -> str | None:
    """What a regression or multiclass drill-down shows in place of the binary rates (None for binary)."""
    if task == "binary":
        return None
    return (f"This is a {task} audit: the slice's searched error signal is tested against the rest as the slice search "
            f"tests it, and below are its {task} metrics against the rest (in place of a binary audit's rates and "
            f"confusion counts), its data-quality signals, its other features and example rows.")


def task_scope_note(task: str) -> str | None:
    """What the dashboard does not yet cover for a regression or multiclass audit (None for binary)."""
    if task == "binary":
        return None
    return (f"This is a {task} audit: groups, intervals, disparities, the slice search, data-quality signals, data "
            f"needs, the drill-down's metrics against the rest and the exports cover it; the threshold explorer "
            f"covers binary decisions only so far (trends, versions and alerts follow the task).")


def threshold_scope_note(task: str) -> str | None:
    """Why the threshold explorer and the what-if do not apply to a regression or multiclass audit (None for binary)."""
    if task == "binary":
        return None
    what = "a number, not a yes/no decision" if task == "regression" else "one of several classes, not a yes/no decision"
    return (f"The threshold explorer and the what-if move a cut-off on the score of a yes/no decision; this "
            f"{task} audit's model outputs {what}, so they do not apply.")


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
    # For a flagged gap: the ratio's false-coverage-rate adjusted interval (Benjamini–Yekutieli, level
    # 1 - fdr·R/m over the R flagged of m comparisons), which agrees with the verdict; NaN otherwise.
    adj_ci_low: float = float("nan")
    adj_ci_high: float = float("nan")
    adj_level: float = float("nan")
    comparisons: int = 0  # m: the comparisons tested together (for "not significant after m comparisons")
    chance_note: str = ""  # why an unflagged gap whose 95% interval lies outside the band is not significant

    @property
    def interval(self) -> tuple[float, float, str]:
        """The ratio interval that agrees with the verdict: adjusted for a flagged gap, else the 95% one."""
        if not is_missing(self.adj_level):
            return self.adj_ci_low, self.adj_ci_high, f"{100 * self.adj_level:.2f}% FCR-adjusted"
        return self.ratio_ci_low, self.ratio_ci_high, "95%"

    def sentence(self) -> str:
        """The gap in one plain sentence, with every number's n and the ratio's interval."""
        what = explain(self.metric)
        if what and what.often:
            head = f"{self.group} {what.often} {fmt_ratio(self.ratio)} as often as {self.reference_group}"
        else:
            name = what.name if what else self.metric
            head = f"{self.group}: {name} is {fmt_ratio(self.ratio)} that of {self.reference_group}"
        low, high, level = self.interval
        # Regression measures are amounts in the outcome's unit, not shares.
        fmt = fmt_num if self.metric in REGRESSION_METRICS else fmt_pct
        return (f"{head} "
                f"({fmt(self.value)} of n={self.support:,} vs {fmt(self.reference_value)} of "
                f"n={self.reference_support:,}; {level} interval of the ratio {fmt_num(low)}–"
                f"{fmt_num(high)}, q={fmt_q(self.q_value)})")


@dataclass(frozen=True)
class FeatureVerdict:
    """The policy verdict of one sensitive feature, with the reasons behind it."""

    feature: str
    status: str  # "meets", "fails" or "cannot_judge"
    reasons: tuple[str, ...]
    groups: int
    small_intersection_cells: int
    worst: Disparity | None
    # The feature on its own (its groups against its reference) apart from its intersections with others.
    alone: str = "meets"  # "meets", "fails" or "cannot_judge"
    failing_groups: tuple[str, ...] = ()  # its own groups outside the band, significantly
    failing_intersections: tuple[str, ...] = ()  # intersection groups with it outside the band (their own gaps)

    @property
    def label(self) -> str:
        """'meets policy', 'fails policy' or 'cannot be judged'."""
        return STATUS_LABELS[self.status]

    @property
    def where(self) -> str:
        """Which groups fail, and whether the feature alone does: the line that tells one card from another."""
        def listed(items: tuple[str, ...]) -> str:
            return ", ".join(items[:4]) + (f" and {len(items) - 4} more" if len(items) > 4 else "")

        if self.alone == "fails":
            head = (f"On its own: {len(self.failing_groups)} of {self.groups} groups fail "
                    f"({listed(self.failing_groups)}).")
        elif self.alone == "meets":
            head = f"On its own: all {self.groups} groups are within the band."
        else:
            head = f"On its own: cannot be judged yet ({self.groups} groups)."
        if self.failing_intersections:
            head += (f" In combination with other features, {len(self.failing_intersections)} intersection group(s) "
                     f"fail: {listed(self.failing_intersections)}.")
        return head


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
        return float("nan") if is_missing(r.get(key)) else float(r[key])

    return Disparity(
        grouping=r["grouping"], group=r["group"], metric=r["metric"], value=f("value"), ci_low=f("ci_low"),
        ci_high=f("ci_high"), support=int(r["support"]), reference_group=str(r["reference_group"]),
        reference_value=f("reference_value"),
        reference_support=0 if is_missing(r.get("reference_support")) else int(r["reference_support"]),
        ratio=f("ratio"), ratio_ci_low=f("ratio_ci_low"), ratio_ci_high=f("ratio_ci_high"),
        q_value=f("q_value"), verdict=r["verdict"],
        adj_ci_low=f("adj_ci_low"), adj_ci_high=f("adj_ci_high"), adj_level=f("adj_level"),
        comparisons=0 if is_missing(r.get("comparisons")) else int(r["comparisons"]),
        chance_note=str(r.get("chance_note") or ""),
    )


def adjusted_intervals(rows: pd.DataFrame, policy: Policy) -> pd.DataFrame:
    """Rows with intervals that agree with the verdicts (Benjamini & Yekutieli 2005).

    The q-values control the false discovery rate over all m comparisons of the audit; a 95% interval
    per comparison does not, so a flagged gap's interval may touch 1 and an unflagged one may lie outside
    the band. For the R flagged gaps (q < fdr) the false-coverage-rate adjusted interval at level
    1 - fdr·R/m is given (adj_*); an unflagged gap outside the band whose 95% interval excludes the band
    carries a note saying why it is still not significant.
    """
    out = rows.copy()
    out["adj_ci_low"] = out["adj_ci_high"] = out["adj_level"] = np.nan
    out["chance_note"] = ""
    tested = out["q_value"].notna() & out["p_value"].notna() if "p_value" in out.columns else out["q_value"].notna()
    m = int(tested.sum())
    out["comparisons"] = m
    flagged = tested & (out["q_value"] < policy.fdr) & (out["verdict"] == "outside")
    r = int((tested & (out["q_value"] < policy.fdr)).sum())
    level = 1 - policy.fdr * r / m if m and r else np.nan
    rates = flagged & out["successes"].notna() if "successes" in out.columns else flagged & False
    if m and r and rates.any():
        ref = out[out["verdict"] == "reference"].drop_duplicates(["grouping", "metric"]).set_index(["grouping", "metric"])
        keys = list(zip(out.loc[rates, "grouping"], out.loc[rates, "metric"]))
        has_ref = np.array([k in ref.index for k in keys], dtype=bool)
        idx = out.index[rates][has_ref]
        if len(idx):
            at = [k for k, h in zip(keys, has_ref) if h]
            x2 = ref.loc[at, "successes"].to_numpy(float)
            n2 = ref.loc[at, "support"].to_numpy(float)
            lo, hi = ratio_interval(out.loc[idx, "successes"].to_numpy(float), out.loc[idx, "support"].to_numpy(float),
                                    x2, n2, confidence=level)
            out.loc[idx, "adj_ci_low"], out.loc[idx, "adj_ci_high"], out.loc[idx, "adj_level"] = lo, hi, level
    if m and r and (flagged & ~rates).any():
        _adjust_log_symmetric(out, flagged & ~rates, level)
    beyond = ((out["ratio_ci_high"] < policy.ratio_low) | (out["ratio_ci_low"] > policy.ratio_high)) & \
        (out["verdict"] == "inconclusive")
    out.loc[beyond, "chance_note"] = [
        f"its 95% interval alone lies outside the band, but among {m:,} comparisons a gap this size can be "
        f"chance (q={fmt_q(q)} ≥ {policy.fdr:g})" for q in out.loc[beyond, "q_value"]]
    return out


def _adjust_log_symmetric(out: pd.DataFrame, rows: pd.Series, level: float) -> None:
    """FCR-adjusted intervals, in place, for flagged ratios of means (regression) at `level`.

    Their 95% interval is the delta method's on the log scale, ratio·exp(±z·se) (metrics/stats/regression.py), so
    se = (log hi - log lo) / 2z and the interval at any level follows exactly; a row whose interval is not centred
    on log(ratio) that way (or has none) keeps NaN, as before.
    """
    from scipy import stats

    ratio, lo, hi = (out.loc[rows, c].to_numpy(float) for c in ("ratio", "ratio_ci_low", "ratio_ci_high"))
    with np.errstate(all="ignore"):
        log_lo, log_hi, log_ratio = np.log(lo), np.log(hi), np.log(ratio)
        centred = np.isfinite(log_lo) & np.isfinite(log_hi) & np.isfinite(log_ratio) & (
            np.abs((log_lo + log_hi) / 2 - log_ratio) <= 1e-9 * np.maximum(1.0, np.abs(log_ratio)))
        se = (log_hi - log_lo) / (2 * _z())
        z = float(stats.norm.ppf(0.5 + level / 2))
    idx = out.index[rows][centred]
    out.loc[idx, "adj_ci_low"] = (ratio * np.exp(-z * se))[centred]
    out.loc[idx, "adj_ci_high"] = (ratio * np.exp(z * se))[centred]
    out.loc[idx, "adj_level"] = level


def worst_disparities(rows: pd.DataFrame, features: Iterable[str] | None = None, limit: int = 5,
                      metrics: Sequence[str] = HEADLINE_METRICS, policy: Policy | None = None) -> list[Disparity]:
    """The largest gaps on the headline metrics: significant ones first, then by size of the log-ratio."""
    if policy is not None and "adj_level" not in rows.columns:
        rows = adjusted_intervals(rows, policy)
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
                     metrics: Sequence[str] = HEADLINE_METRICS, policy: Policy | None = None) -> list[FeatureVerdict]:
    """A policy verdict per sensitive feature (see the module docstring for the rule)."""
    if policy is not None and "adj_level" not in rows.columns:
        rows = adjusted_intervals(rows, policy)
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
        own_out = outside[outside["grouping"] == feat]
        inter_out = outside[outside["grouping"] != feat]
        alone = ("fails" if len(own_out) else "cannot_judge" if (len(inconclusive) or len(small) or judged.empty)
                 else "meets")
        detail = {"alone": alone, "failing_groups": tuple(dict.fromkeys(own_out["group"])),
                  "failing_intersections": tuple(dict.fromkeys(inter_out["group"]))}
        if len(outside):
            ranked = outside.assign(_d=outside["slice"].map(len), _s=-np.abs(np.log(outside["ratio"].astype(float))))
            ranked = ranked.sort_values(["_d", "_s"])
            ranked = ranked.drop_duplicates(["grouping", "group"])
            reasons = tuple(_disparity(r).sentence() for r in ranked.head(3).to_dict("records"))
            status = "fails"
        elif len(inconclusive) or len(small) or judged.empty:
            reasons = tuple(
                [f"{_disparity(r).sentence()}: outside the band but not significant — "
                 + (_disparity(r).chance_note or "more data would decide it")
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
                                  worst=worst[0] if worst else None, **detail))
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
        f"have a known outcome ({label} = {positive_text(data.positive_label)} counts as positive). Every rate below "
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


# --------------------------------------------------------------------------- trend arrows
# A headline number's latest window against the window before it. The arrow shows only when the
# change is beyond its 95% interval, else "→ steady" (a wiggle inside the noise is not a trend):
# - label coverage: Newcombe's interval of the difference of the two windows' labelled shares;
# - the largest gap: the change of its log-ratio against z · √(se₁² + se₀²), each window's standard
#   error read off the Katz interval the audit uses for ratios, over the two latest windows in which
#   both the group and its reference group have enough rows (min_support).

STEADY = "→ steady"


@functools.cache
def _z() -> float:
    """The normal quantile of the 95% intervals (scipy.stats imported on first use: the report never needs it)."""
    from scipy import stats

    return float(stats.norm.ppf(0.5 + CONFIDENCE / 2))


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
    se = (np.log(hi) - np.log(lo)) / (2 * _z())
    change = log_ratio[1] - log_ratio[0]
    r0, r1 = np.exp(log_ratio)
    (w0, w1), (n0, n1), (m0, m1) = both.index, n.to_numpy(), n_ref.to_numpy()
    text = (f"{window_text(w1, grain)} vs {window_text(w0, grain)}: {fmt_ratio(r1)} (n={int(n1):,} vs "
            f"{int(m1):,}) vs {fmt_ratio(r0)} (n={int(n0):,} vs {int(m0):,})")
    which = f"{window_text(w1, grain)} vs {window_text(w0, grain)}"
    if not abs(change) > _z() * float(np.hypot(se[0], se[1])):  # NaN (no interval) counts as steady
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
    label = ""
    if worst is not None:  # the metric's label, with or without windows (an empty label is no label at all)
        info = explain(worst.metric)
        name = info.name if info else worst.metric
        label = f"Largest gap: {worst.group}, {name.lower()} vs {worst.reference_group}"
    if trends is None:
        return TrendArrows(NO_TREND, NO_TREND, label)
    return TrendArrows(coverage_arrow(trends.coverage, trends.grain), gap_arrow(trends.rows, worst, trends.grain),
                       label)
