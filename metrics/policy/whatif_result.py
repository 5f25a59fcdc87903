"""The what-if's result: the fitted rules on the fit range and on a later range they never saw, in numbers and words.

metrics/policy/whatif.py finds the rules; this module splits the time range (fit on every window but the
latest, check on the latest), compares the rules with today's decisions on each range (rates with
Wilson intervals, the objective, changed decisions, the constrained rate's largest gap, and the
Overview's verdict rule), writes the policy file and the snapshot's `whatif` section, and builds the
display tables of the page and the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fairwatch.metrics.policy.whatif import (
    POLICY_FORMAT,
    RATE_NAMES,
    SIMPLE_CONSTRAINTS,
    WhatIfFit,
    apply_rules,
    changed_decisions,
    expected_labelled,
    objective_value,
    rate_table,
)

# --------------------------------------------------------------------------- fit range, evaluation range


def split_ranges(first: pd.Timestamp, last: pd.Timestamp, row_filter, grain: str | None = None):
    """Fit on every window but the latest, evaluate on the latest (windows as metrics.monitoring.trends defines them).

    Returns (fit filter, evaluation filter or None, grain, a sentence). With one window only there is
    no later data: the fit uses it all and the sentence says so.
    """
    from dataclasses import replace

    from fairwatch.metrics.monitoring.trends import choose_grain, window_floor

    grain = choose_grain(first, last, grain)
    latest = window_floor(last, grain)
    if latest <= window_floor(first, grain):
        return row_filter, None, grain, (f"the data spans a single {grain}: the thresholds are fitted on all of it and "
                                         f"there is no later {grain} to check them on")
    fit_to = (latest - pd.Timedelta(microseconds=1)).isoformat()
    fit = replace(row_filter, time_to=fit_to)
    later = replace(row_filter, time_from=latest.isoformat())
    return fit, later, grain, (f"fitted on the rows before {latest:%Y-%m-%d}, checked on the latest {grain} "
                               f"(from {latest:%Y-%m-%d}), which the thresholds never saw")


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class RangeResult:
    """Today's decisions next to the what-if rules on one range of rows."""

    name: str  # "fit" or "evaluation"
    description: str  # which rows
    rows: int  # labelled rows with a score
    rates: pd.DataFrame  # group, metric, today, today_low, today_high, whatif, whatif_low, whatif_high, support
    objective_today: float
    objective_whatif: float
    changes: pd.DataFrame  # group, rows, no_to_yes, yes_to_no, changed_share
    verdict_today: tuple  # FeatureVerdicts (the Overview's rule)
    verdict_whatif: tuple
    gap_today: float  # largest difference between groups of the constrained rate(s), over groups with support
    gap_whatif: float
    too_small: bool
    note: str


def _gap(rates: pd.DataFrame, metrics: Sequence[str], column: str, min_support: int) -> float:
    """The largest max-minus-min over groups with enough support, of the constrained rate(s)."""
    sel = rates[rates["metric"].isin(metrics) & (rates["support"] >= min_support)]
    if sel.empty:
        return float("nan")
    spread = sel.groupby("metric")[column].agg(lambda v: v.max() - v.min())
    return float(spread.max())


def constrained_metrics(constraint: str) -> tuple[str, ...]:
    """The rate(s) a constraint equalises."""
    if constraint == "equalized_odds":
        return ("true_positive_rate", "false_positive_rate")
    return (SIMPLE_CONSTRAINTS[constraint],)


def evaluate_range(fit: WhatIfFit, cells: pd.DataFrame, spec, features: Sequence[str], name: str,
                   description: str) -> RangeResult:
    """Rates with intervals, objective, changed decisions, gap and the Overview's verdict, today and what-if."""
    from dataclasses import replace

    from fairwatch.metrics.stats.groups import compute_group_table
    from fairwatch.metrics.policy.overview import feature_verdicts

    min_support = spec.policy.min_support
    applied = apply_rules(cells, fit)
    today, whatif = rate_table(applied, "y_pred"), rate_table(applied, "p_yes")
    rates = today.rename(columns={"value": "today", "ci_low": "today_low", "ci_high": "today_high"})
    rates[["whatif", "whatif_low", "whatif_high"]] = whatif[["value", "ci_low", "ci_high"]].to_numpy()
    rates = rates[["group", "metric", "today", "today_low", "today_high", "whatif", "whatif_low", "whatif_high",
                   "support"]]
    sub_spec = replace(spec, sensitive=tuple(features))
    verdicts = []
    for decision in ("y_pred", "p_yes"):
        labelled = expected_labelled(applied, features, decision)
        population = labelled.groupby(list(features), as_index=False, sort=True)["n"].sum()
        table = compute_group_table(labelled, population, None, sub_spec)
        with np.errstate(divide="ignore"):  # a rate of 0 has a log-ratio of -inf in the ranking: harmless
            verdicts.append(tuple(feature_verdicts(table.rows, list(features))))
    metrics = constrained_metrics(fit.constraint)
    rows = int(cells["n"].sum())
    small = rates[rates["metric"].isin(metrics) & (rates["support"] < min_support)]["group"].unique().tolist()
    optimised = [r.group for r in fit.rules if not r.kept]
    judged = [g for g in optimised if g not in small]
    too_small = len(judged) < 2
    if too_small:
        note = (f"too few labelled rows to judge ({rows:,}): fewer than two of the optimised groups have "
                f"{min_support} rows for the {' and '.join(m.replace('_', ' ') for m in metrics)}")
    elif small:
        note = f"{len(small)} group(s) too small to judge here: {', '.join(small)}"
    else:
        note = ""
    return RangeResult(name=name, description=description, rows=rows, rates=rates,
                       objective_today=objective_value(applied, "y_pred", fit.objective),
                       objective_whatif=objective_value(applied, "p_yes", fit.objective),
                       changes=changed_decisions(applied), verdict_today=verdicts[0], verdict_whatif=verdicts[1],
                       gap_today=_gap(rates, metrics, "today", min_support),
                       gap_whatif=_gap(rates, metrics, "whatif", min_support), too_small=too_small, note=note)


@dataclass(frozen=True)
class WhatIfResult:
    """The fitted rules, and what they do on the fit range and on a later range they never saw."""

    grouping: tuple[str, ...]
    fit: WhatIfFit
    fit_filter: object  # RowFilter
    eval_filter: object | None
    fitted: RangeResult
    later: RangeResult | None
    split_note: str
    score_decimals: int

    def survival(self) -> float:
        """Share of today's gap that the what-if leaves on the later range (NaN when it cannot be judged)."""
        if self.later is None or self.later.too_small or not self.later.gap_today > 0:
            return float("nan")
        return self.later.gap_whatif / self.later.gap_today

    def summary(self) -> tuple[str, ...]:
        """The result in a few plain sentences."""
        metrics = " and ".join(m.replace("_", " ") for m in constrained_metrics(self.fit.constraint))
        aim = "minimising" if self.fit.objective.name == "cost" else "maximising"
        lines = [f"{self.fit.constraint.replace('_', ' ')} on {' × '.join(self.grouping)}, {aim} "
                 f"{self.fit.objective.describe()}: {self.fit.message}."]
        if not self.fit.feasible:
            lines.insert(0, "The constraint cannot be met with these scores.")
        f = self.fitted
        lines.append(f"On the fit range ({f.rows:,} labelled rows) the largest gap in the {metrics} goes from "
                     f"{_pts(f.gap_today)} to {_pts(f.gap_whatif)}; {self._objective_words(f)}.")
        if self.later is None:
            lines.append(self.split_note[0].upper() + self.split_note[1:] + ".")
        elif self.later.too_small:
            lines.append(f"On the later range: {self.later.note}; wait for more labels before trusting these thresholds.")
        else:
            s = self.survival()
            lines.append(f"On the later range ({self.later.rows:,} labelled rows, never seen by the fit) the gap "
                         f"goes from {_pts(self.later.gap_today)} to {_pts(self.later.gap_whatif)}"
                         + (f": {100 * s:.0f}% of today's gap survives" if s == s else "")
                         + f"; {self._objective_words(self.later)}.")
        return tuple(lines)

    def _objective_words(self, r: RangeResult) -> str:
        """'accuracy 0.812 today, 0.806 with the what-if'."""
        what = "cost per decision" if self.fit.objective.name == "cost" else self.fit.objective.name.replace("_", " ")
        return f"{what} {r.objective_today:.4f} today, {r.objective_whatif:.4f} with the what-if"

    def policy(self) -> dict:
        """The small JSON policy file: per-group rules, constraint, objective, ranges, data fingerprint."""
        def rng(f) -> dict | None:
            return None if f is None else {"model_version": f.model_version, "time_from": f.time_from,
                                          "time_to": f.time_to}
        fit = self.fit
        return {
            "format": POLICY_FORMAT,
            "grouping": list(self.grouping),
            "constraint": fit.constraint,
            "objective": {"name": fit.objective.name, "cost_false_negative": fit.objective.cost_fn,
                          "cost_false_positive": fit.objective.cost_fp},
            "tolerance": {"kind": fit.tolerance.kind, "max_difference": fit.tolerance.value,
                          "band": [fit.tolerance.low, fit.tolerance.high], "reference": fit.tolerance.reference,
                          "text": fit.tolerance.describe()},
            "randomised": fit.randomise,
            "grid_size": fit.grid_size,
            "score_decimals": self.score_decimals,
            "fit_range": rng(self.fit_filter),
            "evaluation_range": rng(self.eval_filter),
            "fingerprint": {"algorithm": "sha256 of the fit range's (group, score bucket, y_true, y_pred, n) counts",
                            "digest": fit.fingerprint},
            "feasible": fit.feasible,
            "objective_on_fit": _finite(fit.objective_value),
            "bucket_error": _finite(fit.bucket_error),
            "groups": [r.to_dict() for r in fit.rules],
        }

    def to_dict(self) -> dict:
        """`whatif` of the snapshot: the policy, the summary, both ranges' totals, and per-group tables.

        The per-group tables sit one level down (`whatif.fit_rates`, ...) so the export's small-cell
        suppression sees them as tables: a record whose `support` or `n` is below k is withheld.
        """
        def totals(r: RangeResult | None) -> dict | None:
            if r is None:
                return None
            return {"description": r.description, "rows": r.rows, "objective_today": _finite(r.objective_today),
                    "objective_whatif": _finite(r.objective_whatif), "gap_today": _finite(r.gap_today),
                    "gap_whatif": _finite(r.gap_whatif), "too_small": r.too_small, "note": r.note or None,
                    "verdict_today": {v.feature: v.status for v in r.verdict_today},
                    "verdict_whatif": {v.feature: v.status for v in r.verdict_whatif}}

        def records(frame: pd.DataFrame, rename: dict | None = None) -> list[dict]:
            if frame is None or frame.empty:
                return []
            frame = frame.rename(columns=rename or {})
            return [{k: _finite(v) for k, v in row.items()} for row in frame.to_dict("records")]

        out = {"policy": self.policy(), "summary": list(self.summary()), "split": self.split_note,
               "fit": totals(self.fitted), "later": totals(self.later), "later_gap_share": _finite(self.survival()),
               "fit_rates": records(self.fitted.rates), "fit_changes": records(self.fitted.changes, {"rows": "n"})}
        if self.later is not None:
            out["later_rates"] = records(self.later.rates)
            out["later_changes"] = records(self.later.changes, {"rows": "n"})
        return out


def _pts(value: float) -> str:
    """A rate difference in percentage points."""
    return "—" if value != value else f"{100 * value:.1f} pts"


def _finite(value):
    """JSON-safe: NaN and infinities become None, numpy scalars Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def whatif_result(fit: WhatIfFit, grouping: Sequence[str], fit_cells: pd.DataFrame, eval_cells: pd.DataFrame | None,
                  spec, fit_filter, eval_filter, split_note: str) -> WhatIfResult:
    """The rules evaluated on the fit range and (when there is one) the later range."""
    fitted = evaluate_range(fit, fit_cells, spec, grouping, "fit", _describe(fit_filter))
    later = None
    if eval_cells is not None:
        if eval_cells.empty:
            later = RangeResult("evaluation", _describe(eval_filter), 0, pd.DataFrame(), float("nan"), float("nan"),
                                pd.DataFrame(), (), (), float("nan"), float("nan"), True,
                                "no labelled row with a score in the later range yet")
        else:
            later = evaluate_range(fit, eval_cells, spec, grouping, "evaluation", _describe(eval_filter))
    return WhatIfResult(grouping=tuple(grouping), fit=fit, fit_filter=fit_filter, eval_filter=eval_filter,
                        fitted=fitted, later=later, split_note=split_note,
                        score_decimals=int(spec.policy.score_decimals))


def _describe(row_filter) -> str:
    """The rows of a range in words."""
    return "all rows" if row_filter is None else row_filter.describe()


# --------------------------------------------------------------------------- display tables (pages and report)


def rules_table(fit: WhatIfFit) -> pd.DataFrame:
    """One row per group: its rule in words and its thresholds and weights."""
    return pd.DataFrame([{"Group": r.group, "Rule": r.describe(), "Threshold 0": r.threshold0, "Weight 0": r.p0,
                          "Threshold 1": r.threshold1, "Weight 1": r.p1, "Ignore score": r.p_ignore,
                          "Randomised": r.randomised} for r in fit.rules])


def comparison_table(r: RangeResult, metrics: Sequence[str] = RATE_NAMES) -> pd.DataFrame:
    """Per group and rate: today and what-if with 95% intervals and n, plus the expected changed decisions."""
    if r.rates.empty:
        return pd.DataFrame()
    sel = r.rates[r.rates["metric"].isin(metrics)].copy()
    sel["Rate"] = sel["metric"].str.replace("_", " ")

    def interval(lo: pd.Series, hi: pd.Series) -> list[str]:
        """'0.412–0.455' per row."""
        return [f"{a:.3f}–{b:.3f}" if a == a and b == b else "—" for a, b in zip(lo, hi)]

    out = pd.DataFrame({"Group": sel["group"], "Rate": sel["Rate"], "Today": sel["today"],
                        "Today 95%": interval(sel["today_low"], sel["today_high"]), "What-if": sel["whatif"],
                        "What-if 95%": interval(sel["whatif_low"], sel["whatif_high"]), "n": sel["support"]})
    return out.reset_index(drop=True)


def changes_table(r: RangeResult) -> pd.DataFrame:
    """Per group: expected decisions turned no→yes and yes→no, and the share of its rows that change."""
    if r.changes.empty:
        return pd.DataFrame()
    c = r.changes
    return pd.DataFrame({"Group": c["group"], "Rows": c["rows"].astype(np.int64),
                         "No → yes": c["no_to_yes"].round(1), "Yes → no": c["yes_to_no"].round(1),
                         "Changed": c["changed_share"]})


def verdict_lines(r: RangeResult) -> tuple[str, ...]:
    """'race_ethnicity: fails policy today → meets policy with the what-if' per feature."""
    from fairwatch.metrics.policy.overview import STATUS_LABELS

    return tuple(f"{a.feature}: {STATUS_LABELS[a.status]} today → {STATUS_LABELS[b.status]} with the what-if"
                 for a, b in zip(r.verdict_today, r.verdict_whatif))


@dataclass(frozen=True)
class WhatIfChoice:
    """The what-if the user set on the Performance page, kept for the Audit export page to attach."""

    features: tuple[str, ...]
    constraint: str
    objective: str
    cost_fn: float
    cost_fp: float
    tolerance: str
    max_difference: float
    grain: str
    randomise: bool

    def describe(self) -> str:
        """'false negative rate parity on race_ethnicity, maximising accuracy'."""
        return (f"{self.constraint.replace('_', ' ')} on {' × '.join(self.features)}, maximising "
                f"{self.objective.replace('_', ' ')}")
