"""Population drift: PSI by its formula, chi-square against scipy, and the demo's falling 65+ share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fairwatch.connectors.monitor import run_drift
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.stats.drift import PSI_EPSILON, chi_square, drift_table, psi
from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.monitoring.trends import WINDOW
# demo_spec is a module-scoped fixture: imported, it still writes one demo per module.
from tests.test_trends import demo_spec, frame_spec  # noqa: F401

T0 = pd.Timestamp("2025-03-03")


@pytest.fixture(scope="module")
def monthly(demo_spec: AuditSpec):
    """The demo's drift by month against January."""
    return run_drift(demo_spec, grain="month")


def test_psi_by_its_definition():
    """PSI = Σ (p − q) ln(p / q), with zero shares floored at the documented epsilon."""
    cur, base = np.array([30.0, 50.0, 20.0]), np.array([40.0, 40.0, 20.0])
    p, q = cur / cur.sum(), base / base.sum()
    assert psi(cur, base) == pytest.approx(np.sum((p - q) * np.log(p / q)), rel=1e-12)
    assert psi(base, base) == 0.0
    # A group that vanishes: its share is taken as epsilon, so PSI is large but finite.
    gone = np.array([0.0, 60.0, 40.0])
    expected = (PSI_EPSILON - 0.4) * np.log(PSI_EPSILON / 0.4) + 0.2 * np.log(0.6 / 0.4) + 0.2 * np.log(0.4 / 0.2)
    assert psi(gone, base) == pytest.approx(expected, rel=1e-12)
    # A group absent from both windows contributes nothing.
    assert psi(np.append(cur, 0), np.append(base, 0)) == pytest.approx(psi(cur, base), rel=1e-12)


def test_chi_square_equals_pearson_by_hand():
    """Chi-square of homogeneity: Σ (O − E)² / E on the 2 × k table, k − 1 df, p from scipy's chi2."""
    cur, base = np.array([30, 50, 20, 0]), np.array([40, 40, 15, 0])
    table = np.array([base[:3], cur[:3]], dtype=float)
    expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = ((table - expected) ** 2 / expected).sum()
    got_stat, dof, p = chi_square(cur, base)
    assert got_stat == pytest.approx(stat, rel=1e-12) and dof == 2
    assert p == pytest.approx(stats.chi2.sf(stat, 2), rel=1e-12)
    assert np.isnan(chi_square(np.array([5, 0]), np.array([7, 0]))[2]), "one group only: no test"


def _population(rows: list[tuple]) -> pd.DataFrame:
    """Counts per (window, g, n)."""
    return pd.DataFrame(rows, columns=[WINDOW, "g", "n"])


def test_drift_table_shares_and_baseline_choice():
    """Shares sum to 1 per window and grouping; the baseline is the first window or the one holding a date."""
    w1, w2, w3 = T0, T0 + pd.Timedelta(days=7), T0 + pd.Timedelta(days=14)
    pop = _population([(w1, "a", 50), (w1, "b", 50), (w2, "a", 80), (w2, "b", 20), (w3, "a", 50), (w3, "(missing)", 5)])
    spec = frame_spec(["g"])
    table = drift_table(pop, spec)
    assert table.baseline == w1
    sums = table.shares.groupby(["window", "grouping"])["share"].sum()
    assert np.allclose(sums, 1.0)
    s = table.shares.set_index(["window", "group"])
    assert s.loc[(w2, "g=a"), "share"] == 0.8 and s.loc[(w2, "g=a"), "baseline_share"] == 0.5
    assert s.loc[(w2, "g=a"), "change"] == pytest.approx(0.3)
    assert s.loc[(w2, "g=(missing)"), "n"] == 0, "a group seen in any window is listed in every window"
    tests = table.tests.set_index("window")
    assert tests.loc[w1, "psi"] == 0.0 and tests.loc[w1, "p_value"] == pytest.approx(1.0)
    assert tests.loc[w2, "p_value"] < 0.05
    assert drift_table(pop, spec, baseline=w2 + pd.Timedelta(days=3)).baseline == w2
    with pytest.raises(SpecError, match="before the first window"):
        drift_table(pop, spec, baseline=T0 - pd.Timedelta(days=1))


def test_drift_through_the_engine_on_a_frame():
    """run_drift on an in-memory source: a shifted feature drifts, a stable one does not."""
    rng = np.random.default_rng(5)
    n = 4000
    ts = T0 + pd.to_timedelta(rng.integers(0, 14 * 86400, n), unit="s")
    late = (ts >= T0 + pd.Timedelta(days=7))
    df = pd.DataFrame({
        "ts": ts,
        "shifting": np.where(rng.random(n) < np.where(late, 0.7, 0.5), "x", "y"),
        "stable": rng.choice(["p", "q", "r"], n),
        "y_true": rng.integers(0, 2, n), "y_pred": rng.integers(0, 2, n),
    })
    spec = frame_spec(["shifting", "stable"])
    table = run_drift(spec, grain="week", src=open_frame(df))
    last = table.tests[table.tests["window"] == table.tests["window"].max()].set_index("grouping")
    assert last.loc["shifting", "q_value"] < 0.001 and last.loc["shifting", "psi"] > 0.05
    assert last.loc["stable", "p_value"] > 0.01 and last.loc["stable", "psi"] < 0.01


def test_demo_falling_senior_share_is_detected(monthly):
    """age_band=65+ falls from ~12% to ~4% over 2025: chi-square p < 0.05 and a clear PSI, first vs last month."""
    tests = monthly.tests
    last = tests[tests["window"] == tests["window"].max()].set_index("grouping")
    assert monthly.baseline == pd.Timestamp("2025-01-01")
    assert last.loc["age_band", "p_value"] < 0.05 and last.loc["age_band", "q_value"] < 0.05
    assert last.loc["age_band", "psi"] > 0.05
    assert last.loc["age_band", "psi"] > 10 * last.loc["sex", "psi"]
    shares = monthly.shares.set_index(["window", "group"])["share"]
    first_share = shares.loc[(pd.Timestamp("2025-01-01"), "age_band=65+")]
    last_share = shares.loc[(pd.Timestamp("2025-12-01"), "age_band=65+")]
    assert 0.10 < first_share < 0.13 and 0.03 < last_share < 0.06


def test_demo_sex_has_no_drift(monthly):
    """No drift was planted in sex: its last month is not significantly different from January."""
    last = monthly.tests[monthly.tests["window"] == monthly.tests["window"].max()].set_index("grouping")
    assert last.loc["sex", "p_value"] > 0.01 and last.loc["sex", "psi"] < 0.01


def test_demo_intersections_are_tested_too(monthly):
    """Every grouping, including intersections, gets a PSI and a test per window."""
    assert set(monthly.tests["grouping"]) == {"sex", "race_ethnicity", "age_band", "sex × race_ethnicity",
                                               "sex × age_band", "race_ethnicity × age_band",
                                               "sex × race_ethnicity × age_band"}
    assert len(monthly.tests) == 7 * 12
