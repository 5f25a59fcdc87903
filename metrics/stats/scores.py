"""Score metrics per group (ROC AUC, Brier score, expected calibration error) from score-bucket counts.

The counts hold, per group, how many positives and negatives had each (rounded) score. The
metrics below are computed from those counts in closed form, vectorised over every group at once:
- ROC AUC as the Mann-Whitney statistic with ties counted half, which is what sklearn's
  `roc_auc_score` (trapezoidal ROC area) returns with sample weights;
- Brier score as the weighted mean of (score - label)^2, as sklearn's `brier_score_loss`;
- ECE over 10 equal-width bins: sum over bins of |positives - sum of scores| / rows.
They are exact when scores have at most `score_decimals` decimals. Otherwise rounding to buckets of
width w = 10^-d moves each score by at most w/2: the Brier score by at most w, and the AUC only
through pairs whose scores share a bucket (at most that share of positive-negative pairs).
Tests hold all three to sklearn on raw rows.

The groups are integer ids (`metrics/stats/groups.py` numbers every group of every grouping), so one
pass over the cells serves all groupings: no regrouping by text keys per grouping.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

ECE_BINS = 10
# Up to this many (group, score) slots, cells are counted into a dense array (no sort): 32 MB per array.
DENSE_SLOTS = 1 << 22


@dataclass(frozen=True)
class ScoreCells:
    """Positives and negatives per (group, score bucket), sorted by group, then score."""

    group: np.ndarray  # int64 group id; a group's cells are contiguous
    score: np.ndarray  # float64 bucket value
    pos: np.ndarray  # int64
    neg: np.ndarray  # int64


def positives_negatives(y_true: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per count row, its positives and its negatives."""
    pos = np.where(y_true == 1, n, 0).astype(np.int64)
    return pos, n.astype(np.int64) - pos


def score_cells(group: np.ndarray, score: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> ScoreCells:
    """Sum positives and negatives into one cell per (group, score), sorted by group, then score.

    `group` holds one group id per row, or one row of ids per grouping (a count then belongs to a
    group in each grouping); -1 means no group.
    """
    group = np.atleast_2d(group)
    values, rank = np.unique(score, return_inverse=True)
    size = max(len(values), 1)
    slots = (int(group.max()) + 1) * size if group.size else 0
    # One key per (group, score), ordered by group, then score; a row of no group gets the spare key `slots`.
    key = np.where(group >= 0, group * size + rank, slots).ravel()
    # Float sums of whole counts are exact below 2^53 rows, so the cast back to int64 loses nothing.
    weights = [np.tile(w.astype(np.float64), len(group)) for w in (pos, neg)]
    if slots <= DENSE_SLOTS:
        # Counting into a dense (group, score) array sorts the cells for free; empty slots are dropped.
        pos_n, neg_n = (np.bincount(key, weights=w, minlength=slots + 1)[:slots] for w in weights)
        cells = np.flatnonzero(pos_n + neg_n)
        pos_n, neg_n = pos_n[cells], neg_n[cells]
    else:
        cells, index = np.unique(key, return_inverse=True)
        pos_n, neg_n = (np.bincount(index, weights=w, minlength=len(cells)) for w in weights)
        real = cells < slots  # drops the spare key of rows without a group
        cells, pos_n, neg_n = cells[real], pos_n[real], neg_n[real]
    return ScoreCells(group=cells // size, score=values[cells % size], pos=pos_n.astype(np.int64),
                      neg=neg_n.astype(np.int64))


def _compensated_sums(values: np.ndarray, segment: np.ndarray) -> np.ndarray:
    """Per segment (contiguous, numbered 0..k-1), the sum of its values in row order.

    pandas' grouped sum is Kahan-compensated; summing with it, in score order, keeps the Brier score
    and the ECE bit for bit what the per-grouping pandas implementation computed.
    """
    return pd.Series(values).groupby(segment, sort=False).sum().to_numpy()


def score_metrics(cells: ScoreCells, n_groups: int, probabilities: bool) -> dict[str, np.ndarray]:
    """roc_auc (and with probabilities, brier_score and expected_calibration_error) for group ids 0..n_groups-1.

    A group without score cells gets NaN, as does the AUC of a group without both classes.
    """
    names = ["roc_auc"] + (["brier_score", "expected_calibration_error"] if probabilities else [])
    out = {name: np.full(n_groups, np.nan) for name in names}
    if not len(cells.group):
        return out
    starts = np.flatnonzero(np.r_[True, cells.group[1:] != cells.group[:-1]])
    lengths = np.diff(np.r_[starts, len(cells.group)])
    segment = np.repeat(np.arange(len(starts)), lengths)
    present = cells.group[starts]
    pos, neg = np.add.reduceat(cells.pos, starts), np.add.reduceat(cells.neg, starts)
    # Negatives scored strictly below each cell, within its group (a group's cells are sorted by score).
    before = np.cumsum(cells.neg) - cells.neg
    neg_below = before - before[starts][segment]
    # Twice the Mann-Whitney sum is a whole number: summed in int64 it is exact in any order.
    twice_u = np.add.reduceat(cells.pos * (2 * neg_below + cells.neg), starts)
    pairs = pos * neg
    total = pos + neg
    with np.errstate(invalid="ignore", divide="ignore"):
        out["roc_auc"][present] = np.where(pairs > 0, (twice_u / 2) / np.where(pairs > 0, pairs, 1), np.nan)
    if probabilities:
        s = cells.score
        sq_err = cells.pos * (s - 1) ** 2 + cells.neg * s**2
        out["brier_score"][present] = _compensated_sums(sq_err, segment) / total
        # Bins are contiguous within a group too (sorted by score), so (group, bin) is a segment.
        bins = np.minimum(np.floor(s * ECE_BINS), ECE_BINS - 1).astype(int)
        bin_key = segment.astype(np.int64) * ECE_BINS + bins
        bin_starts = np.flatnonzero(np.r_[True, bin_key[1:] != bin_key[:-1]])
        bin_segment = np.repeat(np.arange(len(bin_starts)), np.diff(np.r_[bin_starts, len(bin_key)]))
        score_sum = _compensated_sums(s * (cells.pos + cells.neg), bin_segment)
        gap = np.abs(np.add.reduceat(cells.pos, bin_starts) - score_sum)
        out["expected_calibration_error"][present] = _compensated_sums(gap, segment[bin_starts]) / total
    return out


def score_metrics_by_group(scores: pd.DataFrame, cols: list[str], probabilities: bool) -> pd.DataFrame:
    """roc_auc (and with probabilities, brier_score and expected_calibration_error) per group."""
    names = ["roc_auc"] + (["brier_score", "expected_calibration_error"] if probabilities else [])
    if scores is None or scores.empty:
        return pd.DataFrame(columns=[*cols, *names])
    keys = scores[cols].reset_index(drop=True)
    # Rows with a missing key belong to no group, as in a groupby.
    group = keys.groupby(cols, observed=True, sort=True).ngroup().fillna(-1).to_numpy(np.int64)
    pos, neg = positives_negatives(scores["y_true"].to_numpy(), scores["n"].to_numpy())
    cells = score_cells(group, scores["score"].to_numpy(float), pos, neg)
    n_groups = int(group.max()) + 1 if len(group) else 0
    values = score_metrics(cells, n_groups, probabilities)
    present = group >= 0
    first = np.unique(group[present], return_index=True)[1]
    out = keys.loc[np.flatnonzero(present)[first]].reset_index(drop=True)
    for name in names:
        out[name] = values[name]
    return out
