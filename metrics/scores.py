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
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ECE_BINS = 10


def score_metrics_by_group(scores: pd.DataFrame, cols: list[str], probabilities: bool) -> pd.DataFrame:
    """roc_auc (and with probabilities, brier_score and expected_calibration_error) per group."""
    names = ["roc_auc"] + (["brier_score", "expected_calibration_error"] if probabilities else [])
    if scores is None or scores.empty:
        return pd.DataFrame(columns=[*cols, *names])
    cells = (scores.groupby([*cols, "score", "y_true"], observed=True, sort=True)["n"].sum()
             .unstack("y_true", fill_value=0).reindex(columns=[0, 1], fill_value=0))
    cells.columns = ["neg", "pos"]
    cells = cells.reset_index()
    by = cells.groupby(cols, observed=True, sort=False)
    # Negatives scored strictly below each bucket, within the group (buckets are sorted by score).
    neg_below = by["neg"].cumsum() - cells["neg"]
    cells["auc_part"] = cells["pos"] * (neg_below + 0.5 * cells["neg"])
    s = cells["score"].to_numpy(float)
    cells["sq_err"] = cells["pos"] * (s - 1) ** 2 + cells["neg"] * s**2
    out = cells.groupby(cols, observed=True, sort=False)[["pos", "neg", "auc_part", "sq_err"]].sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs = out["pos"] * out["neg"]
        out["roc_auc"] = np.where(pairs > 0, out["auc_part"] / pairs.where(pairs > 0, 1), np.nan)
        total = out["pos"] + out["neg"]
        out["brier_score"] = out["sq_err"] / total
    if probabilities:
        cells["bin"] = np.minimum(np.floor(s * ECE_BINS), ECE_BINS - 1).astype(int)
        cells["score_sum"] = s * (cells["pos"] + cells["neg"])
        bins = cells.groupby([*cols, "bin"], observed=True)[["pos", "score_sum"]].sum()
        gap = (bins["pos"] - bins["score_sum"]).abs().groupby(level=list(range(len(cols))), observed=True).sum()
        gap.index = out.index
        out["expected_calibration_error"] = gap / total
    return out.reset_index()[[*cols, *names]]
