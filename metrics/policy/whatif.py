"""What would it take? Per-group (possibly randomised) thresholds that meet a fairness constraint, from bucket counts.

This is fairlearn's `ThresholdOptimizer` (Hardt et al. 2016) computed from score-bucket counts
instead of raw rows, with its grid, tie rules and interpolation mirrored step by step so a test can
hold both to each other (tests/test_whatif_oracle.py):
- per group, the scores in decreasing order give the operating points "score > t" with t the midpoint
  between two neighbouring distinct scores (+inf first, -inf last); from the counts those are
  cumulative sums over the buckets;
- each point is (constraint rate, objective) — for equalized odds (FPR, TPR) — and the upper convex
  hull of the points (Andrew's monotone chain, dropping points on a line) is interpolated at the
  grid 0, 1/grid_size, ..., 1: a grid point between two hull points is met by using the left one's
  threshold with probability p0 and the right one's with p1;
- single-rate parity takes the grid point where the groups' objectives, weighted by group size, sum
  highest (the first on ties); with a maximum difference, fairlearn's sliding window over the grid;
- equalized odds takes, at each grid FPR, the lowest TPR over the groups (a group above it mixes in
  the constant prediction with probability p_ignore) and the best overall objective (rounded to 15
  decimals, first on ties).
Exactness: when scores have no more decimals than the buckets (`[policy] score_decimals`), every
distinct score is a bucket and the result is fairlearn's own. Otherwise the candidate thresholds
are the bucket edges only: each group's objective curve lies at most δ_g below fairlearn's, δ_g the
largest change of that group's objective within one bucket, so the overall objective is at most
Σ p_g δ_g below it (`bucket_error`; the oracle test checks the bound).

Beyond fairlearn: a cost objective (cost of a false negative vs a false positive), a tolerance given
as the policy band (each group's rate within [low, high] times the reference group's), equalized odds
with a tolerance (a maximum difference or the band on both rates, `_equalized_odds_tolerance`), deterministic
thresholds only (no randomisation; then a constraint can be impossible and the closest achievable is
reported), and groups too small or without both outcomes left at today's decisions.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fairwatch.metrics.errors import FairwatchError, SpecError
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.stats.intervals import wilson_interval

SIMPLE_CONSTRAINTS = {
    "demographic_parity": "selection_rate",
    "true_positive_rate_parity": "true_positive_rate",
    "false_positive_rate_parity": "false_positive_rate",
    "false_negative_rate_parity": "false_negative_rate",
}
CONSTRAINTS = (*SIMPLE_CONSTRAINTS, "equalized_odds")
OBJECTIVES = ("accuracy", "balanced_accuracy", "cost")
# fairlearn's names for the objectives it knows (the oracle test passes these).
FAIRLEARN_OBJECTIVES = {"accuracy": "accuracy_score", "balanced_accuracy": "balanced_accuracy_score"}
GRID_SIZE = 1000
POLICY_FORMAT = "fairwatch-whatif-policy/1"
RATE_NAMES = ("selection_rate", "true_positive_rate", "false_positive_rate", "false_negative_rate", "accuracy")


class WhatIfError(FairwatchError):
    """A what-if that cannot be computed as asked (a bad constraint, objective or tolerance)."""


@dataclass(frozen=True)
class Objective:
    """What the thresholds maximise: accuracy, balanced accuracy, or minus the cost of the errors."""

    name: str = "accuracy"
    cost_fn: float = 1.0  # cost of a false negative (cost objective only)
    cost_fp: float = 1.0  # cost of a false positive

    def __post_init__(self) -> None:
        """Refuse unknown names and negative or all-zero costs."""
        if self.name not in OBJECTIVES:
            raise WhatIfError(f"unknown objective {self.name!r}; choose one of {', '.join(OBJECTIVES)}")
        if self.cost_fn < 0 or self.cost_fp < 0 or not (self.cost_fn + self.cost_fp) > 0:
            raise WhatIfError("costs of a false negative and a false positive must be >= 0 and not both 0")

    def describe(self) -> str:
        """'accuracy' or 'cost (FN 5, FP 1)'."""
        if self.name == "cost":
            return f"cost (false negative {self.cost_fn:g}, false positive {self.cost_fp:g})"
        return self.name.replace("_", " ")


@dataclass(frozen=True)
class Tolerance:
    """How far from exact parity the constraint may be: none, a maximum difference, or the policy band."""

    kind: str = "exact"  # exact | difference | band
    value: float = 0.0  # maximum difference between groups' rates (difference)
    low: float = 0.8  # band: each group's rate / the reference group's within [low, high]
    high: float = 1.25
    reference: str | None = None  # band: the reference group's label

    def __post_init__(self) -> None:
        """Refuse an unknown kind or an empty band."""
        if self.kind not in ("exact", "difference", "band"):
            raise WhatIfError(f"unknown tolerance {self.kind!r}; choose exact, difference or band")
        if self.kind == "difference" and not 0 <= self.value < 1:
            raise WhatIfError(f"a maximum difference must be between 0 and 1, not {self.value:g}")
        if self.kind == "band" and not 0 < self.low <= 1 <= self.high:
            raise WhatIfError(f"the band {self.low:g}–{self.high:g} must contain 1 (low <= 1 <= high)")

    def describe(self) -> str:
        """A few words for captions and the policy file."""
        if self.kind == "difference":
            return f"at most {self.value:g} apart"
        if self.kind == "band":
            return f"within {self.low:g}–{self.high:g} × {self.reference or 'the largest group'}'s"
        return "equal"


@dataclass(frozen=True)
class GroupRule:
    """One group's decision rule: yes with probability p0·[score > threshold0] + p1·[score > threshold1].

    With equalized odds a group may also ignore the score with probability p_ignore and say yes
    with probability `constant` (fairlearn's prediction_constant). A group not optimised keeps
    today's decisions (`kept`), with the reason in `note`.
    """

    group: str
    threshold0: float
    p0: float
    threshold1: float
    p1: float
    p_ignore: float = 0.0
    constant: float = 0.0
    kept: bool = False
    note: str = ""

    def yes_probability(self, score: np.ndarray, today: np.ndarray) -> np.ndarray:
        """Per bucket score, the chance of a yes decision (today's decision where the group is kept)."""
        if self.kept:
            return np.asarray(today, float)
        score = np.asarray(score, float)
        p = self.p0 * (score > self.threshold0) + self.p1 * (score > self.threshold1)
        if self.p_ignore:
            p = self.p_ignore * self.constant + (1 - self.p_ignore) * p
        return p

    @property
    def randomised(self) -> bool:
        """True when the rule mixes two thresholds or a constant (not one plain threshold)."""
        return not self.kept and (self.p_ignore > 0 or min(self.p0, self.p1) > 0)

    def describe(self) -> str:
        """'score > 0.45' or 'score > 0.45 (70%) or > 0.5 (30%)'."""
        if self.kept:
            return f"today's decisions ({self.note})"
        if min(self.p0, self.p1) <= 0:
            text = f"score > {_fmt_t(self.threshold1 if self.p1 >= self.p0 else self.threshold0)}"
        else:
            text = (f"score > {_fmt_t(self.threshold0)} with probability {self.p0:.3f}, "
                    f"else > {_fmt_t(self.threshold1)}")
        if self.p_ignore:
            text += f"; ignore the score with probability {self.p_ignore:.3f} (then yes with {self.constant:.3f})"
        return text

    def to_dict(self) -> dict:
        """The group's entry in the policy file."""
        return {"group": self.group, "kept_today": self.kept, "note": self.note or None,
                "rule": "yes with probability p0*[score > threshold0] + p1*[score > threshold1]; with "
                        "probability p_ignore instead yes with probability constant",
                "threshold0": _json_t(self.threshold0), "p0": self.p0, "threshold1": _json_t(self.threshold1),
                "p1": self.p1, "p_ignore": self.p_ignore, "constant": self.constant}


def _fmt_t(t: float) -> str:
    """A threshold for reading; infinities in words."""
    if np.isinf(t):
        return "+∞ (never)" if t > 0 else "−∞ (always)"
    return f"{t:.6g}"


def _json_t(t: float) -> float | str | None:
    """A threshold for JSON, which has no infinity."""
    if t != t:
        return None  # a group kept at today's decisions has no threshold
    return ("inf" if t > 0 else "-inf") if np.isinf(t) else float(t)


# --------------------------------------------------------------------------- the cells


def whatif_cells(scores: pd.DataFrame, features: Sequence[str], positive_label: str,
                 positive_prediction: str | None) -> pd.DataFrame:
    """Bucket counts as (group, features..., score, y_true, y_pred, n) from the audit's score counts.

    `scores` holds <features...>, label_raw, pred_raw, score, n (connectors.counts). Today's decision
    is pred_raw == positive_prediction, always: when the spec decides from score >= threshold, the
    engine evaluates that on each row's own score (connectors.counts.prediction_expr, '1'/'0', the
    audit's own decision), so it is exact. Re-deciding from the bucketed score here would put rows
    within half a bucket of the threshold on the wrong side. A bucket may then hold both decisions.
    Every (group, score, y_true, y_pred) appears once.
    """
    from fairwatch.metrics.audit.outcomes import normalise_value  # kept local: outcomes imports nothing from here

    cols = list(features)
    frame = scores[[*cols, "score", "n"]].copy()
    for c in cols:
        frame[c] = frame[c].astype(str)
    labels = {v: normalise_value(v) == normalise_value(positive_label) for v in scores["label_raw"].dropna().unique()}
    frame["y_true"] = scores["label_raw"].map(labels).astype(bool).astype(np.int64).to_numpy()
    if "pred_raw" in scores and positive_prediction is not None:
        preds = {v: normalise_value(v) == normalise_value(positive_prediction)
                 for v in scores["pred_raw"].dropna().unique()}
        frame["y_pred"] = scores["pred_raw"].map(preds).astype("boolean").fillna(False).astype(np.int64).to_numpy()
    else:
        raise SpecError("today's decisions are unknown: give the prediction column or a score threshold")
    out = frame.groupby([*cols, "score", "y_true", "y_pred"], as_index=False, sort=True, observed=True)["n"].sum()
    out.insert(0, "group", [slice_label(tuple(zip(cols, vals))) for vals in out[cols].itertuples(index=False, name=None)])
    return out


def raw_cells(frame: pd.DataFrame, features: Sequence[str], score: str, label: str, prediction: str) -> pd.DataFrame:
    """Raw 0/1 rows counted into whatif_cells' shape (tests and small in-memory data)."""
    cols = list(features)
    sub = frame[[*cols, score, label, prediction]].rename(columns={score: "score", label: "y_true", prediction: "y_pred"})
    sub = sub.astype({c: str for c in cols})
    out = sub.groupby([*cols, "score", "y_true", "y_pred"], as_index=False, sort=True).size().rename(columns={"size": "n"})
    out.insert(0, "group", [slice_label(tuple(zip(cols, vals))) for vals in out[cols].itertuples(index=False, name=None)])
    return out


def cells_fingerprint(cells: pd.DataFrame) -> str:
    """SHA-256 of the counts the thresholds were fitted on (order-independent: sorted first)."""
    cols = ["group", "score", "y_true", "y_pred", "n"]
    canon = cells[cols].astype({"group": str, "score": float, "y_true": np.int64, "y_pred": np.int64, "n": np.int64})
    canon = canon.sort_values(cols[:-1], kind="stable", ignore_index=True)
    # pandas' row hash has a fixed key: the same counts give the same digest in every run and on every engine.
    row_hashes = pd.util.hash_pandas_object(canon, index=False).to_numpy()
    return hashlib.sha256(json.dumps(cols).encode() + row_hashes.tobytes()).hexdigest()


# --------------------------------------------------------------------------- fairlearn's curves


@dataclass(frozen=True)
class _Points:
    """A group's operating points "score > threshold", in fairlearn's order (threshold decreasing)."""

    threshold: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    positives: int
    negatives: int


def _points(score: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> _Points:
    """Cumulative counts over the distinct scores in decreasing order, +inf first, midpoints, -inf last."""
    order = np.argsort(-score, kind="stable")
    s, p, n = score[order], pos[order], neg[order]
    below = np.r_[s[1:], -np.inf]
    threshold = np.r_[np.inf, (s + below) / 2]
    tp = np.r_[0, np.cumsum(p)].astype(np.int64)
    fp = np.r_[0, np.cumsum(n)].astype(np.int64)
    return _Points(threshold=threshold, tp=tp, fp=fp, positives=int(p.sum()), negatives=int(n.sum()))


def _metric(name: str, tp, fp, positives, negatives, objective: Objective | None = None) -> np.ndarray:
    """fairlearn's METRIC_DICT over confusion counts, with its exact order of operations."""
    tp, fp = np.asarray(tp, float), np.asarray(fp, float)
    tn, fn = negatives - fp, positives - tp
    n = tp + tn + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        if name == "selection_rate":
            return (tp + fp) / n
        if name == "false_positive_rate":
            return fp / (tn + fp)
        if name == "false_negative_rate":
            return fn / (tp + fn)
        if name == "true_positive_rate":
            return tp / (tp + fn)
        if name == "accuracy":
            return (tp + tn) / n
        if name == "balanced_accuracy":
            return 0.5 * tp / (tp + fn) + 0.5 * tn / (tn + fp)
        if name == "cost":
            return -(objective.cost_fn * fn + objective.cost_fp * fp) / n
    raise WhatIfError(f"unknown metric {name!r}")


def _upper_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the upper convex hull of points sorted by (x, y), fairlearn's monotone chain (<= drops)."""
    kept: list[int] = []
    for i in range(len(x)):
        while len(kept) >= 2:
            a, b = kept[-2], kept[-1]
            if (y[b] - y[a]) * (x[i] - x[a]) <= (y[i] - y[a]) * (x[b] - x[a]):
                kept.pop()
            else:
                break
        kept.append(i)
    return np.asarray(kept, dtype=np.int64)


@dataclass(frozen=True)
class Curve:
    """A group's trade-off curve: its hull points and the hull interpolated at the grid."""

    hull_x: np.ndarray
    hull_y: np.ndarray
    hull_threshold: np.ndarray
    y: np.ndarray  # at the grid
    p0: np.ndarray
    i0: np.ndarray  # hull index of the left point (its threshold is used with probability p0)
    p1: np.ndarray
    i1: np.ndarray
    points_x: np.ndarray  # every operating point (for deterministic thresholds and the chart)
    points_y: np.ndarray
    points_threshold: np.ndarray


def _interpolation_indices(grid: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """fairlearn's _get_interpolation_indices: xs[i] < g <= xs[i+1], the first grid point kept as is."""
    idx = np.searchsorted(xs, grid, side="right") - 1
    idx[1:] = np.where(grid[1:] == xs[idx[1:]], idx[1:] - 1, idx[1:])
    return idx


def group_curve(pts: _Points, x_metric: str, y_metric: str, grid: np.ndarray, objective: Objective) -> Curve:
    """The group's (x, y) points, their upper hull, and the hull at each grid point (fairlearn's steps)."""
    x = _metric(x_metric, pts.tp, pts.fp, pts.positives, pts.negatives, objective)
    y = _metric(y_metric, pts.tp, pts.fp, pts.positives, pts.negatives, objective)
    order = np.lexsort((y, x))  # sorted by x, then y; stable like pandas' sort_values
    xs, ys, ts = x[order], y[order], pts.threshold[order]
    hull = _upper_hull(xs, ys)
    hx, hy, ht = xs[hull], ys[hull], ts[hull]
    idx = _interpolation_indices(grid, hx)
    p0 = (hx[idx + 1] - grid) / (hx[idx + 1] - hx[idx])
    p1 = 1 - p0
    return Curve(hull_x=hx, hull_y=hy, hull_threshold=ht, y=p0 * hy[idx] + p1 * hy[idx + 1], p0=p0, i0=idx,
                 p1=p1, i1=idx + 1, points_x=x, points_y=y, points_threshold=pts.threshold)


def _tolerance_window(curves: Sequence[Curve], weights: Sequence[float], grid: np.ndarray,
                      tol: float) -> tuple[list[int], float]:
    """fairlearn's maximize_objective_with_tolerance: per group a grid index, their x range at most tol."""
    ys = [c.y * w for c, w in zip(curves, weights)]
    m = len(ys)
    deques: list[deque] = [deque() for _ in range(m)]
    best: list[int] = []
    best_value, best_violation = float("-inf"), float("inf")
    start = 0
    for end in range(len(grid)):
        for k in range(m):
            while deques[k] and ys[k][deques[k][-1]] <= ys[k][end]:
                deques[k].pop()
            deques[k].append(end)
        while grid[end] - grid[start] > tol:
            for k in range(m):
                if deques[k] and deques[k][0] == start:
                    deques[k].popleft()
            start += 1
        current = [deques[k][0] for k in range(m)]
        value = sum(ys[k][current[k]] for k in range(m))
        violation = np.ptp(grid[current])
        if value > best_value or (value == best_value and violation <= best_violation):
            best_value, best, best_violation = value, current, violation
    return best, best_value


def _band_choice(curves: Sequence[Curve], weights: Sequence[float], grid: np.ndarray, ref: int,
                 low: float, high: float) -> tuple[list[int], float]:
    """Per group a grid index whose x is within [low, high] × the reference group's x; best weighted sum."""
    best: list[int] = []
    best_value = float("-inf")
    for r in range(len(grid)):
        lo_i = int(np.searchsorted(grid, low * grid[r] - 1e-12, side="left"))
        hi_i = int(np.searchsorted(grid, high * grid[r] + 1e-12, side="right"))
        picks, value = [], 0.0
        for k, (c, w) in enumerate(zip(curves, weights)):
            if k == ref:
                j = r
            else:
                j = lo_i + int(np.argmax(c.y[lo_i:hi_i]))
            picks.append(j)
            value += w * c.y[j]
        if value > best_value:
            best, best_value = picks, value
    return best, best_value


# --------------------------------------------------------------------------- the fit


@dataclass(frozen=True)
class WhatIfFit:
    """The per-group rules and how they were found."""

    constraint: str
    objective: Objective
    tolerance: Tolerance
    randomise: bool
    grid_size: int
    rules: tuple[GroupRule, ...]
    x_metric: str
    y_metric: str
    objective_value: float  # on the fitted counts, fairlearn's number (cost: minus the cost per decision)
    bucket_error: float  # the objective is at most this far below fairlearn's on the raw rows
    feasible: bool
    message: str  # plain words: what was found, or why nothing meets the constraint
    curves: pd.DataFrame = field(repr=False)  # group, x, y, threshold, hull (bool): the chart's points
    chosen: pd.DataFrame = field(repr=False)  # group, x, y: the operating points
    fingerprint: str = ""

    def rule_of(self, group: str) -> GroupRule | None:
        """The rule of a group, if it has one."""
        return next((r for r in self.rules if r.group == group), None)


def _check(constraint: str, objective: Objective, tolerance: Tolerance, randomise: bool) -> None:
    """Refuse combinations that have no meaning."""
    if constraint not in CONSTRAINTS:
        raise WhatIfError(f"unknown constraint {constraint!r}; choose one of {', '.join(CONSTRAINTS)}")
    if constraint == "equalized_odds" and not randomise:
        raise WhatIfError("equalized_odds needs randomised decisions; allow randomisation or pick one rate's parity")


def fit_thresholds(cells: pd.DataFrame, constraint: str, objective: Objective = Objective(),
                   tolerance: Tolerance = Tolerance(), min_support: int = 30, randomise: bool = True,
                   grid_size: int = GRID_SIZE) -> WhatIfFit:
    """Per-group thresholds from bucket counts that meet the constraint and maximise the objective."""
    _check(constraint, objective, tolerance, randomise)
    if cells.empty:
        raise WhatIfError("no labelled row with a score to fit thresholds on; widen the time range")
    per = cells.groupby(["group", "score", "y_true"], sort=True)["n"].sum().unstack("y_true", fill_value=0)
    per = per.reindex(columns=[0, 1], fill_value=0)
    x_metric = "false_positive_rate" if constraint == "equalized_odds" else SIMPLE_CONSTRAINTS[constraint]
    y_metric = "true_positive_rate" if constraint == "equalized_odds" else objective.name
    grid = np.linspace(0, 1, grid_size + 1)
    names, curves, sizes, pts_of, kept = [], [], [], {}, []
    for group, sub in per.groupby(level="group", sort=True):
        score = sub.index.get_level_values("score").to_numpy(float)
        pts = _points(score, sub[1].to_numpy(np.int64), sub[0].to_numpy(np.int64))
        if pts.positives == 0 or pts.negatives == 0:
            kept.append(GroupRule(group, np.nan, 0, np.nan, 0, kept=True,
                                  note=f"no {'positive' if pts.positives == 0 else 'negative'} outcomes"))
            continue
        if _support(constraint, pts) < min_support:
            kept.append(GroupRule(group, np.nan, 0, np.nan, 0, kept=True,
                                  note=f"too few rows, below min_support {min_support}"))
            continue
        names.append(group)
        pts_of[group] = pts
        curves.append(group_curve(pts, x_metric, y_metric, grid, objective))
        sizes.append(pts.positives + pts.negatives)
    if len(names) < 2:
        raise WhatIfError(f"fewer than two groups have enough labelled rows (min_support {min_support}) with both "
                          f"outcomes; there is nothing to equalise")
    total = sum(sizes)
    weights = [s / total for s in sizes]
    ref = _reference_index(names, tolerance, sizes)
    if constraint == "equalized_odds" and (tolerance.kind == "exact"
                                           or (tolerance.kind == "difference" and not tolerance.value)):
        rules, value, chosen = _equalized_odds(names, curves, pts_of, grid, objective)
        feasible, message = True, "the groups' true and false positive rates are made equal"
    elif constraint == "equalized_odds":
        rules, value, chosen = _equalized_odds_tolerance(names, curves, pts_of, grid, objective, tolerance, ref)
        feasible, message = True, f"the groups' true and false positive rates made {tolerance.describe()}"
    elif not randomise:
        rules, value, chosen, feasible, message = _deterministic(names, curves, weights, tolerance, ref)
    else:
        if tolerance.kind == "exact" or (tolerance.kind == "difference" and not tolerance.value):
            # fairlearn: the groups' weighted objectives summed per grid point (pandas, in its order).
            overall = pd.concat([w * pd.Series(c.y) for c, w in zip(curves, weights)], axis=1).sum(axis=1)
            best = int(overall.idxmax())
            picks, value = [best] * len(names), float(overall[best])
        elif tolerance.kind == "difference":
            picks, value = _tolerance_window(curves, weights, grid, tolerance.value)
        else:
            picks, value = _band_choice(curves, weights, grid, ref, tolerance.low, tolerance.high)
        rules = [GroupRule(g, float(c.hull_threshold[c.i0[j]]), float(c.p0[j]), float(c.hull_threshold[c.i1[j]]),
                           float(c.p1[j])) for g, c, j in zip(names, curves, picks)]
        chosen = pd.DataFrame({"group": names, "x": grid[picks], "y": [c.y[j] for c, j in zip(curves, picks)]})
        feasible, message = True, f"{_RATE_WORDS[x_metric]} made {tolerance.describe()}"
    if kept:
        message += f"; {len(kept)} group(s) left at today's decisions: " + "; ".join(f"{r.group} ({r.note})" for r in kept)
    curve_rows = [pd.DataFrame({"group": g, "x": c.points_x, "y": c.points_y, "threshold": c.points_threshold,
                                "hull": np.isin(c.points_threshold, c.hull_threshold)})
                  for g, c in zip(names, curves)]
    return WhatIfFit(constraint=constraint, objective=objective, tolerance=tolerance, randomise=randomise,
                     grid_size=grid_size, rules=tuple(rules) + tuple(kept), x_metric=x_metric, y_metric=y_metric,
                     objective_value=float(value), bucket_error=_bucket_error(names, pts_of, weights, y_metric,
                                                                               objective, constraint),
                     feasible=feasible, message=message, curves=pd.concat(curve_rows, ignore_index=True),
                     chosen=chosen, fingerprint=cells_fingerprint(cells))


_RATE_WORDS = {"selection_rate": "selection rates", "true_positive_rate": "true positive rates",
               "false_positive_rate": "false positive rates", "false_negative_rate": "false negative rates"}


def _support(constraint: str, pts: _Points) -> int:
    """The denominator of the constrained rate(s): rows, positives, negatives, or both for equalized odds."""
    x = "false_positive_rate" if constraint == "equalized_odds" else SIMPLE_CONSTRAINTS[constraint]
    if constraint == "equalized_odds":
        return min(pts.positives, pts.negatives)
    if x == "selection_rate":
        return pts.positives + pts.negatives
    return pts.negatives if x == "false_positive_rate" else pts.positives


def _reference_index(names: list[str], tolerance: Tolerance, sizes: list[int]) -> int:
    """Position of the band's reference group among the optimised groups (default: the largest)."""
    if tolerance.kind != "band":
        return 0
    if tolerance.reference is None:
        return int(np.argmax(sizes))
    if tolerance.reference not in names:
        raise WhatIfError(f"the reference group {tolerance.reference!r} is not among the optimised groups "
                          f"({', '.join(names)}); the band needs it")
    return names.index(tolerance.reference)


def _equalized_odds(names: list[str], curves: list[Curve], pts_of: dict[str, _Points], grid: np.ndarray,
                    objective: Objective) -> tuple[list[GroupRule], float, pd.DataFrame]:
    """fairlearn's equalized odds: the lowest ROC hull over the groups, its best point, p_ignore per group."""
    y_values = pd.DataFrame({g: c.y for g, c in zip(names, curves)})
    y_min = np.amin(y_values, axis=1)
    n_pos = sum(pts_of[g].positives for g in names)
    n_neg = sum(pts_of[g].negatives for g in names)
    tp, fp = n_pos * y_min, n_neg * grid
    fn, tn = n_pos * (1.0 - y_min), n_neg * (1.0 - grid)
    n = tp + tn + fp + fn
    if objective.name == "accuracy":
        values = (tp + tn) / n
    elif objective.name == "balanced_accuracy":
        values = 0.5 * tp / (tp + fn) + 0.5 * tn / (tn + fp)
    else:
        values = -(objective.cost_fn * fn + objective.cost_fp * fp) / n
    values = pd.Series(np.around(values, 15))
    best = int(values.idxmax())
    x_best, y_best = grid[best], y_min[best]
    rules = []
    for g, c in zip(names, curves):
        y, x = c.y[best], grid[best]
        p_ignore = 0 if y == x else (y - y_best) / (y - x)
        rules.append(GroupRule(g, float(c.hull_threshold[c.i0[best]]), float(c.p0[best]),
                               float(c.hull_threshold[c.i1[best]]), float(c.p1[best]), p_ignore=float(p_ignore),
                               constant=float(x_best)))
    chosen = pd.DataFrame({"group": names, "x": x_best, "y": float(y_best)})
    return rules, float(values[best]), chosen


def _eo_coefficients(names: list[str], pts_of: dict[str, _Points], objective: Objective) -> tuple[np.ndarray, np.ndarray]:
    """The objective as const + Σ_g (a_g·TPR_g − b_g·FPR_g): per group a_g and b_g (it is linear in the rates)."""
    pos = np.array([pts_of[g].positives for g in names], float)
    neg = np.array([pts_of[g].negatives for g in names], float)
    n = pos.sum() + neg.sum()
    if objective.name == "accuracy":
        return pos / n, neg / n
    if objective.name == "balanced_accuracy":
        return 0.5 * pos / pos.sum(), 0.5 * neg / neg.sum()
    return objective.cost_fn * pos / n, objective.cost_fp * neg / n


def _eo_value(names: list[str], pts_of: dict[str, _Points], x: Sequence[float], y: Sequence[float],
              objective: Objective) -> float:
    """The overall objective of per-group (FPR, TPR), from the pooled counts as _equalized_odds computes it."""
    tp = sum(pts_of[g].positives * yg for g, yg in zip(names, y))
    fp = sum(pts_of[g].negatives * xg for g, xg in zip(names, x))
    n_pos = sum(pts_of[g].positives for g in names)
    n_neg = sum(pts_of[g].negatives for g in names)
    fn, tn = n_pos - tp, n_neg - fp
    if objective.name == "accuracy":
        return float((tp + tn) / (n_pos + n_neg))
    if objective.name == "balanced_accuracy":
        return float(0.5 * tp / n_pos + 0.5 * tn / n_neg)
    return float(-(objective.cost_fn * fn + objective.cost_fp * fp) / (n_pos + n_neg))


def _window_max(values: np.ndarray, width: int) -> np.ndarray:
    """Along the last axis, the maximum over [s, s + width] at each s (cut at the end), by doubling: O(n log w)."""
    out = values.copy()
    span = 1  # out[..., s] holds the max over [s, s + span - 1]
    while span < width + 1:
        step = min(span, width + 1 - span)
        shifted = np.full_like(out, -np.inf)
        shifted[..., :-step] = out[..., step:]
        out = np.maximum(out, shifted)
        span += step
    return out


_EPS = 1e-12  # float slack in the feasibility tests; the tests hold the result to 1e-9


def _eo_rules(names: list[str], curves: list[Curve], grid: np.ndarray, js: Sequence[int],
              ys: Sequence[float]) -> list[GroupRule]:
    """Per group the rule reaching (grid[j], y) below its hull: the hull's two thresholds, then ignore with p_ignore.

    Ignoring the score with probability p and saying yes with probability FPR (the constant) keeps the
    FPR and pulls the TPR from the hull towards the diagonal: p = (hull − y) / (hull − FPR), as fairlearn.
    """
    rules = []
    for g, c, j, y in zip(names, curves, js, ys):
        top, x = c.y[j], grid[j]
        p_ignore = 0.0 if top == x else min(max((top - y) / (top - x), 0.0), 1.0)
        rules.append(GroupRule(g, float(c.hull_threshold[c.i0[j]]), float(c.p0[j]), float(c.hull_threshold[c.i1[j]]),
                               float(c.p1[j]), p_ignore=float(p_ignore), constant=float(x)))
    return rules


def _equalized_odds_tolerance(names: list[str], curves: list[Curve], pts_of: dict[str, _Points], grid: np.ndarray,
                              objective: Objective, tolerance: Tolerance,
                              ref: int) -> tuple[list[GroupRule], float, pd.DataFrame]:
    """Equalized odds relaxed: each group's FPR on the grid and TPR at most `tolerance` apart (or in the band).

    fairlearn refuses a tolerance here; this keeps its construction. Each group picks a grid FPR x_g and
    a TPR y_g between the diagonal and its hull U_g(x_g) (reached by ignoring the score with some
    probability). The objective is const + Σ a_g·y_g − b_g·x_g with a_g, b_g >= 0.

    Maximum difference d: the FPRs lie in a window of d (w grid steps) and the TPRs in [T − d, T]. For
    a cap T each group takes y_g = min(U_g(x_g), T), feasible when U_g(x_g) >= T − d and x_g <= T
    (y_g >= x_g), so groups separate: a sliding-window maximum per group. Given the choices the value
    grows with T up to min_g U_g(x_g) + d, so the best T is one of the U_g(grid) + d: all are tried.
    Band [low, high] × the reference's (FPR x_r on the grid, TPR y_r): the others' FPRs lie in
    [low·x_r, high·x_r], and y_g = min(U_g(x_g), high·y_r) is feasible when U_g(x_g) >= low·y_r and
    x_g <= high·y_r; the best y_r is U_r(x_r) or one of the U_g/low below it (tried, at most
    _BAND_CANDIDATES of them per x_r, always with every U_g(x_r) so exact parity stays a candidate).
    """
    a, b = _eo_coefficients(names, pts_of, objective)
    u = np.vstack([c.y for c in curves])  # groups × grid: the hulls at the grid
    m = len(names)
    if tolerance.kind == "difference":
        d = tolerance.value
        width = int(np.floor(d * (len(grid) - 1) + 1e-9))
        caps = np.unique(u.ravel() + d)
        best_val, best_at = -np.inf, None
        for lo in range(0, len(caps), 256):  # blocks of caps: memory stays at 256 × grid per group
            t = caps[lo:lo + 256, None]
            total = np.zeros((len(t), len(grid)))
            for k in range(m):
                ok = (u[k] >= t - d - _EPS) & (grid <= t + _EPS)
                f = np.where(ok, a[k] * np.minimum(u[k], t) - b[k] * grid, -np.inf)
                total += _window_max(f, width)
            i, s = np.unravel_index(int(np.argmax(total)), total.shape)
            if total[i, s] > best_val:
                best_val, best_at = total[i, s], (float(t[i, 0]), int(s))
        cap, s = best_at
        js, ys = [], []
        for k in range(m):
            window = np.arange(s, min(s + width, len(grid) - 1) + 1)
            ok = (u[k, window] >= cap - d - _EPS) & (grid[window] <= cap + _EPS)
            f = np.where(ok, a[k] * np.minimum(u[k, window], cap) - b[k] * grid[window], -np.inf)
            j = int(window[int(np.argmax(f))])
            js.append(j)
            ys.append(float(min(u[k, j], cap)))
    else:
        low, high = tolerance.low, tolerance.high
        best_val, best_at = -np.inf, None
        for r in range(len(grid)):
            x_r, top = grid[r], u[ref, r]
            lo_i = int(np.searchsorted(grid, low * x_r - _EPS, side="left"))
            hi_i = int(np.searchsorted(grid, high * x_r + _EPS, side="right"))
            others = [k for k in range(m) if k != ref]
            cand = u[others, lo_i:hi_i].ravel() / low
            cand = cand[(cand >= x_r) & (cand < top)]
            if len(cand) > _BAND_CANDIDATES:
                cand = np.quantile(cand, np.linspace(0, 1, _BAND_CANDIDATES))
            y_r = np.unique(np.r_[cand, u[:, r][(u[:, r] >= x_r) & (u[:, r] <= top)], top])[:, None]
            total = a[ref] * y_r[:, 0] - b[ref] * x_r
            xs = grid[lo_i:hi_i]
            for k in others:
                uk = u[k, lo_i:hi_i]
                ok = (uk >= low * y_r - _EPS) & (xs <= high * y_r + _EPS)
                f = np.where(ok, a[k] * np.minimum(uk, high * y_r) - b[k] * xs, -np.inf)
                total = total + (f.max(axis=1) if f.shape[1] else -np.inf)
            i = int(np.argmax(total))
            if total[i] > best_val:
                best_val, best_at = total[i], (r, float(y_r[i, 0]), lo_i, hi_i)
        r, yr, lo_i, hi_i = best_at
        js, ys = [], []
        for k in range(m):
            if k == ref:
                js.append(r)
                ys.append(yr)
                continue
            uk, xs = u[k, lo_i:hi_i], grid[lo_i:hi_i]
            ok = (uk >= low * yr - _EPS) & (xs <= high * yr + _EPS)
            f = np.where(ok, a[k] * np.minimum(uk, high * yr) - b[k] * xs, -np.inf)
            j = lo_i + int(np.argmax(f))
            js.append(j)
            ys.append(float(min(u[k, j], high * yr)))
    rules = _eo_rules(names, curves, grid, js, ys)
    chosen = pd.DataFrame({"group": names, "x": grid[js], "y": ys})
    return rules, _eo_value(names, pts_of, grid[js], ys, objective), chosen


_BAND_CANDIDATES = 400


def _deterministic(names: list[str], curves: list[Curve], weights: list[float], tolerance: Tolerance,
                   ref: int) -> tuple[list[GroupRule], float, pd.DataFrame, bool, str]:
    """One plain threshold per group (no randomisation): the best choice within the tolerance, or the closest."""
    # Deciding the same for a whole group (threshold ±inf) meets any parity trivially; it is no threshold policy.
    real = [np.isfinite(c.points_threshold) for c in curves]
    xs = [np.where(r, c.points_x, np.nan) for c, r in zip(curves, real)]
    ys = [c.points_y * w for c, w in zip(curves, weights)]
    starts = np.unique(np.concatenate(xs))
    starts = starts[np.isfinite(starts)]
    best, best_value = None, float("-inf")
    closest, closest_gap = None, float("inf")
    for a in (starts if tolerance.kind != "band" else np.unique(xs[ref][np.isfinite(xs[ref])])):
        if tolerance.kind == "band":
            lo, hi = tolerance.low * a, tolerance.high * a
        else:
            lo, hi = a, a + tolerance.value
        picks, value, ok = [], 0.0, True
        for k, (x, y) in enumerate(zip(xs, ys)):
            if tolerance.kind == "band" and k == ref:
                inside = np.flatnonzero(x == a)
            else:
                inside = np.flatnonzero((x >= lo - 1e-12) & (x <= hi + 1e-12))
            if not len(inside):
                ok = False
                break
            j = inside[int(np.argmax(y[inside]))]
            picks.append(j)
            value += y[j]
        if ok and value > best_value:
            best, best_value = picks, value
        if tolerance.kind != "band":
            # The narrowest spread starting here: each group's first point at or above a.
            nxt = [int(np.flatnonzero(x >= a)[np.argmin(x[x >= a])]) if (x >= a).any() else -1 for x in xs]
            if min(nxt) >= 0:
                gap = max(x[j] for x, j in zip(xs, nxt)) - a
                if gap < closest_gap:
                    closest, closest_gap = nxt, gap
    if best is None:
        picks = closest if closest is not None else [int(np.argmax(y)) for y in ys]
        spread = closest_gap if closest is not None else float("nan")
        rules = [GroupRule(g, float(c.points_threshold[j]), 0.0, float(c.points_threshold[j]), 1.0)
                 for g, c, j in zip(names, curves, picks)]
        chosen = pd.DataFrame({"group": names, "x": [c.points_x[j] for c, j in zip(curves, picks)],
                               "y": [c.points_y[j] for c, j in zip(curves, picks)]})
        value = float(sum(y[j] for y, j in zip(ys, picks)))
        return rules, value, chosen, False, (
            f"no single threshold per group makes the rates {tolerance.describe()} (short of deciding the same for a "
            f"whole group): the scores are too coarse. The closest achievable keeps the rates {spread:.3f} apart "
            f"(shown); allow randomisation or widen the tolerance")
    rules = [GroupRule(g, float(c.points_threshold[j]), 0.0, float(c.points_threshold[j]), 1.0)
             for g, c, j in zip(names, curves, best)]
    chosen = pd.DataFrame({"group": names, "x": [c.points_x[j] for c, j in zip(curves, best)],
                           "y": [c.points_y[j] for c, j in zip(curves, best)]})
    return rules, float(best_value), chosen, True, f"one threshold per group, rates {tolerance.describe()}"


def _bucket_error(names: list[str], pts_of: dict[str, _Points], weights: list[float], y_metric: str,
                  objective: Objective, constraint: str) -> float:
    """How far below fairlearn's (on the raw rows) the objective can be: Σ p_g δ_g (equalized odds: see below).

    Raw thresholds inside a bucket reach points between the bucket's two end points. A bucket of one
    outcome only moves both rates linearly, so those points lie on our chord; a bucket holding p
    positives and q negatives can lift the curve above the chord by at most the total change of the
    objective along it, a·p + b·q (a, b: the objective's change per positive and per negative). δ_g
    is the largest such lift of the group; the hull of the raw points is then at most δ_g above ours.
    For equalized odds δ_g is in true positive rate (p / P), and the objective moves by the lowest
    TPR's weight in it.
    """
    lifts = []
    for g in names:
        pts = pts_of[g]
        pos, neg = np.diff(pts.tp).astype(float), np.diff(pts.fp).astype(float)
        mixed = (pos > 0) & (neg > 0)
        n = pts.positives + pts.negatives
        if constraint == "equalized_odds":
            per_pos, per_neg = 1 / pts.positives, 0.0
        elif y_metric == "accuracy":
            per_pos, per_neg = 1 / n, 1 / n
        elif y_metric == "balanced_accuracy":
            per_pos, per_neg = 0.5 / pts.positives, 0.5 / pts.negatives
        else:
            per_pos, per_neg = objective.cost_fn / n, objective.cost_fp / n
        lift = per_pos * pos[mixed] + per_neg * neg[mixed]
        lifts.append(float(lift.max()) if len(lift) else 0.0)
    if constraint != "equalized_odds":
        return float(sum(w * d for w, d in zip(weights, lifts)))
    n_pos = sum(pts_of[g].positives for g in names)
    n_all = sum(pts_of[g].positives + pts_of[g].negatives for g in names)
    scale = {"accuracy": n_pos / n_all, "balanced_accuracy": 0.5, "cost": objective.cost_fn * n_pos / n_all}
    return max(lifts) * scale[objective.name]


# --------------------------------------------------------------------------- evaluation


def apply_rules(cells: pd.DataFrame, fit: WhatIfFit) -> pd.DataFrame:
    """The cells with the chance of a yes under the what-if rules (`p_yes`); groups without a rule keep today's."""
    out = cells.copy()
    p = out["y_pred"].to_numpy(float).copy()
    for rule in fit.rules:
        at = (out["group"] == rule.group).to_numpy()
        if at.any():
            p[at] = rule.yes_probability(out.loc[at, "score"].to_numpy(float), out.loc[at, "y_pred"].to_numpy())
    out["p_yes"] = p
    return out


def rate_table(cells: pd.DataFrame, decision: str) -> pd.DataFrame:
    """Per group: rows, positives, negatives and each rate with its Wilson interval, for a decision column.

    `decision` is y_pred (today) or p_yes (what-if: expected counts, so a randomised rule's rates are
    its expected rates).
    """
    d = cells[decision].to_numpy(float) * cells["n"].to_numpy(float)
    y = cells["y_true"].to_numpy() == 1
    frame = pd.DataFrame({"group": cells["group"], "n": cells["n"], "pos": np.where(y, cells["n"], 0),
                          "neg": np.where(y, 0, cells["n"]), "tp": np.where(y, d, 0.0), "fp": np.where(y, 0.0, d)})
    g = frame.groupby("group", sort=True).sum()
    rows = []
    for metric, num, den in (("selection_rate", g["tp"] + g["fp"], g["n"]), ("true_positive_rate", g["tp"], g["pos"]),
                             ("false_positive_rate", g["fp"], g["neg"]),
                             ("false_negative_rate", g["pos"] - g["tp"], g["pos"]),
                             ("accuracy", g["tp"] + g["neg"] - g["fp"], g["n"])):
            num_a, den_a = num.to_numpy(float), den.to_numpy(float)
            with np.errstate(invalid="ignore", divide="ignore"):
                value = np.where(den_a > 0, num_a / np.where(den_a > 0, den_a, 1), np.nan)
            low, high = wilson_interval(num_a, den_a)
            rows.append(pd.DataFrame({"group": g.index, "metric": metric, "value": value, "ci_low": low,
                                      "ci_high": high, "support": den_a.astype(np.int64)}))
    return pd.concat(rows, ignore_index=True)


def objective_value(cells: pd.DataFrame, decision: str, objective: Objective) -> float:
    """The overall objective of a decision column over all cells (cost: cost per decision, lower is better)."""
    d = cells[decision].to_numpy(float) * cells["n"].to_numpy(float)
    y = cells["y_true"].to_numpy() == 1
    n = cells["n"].to_numpy(float)
    tp, fp = d[y].sum(), d[~y].sum()
    pos, neg = n[y].sum(), n[~y].sum()
    fn, tn = pos - tp, neg - fp
    if objective.name == "accuracy":
        return float((tp + tn) / (pos + neg))
    if objective.name == "balanced_accuracy":
        return float(0.5 * tp / pos + 0.5 * tn / neg)
    return float((objective.cost_fn * fn + objective.cost_fp * fp) / (pos + neg))


def changed_decisions(cells: pd.DataFrame) -> pd.DataFrame:
    """Per group: expected decisions turned from no to yes and from yes to no, of its labelled rows."""
    n = cells["n"].to_numpy(float)
    today, p = cells["y_pred"].to_numpy(float), cells["p_yes"].to_numpy(float)
    frame = pd.DataFrame({"group": cells["group"], "rows": n, "no_to_yes": (1 - today) * p * n,
                          "yes_to_no": today * (1 - p) * n})
    out = frame.groupby("group", sort=True, as_index=False).sum()
    out["rows"] = out["rows"].round().astype(np.int64)  # whole rows: exports withhold counts below k
    out["changed_share"] = (out["no_to_yes"] + out["yes_to_no"]) / out["rows"]
    return out


def expected_labelled(cells: pd.DataFrame, features: Sequence[str], decision: str) -> pd.DataFrame:
    """Labelled counts (features..., y_true, y_pred, n) with expected decisions rounded to whole rows.

    The verdict rule of the Overview works on whole counts; a randomised rule's expected number of
    yes decisions is rounded per group and outcome (off by at most half a row).
    """
    cols = list(features)
    d = cells[decision].to_numpy(float) * cells["n"].to_numpy(float)
    frame = cells[cols + ["y_true"]].assign(yes=d, n=cells["n"].to_numpy(np.int64))
    g = frame.groupby(cols + ["y_true"], as_index=False, sort=True).sum()
    yes = np.clip(np.rint(g["yes"].to_numpy()), 0, g["n"].to_numpy()).astype(np.int64)
    one = g[cols + ["y_true"]].assign(y_pred=1, n=yes)
    zero = g[cols + ["y_true"]].assign(y_pred=0, n=g["n"].to_numpy(np.int64) - yes)
    out = pd.concat([one, zero], ignore_index=True)
    return out[out["n"] > 0].sort_values(cols + ["y_true", "y_pred"], ignore_index=True)


def whatif_options(objective: str = "accuracy", cost_fn: float = 1.0, cost_fp: float = 1.0,
                   tolerance: str = "exact", max_difference: float = 0.0, policy=None,
                   reference: str | None = None) -> tuple[Objective, Tolerance]:
    """Objective and tolerance from plain choices; the band comes from the spec's policy."""
    obj = Objective(objective, cost_fn, cost_fp)
    if tolerance == "band":
        if policy is None:
            raise WhatIfError("the policy band needs the audit's policy")
        return obj, Tolerance("band", low=policy.ratio_low, high=policy.ratio_high, reference=reference)
    if tolerance == "difference":
        return obj, Tolerance("difference", value=max_difference)
    return obj, Tolerance(tolerance)


def reference_label(spec, features: Sequence[str]) -> str | None:
    """The grouping's reference group label when the spec names one for every feature, else None (the largest)."""
    values = [spec.reference_for(f) for f in features]
    if any(v is None for v in values):
        return None
    return slice_label(tuple(zip(features, values)))
