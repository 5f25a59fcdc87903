"""Guesses with reasons (issue 15): label, score, time and slicing features by name, type and content, on
synthetic frames and on the public COMPAS, Adult and German credit files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairwatch.connectors.dashboard import fetch_sample
from fairwatch.connectors.source import open_source
from fairwatch.metrics.audit.mapping import (association, default_threshold, guess_roles, outcome_value, profile_columns,
                             threshold_warning)
from fairwatch.metrics.audit.spec import SourceSpec


def _guess(frame: pd.DataFrame, types: dict[str, str]):
    """The guess for a frame whose engine types are given."""
    return guess_roles(profile_columns(frame, list(types.items())), frame)


def _file_guess(path):
    """The guess the Data sources page makes for a file: its sample and column types, as the loader reads them."""
    src = open_source(SourceSpec(path=str(path)))
    try:
        sample = fetch_sample(src)
        return guess_roles(profile_columns(sample, src.columns), sample)
    finally:
        src.close()


# ---------------------------------------------------------------------------------------------- pure rules


def test_a_column_named_label_is_the_label_even_with_three_values_and_never_the_id():
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame({"id": np.arange(n), "label": rng.choice(["low", "mid", "high"], n),
                          "prediction": rng.choice([0, 1], n), "sex": rng.choice(["f", "m"], n)})
    g = _guess(frame, {"id": "BIGINT", "label": "VARCHAR", "prediction": "BIGINT", "sex": "VARCHAR"})
    assert g.label == "label" and g.id == "id"
    assert any("map them to a positive and a negative value" in w for w in g.warnings)
    assert "named like a label" in g.reason("label")


def test_time_prefers_a_full_date_column_over_an_emptier_one():
    rng = np.random.default_rng(1)
    n = 400
    arrest = pd.Series(pd.date_range("2014-01-01", periods=n, freq="D"))
    arrest[rng.random(n) < 0.8] = pd.NaT  # mostly empty, as COMPAS' c_arrest_date
    frame = pd.DataFrame({"c_arrest_date": arrest, "screening_date": pd.date_range("2013-01-01", periods=n, freq="D"),
                          "dob": pd.date_range("1960-01-01", periods=n, freq="D"), "y": rng.choice([0, 1], n)})
    g = _guess(frame, {"c_arrest_date": "DATE", "screening_date": "DATE", "dob": "DATE", "y": "BIGINT"})
    assert g.time == "screening_date"
    assert "personal data" in g.why_excluded("dob")


def test_threshold_is_inside_the_scores_range_and_warns_when_one_side_is_empty():
    deciles = pd.Series(np.arange(1, 11).repeat(30))
    assert default_threshold(deciles, None) == 5.0  # 5 and above positive, as ProPublica reads COMPAS
    assert default_threshold(pd.Series(np.linspace(0, 1, 50)), None) == 0.5
    assert default_threshold(pd.Series([10.0, 20.5, 30.25]), None) == pytest.approx(20.125)
    warning = threshold_warning(deciles, 0.5, "decile_score")
    assert warning and "100% of the sampled rows positive" in warning and "from 1 to 10" in warning
    assert threshold_warning(deciles, 5, "decile_score") is None
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"decile_score": rng.integers(1, 11, 500), "two_year_recid": rng.choice([0, 1], 500)})
    g = _guess(frame, {"decile_score": "BIGINT", "two_year_recid": "BIGINT"})
    assert g.score == "decile_score" and g.threshold == 5.0 and g.warnings == ()


def test_association_is_one_for_a_copy_and_near_zero_for_noise():
    rng = np.random.default_rng(3)
    y = pd.Series(rng.choice([0, 1], 2000))
    assert association(y.map({0: "no", 1: "yes"}), y) == pytest.approx(1.0)
    assert association(pd.Series(rng.choice(list("abc"), 2000)), y) < 0.1
    score = pd.Series(rng.random(2000))
    assert association(score.round(1), score, target_is_number=True) > 0.95
    assert association(pd.Series(rng.choice(list("abc"), 2000)), score, target_is_number=True) < 0.05
    assert association(pd.Series(["a"] * 10), pd.Series([0, 1] * 5)) is None  # too few rows to measure


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(2, 6), st.floats(0.05, 0.95))
def test_association_is_a_share_and_a_function_of_the_label_reaches_one(seed, k, p):
    """Property: lambda lies in [0, 1]; a feature that encodes the label exactly scores 1 whenever the label varies."""
    rng = np.random.default_rng(seed)
    y = pd.Series((rng.random(300) < p).astype(int))
    x = pd.Series(rng.integers(0, k, 300))
    value = association(x, y)
    assert value is None or 0 <= value <= 1
    copy = association(y.astype(str) + "_", y)
    assert copy is None if y.nunique() < 2 else copy == pytest.approx(1.0)


def test_outcome_and_score_proxies_ids_free_text_and_personal_data_are_left_out_with_reasons():
    rng = np.random.default_rng(4)
    n = 1000
    y = rng.choice([0, 1], n)
    score = rng.integers(1, 11, n)
    frame = pd.DataFrame({
        "case_ref": [f"CR{i:06d}" for i in range(n)], "full_name": [f"person {i}" for i in range(n)],
        "email": [f"p{i}@example.org" for i in range(n)], "region": rng.choice(list("nsew"), n),
        "after_event": np.where(rng.random(n) < 0.95, y, 1 - y),  # almost the label
        "risk_band": np.where(score > 6, "high", np.where(score > 3, "mid", "low")),  # a coarsened score
        "comment": [f"free text {i}" for i in range(n)], "sex": rng.choice(["f", "m"], n),
        "outcome": y, "score": score,
    })
    types = {c: ("BIGINT" if frame[c].dtype.kind == "i" else "VARCHAR") for c in frame.columns}
    g = _guess(frame, types)
    assert g.label == "outcome" and g.score == "score" and g.sensitive == ("sex",)
    assert g.features == ("region",)
    reasons = dict(g.excluded)
    assert "nearly determines the label outcome" in reasons["after_event"]
    assert "risk_band" in reasons  # a score proxy, whatever the rule that catches it
    assert "personal data" in reasons["full_name"] and "personal data" in reasons["email"]
    assert "identifier" in reasons["case_ref"] and "free text" in reasons["comment"]


def test_a_value_that_fixes_a_rare_label_is_an_outcome_record_and_a_plain_feature_is_not():
    rng = np.random.default_rng(3)
    n = 4000
    y = rng.random(n) < 0.3
    # Filled in only after a positive outcome, over many values: no single value is common, "set at all" is.
    after = pd.Series(np.where(y & (rng.random(n) < 0.5), rng.choice(list("ABCDEFGH"), n), None))
    plain = pd.Series(rng.choice(["a", "b", "c"], n))
    value, share, purity, label = outcome_value(after, pd.Series(y.astype(int)))
    assert value == "(any value)" and label == "1" and purity == 1.0 and abs(share - (y & after.notna()).mean()) < 1e-12
    assert outcome_value(plain, pd.Series(y.astype(int))) is None
    # A value that fixes the common label says nothing about the outcome being recorded.
    common = pd.Series(np.where(~y & (rng.random(n) < 0.5), "n", rng.choice(["x", "z"], n)))
    assert outcome_value(common, pd.Series(y.astype(int))) is None


def test_a_longer_word_that_begins_with_a_label_name_is_a_label():
    frame = pd.DataFrame({"Two_yr_Recidivism": ["yes", "no"] * 100, "predicted": [1.0, 0.0] * 100,
                          "race": ["a", "b", "c", "d"] * 50})
    g = _guess(frame, {"Two_yr_Recidivism": "VARCHAR", "predicted": "DOUBLE", "race": "VARCHAR"})
    assert g.label == "Two_yr_Recidivism" and g.prediction == "predicted"


# ---------------------------------------------------------------------------------------------- public files


def test_compas_guesses(shared_data):
    g = _file_guess(shared_data / "compas" / "compas-scores-two-years.csv")
    assert g.label == "two_year_recid" and g.positive_label == "1"
    assert g.score == "decile_score" and g.threshold == 5.0 and g.prediction is None
    assert g.time == "compas_screening_date"  # not c_arrest_date, empty in 6,077 of 7,214 rows
    assert set(g.sensitive) == {"sex", "race", "age_cat"}
    proxies = {"is_recid", "r_charge_degree", "score_text", "event", "decile_score_1", "v_decile_score",
               "v_score_text", "is_violent_recid", "end", "r_days_from_arrest", "vr_charge_degree"}
    assert not proxies & set(g.features), set(g.features)
    excluded = dict(g.excluded)
    assert proxies <= set(excluded)
    for col in ("name", "first", "last", "dob"):
        assert excluded[col].startswith("personal data"), (col, excluded[col])
    assert "nearly determines the label two_year_recid" in excluded["event"]
    # Set only for people who re-offended violently: split over many charges, so only "set at all" shows it.
    assert "records the outcome: where it is '(any value)'" in excluded["vr_charge_degree"]
    assert {"c_charge_degree", "juv_fel_count"} <= set(g.features)


def test_adult_guesses(shared_data):
    g = _file_guess(shared_data / "aequitas" / "adult_rf_binary.csv")
    assert g.label == "label_value" and g.positive_label == "1"
    assert g.prediction == "score" and g.score is None  # a 0/1 'score' is the decision
    assert set(g.sensitive) == {"gender", "race"} and g.features == ("education",) and g.id == "entity_id"


def test_german_credit_guesses(shared_data):
    g = _file_guess(shared_data / "kozodoi_fairness" / "germancredit.csv")
    assert g.label == "BAD" and g.positive_label == "BAD"
    assert g.prediction == "predicted" and g.score == "probability"
    assert set(g.sensitive) == {"Female", "Foreign"}
    assert "Account_status" in g.features and "Phone" in g.features  # yes/no, not a phone number
    assert not {"BAD", "predicted", "probability"} & set(g.features)


# ---------------------------------------------------------------------------------------------- the page


def test_data_sources_page_shows_the_guesses_and_why_columns_are_left_out(tmp_path, monkeypatch):
    """The mapping form starts from the guesses (threshold inside the score's range, no proxy among the features)
    and lists every left-out column with its reason."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT

    rng = np.random.default_rng(5)
    n = 600
    y = rng.choice([0, 1], n)
    decile = rng.integers(1, 11, n)
    pd.DataFrame({"id": np.arange(n), "name": [f"person {i}" for i in range(n)], "race": rng.choice(list("abc"), n),
                  "decile_score": decile, "priors": rng.integers(0, 4, n), "is_recid": y,
                  "event": np.where(rng.random(n) < 0.97, y, 1 - y), "two_year_recid": y}).to_csv(
        tmp_path / "log.csv", index=False)
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("FAIRWATCH_CONFIG", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/1_Data_sources.py").run()
    at.radio(key="fw.src.kind").set_value("A file in the data folder").run()
    at.selectbox(key="fw.src.file").select("log.csv").run()
    assert not at.exception, [e.value for e in at.exception]
    label = next(s for s in at.selectbox if s.label == "Label (actual outcome)")
    assert label.value == "two_year_recid"
    assert next(x for x in at.number_input if x.label.startswith("Threshold")).value == 5.0
    features = next(m for m in at.multiselect if m.label.startswith("Other features"))
    assert features.value == ["priors"]
    assert "name" in features.options and "event" in features.options  # every column can still be added by hand
    why = next(e for e in at.expander if e.label.startswith("Why these guesses"))
    left_out = why.dataframe[1].value.set_index("column")["left out because"]
    assert left_out["name"].startswith("personal data") and "nearly determines the label" in left_out["event"]
    assert "named like an outcome" in left_out["is_recid"]
