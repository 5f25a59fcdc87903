"""Alert rules: every form parses, fires on constructed data where it should and not where it should not."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors.monitor import run_check
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.monitoring.alerts import FindingIds, Rule, evaluation_period, parse_rule, parse_rules
from fairwatch.metrics.errors import SpecError
# demo_spec is a module-scoped fixture: imported, it still writes one demo per module.
from tests.test_trends import demo_spec, frame_spec  # noqa: F401

WEEK1, WEEK2 = pd.Timestamp("2025-03-03"), pd.Timestamp("2025-03-10")
SPEC = frame_spec(["g", "h"], reference={"g": "a"})  # named, so g=b is never the reference


def two_weeks(gap: bool = False, shift: bool = False, label_latest: bool = True, n: int = 3000) -> pd.DataFrame:
    """Two weekly windows; in the second, g=b may get a higher FNR (gap) and a smaller share (shift)."""
    rng = np.random.default_rng(4)
    parts = []
    for week, latest in ((WEEK1, False), (WEEK2, True)):
        share_b = 0.2 if (latest and shift) else 0.5
        g = np.where(rng.random(n) < share_b, "b", "a")
        fnr = np.where((g == "b") & latest & gap, 0.6, 0.2)
        y_true = rng.integers(0, 2, n)
        y_pred = np.where(y_true == 1, (rng.random(n) >= fnr).astype(int), (rng.random(n) < 0.2).astype(int))
        labels = pd.array(y_true, dtype="Int64")
        if latest and not label_latest:
            labels[:] = pd.NA
        parts.append(pd.DataFrame({
            "g": g, "h": rng.choice(["x", "y"], n), "y_true": labels, "y_pred": y_pred,
            "ts": week + pd.to_timedelta(rng.integers(0, 5 * 86400, n), unit="s"),
        }))
    return pd.concat(parts, ignore_index=True)


def check(df: pd.DataFrame, *rules: str, grain: str = "week", **kw):
    """run_check on an in-memory frame, by week (two weeks of data would be read by day)."""
    return run_check(SPEC, list(rules), src=open_frame(df), grain=grain, **kw)


def status(result, i: int = 0) -> str:
    """Status of the i-th rule."""
    return result.outcomes[i].status


# --------------------------------------------------------------------------- parsing


def test_each_rule_form_parses():
    """Metric (value/ratio/difference, scopes), share, psi and new-finding rules."""
    r = parse_rule("false_negative_rate ratio < 0.8 for any g group", SPEC)
    assert (r.kind, r.metric, r.stat, r.op, r.threshold, r.groupings) == ("metric", "false_negative_rate", "ratio", "<", 0.8, (("g",),))
    r = parse_rule("FNR Difference >= 0.05 for any H & g groups", SPEC)
    assert (r.metric, r.stat, r.op, r.groupings) == ("false_negative_rate", "difference", ">=", (("g", "h"),))
    r = parse_rule("accuracy < 0.7 for h=y & g=b", SPEC)
    assert (r.stat, r.slice, r.groupings) == ("value", (("g", "b"), ("h", "y")), (("g", "h"),))
    assert parse_rule("tpr value < 0.5", SPEC).groupings == (("g",), ("h",), ("g", "h"))
    assert parse_rule("ppv < 0.5 for any group", SPEC).groupings == (("g",), ("h",), ("g", "h"))
    r = parse_rule('share of g="Pacific Islander" < 0.05', SPEC)
    assert (r.kind, r.slice, r.op, r.threshold) == ("share", (("g", "Pacific Islander"),), "<", 0.05)
    assert parse_rule("share of g=65+ < 0.05", SPEC).slice == (("g", "65+"),)
    r = parse_rule("psi of g × h > 0.2", SPEC)
    assert (r.kind, r.groupings, r.threshold) == ("psi", (("g", "h"),), 0.2)
    assert parse_rule("any new finding", SPEC) == Rule(text="any new finding", kind="new_finding")
    assert parse_rule("  Any  NEW findings ", SPEC).kind == "new_finding"


@pytest.mark.parametrize(("text", "message"), [
    ("fnrr ratio < 0.8 for any g group", r"unknown metric at 'fnrr' \(character 1\); use one of base_rate"),
    ("false_negative_rate ratio < 0.8 for any race group", r"unknown sensitive feature at 'race' \(character 41\); name one of g, h"),
    ("accuracy < for any g group", r"expected a number at 'for' \(character 12\)"),
    ("accuracy <", "expected a number at the end"),
    ("accuracy = 0.8 for any g group", r"expected a comparison at '=' \(character 10\)"),
    ("psi of g < 0.2", r"expected a comparison at '<'.*write one of > >="),
    ("share of g < 0.1", r"expected '=' at '<'"),
    ('share of g="Pacific < 0.1', r"unterminated quote at '\"' \(character 12\)"),
    ("accuracy < 0.8 for any g group please", r"unexpected text at 'please'"),
    ("accuracy < 1.5 for any g group", r"threshold out of range \[0.0, 1.0\] at '1.5'"),
    ("fnr ratio < -1", r"threshold out of range"),
    ("f1 < 0.5", "unknown metric at 'f1'"),
    ("any old finding", r"expected 'new' at 'old'"),
    ("accuracy < 0.8 for any g & g group", "a feature is named twice"),
    ("", "empty rule"),
])
def test_bad_rules_are_one_line_spec_errors_pointing_at_the_token(text, message):
    """Each parse error names the problem, the token and its position, and how to fix it, on one line."""
    with pytest.raises(SpecError, match=message) as info:
        parse_rule(text, SPEC)
    assert "\n" not in str(info.value)


def test_rule_lists():
    """No rules is an error; a single string is one rule; a rule must be text."""
    with pytest.raises(SpecError, match="no alert rules"):
        parse_rules([], SPEC)
    assert len(parse_rules("any new finding", SPEC)) == 1
    with pytest.raises(SpecError, match="must be text"):
        parse_rule(0.8, SPEC)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- evaluation


def test_ratio_rule_fires_only_on_a_real_gap():
    """Ratio beyond the threshold AND significant: fires on the planted gap, not on equal groups."""
    rule = "false_negative_rate ratio > 1.25 for any g group"
    fired = check(two_weeks(gap=True), rule)
    assert status(fired) == "fired" and fired.fired
    (hit,) = fired.outcomes[0].hits
    assert hit.group == "g=b" and hit.value > 2 and hit.q_value < 0.05 and "ratio" in hit.why
    assert status(check(two_weeks(gap=False), rule)) == "ok"
    assert status(check(two_weeks(gap=True), "false_negative_rate ratio < 0.8 for any g group")) == "ok"


def test_value_and_difference_rules():
    """A rate above a threshold, and a difference to the reference, with one-sided/two-sided tests."""
    df = two_weeks(gap=True)
    pos_a = df[(df["ts"] >= WEEK2) & (df["g"] == "a") & (df["y_true"] == 1)]
    just_below = round(float((pos_a["y_pred"] == 0).mean()) - 0.005, 3)
    result = check(df, "fnr > 0.4 for g=b", "fnr > 0.4 for g=a", "fnr difference > 0.2 for any g group",
                   f"fnr > {just_below} for g=a")
    assert [o.status for o in result.outcomes] == ["fired", "ok", "fired", "ok"]
    # g=a's FNR is just above the last threshold as a point, but not significantly.
    assert result.outcomes[3].note == "1 group(s) beyond the threshold but not significant (q ≥ 0.05)"


def test_share_and_psi_rules_fire_on_a_shift_only():
    """share of / psi of: fire when the latest window's mix moved significantly, not otherwise."""
    rules = ("share of g=b < 0.3", "psi of g > 0.1", "psi of h > 0.1")
    shifted = check(two_weeks(shift=True), *rules)
    assert [o.status for o in shifted.outcomes] == ["fired", "fired", "ok"]
    assert "baseline share" in shifted.outcomes[0].hits[0].why
    steady = check(two_weeks(shift=False), *rules)
    assert [o.status for o in steady.outcomes] == ["ok", "ok", "ok"]


def test_new_finding_rule():
    """Fires on an id the previous window did not have; needs the ids."""
    df = two_weeks()
    new = check(df, "any new finding", findings=FindingIds(latest=("f1", "f2"), previous=("f1",)))
    assert status(new) == "fired" and [h.group for h in new.outcomes[0].hits] == ["f2"]
    same = check(df, "any new finding", findings=FindingIds(latest=("f1",), previous=("f1", "f0")))
    assert status(same) == "ok"
    with pytest.raises(SpecError, match="--findings"):
        check(df, "any new finding")
    with pytest.raises(SpecError, match="lists of finding ids"):
        FindingIds.from_mapping({"latest": "f1", "previous": []})
    assert FindingIds.from_mapping({"latest": [1], "previous": []}).latest == ("1",)


def test_latest_window_without_labels_is_insufficient_not_ok():
    """Delayed labels: performance rules say insufficient_data; drift rules still work."""
    result = check(two_weeks(gap=True, label_latest=False), "fnr ratio > 1.25 for any g group", "psi of g > 0.1")
    assert [o.status for o in result.outcomes] == ["insufficient_data", "ok"]
    assert result.labelled_rows == 0 and not result.fired


def test_unknown_group_in_a_rule_is_a_spec_error():
    """A value that never occurs is a typo, not a share of 0."""
    with pytest.raises(SpecError, match="no group g=c in the data; groups are: g=a, g=b"):
        check(two_weeks(), "share of g=c < 0.05")
    with pytest.raises(SpecError, match="no group g=c"):
        check(two_weeks(), "fnr > 0.3 for g=c")


def test_period_choice_now_and_last_days():
    """The latest window holds `now`; last N days are whole days ending on now's day; baselines must come first."""
    windows = pd.Series([WEEK1, WEEK2])
    p = evaluation_period(windows, "week", pd.Timestamp("2025-03-12 15:00"))
    assert (p.start, p.end, p.baseline_start) == (WEEK2, WEEK2 + pd.Timedelta(days=7), WEEK1)
    p = evaluation_period(windows, "day", pd.Timestamp("2025-03-12 15:00"), last_days=3)
    assert (p.start, p.end) == (pd.Timestamp("2025-03-10"), pd.Timestamp("2025-03-13"))
    assert (p.baseline_start, p.baseline_end) == (WEEK1, WEEK1 + pd.Timedelta(days=3))
    with pytest.raises(SpecError, match="overlaps the checked period"):
        evaluation_period(windows, "week", WEEK2, baseline=WEEK2)
    with pytest.raises(SpecError, match="at least 1"):
        evaluation_period(windows, "day", WEEK2, last_days=0)


def test_now_after_the_data_reports_no_rows():
    """A `now` in a window without data: nothing can fire, and the result says data stopped arriving."""
    result = check(two_weeks(), "psi of g > 0.1", "fnr ratio > 1.25 for any g group", now="2025-04-01")
    assert [o.status for o in result.outcomes] == ["insufficient_data", "insufficient_data"]
    assert any("no rows in the checked period" in n for n in result.notes)


def test_data_shorter_than_two_periods_leaves_drift_unevaluated():
    """One week of data, or last_days longer than the data: the baseline would overlap the period."""
    one_week = two_weeks()
    one_week = one_week[one_week["ts"] >= WEEK2]
    result = check(one_week, "psi of g > 0.1", "share of g=b < 0.6")
    assert [o.status for o in result.outcomes] == ["insufficient_data", "fired"]
    assert any("overlaps the checked period" in n for n in result.notes)
    longer = check(two_weeks(shift=True), "psi of g > 0.1", last_days=10)
    assert status(longer) == "insufficient_data"


def test_result_is_json_and_text():
    """to_dict() is strict JSON; lines() names each rule's status and every hit."""
    result = check(two_weeks(gap=True, shift=True), "fnr ratio > 1.25 for any g group", "psi of h > 0.5")
    json.dumps(result.to_dict(), allow_nan=False)
    text = "\n".join(result.lines())
    assert "[FIRED] fnr ratio > 1.25 for any g group" in text and "[OK] psi of h > 0.5" in text
    assert "g=b:" in text


def test_demo_check_flags_the_v2_gap_over_the_last_90_days(demo_spec):
    """Over the labelled autumn of v2, the FNR ratio rule fires for Black & 18-24; sex does not drift."""
    result = run_check(demo_spec, ["false_negative_rate ratio > 1.25 for any race_ethnicity & age_band group",
                                   "psi of sex > 0.1"], now="2025-11-30", last_days=90)
    ratio, sex = result.outcomes
    assert ratio.status == "fired" and "race_ethnicity=Black, age_band=18-24" in [h.group for h in ratio.hits]
    assert sex.status == "ok"


def test_demo_latest_week_has_no_labels_but_drift_is_checked(demo_spec):
    """By default the newest (partial, unlabelled) week is checked: performance is insufficient, 65+ drift fires."""
    result = run_check(demo_spec, ["fnr ratio > 1.25 for any race_ethnicity group", "psi of age_band > 0.05"])
    assert [o.status for o in result.outcomes] == ["insufficient_data", "fired"]
    assert result.period.start == pd.Timestamp("2025-12-29") and result.grain == "week"
