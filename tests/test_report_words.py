"""Reports speak in words: groups and measures instead of raw ids and dotted keys, tables narrow enough for
the page, and a line saying which measures the policy judges. Messages use 'an' before a vowel."""

from __future__ import annotations

from fairwatch.metrics.discovery.diagnosis import article
from fairwatch.metrics.presentation.report_model import MAX_GENERIC_SHOWN, _policy_metrics, generic_table

FINDING = {"id": "misclassification|credit_history_band=fair", "slice": {"credit_history_band": "fair"},
           "metric": "misclassification", "n": 783, "value": 0.34, "ci_low": 0.31, "ci_high": 0.37,
           "complement_value": 0.27, "difference": 0.07, "p_value": 0.0002, "q_value": 0.04, "score": -0.05,
           "need": "model", "additional_rows": None, "evidence": {"slice": {"credit_history_band": "fair"}}}


def test_a_generic_table_shows_groups_and_measures_in_words():
    table = generic_table("findings", [FINDING])
    text = " ".join(table.columns) + " " + " ".join(table.rows[0])
    assert "misclassification|" not in text and "slice." not in text and "evidence" not in text
    assert table.columns[:2] == ("Group", "Measure") and table.rows[0][0] == "credit_history_band=fair"
    assert "q-value" in table.columns and "Needs" in table.columns
    assert len(table.columns) <= MAX_GENERIC_SHOWN and "more columns in findings.csv" in table.note


def test_the_report_says_which_measures_the_policy_judges():
    doc = {"groups": [{"disparities": {"base_rate": {"verdict": "descriptive"},
                                       "false_positive_rate": {"verdict": "outside"},
                                       "selection_rate": {"verdict": "within"}}}]}
    text = _policy_metrics(doc)
    assert text.startswith("False positive rate, Selection rate") and "Base rate" not in text.split(";")[0]
    assert "none" in _policy_metrics({"groups": []})


def test_an_before_a_vowel():
    assert f"has {article('error rate')} error rate" == "has an error rate"
    assert article("false positive rate") == "a"
