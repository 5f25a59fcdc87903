"""The data-need diagnosis: rows-needed against statsmodels power, the need rules, and the demo's planted effects."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import false_negative_rate, false_positive_rate, selection_rate, true_positive_rate
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize, samplesize_confint_proportion

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
from fairwatch.connectors.quality_counts import fetch_quality_counts
from fairwatch.connectors.source import open_source
from fairwatch.metrics.discovery.diagnosis import (
    HEADLINE_METRICS,
    additional_rows_needed,
    derive_verdict,
    diagnose,
    diagnose_groups,
    rows_plan,
)
from fairwatch.metrics.stats.intervals import bh_level
from fairwatch.metrics.discovery.quality import CONFLICTS, LABEL_ERRORS, LABEL_ERRORS_NEG, LABEL_ERRORS_POS, MISSING_ANY, QualityCounts, compute_quality
from fairwatch.metrics.audit.spec import RowFilter, parse_spec

SPEC = parse_spec({"source": {"path": "x.csv"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["g"]}})
SLICE = (("channel", "broker"), ("region", "south"))


def power(p1: float, n1: float, p2: float, n2: float, alpha: float = 0.05) -> float:
    """statsmodels' power of the two-sided z-test on Cohen's h at alpha, computed here independently."""
    h = abs(proportion_effectsize(p1, p2))
    return NormalIndPower().power(effect_size=h, nobs1=n1, alpha=alpha, ratio=n2 / n1, alternative="two-sided")


def bh_rejects(others: list[float], p: float, fdr: float) -> bool:
    """statsmodels' Benjamini-Hochberg: is a test with p-value p rejected among `others` at `fdr`?"""
    return bool(multipletests([*others, p], alpha=fdr, method="fdr_bh")[0][-1])


def brute_level(others: list[float], fdr: float) -> float:
    """The largest k*fdr/m that statsmodels' BH rejects when the new test has that p-value (a search, no formula)."""
    m = len(others) + 1
    return max(fdr * (k / m) for k in range(1, m + 1) if bh_rejects(others, fdr * (k / m) * (1 - 1e-12), fdr))


# ---------------------------------------------------------------- additional_rows_needed

@pytest.mark.parametrize("x1, n1, x2, n2", [
    (13, 50, 6329, 54287),   # the demo's Pacific Islander FNR against White
    (20, 60, 1500, 10000),   # 33% against 15%
    (5, 40, 900, 10000),     # 12.5% against 9% (ratio 1.39)
    (30, 100, 200, 400),     # a comparison group of modest size
    (2, 40, 300, 1000),      # lower than the comparison: 5% against 30%
])
def test_rows_match_statsmodels_power(x1, n1, x2, n2):
    """n1 + additional is the smallest slice size with power >= 0.8 for the observed gap, the comparison kept at n2."""
    add = additional_rows_needed(x1, n1, x2, n2, SPEC)
    plan = rows_plan(x1, n1, x2, n2, SPEC)
    assert plan.basis == "observed_gap"
    p1, p2 = x1 / n1, x2 / n2
    total = plan.rows_needed
    assert power(p1, total, p2, n2) >= 0.8
    assert total == 1 or power(p1, total - 1, p2, n2) < 0.8
    assert add == max(total - n1, SPEC.policy.min_support - n1, 0)
    # statsmodels' own solver, given the ratio at the answer, lands on the same size.
    h = abs(proportion_effectsize(p1, p2))
    solved = NormalIndPower().solve_power(effect_size=h, nobs1=None, alpha=0.05, power=0.8, ratio=n2 / total)
    assert abs(solved - total) <= 1


def test_rows_with_a_huge_comparison_approach_the_one_sample_formula():
    """With an unlimited comparison, n = ((z_0.975 + z_0.8) / h)^2 (the power formula's one-sample limit)."""
    p1, p2 = 0.2, 0.1
    plan = rows_plan(20, 100, 10**9, 10**10, SPEC)
    h = abs(proportion_effectsize(p1, p2))
    closed = ((stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / h) ** 2
    assert abs(plan.rows_needed - math.ceil(closed)) <= 1


def test_inside_the_band_uses_the_tolerance_boundary():
    """A point estimate inside [0.8, 1.25] x p2 is planned against p2 x 1.25 (or x 0.8 when below p2)."""
    plan = rows_plan(11, 100, 1000, 10000, SPEC)   # 11% against 10%: ratio 1.1
    assert plan.basis == "tolerance_boundary" and plan.target_rate == pytest.approx(0.125)
    assert power(0.125, plan.rows_needed, 0.1, 10000) >= 0.8 > power(0.125, plan.rows_needed - 1, 0.1, 10000)
    below = rows_plan(9, 100, 1000, 10000, SPEC)
    assert below.target_rate == pytest.approx(0.08)


def test_target_gap_and_withheld_rate():
    """An explicit target gap is honoured; a withheld rate (below min_support) is planned at the boundary."""
    plan = rows_plan(5, 20, 1000, 10000, SPEC, target_gap=0.05)
    assert plan.basis == "target_gap" and plan.target_rate == pytest.approx(0.15)
    withheld = rows_plan(None, 12, 1000, 10000, SPEC)
    assert withheld.basis == "tolerance_boundary" and withheld.target_rate == pytest.approx(0.125)
    assert withheld.additional_rows == withheld.rows_needed - 12


@settings(max_examples=40, deadline=None)
@given(n1=st.integers(31, 400), n2=st.integers(500, 50_000), p2=st.floats(0.05, 0.6),
       gaps=st.lists(st.floats(0.02, 0.35), min_size=2, max_size=5, unique=True))
def test_bigger_gap_needs_fewer_rows(n1, n2, p2, gaps):
    """Monotone: among gaps beyond the tolerance, a bigger one never needs more rows."""
    x2 = round(p2 * n2)
    needs = []
    for gap in sorted(gaps):
        n = rows_plan(None, n1, x2, n2, SPEC, target_gap=gap).rows_needed
        needs.append(n if n is not None else math.inf)
    assert all(a >= b for a, b in zip(needs, needs[1:]))


# ---------------------------------------------------------------- the Benjamini-Hochberg level

@settings(max_examples=60, deadline=None)
@given(others=st.lists(st.floats(0.0, 1.0), max_size=40), fdr=st.sampled_from([0.01, 0.05, 0.1]))
def test_bh_level_is_the_largest_p_value_statsmodels_rejects(others, fdr):
    """Just below the level, statsmodels' BH rejects the new test among the others; just above, it does not."""
    level = bh_level(others, fdr)
    assert fdr * (1 / (len(others) + 1)) <= level <= fdr  # Bonferroni at worst, the fdr at best
    assert level == pytest.approx(brute_level(others, fdr), rel=1e-12)
    assert bh_rejects(others, level * (1 - 1e-9), fdr)
    assert not bh_rejects(others, level * (1 + 1e-9), fdr)


def test_bh_level_examples():
    """A lone test: the fdr; 999 null tests: fdr/1000 (Bonferroni's level); NaNs are not tests."""
    assert bh_level([], 0.05) == 0.05
    assert bh_level([0.5] * 999, 0.05) == pytest.approx(0.05 / 1000)
    assert bh_level([0.001, 0.002, 0.9, float("nan")], 0.05) == pytest.approx(3 * 0.05 / 4)


def test_rows_are_counted_at_the_level_the_verdict_needs():
    """In a family of 1,000 comparisons the rows to settle a gap are those with 80% power at the BH level, not 0.05."""
    others = [0.5] * 999
    level = bh_level(others, SPEC.policy.fdr)
    d = diagnose(SLICE, 40, 12, 9000, 1800, SPEC, family_pvalues=others)   # 30% on 40 rows against 20%
    plan = d.evidence["additional_rows_plan"]
    assert plan["alpha"] == pytest.approx(level) and plan["family_size"] == 1000
    assert "Benjamini-Hochberg" in plan["note"] and "1,000 comparisons" in plan["note"]
    total = plan["rows_needed"]
    assert power(0.3, total, 0.2, 9000, level) >= 0.8 > power(0.3, total - 1, 0.2, 9000, level)
    lone = diagnose(SLICE, 40, 12, 9000, 1800, SPEC)
    assert lone.evidence["additional_rows_plan"]["alpha"] == SPEC.policy.fdr
    assert d.additional_rows > 2 * lone.additional_rows
    # And a slice that many rows away from the verdict: its p-value at the planned size and observed rate turns it.
    p_at_plan = stats.chi2_contingency([[0.3 * total, 0.7 * total], [1800, 7200]], correction=False)[1]
    assert p_at_plan < 0.05 < stats.chi2_contingency([[12, 28], [1800, 7200]], correction=False)[1]
    assert bh_rejects(others, p_at_plan, SPEC.policy.fdr)


def test_edge_cases_are_documented_figures():
    """No comparison -> None; zero gap -> min_support - n1 (or None); zero support -> at least min_support."""
    assert additional_rows_needed(3, 40, 0, 0, SPEC) is None
    assert rows_plan(3, 40, 0, 0, SPEC).basis == "no_comparison"
    assert additional_rows_needed(0, 10, 0, 5000, SPEC) == SPEC.policy.min_support - 10
    assert additional_rows_needed(0, 100, 0, 5000, SPEC) is None
    assert rows_plan(0, 100, 0, 5000, SPEC).basis == "no_gap"
    zero = rows_plan(0, 0, 1000, 10000, SPEC)
    assert zero.basis == "tolerance_boundary" and zero.additional_rows == zero.rows_needed >= SPEC.policy.min_support
    assert additional_rows_needed(80, 100, 100, 1000, SPEC) == 0  # already large enough


def test_unreachable_power_is_none_with_the_interval_width_explained():
    """When even unlimited slice rows cannot give 80% power (tiny comparison), no figure: the comparison is the bottleneck."""
    plan = rows_plan(12, 100, 1, 10, SPEC)   # 12% against 10% of only 10 rows: planned at the 12.5% boundary
    assert plan.additional_rows is None and plan.basis == "comparison_too_small"
    assert power(0.125, 10**12, 0.1, 10) < 0.8
    width = math.ceil(samplesize_confint_proportion(0.125, 0.025, alpha=0.05))
    assert f"{width:,} rows" in plan.explanation
    d = diagnose(SLICE, 100, 30, 10, 2, SPEC)   # 30% against 20% of 10 rows: beyond the tolerance, undecided
    assert d.evidence["verdict"] == "inconclusive"
    assert d.need == "more_data" and d.additional_rows is None and "no number of extra rows" in d.message


# ---------------------------------------------------------------- the need rules

def quality_table(signals: list[tuple]) -> object:
    """A QualityTable from hand-made counts (slice, signal, column, x, n, total_x, total_n)."""
    frame = pd.DataFrame(signals, columns=["slice", "signal", "column", "x", "n", "total_x", "total_n"])
    slices = pd.DataFrame({"slice": list(dict.fromkeys(frame["slice"]))})
    counts = QualityCounts(signals=frame, slices=slices, total_rows=0, labelled_rows=0, positive_label="1",
                           label_error_rule=None, notes=("label-error signal not computed: the audit has no score column",))
    return compute_quality(counts, SPEC)


def dirty_with_errors(clean_n: float, clean_errors: float) -> object:
    """DIRTY with the error signal counted among the rows its missing-values signal does not flag."""
    frame = pd.DataFrame([(SLICE, MISSING_ANY, None, 300, 1000, 400, 10000, clean_n, clean_errors, 9600.0, 1500.0)],
                         columns=["slice", "signal", "column", "x", "n", "total_x", "total_n", "clean_n",
                                  "clean_errors", "total_clean_n", "total_clean_errors"])
    counts = QualityCounts(signals=frame, slices=pd.DataFrame({"slice": [SLICE]}), total_rows=0, labelled_rows=0,
                           positive_label="1", label_error_rule=None)
    return compute_quality(counts, SPEC)


CLEAN = quality_table([(SLICE, MISSING_ANY, None, 30, 1000, 300, 10000), (SLICE, CONFLICTS, None, 0, 900, 0, 9000)])
DIRTY = quality_table([(SLICE, MISSING_ANY, None, 300, 1000, 400, 10000), (SLICE, CONFLICTS, None, 0, 900, 0, 9000)])
NOISY = quality_table([(SLICE, LABEL_ERRORS, None, 300, 1000, 1000, 10000),
                       (SLICE, LABEL_ERRORS_NEG, None, 120, 400, 400, 4000),
                       (SLICE, LABEL_ERRORS_POS, None, 180, 600, 600, 6000)])


def test_model_when_decided_clean_and_represented():
    """Significantly worse, enough data, no signal fired: the model."""
    d = diagnose(SLICE, 1000, 300, 9000, 1800, SPEC, quality=CLEAN)
    assert d.need == "model" and d.additional_rows is None
    assert d.evidence["verdict"] == "outside"
    assert "channel=broker, region=south" in d.message and "30.0%" in d.message and "20.0%" in d.message


def test_better_data_beats_the_model_and_says_which_signal():
    """The same gap with a fired missing-values signal whose rows explain it is better_data, naming the signal."""
    # Without the 300 flagged rows: 147 errors in 700 (21%) against 20%, within the band.
    d = diagnose(SLICE, 1000, 300, 9000, 1800, SPEC, quality=dirty_with_errors(700.0, 147.0))
    assert d.need == "better_data"
    assert d.evidence["quality"]["signals_fired"] == [MISSING_ANY]
    assert "missing value" in d.message and "30.0%" in d.message
    assert d.evidence["quality"]["without_flagged"][0]["explains_gap"] is True
    noisy_rows = NOISY.rows.assign(clean_n=[700.0, np.nan, np.nan], clean_errors=[147.0, np.nan, np.nan])
    noisy = diagnose(SLICE, 1000, 300, 9000, 1800, SPEC, quality=replace(NOISY, rows=noisy_rows))
    assert noisy.need == "better_data" and noisy.evidence["quality"]["signals_fired"] == [LABEL_ERRORS]
    assert "contradicts" in noisy.message


def test_a_signal_without_counts_of_its_rows_is_reported_beside_the_model():
    """A fired signal whose unflagged rows were not counted cannot explain the gap: model, the signal reported."""
    d = diagnose(SLICE, 1000, 300, 9000, 1800, SPEC, quality=DIRTY)
    assert d.need == "model" and d.evidence["quality"]["signals_fired"] == [MISSING_ANY]
    assert "not counted" in d.message


def test_more_data_when_inconclusive_with_rows_from_power():
    """Beyond the tolerance but not significant: more_data with the power-based figure."""
    d = diagnose(SLICE, 40, 12, 9000, 1800, SPEC, quality=CLEAN)   # 30% on 40 rows against 20%
    assert d.evidence["verdict"] == "inconclusive"
    assert d.need == "more_data"
    assert d.additional_rows == additional_rows_needed(12, 40, 1800, 9000, SPEC) > 0
    assert f"{d.additional_rows:,}" in d.message
    assert d.evidence["additional_rows_plan"]["basis"] == "observed_gap"


def test_more_data_counts_labelled_rows_not_just_the_denominator():
    """For a rate over positives, extra positives are turned into extra labelled rows at the slice's mix."""
    d = diagnose(SLICE, 40, 12, 9000, 1800, SPEC, metric="false_negative_rate", labelled_n=80, quality=CLEAN)
    plan = d.evidence["additional_rows_plan"]
    assert d.additional_rows == math.ceil(plan["additional_metric_rows"] * 80 / 40)


def test_insufficient_support_is_more_data_even_within():
    """Below min_support the verdict is insufficient_data and the need more_data."""
    d = diagnose(SLICE, 12, 2, 9000, 1800, SPEC)
    assert d.evidence["verdict"] == "insufficient_data" and d.need == "more_data"
    assert d.additional_rows >= SPEC.policy.min_support - 12
    assert "only 12 rows" in d.message


def test_no_need_when_within_or_better():
    """Within the tolerance, or significantly better than the comparison: no need."""
    assert diagnose(SLICE, 1000, 210, 9000, 1800, SPEC, quality=DIRTY).need is None
    better = diagnose(SLICE, 1000, 50, 9000, 1800, SPEC, quality=CLEAN)
    assert better.evidence["verdict"] == "outside" and better.need is None
    # For a rate where higher is better, lower is the worse side.
    worse_tpr = diagnose(SLICE, 1000, 500, 9000, 7200, SPEC, metric="true_positive_rate", quality=CLEAN)
    assert worse_tpr.need == "model"


def test_under_represented_within_is_more_data_by_share():
    """An under-represented slice with no metric problem needs more data: the rows to its reference share."""
    d = diagnose(SLICE, 1000, 200, 9000, 1800, SPEC, representation_ratio=0.5, rows_to_reference_share=1234)
    assert d.need == "more_data" and d.additional_rows == 1234
    assert "under-represented" in d.message and "1,234" in d.message


def test_zero_rows_slice():
    """A slice with no rows at all: insufficient data, rows planned at the tolerance boundary."""
    d = diagnose(SLICE, 0, 0, 9000, 1800, SPEC)
    assert d.need == "more_data"
    assert d.additional_rows == additional_rows_needed(None, 0, 1800, 9000, SPEC) >= SPEC.policy.min_support
    assert d.evidence["additional_rows_plan"]["basis"] == "tolerance_boundary"


def test_missing_score_said_in_evidence():
    """Without a score, the evidence says the label-error signal was not computed, and why."""
    d = diagnose(SLICE, 1000, 300, 9000, 1800, SPEC, quality=CLEAN)
    assert "no score column" in d.evidence["quality"]["label_errors"]
    unchecked = diagnose(SLICE, 1000, 300, 9000, 1800, SPEC)
    assert unchecked.need == "model" and unchecked.evidence["quality"]["checked"] is False
    assert "no data-quality check" in unchecked.message


def test_slice_search_findings_and_score_loss():
    """A slice-search 'finding' counts as significantly worse; a score-loss finding is diagnosed without rates."""
    d = diagnose(SLICE, 1000, 300, 9000, 1800, SPEC, verdict="finding", quality=CLEAN)
    assert d.need == "model" and d.evidence["verdict"] == "outside"
    # Issue 16: a finding's signal must explain the gap by magnitude; without the error counts among the
    # unflagged rows it cannot, so the need stays the model's, with the signal named beside it.
    loss = diagnose(SLICE, 1000, 250.0, 9000, 1350.0, SPEC, metric="score_loss", verdict="finding", quality=DIRTY)
    assert loss.need == "model" and "0.250" in loss.message and loss.evidence["ci_low"] is None
    assert "missing_values fired" in loss.message
    # With them: without its 300 flagged rows the slice's mean loss is 0.16 against 0.15 for the rest: explained.
    explained = diagnose(SLICE, 1000, 250.0, 9000, 1350.0, SPEC, metric="score_loss", verdict="finding",
                         quality=dirty_with_errors(700, 112.0), rest_rate=0.15)
    assert explained.need == "better_data" and "0.160" in explained.message
    kept = diagnose(SLICE, 1000, 250.0, 9000, 1350.0, SPEC, metric="score_loss", verdict="finding",
                    quality=dirty_with_errors(700, 210.0), rest_rate=0.15)
    assert kept.need == "model" and kept.evidence["quality"]["without_flagged"][0]["explains_gap"] is False
    undecided = diagnose(SLICE, 20, 5.0, 9000, 1350.0, SPEC, metric="score_loss", verdict="insufficient_data")
    assert undecided.need == "more_data" and undecided.additional_rows is None
    assert undecided.evidence["additional_rows_plan"]["basis"] == "not_a_proportion"
    with pytest.raises(ValueError, match="give the verdict"):
        diagnose(SLICE, 1000, 250.0, 9000, 1350.0, SPEC, metric="score_loss")


def test_derive_verdict_matches_the_group_table_rules():
    """Verdicts from counts: insufficient below min_support, within the band, outside when significant."""
    assert derive_verdict(5, 20, 100, 1000, SPEC) == "insufficient_data"
    assert derive_verdict(110, 1000, 1000, 10000, SPEC) == "within"
    assert derive_verdict(300, 1000, 1000, 10000, SPEC) == "outside"
    assert derive_verdict(15, 100, 1000, 10000, SPEC) == "inconclusive"
    assert derive_verdict(300, 1000, 1000, 10000, SPEC, q_value=0.2) == "inconclusive"


def _masked_group_frame() -> pd.DataFrame:
    """Reference a (1,000 rows) and a masked group b (20 positives, 20 negatives: rates below min_support 30).

    a: FNR 50/500 = 0.10, FPR 100/500 = 0.20, selection 550/1000. b: FNR 10/20 = 0.50, FPR 12/20 = 0.60,
    selection 22/40 (the same as a's, so the only problems are b's withheld rates).
    """
    def block(group: str, pos: int, missed: int, neg: int, fp: int) -> pd.DataFrame:
        label = [1] * pos + [0] * neg
        pred = [0] * missed + [1] * (pos - missed) + [1] * fp + [0] * (neg - fp)
        return pd.DataFrame({"g": group, "label": label, "pred": pred})

    return pd.concat([block("a", 500, 50, 500, 100), block("b", 20, 10, 20, 12)], ignore_index=True)


def test_a_masked_group_is_judged_on_its_largest_observed_gap():
    """Rates withheld below min_support: the need is judged on the tracked metric with the largest raw-count ratio.

    Oracle by hand, 0.5 added to each count: FNR (10.5/21) / (50.5/501) = 4.96, FPR (12.5/21) / (100.5/501) = 2.97,
    TPR (10.5/21) / (450.5/501) = 0.556 (|log| 0.59): the false-negative rate, not the first in list order (TPR).
    """
    from fairwatch.connectors.source import open_frame

    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "label", "prediction": "pred", "sensitive": ["g"]}, "reference": {"g": "a"}})
    snap = run_audit(spec, RowFilter(), open_frame(_masked_group_frame()), search_slices=False)
    needs = diagnose_groups(snap.groups, snap.representation, None, spec)
    b = needs.set_index("group").loc["g=b"]
    assert b["metric"] == "false_negative_rate" and b["verdict"] == "insufficient_data" and b["need"] == "more_data"
    choice = b["evidence"]["metric_choice"]
    assert choice["metric"] == "false_negative_rate" and choice["ratio_from"] == "raw counts"
    assert choice["ratio"] == pytest.approx((10.5 / 21) / (50.5 / 501))
    assert "largest observed gap" in choice["rule"]
    ratios = {p["metric"]: p["ratio"] for p in b["evidence"]["problems"]}
    assert ratios["false_positive_rate"] == pytest.approx((12.5 / 21) / (100.5 / 501))
    assert ratios["true_positive_rate"] == pytest.approx((10.5 / 21) / (450.5 / 501))
    assert [p["metric"] for p in b["evidence"]["problems"]][:2] == ["false_negative_rate", "false_positive_rate"]
    json.dumps(b["evidence"], allow_nan=False)


def test_messages_are_one_sentence():
    """Each message is one sentence: one final full stop, no line breaks."""
    for d in (diagnose(SLICE, 1000, 300, 9000, 1800, SPEC, quality=CLEAN),
              diagnose(SLICE, 1000, 300, 9000, 1800, SPEC, quality=DIRTY),
              diagnose(SLICE, 40, 12, 9000, 1800, SPEC), diagnose(SLICE, 12, 2, 9000, 1800, SPEC),
              diagnose(SLICE, 1000, 200, 9000, 1800, SPEC, representation_ratio=0.5, rows_to_reference_share=10)):
        text = d.message.replace("e.g.", "")
        assert "\n" not in text and text.endswith(".")
        assert ". " not in text.replace("0. ", "")


# ---------------------------------------------------------------- the demo

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """One 150k-row demo for the module: spec, an open source, and the raw rows with labels."""
    path = tmp_path_factory.mktemp("diagnosis_demo") / "demo.duckdb"
    write_demo(path, rows=150_000, seed=7)
    raw = copy.deepcopy(DEMO_CONFIG)
    raw["source"]["path"] = str(path)
    spec = parse_spec(raw)
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql("SELECT p.*, l.repaid FROM predictions p LEFT JOIN labels l USING (request_id)").df()
    finally:
        con.close()
    src = open_source(spec.source)
    yield spec, src, rows
    src.con.close()


def _errors(rows: pd.DataFrame, mask: pd.Series, kind: str) -> tuple[int, int, int, int]:
    """(errors, n) in the slice and in its complement, by pandas on the raw labelled rows."""
    lab = rows["repaid"].notna()
    y, p = rows["repaid"].astype("boolean"), rows["approved"].astype(bool)
    if kind == "misclassification":
        den, err = lab, lab & (y != p)
    else:  # false-negative rate: repaid but declined, over those who repaid
        den, err = lab & (y == True), lab & (y == True) & ~p  # noqa: E712
    den, err = den.fillna(False).astype(bool), err.fillna(False).astype(bool)
    return int((err & mask).sum()), int((den & mask).sum()), int((err & ~mask).sum()), int((den & ~mask).sum())


def test_demo_broker_south_needs_better_data(demo):
    """broker & south: significantly worse error rate, but its labels are noisy: better_data, label errors fired."""
    spec, src, rows = demo
    # The unflagged rows' errors are counted (positive_prediction), so the label errors can explain the gap.
    quality = compute_quality(fetch_quality_counts(src, spec, [SLICE], "true", positive_prediction="true"), spec)
    mask = (rows["channel"] == "broker") & (rows["region"] == "south")
    x1, n1, x2, n2 = _errors(rows, mask, "misclassification")
    d = diagnose(SLICE, n1, x1, n2, x2, spec, quality=quality)
    assert d.evidence["verdict"] == "outside"
    assert d.need == "better_data"
    assert LABEL_ERRORS in d.evidence["quality"]["signals_fired"]
    assert "channel=broker, region=south" in d.message and "contradicts" in d.message
    assert "t1 =" in d.evidence["quality"]["label_errors"]
    json.dumps(d.evidence, allow_nan=False)


def test_demo_fnr_gap_is_a_model_problem(demo):
    """The v2 fnr-gap slice: enough data, clean, significantly worse: model (not mistaken for label noise)."""
    spec, src, rows = demo
    gap = (("race_ethnicity", "Black"), ("age_band", "18-24"))
    quality = compute_quality(fetch_quality_counts(src, spec, [gap], "true", RowFilter(model_version="v2")), spec)
    v2 = rows[rows["model_version"] == "v2"].reset_index(drop=True)
    mask = (v2["race_ethnicity"] == "Black") & (v2["age_band"] == "18-24")
    x1, n1, x2, n2 = _errors(v2, mask, "false_negative")
    d = diagnose(gap, n1, x1, n2, x2, spec, metric="false_negative_rate", quality=quality)
    assert d.evidence["verdict"] == "outside" and d.evidence["ratio"] > 1.5
    assert d.need == "model"


@pytest.fixture(scope="module")
def group_needs(demo):
    """The group diagnosis of the whole demo audit."""
    spec, src, _ = demo
    snap = run_audit(spec, None, src)
    quality = compute_quality(fetch_quality_counts(src, spec, [], snap.data.positive_label), spec)
    return snap, diagnose_groups(snap.groups, snap.representation, quality, spec)


def test_demo_pacific_islander_needs_more_data(group_needs):
    """The too-small group gets more_data with a positive number of additional labelled rows."""
    _, needs = group_needs
    pi = needs.set_index("group").loc["race_ethnicity=Pacific Islander"]
    assert pi["need"] == "more_data"
    assert pi["additional_rows"] > 0
    assert pi["verdict"] in ("inconclusive", "insufficient_data")
    assert pi["evidence"]["representation"]["under_represented"]
    assert "Pacific Islander" in pi["message"] and f"{int(pi['additional_rows']):,}" in pi["message"]


def test_demo_rows_to_settle_are_at_the_group_tables_bh_level(group_needs):
    """The too-small group's rows are planned at the BH level of the group table's family (statsmodels' BH, brute force)."""
    snap, needs = group_needs
    pi = needs.set_index("group").loc["race_ethnicity=Pacific Islander"]
    plan = pi["evidence"]["additional_rows_plan"]
    rows = snap.groups.rows
    metric = rows["metric"].eq(pi["metric"])
    own = rows["slice"].map(lambda s: tuple(s) == (("race_ethnicity", "Pacific Islander"),)) & metric
    others = rows.loc[rows["q_value"].notna() & ~own, "p_value"].tolist()
    level = brute_level(others, snap.spec.policy.fdr)
    assert plan["alpha"] == pytest.approx(level, rel=1e-12) and plan["family_size"] == len(others) + 1
    assert level < snap.spec.policy.fdr / 10   # far below the unadjusted 0.05 the rows used to be counted at
    ref = rows[rows["slice"].map(lambda s: tuple(s) == (("race_ethnicity", "White"),)) & metric].iloc[0]
    n2, p2 = int(ref["support"]), float(ref["successes"]) / int(ref["support"])
    target, total = plan["target_rate"], plan["rows_needed"]
    assert power(target, total, p2, n2, level) >= 0.8 > power(target, total - 1, p2, n2, level)


def test_demo_clean_large_groups_need_nothing(group_needs):
    """Large groups with no planted problem get no need."""
    _, needs = group_needs
    by = needs.set_index("group")
    for group in ("sex=female", "sex=male", "race_ethnicity=White", "race_ethnicity=Hispanic"):
        assert by.loc[group, "need"] is None, by.loc[group, "message"]
        assert pd.isna(by.loc[group, "additional_rows"])


def test_demo_falling_share_is_under_represented(group_needs, demo):
    """65+ falls to about 8% of rows against a 12% reference share: more_data, the rows to reach that share."""
    _, needs = group_needs
    _, _, rows = demo
    n, total = int((rows["age_band"] == "65+").sum()), len(rows)
    row = needs.set_index("group").loc["age_band=65+"]
    assert row["need"] == "more_data"
    assert row["additional_rows"] == math.ceil((0.12 * total - n) / (1 - 0.12))


def test_demo_every_group_with_a_problem_has_exactly_one_need(group_needs):
    """One row per sensitive group; a need exactly where a headline metric falls short or cannot be judged, or under-representation."""
    snap, needs = group_needs
    groups = snap.groups.rows
    single = groups[groups["slice"].map(len).eq(1)]
    assert set(needs["slice"]) == set(single["slice"]) and needs["slice"].is_unique
    for r in needs.to_dict("records"):
        has_problem = bool(r["problems"]) or r["evidence"]["representation"]["under_represented"]
        assert (r["need"] is not None) == has_problem
        assert r["need"] in (None, "more_data", "better_data", "model")
        assert set(m for m, _ in r["problems"]) <= set(HEADLINE_METRICS)
        json.dumps(r["evidence"], allow_nan=False)  # the evidence goes into the snapshot as it is


# ---------------------------------------------------------------- sensitive groups: a need by magnitude

GROUP_SPEC = {"label": "y", "positive_label": "1", "score": "s", "threshold": 0.5, "sensitive": ["grp"],
              "features": ["f"]}
FAIRLEARN = {"false_negative_rate": false_negative_rate, "false_positive_rate": false_positive_rate,
             "selection_rate": selection_rate, "true_positive_rate": true_positive_rate}


def planted_groups(seed: int, flip: float = 0.5, n_b: int = 6000, n_c: int = 6000, c_missing: float = 0.06) -> pd.DataFrame:
    """Rows of three groups: A (the reference) with a fair model; B with labels flipped where the model is
    confident (its gap is label noise); C with an uninformative score (the model's fault) and a small excess
    of missing values in f."""
    rng = np.random.default_rng(seed)
    grp = np.array(["A"] * 20000 + ["B"] * n_b + ["C"] * n_c, dtype=object)
    n = len(grp)
    truth = rng.random(n) < 0.4
    s = np.where(truth, rng.beta(5, 2, n), rng.beta(2, 5, n))
    c, b = grp == "C", grp == "B"
    s[c] = rng.uniform(0.3, 0.7, c.sum())
    y = truth.copy()
    flipped = b & ((s > 0.85) | (s < 0.15)) & (rng.random(n) < flip)
    y[flipped] = ~y[flipped]
    f = rng.choice(["u", "v"], n).astype(object)
    f[(c & (rng.random(n) < c_missing)) | (~c & (rng.random(n) < 0.02))] = None
    return pd.DataFrame({"grp": grp, "f": f, "s": s, "y": y.astype(int)})


def _group_audit(df: pd.DataFrame, tmp: Path):
    """The audit of a planted frame, written as Parquet (the product's path)."""
    path = tmp / "groups.parquet"
    df.to_parquet(path)
    return run_audit(parse_spec({"source": {"path": str(path)}, "columns": GROUP_SPEC}))


def _flagged(df: pd.DataFrame, signal: str) -> pd.Series:
    """The rows a signal flags, straight from the raw rows (Confident Learning thresholds over all rows)."""
    if signal in ("missing_values", "missing_column:f"):
        return df["f"].isna()
    assert signal == LABEL_ERRORS, signal  # continuous scores: no conflicting duplicates in these frames
    y = df["y"] == 1
    t1, t0 = df.loc[y, "s"].mean(), (1 - df.loc[~y, "s"]).mean()
    return (~y & (df["s"] >= t1)) | (y & (1 - df["s"] >= t0))


def _metric_without(df: pd.DataFrame, group: str, metric: str, flagged: pd.Series) -> tuple[float, int, int]:
    """(fairlearn's value, numerator, denominator) of a group's metric on its unflagged raw rows."""
    rows = df[(df["grp"] == group) & ~flagged]
    y, p = rows["y"].to_numpy(), (rows["s"] >= 0.5).to_numpy().astype(int)
    den = {"false_negative_rate": y == 1, "true_positive_rate": y == 1, "false_positive_rate": y == 0,
           "selection_rate": np.ones(len(y), bool)}[metric]
    num = {"false_negative_rate": (y == 1) & (p == 0), "true_positive_rate": (y == 1) & (p == 1),
           "false_positive_rate": (y == 0) & (p == 1), "selection_rate": p == 1}[metric]
    return float(FAIRLEARN[metric](y, p)), int(num.sum()), int(den.sum())


def _still_worse(df: pd.DataFrame, snap, row: dict, signal: str) -> tuple[bool, float]:
    """Whether the group without the signal's rows is still materially and significantly worse than its
    reference (raw rows: fairlearn for the rate, scipy's chi-square for the p-value, statsmodels' BH over
    the group table's family with this comparison's p-value replaced), and its rate then."""
    metric, policy = row["metric"], snap.spec.policy
    rate, x1, n1 = _metric_without(df, row["group"].split("=", 1)[1], metric, _flagged(df, signal))
    ref = df[df["grp"] == "A"]
    _, x2, n2 = _metric_without(ref, "A", metric, pd.Series(False, index=ref.index))
    ratio = rate / (x2 / n2)
    worse = ratio < policy.ratio_low if metric in ("selection_rate", "true_positive_rate") else ratio > policy.ratio_high
    p = stats.chi2_contingency([[x1, n1 - x1], [x2, n2 - x2]], correction=False)[1]
    g = snap.groups.rows
    tested = g["q_value"].notna().to_numpy()
    mine = ((g["slice"].map(tuple) == tuple(row["slice"])) & (g["metric"] == metric)).to_numpy()
    pvalues = np.where(mine, p, g["p_value"].to_numpy(float))[tested]
    q = multipletests(pvalues, alpha=policy.fdr, method="fdr_bh")[1][mine[tested]][0]
    return bool(worse and abs(rate - x2 / n2) >= policy.min_difference and q < policy.fdr), rate


def test_group_needs_by_magnitude_against_pandas_on_raw_rows(tmp_path: Path):
    """B's gap is planted label noise: without the suspected label errors it is gone, so better data. C's model is
    weak and a small missing-value excess fired: without those rows C stays worse, so model, the signals beside it."""
    df = planted_groups(seed=0)
    snap = _group_audit(df, tmp_path)
    needs = {r["group"]: r for r in snap.group_needs.to_dict("records")}
    b, c = needs["grp=B"], needs["grp=C"]
    assert b["verdict"] == c["verdict"] == "outside"
    assert b["need"] == "better_data" and "contradicts" in b["message"]
    [explained] = [g for g in b["evidence"]["quality"]["without_flagged"] if g["explains_gap"]]
    assert explained["signal"] == LABEL_ERRORS
    still, rate = _still_worse(df, snap, b, LABEL_ERRORS)
    assert not still and explained["rate_without_flagged"] == pytest.approx(rate, abs=1e-12)
    assert c["need"] == "model" and c["additional_rows"] is None
    fired = c["evidence"]["quality"]["signals_fired"]
    assert MISSING_ANY in fired and "do not explain the gap" in c["message"]
    for g in c["evidence"]["quality"]["without_flagged"]:
        still, rate = _still_worse(df, snap, c, g["signal"])
        assert still and not g["explains_gap"] and g["rate_without_flagged"] == pytest.approx(rate, abs=1e-12)
    assert needs["grp=A"]["need"] is None


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), flip=st.floats(0.05, 0.9), n_b=st.integers(1500, 8000),
       c_missing=st.floats(0.0, 0.5))
def test_removing_the_flagged_rows_of_a_better_data_group_removes_its_material_gap(tmp_path_factory, seed, flip,
                                                                                  n_b, c_missing):
    """Property: a group called better data is, without the explaining signal's rows, no longer materially and
    significantly worse than its reference (raw rows); a fired signal that does not explain leaves it worse."""
    df = planted_groups(seed, flip=flip, n_b=n_b, n_c=3000, c_missing=c_missing)
    snap = _group_audit(df, tmp_path_factory.mktemp("prop"))
    for row in snap.group_needs.to_dict("records"):
        gaps = row["evidence"]["quality"].get("without_flagged", [])
        if row["need"] == "better_data":
            assert not _still_worse(df, snap, row, next(g["signal"] for g in gaps if g["explains_gap"]))[0]
        for g in gaps:
            if not g["explains_gap"]:
                assert _still_worse(df, snap, row, g["signal"])[0], (row["group"], g)
