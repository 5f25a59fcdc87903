"""Disparities, verdicts, masking and representation against independent statistics on raw rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.audit.spec import parse_spec


def audit(df: pd.DataFrame, sensitive: list[str], **extra):
    """Audit a frame with label y, prediction p."""
    raw = {"source": {"path": "(frame)"}, "columns": {"label": "y", "prediction": "p", "sensitive": sensitive}}
    for section, values in extra.items():
        raw[section] = values
    return run_audit(parse_spec(raw), src=open_frame(df))


def planted(n_a=4000, n_b=1000, fpr_a=0.10, fpr_b=0.20, seed=0) -> pd.DataFrame:
    """Two groups with given false-positive rates and equal TPR."""
    rng = np.random.default_rng(seed)
    g = np.array(["a"] * n_a + ["b"] * n_b)
    y = rng.integers(0, 2, n_a + n_b)
    fpr = np.where(g == "a", fpr_a, fpr_b)
    p = np.where(y == 1, rng.random(n_a + n_b) < 0.8, rng.random(n_a + n_b) < fpr).astype(int)
    return pd.DataFrame({"g": g, "y": y, "p": p})


def test_reference_is_largest_group_and_ratio_is_to_it():
    """Default reference = largest group; ratio = group / reference (not fairlearn's min/max)."""
    df = planted()
    rows = audit(df, ["g"]).groups.rows.set_index(["group", "metric"])
    b = rows.loc[("g=b", "false_positive_rate")]
    a = rows.loc[("g=a", "false_positive_rate")]
    assert dict(b["reference"]) == {"g": "a"}
    assert b["ratio"] == pytest.approx(b["value"] / a["value"])
    assert a["verdict"] == "reference" and b["verdict"] == "outside"


def test_intervals_and_pvalue_match_statsmodels_and_scipy():
    """Wilson, Newcombe and the two-proportion test recomputed independently from raw counts."""
    df = planted(n_a=3000, n_b=800)
    rows = audit(df, ["g"]).groups.rows.set_index(["group", "metric"])
    neg = df[df.y == 0]
    xa, na = int(neg[neg.g == "a"].p.sum()), int((neg.g == "a").sum())
    xb, nb = int(neg[neg.g == "b"].p.sum()), int((neg.g == "b").sum())
    r = rows.loc[("g=b", "false_positive_rate")]
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(proportion_confint(xb, nb, method="wilson"), abs=1e-12)
    assert (r["diff_ci_low"], r["diff_ci_high"]) == pytest.approx(
        confint_proportions_2indep(xb, nb, xa, na, method="newcomb", compare="diff"), abs=1e-12)
    table = np.array([[xb, nb - xb], [xa, na - xa]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert r["p_value"] == pytest.approx(p, rel=1e-6)  # the score test equals Pearson's chi-square


def test_no_effect_means_no_outside_verdicts():
    """On data without a planted effect, no group is called outside the band (FDR controlled)."""
    outside = 0
    for seed in range(10):
        rows = audit(planted(fpr_b=0.10, seed=seed), ["g"]).groups.rows
        outside += int((rows["verdict"] == "outside").sum())
    assert outside == 0


def test_small_groups_are_masked_and_insufficient():
    """A group below min_support has null values and an 'insufficient_data' verdict, never 0."""
    df = pd.concat([planted(), pd.DataFrame({"g": ["tiny"] * 12, "y": [0, 1] * 6, "p": [0] * 12})])
    rows = audit(df, ["g"]).groups.rows.set_index(["group", "metric"])
    t = rows.loc[("g=tiny", "true_positive_rate")]
    assert t["masked"] and np.isnan(t["value"]) and t["support"] == 6
    assert t["verdict"] == "insufficient_data"


def test_named_reference_and_intersection_reference():
    """A named reference is used; the intersection reference combines the features' references."""
    rng = np.random.default_rng(2)
    n = 3000
    df = pd.DataFrame({"g": rng.choice(["a", "b"], n), "h": rng.choice(["x", "y"], n),
                       "y": rng.integers(0, 2, n), "p": rng.integers(0, 2, n)})
    rows = audit(df, ["g", "h"], reference={"g": "b"}).groups.rows
    ga = rows[(rows.group == "g=a") & (rows.metric == "selection_rate")].iloc[0]
    assert dict(ga["reference"]) == {"g": "b"}
    inter = rows[rows.grouping == "g × h"].iloc[0]
    hx = df.h.value_counts().idxmax()
    assert dict(inter["reference"]) == {"g": "b", "h": hx}


def test_representation_against_reference_shares():
    """Shares count every row; the fit test equals scipy's chi-square on the raw counts."""
    rng = np.random.default_rng(4)
    n = 2000
    df = pd.DataFrame({"g": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]), "y": rng.integers(0, 2, n),
                       "p": rng.integers(0, 2, n)})
    df.loc[:100, "y"] = None  # unlabelled rows still count for representation
    snap = audit(df, ["g"], reference_shares={"g": {"a": 0.5, "b": 0.3, "c": 0.2}})
    rep = snap.representation.set_index("group")
    counts = df.g.value_counts()
    assert rep.loc["g=a", "n"] == counts["a"] and rep.loc["g=a", "share"] == pytest.approx(counts["a"] / n)
    assert rep.loc["g=c", "ratio"] == pytest.approx(counts["c"] / n / 0.2)
    test = snap.representation_tests.iloc[0]
    expected = stats.chisquare([counts["a"], counts["b"], counts["c"]], [0.5 * n, 0.3 * n, 0.2 * n])
    assert test["p_value"] == pytest.approx(expected.pvalue) and test["statistic"] == pytest.approx(expected.statistic)
    assert snap.data.unlabelled_rows == 101
