"""Follow-up rule on hand-made snapshot documents: one case per status."""

from __future__ import annotations

from metrics.followup import RULE, STATUSES, follow_up, tracked

PI = {"race_ethnicity": "Pacific Islander"}
BLACK = {"race_ethnicity": "Black"}


def group(slice_: dict, verdict: str, value: float, lo: float, hi: float, n: int, need: str | None = None) -> dict:
    """A `groups` entry with one false-negative-rate cell."""
    return {"grouping": "race_ethnicity", "slice": slice_, "need": need,
            "metrics": {"false_negative_rate": {"value": value, "ci_low": lo, "ci_high": hi, "support": n}},
            "disparities": {"false_negative_rate": {"verdict": verdict, "q_value": 0.2}}}


def finding(slice_: dict, value: float, lo: float, hi: float) -> dict:
    """A slice-search finding."""
    key = "&".join(f"{k}={v}" for k, v in sorted(slice_.items()))
    return {"id": f"misclassification|{key}", "slice": slice_, "metric": "misclassification", "value": value,
            "ci_low": lo, "ci_high": hi, "n": 1000, "q_value": 0.001, "need": "model"}


def doc(groups: list[dict], findings: list[dict] | None = None) -> dict:
    """A minimal snapshot document."""
    return {"schema_version": 1, "groups": groups, "findings": findings if findings is not None else []}


def statuses(old: dict, new: dict) -> dict[str, str]:
    """Status per id."""
    return {f.id: f.status for f in follow_up(old, new)}


FNR_PI = "false_negative_rate|race_ethnicity=Pacific Islander"


def test_open_question_decided_against_the_group_is_worse_with_numbers():
    old = doc([group(PI, "inconclusive", 0.26, 0.16, 0.40, 50, "more_data")])
    new = doc([group(PI, "outside", 0.25, 0.18, 0.33, 120, "model")])
    (f,) = follow_up(old, new)
    assert (f.id, f.status) == (FNR_PI, "worse")
    assert (f.then["n"], f.now["n"], f.then["verdict"], f.now["verdict"]) == (50, 120, "inconclusive", "outside")
    assert f.to_row()["need_now"] == "model"


def test_open_question_resolved_or_still_undecided():
    old = doc([group(PI, "insufficient_data", None, None, None, 20, "more_data")])
    assert statuses(old, doc([group(PI, "within", 0.12, 0.08, 0.17, 200)]))[FNR_PI] == "resolved"
    assert statuses(old, doc([group(PI, "inconclusive", 0.2, 0.1, 0.3, 60, "more_data")]))[FNR_PI] == "still_undecided"
    assert statuses(old, doc([]))[FNR_PI] == "still_undecided"


def test_flagged_gap_improved_unchanged_worse_by_interval_overlap():
    old = doc([group(BLACK, "outside", 0.30, 0.27, 0.33, 900)])
    key = "false_negative_rate|race_ethnicity=Black"
    assert statuses(old, doc([group(BLACK, "outside", 0.22, 0.20, 0.24, 900)]))[key] == "improved"
    assert statuses(old, doc([group(BLACK, "outside", 0.31, 0.28, 0.34, 900)]))[key] == "unchanged"
    assert statuses(old, doc([group(BLACK, "outside", 0.40, 0.37, 0.43, 900)]))[key] == "worse"
    assert statuses(old, doc([group(BLACK, "within", 0.11, 0.09, 0.13, 900)]))[key] == "resolved"


def test_findings_no_longer_flagged_are_resolved():
    f = finding({"channel": "broker", "region": "south"}, 0.37, 0.35, 0.39)
    assert statuses(doc([], [f]), doc([], []))[f["id"]] == "resolved"
    assert statuses(doc([], [f]), doc([], [f]))[f["id"]] == "unchanged"


def test_only_open_questions_and_findings_are_tracked():
    old = doc([group(BLACK, "within", 0.1, 0.09, 0.11, 900), group(PI, "inconclusive", 0.2, 0.1, 0.3, 50, None)])
    assert tracked(old) == {}
    assert set(STATUSES) >= {"resolved", "still_undecided"} and "overlap" in RULE


def test_an_audit_not_yet_searched_says_its_slice_findings_wait_for_the_search():
    from metrics.followup import since_last

    f = finding({"channel": "broker", "region": "south"}, 0.37, 0.35, 0.39)
    not_searched = {"schema_version": 1, "groups": []}  # the Overview's quick audit: no findings list at all
    waiting = since_last(doc([], [f]), not_searched, "#1").caption()
    assert "1 slice-search finding(s) stay undecided until this view's slice search runs" in waiting
    assert "until this view's slice search runs" not in since_last(doc([], [f]), doc([], [f]), "#1").caption()
