"""Per-group rates as the decision threshold on the score moves, from score-bucket counts.

With bucket k holding the scores in [lo + k·w, lo + (k+1)·w), the decision "score >= lo + k·w" is
"bucket >= k", so each rate at each grid threshold is a sum over buckets, exactly what sklearn
gives on the raw rows (tests/test_threshold.py checks that). Every point carries n and a Wilson
interval, and is masked below min_support, like the audit's own rates.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.stats.intervals import wilson_interval
from fairwatch.metrics.audit.outcomes import normalise_value, positive_set

# Scores sitting exactly on a grid edge must land in the bucket that starts there, despite float error.
EDGE_EPS = 1e-9


def grid_bounds(lo: float, hi: float) -> tuple[float, float]:
    """The grid's span: [0, 1] for probabilities, else the data's own range (never empty)."""
    if 0.0 <= lo and hi <= 1.0:
        return 0.0, 1.0
    if hi <= lo:
        return lo, lo + 1.0
    return lo, hi


def thresholds(lo: float, hi: float, bins: int) -> np.ndarray:
    """The grid thresholds lo + k·w for k = 0..bins, rounded so 0.35 is 0.35 and not 0.35000000000000003."""
    return np.round(lo + (hi - lo) / bins * np.arange(bins + 1), 12)


def bucket_of(scores: np.ndarray, lo: float, hi: float, bins: int) -> np.ndarray:
    """The bucket of each score, the same formula as the SQL in connectors/threshold_counts.py."""
    width = (hi - lo) / bins
    return np.clip(np.floor((np.asarray(scores, float) - lo) / width + EDGE_EPS), 0, bins).astype(int)


def threshold_curves(counts: pd.DataFrame, by: tuple[str, ...], positive_label: str | tuple[str, ...], lo: float, hi: float,
                     bins: int, min_support: int) -> pd.DataFrame:
    """Long table: group, threshold, metric, value, ci_low, ci_high, support, masked."""
    columns = ["group", "threshold", "metric", "value", "ci_low", "ci_high", "support", "masked"]
    if counts.empty:
        return pd.DataFrame(columns=columns)
    frame = counts.copy()
    frame["y_true"] = frame["label_raw"].map(normalise_value).isin(positive_set(positive_label)).astype(int)
    frame["group"] = [slice_label(tuple((c, str(v)) for c, v in zip(by, vals)))
                      for vals in frame[list(by)].itertuples(index=False, name=None)]
    cube = (frame.groupby(["group", "bucket", "y_true"], observed=True)["n"].sum()
            .unstack("y_true", fill_value=0).reindex(columns=[0, 1], fill_value=0))
    grid = thresholds(lo, hi, bins)
    parts = []
    for group, sub in cube.groupby(level="group", sort=True):
        per_bucket = sub.droplevel("group").reindex(range(bins + 1), fill_value=0)
        neg, pos = per_bucket[0].to_numpy(float), per_bucket[1].to_numpy(float)
        # Rows predicted positive at threshold k are those in buckets >= k: a reversed cumulative sum.
        tp, fp = np.cumsum(pos[::-1])[::-1], np.cumsum(neg[::-1])[::-1]
        p_all, n_all = pos.sum(), neg.sum()
        for metric, num, den in (("selection_rate", tp + fp, p_all + n_all),
                                 ("true_positive_rate", tp, p_all), ("false_positive_rate", fp, n_all)):
            den_arr = np.full_like(num, den)
            with np.errstate(invalid="ignore", divide="ignore"):
                value = np.where(den_arr > 0, num / np.where(den_arr > 0, den_arr, 1), np.nan)
            low, high = wilson_interval(num, den_arr)
            parts.append(pd.DataFrame({"group": group, "threshold": grid, "metric": metric, "value": value,
                                       "ci_low": low, "ci_high": high, "support": int(den)}))
    out = pd.concat(parts, ignore_index=True)
    out["masked"] = out["support"] < min_support
    out.loc[out["masked"], ["value", "ci_low", "ci_high"]] = np.nan
    return out[columns]


def nearest_threshold(value: float, lo: float, hi: float, bins: int) -> float:
    """The grid threshold closest to a value (the slider snaps to the grid the counts are exact on)."""
    grid = thresholds(lo, hi, bins)
    return float(grid[int(np.argmin(np.abs(grid - value)))])


def rates_at(curves: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The curve points at one grid threshold (matched with a tolerance for float error)."""
    return curves[np.isclose(curves["threshold"].to_numpy(float), threshold, atol=1e-12, rtol=1e-9)].reset_index(drop=True)


def default_threshold(spec_threshold: float | None, lo: float, hi: float, bins: int) -> float:
    """Where the slider starts: the spec's threshold, else the middle of the grid (0.5 for probabilities)."""
    start = spec_threshold if spec_threshold is not None and not math.isnan(spec_threshold) else (lo + hi) / 2
    return nearest_threshold(start, lo, hi, bins)
