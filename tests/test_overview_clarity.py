"""The Overview says where a feature fails (alone or only in intersections), lists significant gaps first with
verdict and q up front, and its intervals agree with its verdicts (false-coverage-rate adjusted for flagged gaps)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fairwatch.metrics.stats.intervals import ratio_interval
from fairwatch.metrics.policy.overview import adjusted_intervals, feature_verdicts, worst_disparities
from fairwatch.metrics.audit.spec import Policy
from fairwatch.metrics.presentation.views import worst_table
from tests.test_overview import _audit

POLICY = Policy()


@pytest.fixture(scope="module")
def crossed():
    """a alone is fair (a2 is worse with b2, better with b1); b alone fails; the gap lives in a × b."""
    rng = np.random.default_rng(11)
    n = 40_000
    df = pd.DataFrame({"a": rng.choice(["a1", "a2"], n), "b": rng.choice(["b1", "b2"], n),
                       "c": rng.choice(["c1", "c2"], n)})
    y = rng.random(n) < 0.5
    miss = np.full(n, 0.2)
    miss[(df["a"] == "a2") & (df["b"] == "b2")] = 0.35
    miss[(df["a"] == "a2") & (df["b"] == "b1")] = 0.05
    df["y"] = y.astype(int)
    df["p"] = np.where(y, rng.random(n) >= miss, rng.random(n) < 0.2).astype(int)
    return _audit(df)


def test_each_card_says_whether_the_feature_alone_fails_and_which_groups_do(crossed):
    cards = {v.feature: v for v in feature_verdicts(crossed.groups.rows, ["a", "b", "c"], policy=POLICY)}
    a, b = cards["a"], cards["b"]
    assert a.status == "fails" and a.alone == "meets" and not a.failing_groups
    assert "a=a2, b=b2" in a.failing_intersections or "a=a2, b=b1" in a.failing_intersections
    assert a.where.startswith("On its own: all 2 groups are within the band.") and "intersection" in a.where
    assert b.alone == "fails" and b.failing_groups and b.where.startswith("On its own: 1 of 2 groups fail (b=")
    assert a.where != b.where  # the cards no longer repeat one intersection gap


def test_flagged_gaps_carry_fcr_adjusted_intervals_at_level_1_minus_fdr_r_over_m(crossed):
    rows = adjusted_intervals(crossed.groups.rows, POLICY)
    tested = rows["q_value"].notna() & rows["p_value"].notna()
    m, r = int(tested.sum()), int((tested & (rows["q_value"] < POLICY.fdr)).sum())
    flagged = rows[rows["verdict"] == "outside"]
    assert len(flagged) and r >= len(flagged)
    level = 1 - POLICY.fdr * r / m
    assert np.allclose(flagged["adj_level"], level)
    for _, f in flagged.iterrows():
        ref = rows[(rows["grouping"] == f["grouping"]) & (rows["metric"] == f["metric"])
                   & (rows["verdict"] == "reference")].iloc[0]
        lo, hi = ratio_interval(np.array([f["successes"]]), np.array([f["support"]]), np.array([ref["successes"]]),
                                np.array([ref["support"]]), confidence=level)
        assert (f["adj_ci_low"], f["adj_ci_high"]) == pytest.approx((lo[0], hi[0]))
        # Wider than the plain 95% interval, and still clear of equality: it agrees with "significant".
        assert f["adj_ci_low"] <= f["ratio_ci_low"] and f["adj_ci_high"] >= f["ratio_ci_high"]
        assert f["adj_ci_high"] < 1 or f["adj_ci_low"] > 1
    assert rows.loc[rows["verdict"] != "outside", "adj_level"].isna().all()


def test_an_unflagged_gap_whose_95_interval_misses_the_band_says_why():
    rows = pd.DataFrame({"grouping": ["g", "g"], "group": ["g=x", "g=y"], "metric": ["false_positive_rate"] * 2,
                         "verdict": ["inconclusive", "inconclusive"], "q_value": [0.2, 0.2], "p_value": [0.01, 0.5],
                         "ratio": [0.6, 0.7], "ratio_ci_low": [0.5, 0.4], "ratio_ci_high": [0.75, 1.1]})
    out = adjusted_intervals(rows, POLICY)
    assert "among 2 comparisons" in out["chance_note"][0] and "q=0.200" in out["chance_note"][0]
    assert out["chance_note"][1] == ""


def test_largest_gaps_lead_with_significant_ones_verdict_and_q(crossed):
    worst = worst_disparities(crossed.groups.rows, ["a", "b", "c"], limit=6, policy=POLICY)
    verdicts = [d.verdict for d in worst]
    assert verdicts == sorted(verdicts, key=["outside", "inconclusive", "within"].index)
    table = worst_table(worst)
    assert list(table.columns[:4]) == ["Group", "Metric", "Verdict", "q-value"]
    flagged = table[table["Verdict"].str.contains("significant") & ~table["Verdict"].str.contains("not")]
    assert len(flagged) and flagged["Ratio (interval)"].str.contains("FCR-adjusted").all()
