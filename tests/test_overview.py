"""The Overview's verdicts, headline gaps, plain summary and findings slot, on audits with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from connectors.audit import run_audit
from connectors.source import open_frame
from metrics.groups import metric_names
from metrics.formats import HEADLINE_METRICS, METRIC_EXPLANATIONS, fmt_q
from metrics.overview import feature_verdicts, findings_by_need, plain_summary, worst_disparities
from metrics.spec import parse_spec


def _frame(n: int, seed: int, gap: bool, tiny: bool = False) -> pd.DataFrame:
    """Rows with features a, b, c; with `gap`, a=a2 & b=b2 misses three times as many positives."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.choice(["a1", "a2"], n), "b": rng.choice(["b1", "b2"], n),
                       "c": rng.choice(["c1", "c2"], n)})
    y = rng.random(n) < 0.5
    miss = np.full(n, 0.1)
    if gap:
        miss[(df["a"] == "a2") & (df["b"] == "b2")] = 0.3
    pred = np.where(y, rng.random(n) >= miss, rng.random(n) < 0.2)
    df["y"], df["p"] = y.astype(int), pred.astype(int)
    if tiny:
        df.loc[df.index[:12], "c"] = "c3"  # a group far below min_support
    return df


def _audit(df: pd.DataFrame):
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "sensitive": ["a", "b", "c"]},
                       "policy": {"min_support": 30}})
    return run_audit(spec, src=open_frame(df))


@pytest.fixture(scope="module")
def planted():
    return _audit(_frame(40_000, 1, gap=True, tiny=True))


@pytest.fixture(scope="module")
def null():
    return _audit(_frame(40_000, 2, gap=False))


def test_gap_in_an_intersection_fails_exactly_the_features_it_needs(planted):
    verdicts = {v.feature: v for v in feature_verdicts(planted.groups.rows, ["a", "b", "c"])}
    assert verdicts["a"].status == "fails" and verdicts["b"].status == "fails"
    # c only splits the gap into halves (a2,b2,c1 and a2,b2,c2): it does not fail because of them.
    assert verdicts["c"].status != "fails"
    assert any("a=a2, b=b2" in r for r in verdicts["a"].reasons)
    assert all("n=" in r and "95% interval" in r for r in verdicts["a"].reasons)


def test_a_group_too_small_to_measure_cannot_be_judged(planted):
    c = next(v for v in feature_verdicts(planted.groups.rows, ["c"]) if v.feature == "c")
    assert c.status == "cannot_judge" and c.label == "cannot be judged"
    assert any("c=c3: too few rows" in r and "(n=" in r for r in c.reasons)


def test_no_planted_effect_meets_the_policy(null):
    verdicts = feature_verdicts(null.groups.rows, ["a", "b", "c"])
    assert [v.status for v in verdicts] == ["meets", "meets", "meets"]
    assert all(v.label == "meets policy" for v in verdicts)


def test_worst_gaps_put_the_planted_one_first_with_interval_and_n(planted):
    worst = worst_disparities(planted.groups.rows, ["a", "b", "c"], limit=5)
    top = worst[0]
    assert top.group == "a=a2, b=b2" and top.metric in HEADLINE_METRICS and top.verdict == "outside"
    assert top.ratio_ci_low <= top.ratio <= top.ratio_ci_high and top.support > 1000
    # Its halves by c add nothing and are left out.
    assert not any(d.group.startswith("a=a2, b=b2, c=") and d.verdict == "outside" for d in worst)
    assert len({(d.grouping, d.group) for d in worst}) == len(worst)


def test_hidden_features_are_left_out(planted):
    worst = worst_disparities(planted.groups.rows, ["c"], limit=10)
    assert all(d.grouping == "c" for d in worst)


def test_plain_summary_names_verdicts_numbers_and_their_n(planted):
    verdicts = feature_verdicts(planted.groups.rows, ["a", "b", "c"])
    worst = worst_disparities(planted.groups.rows, ["a", "b", "c"])
    text = " ".join(plain_summary(planted.data, verdicts, worst, planted.spec.policy, "y", "p"))
    assert "40,000 decisions" in text and "fails the policy for a, b" in text
    assert "0.8 and 1.25" in text and "n=" in text and "wrongly" in text


def test_every_metric_has_a_plain_explanation():
    for metric in metric_names(True):
        info = METRIC_EXPLANATIONS[metric]
        assert info.name and info.plain and info.question.endswith(("?", ")"))


def test_findings_slot_says_not_run_until_the_slice_search_fills_it():
    board = findings_by_need(None)
    assert not board.ran and board.message == "slice search not yet run"
    board = findings_by_need([{"need": "more_data", "summary": "x is too small"},
                              {"need": "better_data", "summary": "labels noisy in y"}])
    assert board.ran and dict(board.by_need)["more_data"] == ("x is too small",)
    assert dict(board.by_need)["model"] == ()


def test_q_values_format():
    assert fmt_q(0.0) == "< 1e-300" and fmt_q(0.0123) == "0.012" and fmt_q(2e-9) == "2.0e-09"
    assert fmt_q(float("nan")) == "—"
