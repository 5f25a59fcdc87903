"""diff: new and resolved findings by stable id, metrics that moved beyond their intervals, spec and data changes."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.monitoring.diff import SnapshotError, check_schema_version, diff_snapshots
from fairwatch.metrics.monitoring.finding_ids import findings_of, moved_metric, record_id
from fairwatch.metrics.audit.snapshot import SCHEMA_VERSION
from fairwatch.metrics.audit.spec import RowFilter, parse_spec


def frame(n: int, gap: float, seed: int) -> pd.DataFrame:
    """Two groups; group 'b' is wrongly refused `gap` more often among true positives."""
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b"], n)
    y = rng.integers(0, 2, n)
    miss = np.where(g == "b", 0.1 + gap, 0.1)
    pred = np.where(y == 1, (rng.random(n) > miss).astype(int), (rng.random(n) < 0.2).astype(int))
    return pd.DataFrame({"g": g, "label": y, "pred": pred})


def audit(df: pd.DataFrame, **policy) -> dict:
    """The audit document of a frame."""
    spec = parse_spec({"source": {"path": "frame"}, "columns": {"label": "label", "prediction": "pred", "sensitive": ["g"]},
                       "reference": {"g": "a"}, "policy": policy})
    return run_audit(spec, RowFilter(), open_frame(df)).to_dict()


@pytest.fixture(scope="module")
def before_after() -> tuple[dict, dict]:
    """No gap before; a large false-negative gap for group b after."""
    return audit(frame(20_000, 0.0, 1)), audit(frame(20_000, 0.25, 2))


def test_new_finding_and_moved_metric(before_after):
    """The planted gap is a new finding with a stable id, and b's false negative rate clearly moved."""
    old, new = before_after
    d = diff_snapshots(old, new)
    ids = [i for i, _ in d.new_findings]
    assert "false_negative_rate|g=b" in ids
    assert not d.resolved_findings
    moved = {(m.group, m.metric): m for m in d.moved}
    fnr = moved[("g=b", "false_negative_rate")]
    assert fnr.strength == "clear" and fnr.new_value > fnr.old_ci[1] and fnr.new_ci[0] > fnr.old_ci[1]
    # Group a did not change: its false negative rate is not reported.
    assert ("g=a", "false_negative_rate") not in moved
    assert not d.spec_changes and not d.unchanged
    text = "\n".join(d.lines())
    assert "+ false_negative_rate|g=b" in text and "intervals do not overlap" in text
    assert d.compared > 10 and 0 < d.expected_clear < d.expected_possible < d.compared
    back = diff_snapshots(new, old)
    assert [i for i, _ in back.resolved_findings] == ids and not back.new_findings


def test_same_audit_is_unchanged(before_after):
    """An audit compared with itself: nothing changed."""
    old, _ = before_after
    d = diff_snapshots(old, copy.deepcopy(old))
    assert d.unchanged and not d.moved and d.fingerprint_changed is None
    assert d.to_dict()["unchanged"] is True


def cell(value, low, high) -> dict:
    """A metric cell."""
    return {"value": value, "ci_low": low, "ci_high": high, "support": 100, "masked": False}


@pytest.mark.parametrize("old, new, expected", [
    (cell(0.30, 0.25, 0.35), cell(0.45, 0.40, 0.50), "clear"),       # intervals apart
    (cell(0.30, 0.25, 0.35), cell(0.37, 0.33, 0.41), "possible"),    # overlap, new value outside the old interval
    (cell(0.30, 0.25, 0.35), cell(0.33, 0.28, 0.38), None),          # inside
    (cell(0.30, 0.25, 0.35), cell(None, None, None), None),          # masked or suppressed now
    (cell(0.30, None, None), cell(0.9, 0.85, 0.95), None),           # no interval (f1): never judged
])
def test_move_rule(old, new, expected):
    """The stated rule: non-overlapping intervals are a clear move; a value outside the old interval a possible one."""
    assert moved_metric(old, new) == expected


def test_chance_of_a_move_with_equal_precision():
    """Equal intervals, nothing changed: about 0.56% clear and 16% possible moves by chance (normal theory)."""
    from fairwatch.metrics.monitoring.diff import chance_of_move

    clear, possible = chance_of_move(cell(0.5, 0.45, 0.55), cell(0.5, 0.45, 0.55))
    assert clear == pytest.approx(0.0056, abs=5e-4) and clear + possible == pytest.approx(0.166, abs=2e-3)


def test_finding_ids_are_stable():
    """The id ignores the order of predicates; an explicit id wins; slice findings and policy gaps both count."""
    from fairwatch.metrics.discovery.findings import finding_id

    a = record_id({"slice": {"race": "Black", "age": "18-24"}, "metric": "fnr"})
    b = record_id({"slice": [["age", "18-24"], ["race", "Black"]], "metric": "fnr"})
    # One id function: the audit's own ids and the ids read back from a document are the same strings.
    assert a == b == finding_id((("race", "Black"), ("age", "18-24")), "fnr") == "fnr|age=18-24&race=Black"
    assert record_id({"id": "slice-7", "slice": {"x": "y"}, "metric": "m"}) == "slice-7"
    doc = {"findings": [{"slice": {"x": "1"}, "metric": "m"}], "groups": [
        {"slice": {"g": "b"}, "disparities": {"fnr": {"verdict": "outside"}}}]}
    assert list(findings_of(doc)) == ["m|x=1", "fnr|g=b"]
    del doc["findings"]
    assert list(findings_of(doc)) == ["fnr|g=b"]


def test_spec_data_and_fingerprint_changes(before_after):
    """A changed policy, a changed row count and a changed fingerprint are all listed."""
    old, _ = before_after
    new = copy.deepcopy(old)
    new["spec"]["policy"]["fdr"] = 0.01
    new["data"]["rows"] += 5
    old = copy.deepcopy(old)
    old["fingerprint"] = {"digest": "a" * 64, "engine": "duckdb 2.0.1"}
    new["fingerprint"] = {"digest": "b" * 64, "engine": "duckdb 2.1.0"}
    new["data_quality"] = [{"slice": {"g": "a"}, "n": 50}]
    d = diff_snapshots(old, new)
    assert [c.path for c in d.spec_changes] == ["spec.policy.fdr"]
    assert d.spec_changes[0].old == 0.05 and d.spec_changes[0].new == 0.01
    assert [c.path for c in d.data_changes] == ["data.rows"]
    assert d.fingerprint_changed is True
    assert any("engine changed" in n for n in d.notes)
    assert [c.path for c in d.sections] == ["data_quality records"]


def test_newer_schema_is_refused_with_a_clear_message():
    """A document from a newer fairwatch says to upgrade; a non-snapshot says what it is not."""
    with pytest.raises(SnapshotError, match=r"schema_version 99, newer than this fairwatch reads .* upgrade fairwatch"):
        check_schema_version({"schema_version": 99})
    with pytest.raises(SnapshotError, match="not a fairwatch snapshot"):
        check_schema_version({"groups": []})
    assert check_schema_version({"schema_version": SCHEMA_VERSION}) == SCHEMA_VERSION
    with pytest.raises(SnapshotError, match="newer"):
        diff_snapshots({"schema_version": 1}, {"schema_version": SCHEMA_VERSION + 1})


def _group(value: str, verdict: str, rate: float | None, lo: float | None, hi: float | None, n: int,
           need: str | None = None) -> dict:
    """A `groups` entry of race=value with one false-negative-rate cell against race=White."""
    return {"grouping": "race", "slice": {"race": value}, "need": need,
            "metrics": {"false_negative_rate": {"value": rate, "ci_low": lo, "ci_high": hi, "support": n}},
            "disparities": {"false_negative_rate": {"reference": {"race": "White"}, "verdict": verdict,
                                                    "q_value": 0.01 if verdict == "outside" else 0.3}}}


def _doc(created: str, groups: list[dict], findings: list[dict]) -> dict:
    """A minimal snapshot document (the slice search ran: `findings` is a list)."""
    return {"schema_version": SCHEMA_VERSION, "created_at": created, "groups": groups, "findings": findings}


def _finding(region: str, rate: float, lo: float, hi: float) -> dict:
    """A slice-search finding on region=value."""
    return {"slice": {"region": region}, "metric": "misclassification", "value": rate, "ci_low": lo, "ci_high": hi,
            "n": 800, "q_value": 0.001, "need": "model"}


def test_diff_follows_up_the_older_findings_by_the_stated_rule(tmp_path, capsys):
    """Six earlier findings and open questions; each status worked out by hand from the rule in metrics/monitoring/followup.py."""
    import json

    from fairwatch.cli import main

    old = _doc("2026-01-01", [
        _group("Black", "outside", 0.30, 0.27, 0.33, 900),        # gap -> 0.22 [0.20, 0.24]: apart, lower FNR: improved
        _group("Asian", "outside", 0.25, 0.22, 0.28, 900),        # gap -> 0.26 [0.23, 0.29]: overlap: unchanged
        _group("Hispanic", "outside", 0.20, 0.18, 0.22, 900),     # gap -> within: resolved
        _group("Pacific Islander", "insufficient_data", None, None, None, 20, "more_data"),  # -> outside: worse
        _group("Other", "inconclusive", 0.2, 0.1, 0.3, 50, "more_data"),  # -> inconclusive again: still undecided
        _group("Native", "within", 0.1, 0.08, 0.12, 900),         # within, no open question: not followed
    ], [_finding("south", 0.37, 0.35, 0.39)])                     # not flagged by the later search: resolved
    new = _doc("2026-04-01", [
        _group("Black", "outside", 0.22, 0.20, 0.24, 900),
        _group("Asian", "outside", 0.26, 0.23, 0.29, 900),
        _group("Hispanic", "within", 0.11, 0.09, 0.13, 900),
        _group("Pacific Islander", "outside", 0.30, 0.24, 0.37, 160, "model"),
        _group("Other", "inconclusive", 0.21, 0.13, 0.31, 70, "more_data"),
        _group("Native", "within", 0.1, 0.08, 0.12, 900),
    ], [])
    by_hand = {"false_negative_rate|race=Black": "improved", "false_negative_rate|race=Asian": "unchanged",
               "false_negative_rate|race=Hispanic": "resolved", "false_negative_rate|race=Pacific Islander": "worse",
               "false_negative_rate|race=Other": "still_undecided", "misclassification|region=south": "resolved"}
    d = diff_snapshots(old, new)
    assert {f.id: f.status for f in d.follow_up} == by_hand
    pi = next(f for f in d.follow_up if f.id == "false_negative_rate|race=Pacific Islander")
    assert (pi.then["n"], pi.now["n"], pi.now["value"]) == (20, 160, 0.30)
    text = "\n".join(d.lines())
    assert ("follow-up of the old audit's findings and open questions: 6 (2 resolved · 1 improved · 1 unchanged · "
            "1 worse · 1 still undecided)") in text
    assert ("  improved: false_negative_rate|race=Black: outside · 0.300 (0.270–0.330) · n 900 -> "
            "outside · 0.220 (0.200–0.240) · n 900") in text
    as_json = d.to_dict()
    assert {f["id"]: f["status"] for f in as_json["follow_up"]} == by_hand and "overlap" in as_json["follow_up_rule"]
    # `fairwatch diff` prints the same, as text and as JSON.
    for name, doc in (("old.json", old), ("new.json", new)):
        (tmp_path / name).write_text(json.dumps(doc))
    assert main(["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {f["id"]: f["status"] for f in printed["follow_up"]} == by_hand
    assert main(["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json")]) == 0
    assert "6 (2 resolved" in capsys.readouterr().out
    # Nothing to follow: said plainly.
    assert "none to follow" in "\n".join(diff_snapshots(new | {"groups": new["groups"][2:3]}, new).lines())


def test_an_unchanged_value_never_moved_and_wilson_bounds_hold_their_estimate():
    """Walked with the diabetes file: a diff of two audits of the same rows listed 16 'possible' moves from 0.000
    [0.000, 0.037] to the same, because statsmodels' Wilson bound at 0 successes is 3.5e-18, above the estimate."""
    from statsmodels.stats.proportion import proportion_confint

    from fairwatch.metrics.stats.intervals import wilson_interval

    x, n = np.array([0, 0, 7, 100, 3]), np.array([100, 27, 7, 100, 40])
    low, high = wilson_interval(x, n)
    want_low, want_high = proportion_confint(x, n, method="wilson")
    np.testing.assert_allclose(low, want_low, atol=1e-12)
    np.testing.assert_allclose(high, want_high, atol=1e-12)
    p = x / n
    assert (low <= p).all() and (p <= high).all()  # each interval holds its own estimate
    assert low[0] == 0.0 and high[2] == 1.0 and high[3] == 1.0
    old = {"value": 0.0, "ci_low": 3.469446951953614e-18, "ci_high": 0.037}  # as older snapshots stored it
    assert moved_metric(old, dict(old)) is None
    assert moved_metric(old, {"value": 0.1, "ci_low": 0.06, "ci_high": 0.15}) == "clear"



def test_a_spec_change_is_said_before_the_moves_it_explains():
    """The same rows under another policy: the spec change is said before the findings and the metrics that moved."""
    df = frame(20_000, 0.25, 2)
    lines = diff_snapshots(audit(df), audit(df, min_support=5000)).lines()
    assert "spec changes: 1" in lines and "  spec.policy.min_support: 30 -> 5000" in lines
    assert lines.index("spec changes: 1") < next(i for i, line in enumerate(lines) if line.startswith("new findings"))
