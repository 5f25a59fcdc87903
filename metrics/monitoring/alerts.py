"""Alert rules: a small rule language, parsed by hand (never eval), evaluated on the latest period.

Forms (keywords are case-insensitive; a value with spaces or <>=& is quoted: race="Pacific Islander"):

    <metric> [value|ratio|difference] <op> <number> [for any <grouping> group | for <slice>]
    share of <slice> <op> <number>
    psi of <grouping> > <number>
    any new finding

<metric> is a rate of metrics.stats.groups.RATES (or fnr, fpr, tpr, tnr, ppv, npv) for binary audits; a
regression metric (mean_absolute_error or mae, rmse, mse, r2, mean_prediction, ...) or a multiclass one
(accuracy, balanced_accuracy, per class true_positive_rate@high, ...) for those tasks; `mae_ratio > 1.25`
reads as `mae ratio > 1.25`. <op> is <, <=, >, >=;
<grouping> is a sensitive feature or an intersection `a & b`; <slice> is `feature=value [& ...]`.
Without a scope a metric rule covers every group of every grouping.

Semantics: a rule fires for a group when the point estimate is beyond the threshold AND the data
say so with significance:
- ratio / difference: to the grouping's reference group, as in an audit; significant means the
  audit's two-sided test of the gap (score test, Fisher's exact for small counts). With the policy's
  band as threshold, a ratio rule fires exactly where an audit says `outside`.
- value and share: a one-sided exact binomial test against the threshold (scipy.stats.binomtest); for a
  mean (regression) or R² / balanced accuracy, a one-sided t (normal) test from the value's interval.
- psi: Pearson's chi-square test of the period's group counts against the baseline's.
Significance is q < policy.fdr, with Benjamini-Hochberg over every (rule, group) test of the check.
A group below min_support cannot make a rule fire; a rule none of whose groups could be evaluated
is `insufficient_data`, never `ok`. `any new finding` fires when the latest window's finding ids
(from the slice search) include one the previous window's did not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.stats.groups import grouping_name, groupings, slice_label
from fairwatch.metrics.stats.rates import RATES
from fairwatch.metrics.stats.intervals import bh_qvalues
from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.monitoring.alert_rules import OPS, Rule, parse_rule, parse_rules  # noqa: F401 - re-exported
from fairwatch.metrics.monitoring.trends import window_end, window_floor



@dataclass(frozen=True)
class FindingIds:
    """Finding ids of the slice search in the latest and the previous window."""

    latest: tuple[str, ...]
    previous: tuple[str, ...]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> FindingIds:
        """From {"latest": [...], "previous": [...]} (the --findings JSON file)."""
        if not isinstance(raw, Mapping) or not {"latest", "previous"} <= set(raw):
            raise SpecError('findings must be a JSON object {"latest": [ids...], "previous": [ids...]}')
        lists = [raw[k] for k in ("latest", "previous")]
        if not all(isinstance(v, list) and all(isinstance(i, (str, int)) for i in v) for v in lists):
            raise SpecError("findings 'latest' and 'previous' must be lists of finding ids (text or numbers)")
        return cls(latest=tuple(str(i) for i in lists[0]), previous=tuple(str(i) for i in lists[1]))


@dataclass(frozen=True)
class Hit:
    """A group for which a rule fired, with the numbers and why."""

    group: str
    value: float
    threshold: float
    p_value: float | None
    q_value: float | None
    why: str


@dataclass(frozen=True)
class RuleOutcome:
    """How one rule came out: fired, ok or insufficient_data, with its hits and a note."""

    rule: Rule
    status: str
    hits: tuple[Hit, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class Period:
    """The evaluated period and the drift baseline, as [start, end) instants."""

    start: pd.Timestamp
    end: pd.Timestamp
    baseline_start: pd.Timestamp
    baseline_end: pd.Timestamp


@dataclass(frozen=True)
class CheckInputs:
    """What the rules are evaluated on, all for the evaluated period."""

    # compute_group_table rows of the period.
    groups: pd.DataFrame | None
    # drift_table shares and tests of the period against the baseline.
    shares: pd.DataFrame
    drift: pd.DataFrame
    # Every group seen anywhere in the data (a rule naming another group is a typo).
    known_slices: frozenset[tuple[tuple[str, str], ...]]
    period_rows: int
    findings: FindingIds | None = None


@dataclass(frozen=True)
class CheckResult:
    """The outcome of `fairwatch check`: each rule's status and, for those that fired, where and why."""

    outcomes: tuple[RuleOutcome, ...]
    period: Period
    grain: str
    rows: int
    labelled_rows: int
    fdr: float
    notes: tuple[str, ...] = field(default=())

    @property
    def fired(self) -> tuple[RuleOutcome, ...]:
        """The rules that fired."""
        return tuple(o for o in self.outcomes if o.status == "fired")

    def lines(self) -> list[str]:
        """A plain-text report for the terminal."""
        p = self.period
        cover = self.labelled_rows / self.rows if self.rows else float("nan")
        out = [f"period {p.start:%Y-%m-%d %H:%M} to {p.end:%Y-%m-%d %H:%M} ({self.rows:,} rows, "
               f"{cover:.0%} labelled); baseline {p.baseline_start:%Y-%m-%d} to {p.baseline_end:%Y-%m-%d}"]
        out += [f"note: {n}" for n in self.notes]
        for o in self.outcomes:
            out.append(f"[{o.status.upper()}] {o.rule.text}" + (f" ({o.note})" if o.note else ""))
            out += [f"    {h.group}: {h.why}" for h in o.hits]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-safe data."""
        num = _json_number
        p = self.period
        return {
            "fired": bool(self.fired),
            "period": {"start": p.start.isoformat(), "end": p.end.isoformat(),
                       "baseline_start": p.baseline_start.isoformat(), "baseline_end": p.baseline_end.isoformat()},
            "grain": self.grain, "rows": self.rows, "labelled_rows": self.labelled_rows, "fdr": self.fdr,
            "notes": list(self.notes),
            "rules": [{"rule": o.rule.text, "status": o.status, "note": o.note,
                       "hits": [{"group": h.group, "value": num(h.value), "threshold": h.threshold,
                                 "p_value": num(h.p_value), "q_value": num(h.q_value), "why": h.why} for h in o.hits]}
                      for o in self.outcomes],
        }


def _json_number(value: float | None) -> float | None:
    """A finite float, or None (strict JSON has no NaN)."""
    return None if value is None or not np.isfinite(value) else float(value)


def evaluation_period(windows: pd.Series, grain: str, now: pd.Timestamp, last_days: int | None = None,
                      baseline: pd.Timestamp | None = None) -> Period:
    """The period the rules look at (now's window, or the last N whole days) and the drift baseline."""
    # The baseline is the first window (or the first N days) of the data, or the window (the N days)
    # starting at `baseline`, of the same length as the period so PSI compares like with like.
    first = pd.Timestamp(pd.to_datetime(windows).min())
    if last_days is not None:
        if last_days < 1:
            raise SpecError(f"--last-days must be at least 1, got {last_days}")
        length = pd.Timedelta(days=last_days)
        end = window_floor(now, "day") + pd.Timedelta(days=1)
        start = end - length
        base_start = window_floor(baseline, "day") if baseline is not None else first
        base_end = base_start + length
    else:
        start = window_floor(now, grain)
        end = window_end(start, grain)
        base_start = window_floor(baseline, grain) if baseline is not None else first
        base_end = window_end(base_start, grain)
    if baseline is not None and base_end > start:
        raise SpecError(f"the baseline {base_start:%Y-%m-%d} to {base_end:%Y-%m-%d} overlaps the checked period "
                        f"from {start:%Y-%m-%d}; choose an earlier baseline")
    return Period(start=start, end=end, baseline_start=base_start, baseline_end=base_end)


def known_slices(population: pd.DataFrame, spec: AuditSpec) -> frozenset[tuple[tuple[str, str], ...]]:
    """Every group of every grouping that occurs in the counts."""
    out = set()
    for cols in groupings(spec.sensitive):
        for rec in population[list(cols)].drop_duplicates().itertuples(index=False):
            out.add(tuple((c, str(v)) for c, v in zip(cols, rec)))
    return frozenset(out)


# --------------------------------------------------------------------------- evaluation


def _binom_p(successes: float, n: float, threshold: float, op: str) -> float:
    """One-sided exact binomial p-value that the true rate is beyond the threshold in the rule's direction."""
    if n <= 0 or not 0 < threshold < 1:
        return float("nan") if n <= 0 else float(not OPS[op](successes / n, threshold))
    alternative = "less" if op in ("<", "<=") else "greater"
    return float(stats.binomtest(int(round(successes)), int(n), threshold, alternative=alternative).pvalue)


def _mean_p(value: float, low: float, high: float, n: float, rule: Rule) -> float:
    """One-sided p-value that a mean (or R², balanced accuracy) is beyond the threshold, from its 95% interval.

    The intervals of task metrics are t intervals (means), normal ones (R², balanced accuracy) or the
    square root of MSE's (RMSE); the standard error is the interval's wider half over its quantile, so
    the clipping of a bound at 0 or 1 cannot shrink it.
    """
    normal = rule.metric in ("r2_score", "balanced_accuracy")
    quantile = stats.norm.ppf(0.975) if normal or n < 2 else stats.t.ppf(0.975, n - 1)
    se = max(high - value, value - low) / quantile
    if not np.isfinite(se) or se <= 0:
        return float(not OPS[rule.op](value, rule.threshold))
    z = (value - rule.threshold) / se
    dist = stats.norm if normal or n < 2 else stats.t(n - 1)
    return float(dist.cdf(z) if rule.op in ("<", "<=") else dist.sf(z))


def _check_metric(rule: Rule, inputs: CheckInputs) -> None:
    """A metric rule must name a metric the audit computes (a class that never occurs is a typo)."""
    present = list(dict.fromkeys(inputs.groups["metric"])) if inputs.groups is not None else []
    if present and rule.metric not in present:
        raise SpecError(f"alert rule {rule.text!r}: this audit has no metric {rule.metric}; its metrics are "
                        f"{', '.join(present)}")


def _check_slice(rule: Rule, inputs: CheckInputs) -> None:
    """A named group must exist somewhere in the data: a typo must not silently never (or always) fire."""
    if rule.slice and rule.slice not in inputs.known_slices:
        feats = {f for f, _ in rule.slice}
        seen = sorted({slice_label(s) for s in inputs.known_slices if {f for f, _ in s} == feats})[:12]
        raise SpecError(f"alert rule {rule.text!r}: no group {slice_label(rule.slice)} in the data; "
                        f"groups are: {', '.join(seen)}")


def _metric_candidates(rule: Rule, inputs: CheckInputs) -> list[dict]:
    """One candidate per group the metric rule covers (value, p-value, whether it is beyond)."""
    g = inputs.groups
    names = {grouping_name(c) for c in rule.groupings}
    rows = g[(g["metric"] == rule.metric) & g["grouping"].isin(names)]
    if rule.slice:
        rows = rows[rows["slice"].map(lambda s: s == rule.slice)]
    of_metric = g[g["metric"] == rule.metric]
    values = dict(zip(zip(of_metric["grouping"], of_metric["slice"]), of_metric["value"]))
    out = []
    for r in rows.to_dict("records"):
        if rule.stat == "value":
            value, defined = r["value"], not r["masked"] and pd.notna(r["value"])
            # Successes are value × support exactly (value is their ratio); the column is used when present.
            proportion = pd.notna(r.get("successes", np.nan)) or rule.metric in RATES
            x = r["successes"] if pd.notna(r.get("successes", np.nan)) else np.rint(value * r["support"])
            if not defined:
                p = np.nan
            elif proportion:
                p = _binom_p(x, r["support"], rule.threshold, rule.op)
            else:
                p = _mean_p(value, r["ci_low"], r["ci_high"], r["support"], rule)
            why = (f"{rule.metric} is {value:.3f} (95% CI {r['ci_low']:.3f}-{r['ci_high']:.3f}, "
                   f"{int(r['support']):,} rows) {rule.op} {rule.threshold:g}") if defined else ""
        else:
            if r["verdict"] == "reference":
                continue
            value = r["ratio"] if rule.stat == "ratio" else r["difference"]
            defined, p = pd.notna(value), r["p_value"]
            ref_value = values.get((r["grouping"], r["reference"]), np.nan) if r["reference"] else np.nan
            lo, hi = (r["ratio_ci_low"], r["ratio_ci_high"]) if rule.stat == "ratio" else (r["diff_ci_low"], r["diff_ci_high"])
            why = (f"{rule.metric} is {r['value']:.3f} vs {ref_value:.3f} for {slice_label(r['reference'] or ())}: "
                   f"{rule.stat} {value:.3f} (95% CI {lo:.3f}-{hi:.3f}) {rule.op} {rule.threshold:g}") if defined else ""
        out.append({"group": r["group"], "value": value, "p": p if defined else np.nan, "defined": defined,
                    "beyond": bool(defined and OPS[rule.op](value, rule.threshold)), "why": why})
    return out


def _share_candidates(rule: Rule, inputs: CheckInputs) -> list[dict]:
    """The named group's share of the period's rows, tested against the threshold."""
    total = inputs.period_rows
    s = inputs.shares
    rows = s[s["slice"].map(lambda x: x == rule.slice)]
    n = int(rows["n"].iloc[0]) if len(rows) else 0
    base = float(rows["baseline_share"].iloc[0]) if len(rows) else float("nan")
    if total == 0:
        return [{"group": slice_label(rule.slice), "value": np.nan, "p": np.nan, "defined": False,
                 "beyond": False, "why": ""}]
    share = n / total
    return [{"group": slice_label(rule.slice), "value": share, "p": _binom_p(n, total, rule.threshold, rule.op),
             "defined": True, "beyond": OPS[rule.op](share, rule.threshold),
             "why": f"share is {share:.2%} ({n:,} of {total:,} rows) {rule.op} {rule.threshold:.2%}; "
                    f"baseline share {base:.2%}"}]


def _psi_candidates(rule: Rule, inputs: CheckInputs) -> list[dict]:
    """The grouping's PSI against the baseline, with the chi-square p-value."""
    name = grouping_name(rule.groupings[0])
    rows = inputs.drift[inputs.drift["grouping"] == name]
    if rows.empty or inputs.period_rows == 0:
        return [{"group": name, "value": np.nan, "p": np.nan, "defined": False, "beyond": False, "why": ""}]
    r = rows.iloc[0]
    return [{"group": name, "value": float(r["psi"]), "p": float(r["p_value"]), "defined": pd.notna(r["psi"]),
             "beyond": OPS[rule.op](float(r["psi"]), rule.threshold),
             "why": f"PSI {r['psi']:.3f} {rule.op} {rule.threshold:g} against the baseline "
                    f"(chi-square {r['statistic']:.1f} on {int(r['dof'])} df, {int(r['n']):,} vs {int(r['baseline_n']):,} rows)"}]


def evaluate_rules(rules: Sequence[Rule], inputs: CheckInputs, spec: AuditSpec) -> tuple[RuleOutcome, ...]:
    """Evaluate every rule on the period; one BH family over all (rule, group) tests of the check."""
    fdr = spec.policy.fdr
    per_rule: list[list[dict]] = []
    for rule in rules:
        _check_slice(rule, inputs)
        if rule.kind == "metric":
            if inputs.groups is None:
                raise SpecError(f"alert rule {rule.text!r} needs labelled rows, but none were counted")
            _check_metric(rule, inputs)
            per_rule.append(_metric_candidates(rule, inputs))
        elif rule.kind == "share":
            per_rule.append(_share_candidates(rule, inputs))
        elif rule.kind == "psi":
            per_rule.append(_psi_candidates(rule, inputs))
        else:
            per_rule.append([])
    flat = [c for cands in per_rule for c in cands]
    q = bh_qvalues([c["p"] for c in flat]) if flat else np.array([])
    for c, qv in zip(flat, q):
        c["q"] = float(qv)
    outcomes = []
    for rule, cands in zip(rules, per_rule):
        if rule.kind == "new_finding":
            outcomes.append(_new_findings(rule, inputs))
            continue
        hits = tuple(
            Hit(group=c["group"], value=float(c["value"]), threshold=rule.threshold, p_value=c["p"], q_value=c["q"],
                why=f"{c['why']}; q = {c['q']:.2g} < {fdr:g}")
            for c in cands if c["beyond"] and c["q"] < fdr
        )
        undefined = sum(not c["defined"] for c in cands)
        beyond_only = sum(c["beyond"] and not c["q"] < fdr for c in cands)
        notes = []
        if undefined:
            notes.append(f"{undefined} of {len(cands)} group(s) had too little data (min_support "
                         f"{spec.policy.min_support}) to evaluate")
        if beyond_only:
            notes.append(f"{beyond_only} group(s) beyond the threshold but not significant (q ≥ {fdr:g})")
        status = "fired" if hits else ("insufficient_data" if undefined == len(cands) else "ok")
        outcomes.append(RuleOutcome(rule=rule, status=status, hits=hits, note="; ".join(notes)))
    return tuple(outcomes)


def _new_findings(rule: Rule, inputs: CheckInputs) -> RuleOutcome:
    """Fires when the latest window has finding ids the previous one did not."""
    if inputs.findings is None:
        raise SpecError(f"alert rule {rule.text!r} needs the finding ids of the latest and previous window "
                        "(--findings FILE)")
    new = [i for i in inputs.findings.latest if i not in set(inputs.findings.previous)]
    hits = tuple(Hit(group=i, value=1.0, threshold=0.0, p_value=None, q_value=None,
                     why="finding in the latest window, not in the previous one") for i in new)
    return RuleOutcome(rule=rule, status="fired" if hits else "ok", hits=hits,
                       note=f"{len(inputs.findings.latest)} finding(s) now, {len(inputs.findings.previous)} before")
