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


def _tables(model, section: str) -> list:
    """The tables of one section of a report model."""
    from fairwatch.metrics.presentation.report_model import Table

    return [b for s in model.sections if s.title == section for b in s.blocks if isinstance(b, Table)]


def test_a_gap_is_listed_once_in_the_report():
    """A combination's flagged gap is in the gaps section's table; the combinations section lists only the others
    (and says how many are above), so no row is printed twice and none is lost."""
    import numpy as np
    import pandas as pd

    from fairwatch.connectors.audit import run_audit
    from fairwatch.connectors.source import open_frame
    from fairwatch.metrics.audit.spec import parse_spec
    from fairwatch.metrics.presentation.report_model import MAX_TABLE_ROWS, _gap_rows, build_report

    rng = np.random.default_rng(5)
    n = 6000
    sex, race = rng.choice(["f", "m"], n), rng.choice(["a", "b", "c"], n)
    label = rng.integers(0, 2, n)
    flip = rng.random(n) < np.where((race == "c") & (sex == "f"), 0.4, np.where(race == "b", 0.18, 0.1))
    df = pd.DataFrame({"sex": sex, "race": race, "label": label, "pred": np.where(flip, 1 - label, label)})
    spec = parse_spec({"source": {"path": "frame"}, "columns": {"label": "label", "prediction": "pred",
                                                                "sensitive": ["sex", "race"]}})
    doc = run_audit(spec, src=open_frame(df), search_slices=False).to_dict()
    model = build_report(doc)
    gaps = [r for t in _tables(model, "Gaps that need attention") for r in t.rows]
    combos = [r for t in _tables(model, "Combinations of groups") for r in t.rows]
    assert gaps and not set(gaps) & set(combos)
    # The combination gaps the report lists (its own selection, as before this change): each must appear once.
    flagged = _gap_rows(doc, {"outside", "inconclusive"}, multi=True)
    above = sum(1 for r in gaps if "," in r[0])
    assert above and flagged
    shown = {(r[0], r[1]) for r in gaps + combos}
    assert len(shown) == len(gaps) + len(combos)  # every row once
    # Every other combination gap follows in the combinations table (up to its row cap, with a note of the rest).
    assert len(combos) == min(len(flagged) - above, MAX_TABLE_ROWS)
    words = " ".join(b.text for s in model.sections if s.title == "Combinations of groups"
                     for b in s.blocks if hasattr(b, "text"))
    assert f"{above} gap" in words and "Gaps that need attention" in words
