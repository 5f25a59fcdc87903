"""Data plan: spend a labelling budget (rows) on the open questions that more labelled rows would settle.

Candidates are the audit's "more data" needs whose gap is undecided and for which the power rule
gave a number (`metrics/discovery/diagnosis.py.rows_plan`): findings with need 'more_data' and sensitive groups
whose diagnosis carries an ``additional_rows_plan``. That number is the labelled rows at which the
gap would be detected with 80% power at the Benjamini-Hochberg level its verdict needs (the largest
p-value that gets a q-value below the policy's fdr among the audit's comparisons), not at an
unadjusted 0.05, so "settled" here means what the verdict means. A group that is only under-represented needs
more rows *from the population*, not labels, so it is listed as skipped, not planned.

Weight of a question (its severity): ``|gap| x people``, where gap is the slice's rate minus its
comparison's (the target rate of the power rule when the rate is withheld) and people is the
slice's share of the population served: the larger of its share of the audited rows and its
reference share, so a group the log under-samples is weighed by the people it stands for.

Objective, greedy, in two passes (stated on every plan):

1. Settle: maximise the total weight of questions settled, a question being settled when it gets
   all its ``additional_rows`` and its pool of unlabelled rows holds them. This is a knapsack; the
   greedy takes questions by weight per row (then weight, then id) while they fit, the classic
   approximation that is exact when every question fits.
2. Spread: the rest of the budget goes to every question with unlabelled rows left, in proportion
   to its weight (largest remainder, capped by each pool): an unsettled question gains precision, a
   settled one a margin over the 80% power the rule aims at.

Budget beyond every pool stays unspent and the plan says so. After the plan, each slice's expected
95% interval is the Wilson interval at the new denominator with the current rate; the denominator
grows with the allocation at the slice's current mix (e.g. positives per labelled row for a
false-negative rate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fairwatch.metrics.discovery.diagnosis import metric_text
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.stats.intervals import wilson_interval
from fairwatch.metrics.discovery.quality import LABEL_ERRORS
from fairwatch.metrics.audit.snapshot import AuditSnapshot, clean

Slice = tuple[tuple[str, str], ...]

OBJECTIVE = ("greedy: first settle the questions with the most weight per labelled row while they fit the budget and "
             "their pool of unlabelled rows (maximising the weighted number of questions settled), then spread the "
             "rest over every question with rows left in proportion to weight, capped by each pool; weight = |gap| x the "
             "slice's share of the population served")


@dataclass(frozen=True)
class PlanCandidate:
    """One open question that labelled rows would settle, with what it needs."""

    id: str
    slice: Slice
    metric: str
    origin: str  # finding | group
    n: int  # rows in the metric's denominator now
    labelled_n: int
    rate: float | None
    comparison_rate: float | None
    gap: float
    population_share: float
    additional_rows: int
    verdict: str
    alpha: float | None = None  # the test's level the rows were counted at (the BH level the verdict needs)

    @property
    def weight(self) -> float:
        """Severity: |gap| x share of the population served."""
        return abs(self.gap) * self.population_share


@dataclass(frozen=True)
class PlanItem:
    """The rows a plan gives one question, and the interval expected after labelling them."""

    candidate: PlanCandidate
    available: int | None  # unlabelled rows in the slice (None: not counted)
    allocated: int
    settles: bool
    ci_low: float | None
    ci_high: float | None
    expected_ci_low: float | None
    expected_ci_high: float | None
    reason: str

    @property
    def expected_width(self) -> float | None:
        """The expected 95% interval width after the plan."""
        if self.expected_ci_low is None or self.expected_ci_high is None:
            return None
        return self.expected_ci_high - self.expected_ci_low

    def to_row(self) -> dict[str, Any]:
        """One CSV row."""
        c = self.candidate
        width = None if self.ci_low is None or self.ci_high is None else self.ci_high - self.ci_low
        return clean({"id": c.id, "group": slice_label(c.slice), "metric": c.metric, "origin": c.origin,
                      "verdict": c.verdict, "n": c.n, "labelled_n": c.labelled_n, "rate": c.rate,
                      "comparison_rate": c.comparison_rate, "gap": c.gap, "population_share": c.population_share,
                      "weight": c.weight, "additional_rows": c.additional_rows, "alpha": c.alpha,
                      "available": self.available,
                      "allocated": self.allocated, "settles": self.settles, "ci_low": self.ci_low,
                      "ci_high": self.ci_high, "ci_width": width, "expected_ci_low": self.expected_ci_low,
                      "expected_ci_high": self.expected_ci_high, "expected_ci_width": self.expected_width,
                      "reason": self.reason})


@dataclass(frozen=True)
class DataPlan:
    """A labelling budget allocated over the open questions, with the objective and every caveat."""

    budget: int
    items: tuple[PlanItem, ...]
    skipped: tuple[tuple[str, str], ...]  # (group, why it is not planned)
    notes: tuple[str, ...]
    objective: str = OBJECTIVE

    @property
    def allocated(self) -> int:
        """Rows the plan spends."""
        return sum(i.allocated for i in self.items)

    def allocation(self) -> dict[Slice, int]:
        """Rows per slice (a slice named by two questions gets the larger of the two)."""
        out: dict[Slice, int] = {}
        for i in self.items:
            out[i.candidate.slice] = max(out.get(i.candidate.slice, 0), i.allocated)
        return out

    def table(self) -> pd.DataFrame:
        """One row per question, the CSV's columns."""
        return pd.DataFrame([i.to_row() for i in self.items])

    def to_dict(self) -> dict[str, Any]:
        """The `data_plan` section of a snapshot document: budget, objective, and each question's place and rows."""
        # Each item names its slice, so small-cell suppression withholds it with its group.
        return {"budget": self.budget, "allocated": self.allocated, "unspent": self.budget - self.allocated,
                "objective": self.objective,
                "items": [{"rank": k, "slice": dict(i.candidate.slice)} | i.to_row()
                          for k, i in enumerate(self.items, 1)],
                "skipped": [{"group": g, "reason": r} for g, r in self.skipped], "notes": list(self.notes)}


def _share(snapshot: AuditSnapshot, slice_: Slice, rows: int) -> float:
    """The larger of the slice's share of the audited rows and (one feature) its reference share."""
    observed = rows / snapshot.data.rows if snapshot.data.rows else 0.0
    if len(slice_) == 1:
        feature, value = slice_[0]
        observed = max(observed, float(snapshot.spec.shares_for(feature).get(value, 0.0)))
    return observed


def _candidate(id_: str, slice_: Slice, origin: str, ev: Mapping[str, Any], rows: int, verdict: str,
               snapshot: AuditSnapshot) -> PlanCandidate | None:
    """A candidate from a diagnosis' evidence, None when the power rule gave no number of rows."""
    plan = ev.get("additional_rows_plan") or {}
    extra = plan.get("additional_labelled_rows")
    if extra is None or int(extra) <= 0:
        return None
    rate, comp = ev.get("rate"), ev.get("comparison_rate")
    target = rate if rate is not None else plan.get("target_rate")
    gap = (target - comp) if (target is not None and comp is not None) else 0.0
    labelled = ev.get("labelled_rows") or ev.get("support") or 0
    return PlanCandidate(id=id_, slice=slice_, metric=str(ev.get("metric")), origin=origin,
                         n=int(ev.get("support") or 0), labelled_n=int(labelled), rate=rate, comparison_rate=comp,
                         gap=float(gap), population_share=_share(snapshot, slice_, rows),
                         additional_rows=int(extra), verdict=verdict, alpha=plan.get("alpha"))


def plan_candidates(snapshot: AuditSnapshot) -> tuple[list[PlanCandidate], list[tuple[str, str]]]:
    """The open questions labelled rows would settle, and the 'more data' needs that labels cannot settle."""
    out, skipped = [], []
    for f in snapshot.findings or ():
        if f.need != "more_data":
            continue
        c = _candidate(f.id, f.slice, "finding", f.evidence, f.n, str(f.evidence.get("verdict")), snapshot)
        if c is None:
            skipped.append((slice_label(f.slice), "the power rule gives no number of rows that would settle it"))
        else:
            out.append(c)
    needs = snapshot.group_needs if snapshot.group_needs is not None else pd.DataFrame()
    for r in needs.to_dict("records") if len(needs) else []:
        if r["need"] != "more_data":
            continue
        slice_ = tuple(tuple(p) for p in r["slice"])
        rows = int(snapshot.representation.loc[snapshot.representation["slice"].map(tuple) == slice_, "n"].sum()) \
            if len(snapshot.representation) else 0
        id_ = f"{r['metric']}|" + "&".join(f"{k}={v}" for k, v in sorted(slice_))
        c = _candidate(id_, slice_, "group", r["evidence"], rows, r["verdict"], snapshot)
        if c is not None:
            out.append(c)
        elif (r["evidence"].get("representation") or {}).get("under_represented"):
            skipped.append((r["group"], "under-represented: it needs more rows from the population, not labels"))
        else:
            skipped.append((r["group"], "the power rule gives no number of rows that would settle it"))
    return out, skipped


def _expected(c: PlanCandidate, allocated: int) -> tuple[float | None, float | None, float | None, float | None]:
    """(low, high) now and after the plan: Wilson at the current rate, the denominator grown at the slice's mix."""
    if c.rate is None or c.n <= 0:
        return None, None, None, None
    per_row = c.n / c.labelled_n if c.labelled_n > 0 else 1.0
    new_n = c.n + allocated * min(per_row, 1.0)
    low, high = wilson_interval([c.rate * c.n, c.rate * new_n], [c.n, new_n])
    return float(low[0]), float(high[0]), float(low[1]), float(high[1])


def _spread(amount: int, weights: dict[str, float], room: dict[str, int]) -> dict[str, int]:
    """`amount` rows in proportion to weight (largest remainder), never beyond each key's room."""
    out = {k: 0 for k in weights}
    left = amount
    while left > 0:
        open_ = {k: w for k, w in weights.items() if room[k] - out[k] > 0}
        if not open_:
            break
        total = sum(open_.values()) or float(len(open_))
        shares = {k: left * ((w / total) if sum(open_.values()) else 1 / len(open_)) for k, w in open_.items()}
        given = {k: min(int(math.floor(s)), room[k] - out[k]) for k, s in shares.items()}
        if not any(given.values()):
            # Fewer rows left than questions: one each, largest remainder (then weight) first.
            for k in sorted(open_, key=lambda k: (-(shares[k] - math.floor(shares[k])), -open_[k], k))[:left]:
                given[k] = 1
        for k, g in given.items():
            out[k] += g
        left -= sum(given.values())
    return out


def build_plan(snapshot: AuditSnapshot, budget: int, available: Mapping[Slice, int] | None = None) -> DataPlan:
    """Allocate `budget` labelled rows over the audit's open questions (see the module docstring for the objective).

    available: unlabelled rows per slice (`connectors.queue.fetch_unlabelled_counts`); None plans as if
    every pool were unlimited and says so.
    """
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise DataError(f"the labelling budget must be a whole number of rows, 0 or more; got {budget!r}")
    candidates, skipped = plan_candidates(snapshot)
    notes: list[str] = []
    if snapshot.spec.task != "binary":
        how = ("the rows come from the power for means (Welch's test, normal approximation)"
               if snapshot.spec.task == "regression" else "the rows come from the power for rates, as in binary audits")
        notes.append(f"this {snapshot.spec.task} audit's open questions are the undecided gaps of its headline measures "
                     f"and slice findings; {how}")
    if snapshot.findings is None and snapshot.group_needs is None:
        notes.append("the audit ran without the slice search, so it has no data needs to plan for; "
                     "audit with the slice search to get a plan")
    if not candidates:
        notes.append("no open question that more labelled rows would settle: the plan is empty")
        return DataPlan(budget, (), tuple(skipped), tuple(notes))
    if available is None:
        notes.append("unlabelled rows per slice were not counted: the plan assumes every slice has enough")
    pool = {c.id: (None if available is None else int(available.get(c.slice, 0))) for c in candidates}
    room = {c.id: (c.additional_rows if pool[c.id] is None else pool[c.id]) for c in candidates}
    if available is None:
        # Without pool counts, the spread pass may still give a question more than it needs.
        room = {k: max(v, budget) for k, v in room.items()}
    alloc = {c.id: 0 for c in candidates}
    settled: set[str] = set()
    left = budget
    for c in sorted(candidates, key=lambda c: (-c.weight / c.additional_rows, -c.weight, c.id)):
        fits = pool[c.id] is None or pool[c.id] >= c.additional_rows
        if fits and c.additional_rows <= left:
            alloc[c.id], left = c.additional_rows, left - c.additional_rows
            settled.add(c.id)
    # Every question with room left shares the rest: a settled one gains power, an unsettled one precision.
    rest = {c.id: c.weight for c in candidates}
    extra = _spread(left, rest, {k: max(room[k] - alloc[k], 0) for k in rest})
    for k, v in extra.items():
        alloc[k] += v
    spent = sum(alloc.values())
    if budget == 0:
        notes.append("the budget is 0 rows: nothing is allocated; the table shows what each question would need")
    elif spent < budget:
        notes.append(f"the budget of {budget:,} rows exceeds the unlabelled rows of the slices that need data: "
                     f"{spent:,} rows are planned and {budget - spent:,} stay unspent")
    items = []
    for c in sorted(candidates, key=lambda c: (-alloc[c.id], -c.weight, c.id)):
        lo, hi, elo, ehi = _expected(c, alloc[c.id])
        settles = c.id in settled
        if settles:
            more = alloc[c.id] - c.additional_rows
            why = (f"the {c.additional_rows:,} rows the power rule asks for to settle its {metric_text(c.metric)}"
                   + (f", plus {more:,} for a margin over 80% power" if more else ""))
        elif pool[c.id] is not None and pool[c.id] < c.additional_rows:
            why = (f"only {pool[c.id]:,} unlabelled rows exist for the {c.additional_rows:,} needed: labels alone "
                   f"cannot settle it; {alloc[c.id]:,} narrow its interval")
        else:
            why = f"{alloc[c.id]:,} of the {c.additional_rows:,} rows needed: the budget ran out for settling it"
        items.append(PlanItem(c, pool[c.id], alloc[c.id], settles, lo, hi, elo, ehi, why))
    return DataPlan(budget, tuple(items), tuple(skipped), tuple(notes))


def plan_places(snapshot: AuditSnapshot, plan: DataPlan) -> dict[str, str]:
    """Each finding's place in the data plan, by finding id: its rank and rows there, or why labels are not its fix."""
    ranked = {i.candidate.id: (k, i) for k, i in enumerate(plan.items, 1)}
    skipped = dict(plan.skipped)
    out = {}
    for f in snapshot.findings or ():
        fired = (f.evidence.get("quality") or {}).get("signals_fired") or []
        if f.id in ranked:
            k, item = ranked[f.id]
            need = item.candidate.additional_rows
            out[f.id] = (f"#{k} of {len(plan.items)} in the plan: {item.allocated:,} labelled rows planned, "
                         + (f"{need:,} settle it" if item.settles else f"of the {need:,} that would settle it"))
        elif f.need == "more_data":
            why = skipped.get(slice_label(f.slice), "the power rule gives no number of rows that would settle it")
            out[f.id] = f"not planned: {why}"
        elif f.need == "better_data" and LABEL_ERRORS in fired:
            out[f.id] = "in the labelling queue: its suspected label errors, to re-check"
        elif f.need == "better_data":
            out[f.id] = "not in the plan: fix its data first; more labels of bad data would not settle it"
        elif f.need == "model":
            out[f.id] = "not in the plan: it has enough labelled rows; the model needs the fix"
        else:
            out[f.id] = "not in the plan: nothing to settle"
    return out


def allocation_chart(plan: DataPlan) -> Any:
    """Rows per question (bar; the rows needed to settle it as a tick), with n and the interval now and after."""
    import altair as alt

    frame = plan.table()
    if frame.empty:
        frame = pd.DataFrame({"group": [], "allocated": [], "additional_rows": []})
    base = alt.Chart(frame).encode(y=alt.Y("group:N", sort="-x", title=None))
    tooltip = [alt.Tooltip(c, title=t) for c, t in (
        ("group:N", "Group"), ("metric:N", "Metric"), ("allocated:Q", "Rows planned"),
        ("additional_rows:Q", "Rows to settle it"), ("available:Q", "Unlabelled rows"), ("n:Q", "n now"),
        ("ci_width:Q", "95% interval width now"), ("expected_ci_width:Q", "Expected width after"))
        if c.split(":")[0] in frame.columns]
    bars = base.mark_bar(color="#4e79a7").encode(x=alt.X("allocated:Q", title="Labelled rows"), tooltip=tooltip)
    ticks = base.mark_tick(color="#e15759", thickness=2, size=18).encode(x="additional_rows:Q", tooltip=tooltip)
    return (bars + ticks).properties(height=max(60, 28 * len(frame)))
