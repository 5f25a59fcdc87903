"""The threshold explorer's curves against sklearn on the raw rows, through the real DuckDB query."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from fairwatch.connectors.source import open_frame
from fairwatch.connectors.threshold_counts import fetch_threshold_counts
from fairwatch.metrics.audit.spec import RowFilter, parse_spec
from fairwatch.metrics.stats.threshold import (bucket_of, default_threshold, grid_bounds, nearest_threshold, rates_at,
                               threshold_curves, thresholds)


def _rows(n: int = 4000, seed: int = 3, scale: float = 1.0) -> pd.DataFrame:
    """Raw rows with scores on the grid edges too (the edge case of 'score >= t')."""
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    score[:200] = np.round(score[:200], 2)  # exactly on grid thresholds
    return pd.DataFrame({
        "g": rng.choice(["a", "b", "c"], n, p=[0.6, 0.395, 0.005]),
        "y": np.where(rng.random(n) < score, "yes", "no"),
        "s": score * scale,
        "mv": rng.choice(["v1", "v2"], n),
    })


def _spec(threshold: float = 0.5):
    return parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "positive_label": "yes", "score": "s", "threshold": threshold,
                                   "sensitive": ["g"], "model_version": "mv"},
                       "policy": {"min_support": 30}})


def _sklearn(raw: pd.DataFrame, t: float) -> dict[str, dict[str, float]]:
    """Rates per group by sklearn on the raw rows at one threshold."""
    out = {}
    for g, sub in raw.groupby("g"):
        y = (sub["y"] == "yes").astype(int)
        tn, fp, fn, tp = confusion_matrix(y, (sub["s"] >= t).astype(int), labels=[0, 1]).ravel()
        out[f"g={g}"] = {"selection_rate": (tp + fp) / len(sub), "true_positive_rate": tp / (tp + fn),
                         "false_positive_rate": fp / (fp + tn), "n": len(sub)}
    return out


@pytest.mark.parametrize("scale", [1.0, 7.5])
def test_curves_match_sklearn_on_raw_rows_at_every_grid_threshold(scale):
    raw = _rows(scale=scale)
    src = open_frame(raw)
    buckets = fetch_threshold_counts(src, _spec(), RowFilter())
    curves = threshold_curves(buckets.counts, ("g",), "yes", buckets.lo, buckets.hi, buckets.bins, 30)
    for t in thresholds(buckets.lo, buckets.hi, buckets.bins)[::7]:
        oracle = _sklearn(raw, t)
        at = rates_at(curves, t)
        for g in ("g=a", "g=b"):
            for metric in ("selection_rate", "true_positive_rate", "false_positive_rate"):
                got = at[(at["group"] == g) & (at["metric"] == metric)]["value"].item()
                assert got == pytest.approx(oracle[g][metric], abs=1e-12), (t, g, metric)
        # The tiny group is masked, never shown as a number.
        tiny = at[at["group"] == "g=c"]
        assert tiny["masked"].all() and tiny["value"].isna().all()


def test_sql_buckets_equal_the_numpy_formula():
    raw = _rows()
    buckets = fetch_threshold_counts(open_frame(raw), _spec(), RowFilter())
    expected = pd.Series(bucket_of(raw["s"], buckets.lo, buckets.hi, buckets.bins)).value_counts().sort_index()
    got = buckets.counts.groupby("bucket")["n"].sum().sort_index()
    pd.testing.assert_series_equal(got.astype(int), expected.astype(int), check_names=False, check_index_type=False)


def test_row_filter_applies_to_the_counts():
    raw = _rows()
    buckets = fetch_threshold_counts(open_frame(raw), _spec(), RowFilter(model_version="v2"))
    assert int(buckets.counts["n"].sum()) == int((raw["mv"] == "v2").sum())
    assert buckets.rows == int((raw["mv"] == "v2").sum())  # the count the page's caption shows
    assert buckets.step * buckets.bins == pytest.approx(buckets.hi - buckets.lo)


def test_intervals_bracket_the_value_and_carry_n():
    raw = _rows()
    buckets = fetch_threshold_counts(open_frame(raw), _spec(), RowFilter())
    curves = threshold_curves(buckets.counts, ("g",), "yes", buckets.lo, buckets.hi, buckets.bins, 30).dropna()
    assert (curves["ci_low"] <= curves["value"] + 1e-12).all() and (curves["value"] <= curves["ci_high"] + 1e-12).all()
    assert (curves["support"] >= 30).all()


def test_grid_helpers():
    assert grid_bounds(0.1, 0.9) == (0.0, 1.0)
    assert grid_bounds(-2.0, 3.0) == (-2.0, 3.0)
    assert grid_bounds(5.0, 5.0) == (5.0, 6.0)
    assert nearest_threshold(0.503, 0.0, 1.0, 100) == pytest.approx(0.5)
    assert default_threshold(None, 0.0, 1.0, 100) == pytest.approx(0.5)
    assert default_threshold(0.37, 0.0, 1.0, 100) == pytest.approx(0.37)
    assert list(bucket_of(np.array([0.0, 0.29, 0.5, 1.0]), 0.0, 1.0, 100)) == [0, 29, 50, 100]
