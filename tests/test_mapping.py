"""Column-role guesses for the Sources page, and the mapping they turn into."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fairwatch.metrics.audit.mapping import guess_roles, mapping_config, profile_columns
from fairwatch.metrics.audit.spec import parse_spec


def _profiles(frame: pd.DataFrame, types: dict[str, str]):
    return profile_columns(frame, list(types.items()))


def test_demo_like_log_is_guessed_right():
    n = 200
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "request_id": np.arange(n), "ts": pd.date_range("2025-01-01", periods=n, freq="h"),
        "model_version": rng.choice(["v1", "v2"], n), "sex": rng.choice(["f", "m"], n),
        "race_ethnicity": rng.choice(list("ABCD"), n), "age_band": rng.choice(["18-24", "25-34"], n),
        "region": rng.choice(list("nsew"), n), "loan_amount": rng.random(n) * 1e5, "score": rng.random(n),
        "approved": rng.random(n) > 0.5, "repaid": rng.random(n) > 0.3,
    })
    types = {"request_id": "BIGINT", "ts": "TIMESTAMP", "model_version": "VARCHAR", "sex": "VARCHAR",
             "race_ethnicity": "VARCHAR", "age_band": "VARCHAR", "region": "VARCHAR", "loan_amount": "DOUBLE",
             "score": "DOUBLE", "approved": "BOOLEAN", "repaid": "BOOLEAN"}
    g = guess_roles(_profiles(frame, types))
    assert (g.label, g.prediction, g.score, g.time, g.model_version, g.id) == (
        "repaid", "approved", "score", "ts", "model_version", "request_id")
    assert g.sensitive == ("sex", "race_ethnicity", "age_band")
    assert g.features == ("region",)  # loan_amount is a measurement, not a slice dimension
    assert g.positive_label == "True"


def test_adult_like_names_with_a_score_and_no_prediction():
    n = 100
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"Gender": rng.choice(["F", "M"], n), "Race": rng.choice(list("abc"), n),
                          "target": rng.choice([0, 1], n), "predicted_proba": rng.random(n),
                          "education": rng.choice(list("xyz"), n)})
    types = {"Gender": "VARCHAR", "Race": "VARCHAR", "target": "BIGINT", "predicted_proba": "DOUBLE",
             "education": "VARCHAR"}
    g = guess_roles(_profiles(frame, types))
    assert g.label == "target" and g.positive_label == "1"
    assert g.score == "predicted_proba" and g.prediction is None and g.threshold == 0.5
    assert set(g.sensitive) == {"Gender", "Race"}


def test_nothing_matches_gives_empty_guesses():
    frame = pd.DataFrame({"c1": [1.5, 2.5], "c2": ["x", "y"]})
    g = guess_roles(_profiles(frame, {"c1": "DOUBLE", "c2": "VARCHAR"}))
    assert g.label is None and g.prediction is None and g.sensitive == ()


def test_mapping_config_round_trips_through_parse_spec():
    raw = mapping_config({"path": "/d/x.duckdb", "table": "t", "labels_table": None, "id_column": None},
                         {"label": "y", "positive_label": "1", "prediction": "p", "score": "s", "threshold": 0.5,
                          "sensitive": ("sex",), "features": [], "time": None, "model_version": "", "id": None},
                         {"min_support": 50})
    assert "threshold" not in raw["columns"]  # a prediction column is the decision; a threshold would conflict
    spec = parse_spec(raw)
    assert spec.prediction == "p" and spec.score == "s" and spec.policy.min_support == 50
    assert spec.source.table == "t" and spec.source.labels_table is None
