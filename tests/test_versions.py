"""Model versions side by side: numbers against statsmodels/scipy, the demo's v2-only gap, null data, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep

from fairwatch.connectors.monitor import run_version_comparison
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.audit.spec import AuditSpec
# demo_spec is a module-scoped fixture: imported, it still writes one demo per module.
from tests.test_trends import demo_spec, frame_spec  # noqa: F401

T0 = pd.Timestamp("2025-03-03")
GAP = "race_ethnicity=Black, age_band=18-24"


@pytest.fixture(scope="module")
def demo_comparison(demo_spec: AuditSpec):
    """v1 against v2 on the demo."""
    return run_version_comparison(demo_spec, "v1", "v2")


def versioned_frame(n: int, fnr_a: float, fnr_b: float, seed: int = 0) -> pd.DataFrame:
    """Two versions over one group pair; the FNR of group g=b under B can differ."""
    rng = np.random.default_rng(seed)
    version = np.where(np.arange(n) < n // 2, "A", "B")
    g = rng.choice(["a", "b"], n)
    y_true = rng.integers(0, 2, n)
    miss = rng.random(n) < np.where((version == "B") & (g == "b"), fnr_b, fnr_a)
    y_pred = np.where(y_true == 1, (~miss).astype(int), (rng.random(n) < 0.2).astype(int))
    return pd.DataFrame({"g": g, "v": version, "ts": T0, "y_true": y_true, "y_pred": y_pred})


def test_difference_interval_and_p_value_equal_statsmodels_and_scipy_on_raw_rows():
    """Newcombe interval from statsmodels and the Pearson chi-square p from scipy, on the raw rows."""
    df = versioned_frame(3000, 0.15, 0.30, seed=2)
    spec = frame_spec(["g"], model_version="v")
    rows = run_version_comparison(spec, "A", "B", src=open_frame(df)).rows.set_index(["group", "metric"])
    pos = df[(df["y_true"] == 1) & (df["g"] == "b")]
    xa = int(((pos["v"] == "A") & (pos["y_pred"] == 0)).sum())
    na = int((pos["v"] == "A").sum())
    xb = int(((pos["v"] == "B") & (pos["y_pred"] == 0)).sum())
    nb = int((pos["v"] == "B").sum())
    r = rows.loc[("g=b", "false_negative_rate")]
    assert r["value_a"] == pytest.approx(xa / na, abs=1e-12) and r["value_b"] == pytest.approx(xb / nb, abs=1e-12)
    assert r["difference"] == pytest.approx(xb / nb - xa / na, abs=1e-12)
    lo, hi = confint_proportions_2indep(xb, nb, xa, na, method="newcomb", compare="diff")
    assert (r["diff_ci_low"], r["diff_ci_high"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    chi = stats.chi2_contingency([[xb, nb - xb], [xa, na - xa]], correction=False)
    assert r["p_value"] == pytest.approx(chi.pvalue, rel=1e-9)
    assert r["change"] == "worse" and rows.loc[("g=b", "true_positive_rate"), "change"] == "worse"
    assert rows.loc[("g=a", "false_negative_rate"), "change"] == "no_significant_change"


def test_null_data_flags_nothing():
    """With no planted change, no group is significantly better or worse after BH."""
    df = versioned_frame(6000, 0.2, 0.2, seed=11)
    spec = frame_spec(["g"], model_version="v")
    cmp = run_version_comparison(spec, "A", "B", src=open_frame(df))
    assert cmp.changed("worse").empty and cmp.changed("better").empty
    assert cmp.rows["q_value"].notna().any()


def test_small_groups_are_insufficient_not_tested():
    """Below min_support under either version: no p-value, change 'insufficient_data'."""
    df = versioned_frame(80, 0.2, 0.2)
    spec = frame_spec(["g"], model_version="v", min_support=30)
    rows = run_version_comparison(spec, "A", "B", src=open_frame(df)).rows.set_index(["group", "metric"])
    r = rows.loc[("g=b", "false_negative_rate")]
    assert r["change"] == "insufficient_data" and np.isnan(r["p_value"]) and np.isnan(r["value_a"])


def test_bad_versions_are_spec_errors():
    """An unknown version lists the ones present; a version against itself and a spec without the column fail."""
    df = versioned_frame(100, 0.2, 0.2)
    spec = frame_spec(["g"], model_version="v")
    with pytest.raises(SpecError, match="'C' is not in the data; versions present: A, B"):
        run_version_comparison(spec, "A", "C", src=open_frame(df))
    with pytest.raises(SpecError, match="with itself"):
        run_version_comparison(spec, "A", "A", src=open_frame(df))
    with pytest.raises(SpecError, match=r"\[columns\] model_version"):
        run_version_comparison(frame_spec(["g"]), "A", "B", src=open_frame(df))


def test_demo_v2_only_intersectional_gap_is_flagged_worse(demo_comparison):
    """Black & 18-24 has a higher FNR under v2 than under v1, significantly after BH over all comparisons."""
    rows = demo_comparison.rows.set_index(["group", "metric"])
    r = rows.loc[(GAP, "false_negative_rate")]
    assert r["change"] == "worse"
    assert r["q_value"] < 0.05 and r["diff_ci_low"] > 0
    assert r["value_b"] > 1.4 * r["value_a"]


def test_demo_comparison_covers_every_grouping_and_rate(demo_comparison):
    """Every grouping and every proportion metric is compared; base_rate is shown but never tested."""
    rows = demo_comparison.rows
    assert rows["grouping"].nunique() == 7
    assert rows["metric"].nunique() == 11
    base = rows[rows["metric"] == "base_rate"]
    assert base["q_value"].isna().all() and set(base["change"]) <= {"descriptive", "insufficient_data"}
