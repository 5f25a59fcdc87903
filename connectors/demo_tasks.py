"""Seeded demo logs for regression and multiclass audits, with planted effects (``fairwatch demo --task``).

``write_task_demo(path, "regression")`` writes a DuckDB file with one table, ``offers``: credit-limit
offers. Each row is an applicant (``offer_id``, ``sex``, ``race_ethnicity``, ``age_band``, ``region``),
the limit a full manual underwriting review granted (``reviewed_limit``, the label, in dollars; NULL
for ~5% of offers not yet reviewed) and the model's offer (``offered_limit``, the prediction). The
reviewed limit is a log-normal function of income band and region with the same distribution in every
sensitive group; the offer is the reviewed limit times exp(noise), noise ~ N(0, 0.10).
Planted effects (also in ``TASK_PLANTED``; those over time in ``TASK_PLANTED_OVER_TIME``):

* ``under_offer`` -- race_ethnicity='Hispanic': offers are 25% below the reviewed limit (noise
  mean log(0.75)), so the group's mean offer is about 0.75x the reference's (outside 0.8-1.25),
  its mean underprediction and absolute error several times the rest.
* ``noisy_offers`` -- age_band='18-24': the offer's noise is three times wider (sd 0.30), so its
  RMSE and MAE are about 3x the reference's while its mean offer stays in the band.
* ``nonfinite`` -- 0.1% of offers are NaN (a failed scoring call), counted as NaN/inf rows and never
  averaged in.
* ``v2_female_cut`` -- over time (model_version 'v2', from 2025-05-26): offers to sex='female' are 20%
  below the reviewed limit (noise mean log(0.8)), so in v2's weeks women's MAE is about 1.7x men's and
  their mean offer about 0.8x; over the whole half year both stay inside the 0.8-1.25 band (~1.15, ~0.95).

``write_task_demo(path, "multiclass")`` writes ``tiers``: risk tiers (``case_id``, the same sensitive
columns and ``region``, the tier a later review assigned, ``true_tier``, in low / medium / high /
very_high, and the model's ``tier``). The model is right 80% of the time and otherwise picks an
adjacent tier, the same in every group, except:

* ``low_to_medium`` -- race_ethnicity='Black': 30% of truly 'low' cases are put in 'medium'
  (true_positive_rate@low falls, false_positive_rate@medium rises).
* ``high_confusion`` -- age_band='65+': 40% of truly 'very_high' cases are put in 'high'
  (true_positive_rate@very_high falls to about 0.5 of the reference).
* ``unseen_class`` -- 0.2% of predictions are 'manual_review', a class that is never a label: the
  audit reports it and counts those rows as errors.
* ``v2_female_errors`` -- over time (model_version 'v2', from 2025-05-26): for sex='female' the model
  picks an adjacent tier 35% of the time instead of 20%, so in v2's weeks women's accuracy is about 0.10
  below men's (a step below 'low' or above 'very_high' stays right); over the whole half year every rate
  stays inside the band.

Both tables carry a decision time ``scored_at`` (26 weeks from Monday 2025-01-06, drawn from a stream
of their own so the columns above do not change with it) and ``model_version`` ('v1', then 'v2' from
2025-05-26). Planted population drift (``young_share_rises``): age_band='18-24' rows are denser late
in the half year (half of them uniform, half with density rising linearly), so their share climbs from
about 6% in the first weeks to about 17% in the last (PSI of age_band against the first week ~0.1).
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from fairwatch.connectors.demo import MIN_ROWS, PlantedEffect, prepare_target, write_database

TASKS = ("regression", "multiclass")
_SEX = (("female", 0.5), ("male", 0.5))
_RACE = (("White", 0.6), ("Hispanic", 0.19), ("Black", 0.13), ("Asian", 0.08))
_AGE = (("18-24", 0.12), ("25-34", 0.22), ("35-44", 0.2), ("45-54", 0.18), ("55-64", 0.16), ("65+", 0.12))
_REGION = (("north", 0.3), ("south", 0.3), ("east", 0.2), ("west", 0.2))
TIERS = ("low", "medium", "high", "very_high")

TASK_PLANTED: dict[str, tuple[PlantedEffect, ...]] = {
    "regression": (
        PlantedEffect("under_offer", (("race_ethnicity", "Hispanic"),), "offers 25% below the reviewed limit"),
        PlantedEffect("noisy_offers", (("age_band", "18-24"),), "offer noise three times wider: RMSE/MAE ~3x"),
        PlantedEffect("nonfinite", (), "0.1% of offers are NaN, counted apart"),
    ),
    "multiclass": (
        PlantedEffect("low_to_medium", (("race_ethnicity", "Black"),), "30% of true 'low' predicted 'medium'"),
        PlantedEffect("high_confusion", (("age_band", "65+"),), "40% of true 'very_high' predicted 'high'"),
        PlantedEffect("unseen_class", (), "0.2% predicted 'manual_review', never a label"),
    ),
}

# Effects over time only (trends, versions, drift, checks): inside the band over the whole half year, so
# an audit of all rows flags exactly TASK_PLANTED.
TASK_PLANTED_OVER_TIME: dict[str, tuple[PlantedEffect, ...]] = {
    "regression": (
        PlantedEffect("v2_female_cut", (("sex", "female"),), "in v2 (from 2025-05-26) offers 20% below the "
                      "reviewed limit: MAE ~1.7x, mean offer ~0.8x in v2's weeks only", model_version="v2"),
        PlantedEffect("young_share_rises", (("age_band", "18-24"),), "share of rows climbs from ~6% to ~17%"),
    ),
    "multiclass": (
        PlantedEffect("v2_female_errors", (("sex", "female"),), "in v2 (from 2025-05-26) 35% adjacent-tier "
                      "errors instead of 20%: accuracy ~0.10 lower in v2's weeks only", model_version="v2"),
        PlantedEffect("young_share_rises", (("age_band", "18-24"),), "share of rows climbs from ~6% to ~17%"),
    ),
}

TASK_CONFIGS: dict[str, dict] = {
    "regression": {
        "source": {"path": "data/demo_regression.duckdb", "table": "offers"},
        "columns": {"label": "reviewed_limit", "prediction": "offered_limit", "task": "regression",
                    "sensitive": ["sex", "race_ethnicity", "age_band"], "features": ["region"], "id": "offer_id",
                    "time": "scored_at", "model_version": "model_version"},
        "reference": {"race_ethnicity": "White", "age_band": "35-44", "sex": "male"},
        "policy": {"min_support": 30},
    },
    "multiclass": {
        "source": {"path": "data/demo_multiclass.duckdb", "table": "tiers"},
        "columns": {"label": "true_tier", "prediction": "tier", "task": "multiclass",
                    "sensitive": ["sex", "race_ethnicity", "age_band"], "features": ["region"], "id": "case_id",
                    "time": "scored_at", "model_version": "model_version"},
        "reference": {"race_ethnicity": "White", "age_band": "35-44", "sex": "male"},
        "policy": {"min_support": 30},
    },
}


def _pick(rng: np.random.Generator, choices: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    """n draws from (value, probability) pairs."""
    values, probs = zip(*choices)
    return rng.choice(np.asarray(values, dtype=object), n, p=np.asarray(probs) / sum(probs))


# The demos' half year of decisions, and when version 2 took over.
START = np.datetime64("2025-01-06T00:00:00", "s")
WEEKS = 26
V2_FROM = np.datetime64("2025-05-26T00:00:00", "s")


def _times(frame: pd.DataFrame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Decision times (18-24 denser late: the planted population drift) and whether each row is v2's."""
    rng = np.random.default_rng([seed, 19])  # a stream of its own: the other columns stay as they were
    n = len(frame)
    u = rng.random(n)
    young = (frame["age_band"] == "18-24").to_numpy()
    # Half the young rows uniform, half with density 2x over the span: overall density 0.5 + x.
    rising = young & (rng.random(n) < 0.5)
    share = np.where(rising, np.sqrt(u), u)
    span = WEEKS * 7 * 86_400
    times = START + (share * span).astype("timedelta64[s]")
    return times, times >= V2_FROM


def _people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Sensitive attributes and region, independent of each other."""
    return pd.DataFrame({"sex": _pick(rng, _SEX, n), "race_ethnicity": _pick(rng, _RACE, n),
                         "age_band": _pick(rng, _AGE, n), "region": _pick(rng, _REGION, n)})


def regression_frame(rows: int, seed: int) -> pd.DataFrame:
    """The credit-limit offers with the planted effects (see the module docstring)."""
    rng = np.random.default_rng(seed)
    frame = _people(rng, rows)
    income = rng.choice([0.0, 0.4, 0.8, 1.2], rows)
    region = frame["region"].map({"north": 0.1, "south": -0.1, "east": 0.0, "west": 0.05}).to_numpy(float)
    reviewed = np.round(np.exp(8.5 + income + region + rng.normal(0, 0.35, rows)), -1)
    hispanic = (frame["race_ethnicity"] == "Hispanic").to_numpy()
    young = (frame["age_band"] == "18-24").to_numpy()
    times, v2 = _times(frame, seed)
    cut = v2 & (frame["sex"] == "female").to_numpy()
    noise = rng.normal(np.where(hispanic, np.log(0.75), 0.0) + np.where(cut, np.log(0.8), 0.0),
                       np.where(young, 0.30, 0.10))
    offered = np.round(reviewed * np.exp(noise), 2)
    frame["failed"] = rng.random(rows) < 0.001  # becomes a real NaN in the table (pandas NaN would be NULL)
    frame.insert(0, "offer_id", np.arange(1, rows + 1, dtype=np.int64))
    frame["reviewed_limit"] = np.where(rng.random(rows) < 0.05, np.nan, reviewed)
    frame["offered_limit"] = offered
    return _with_time(frame, times, v2)


def multiclass_frame(rows: int, seed: int) -> pd.DataFrame:
    """The risk tiers with the planted effects (see the module docstring)."""
    rng = np.random.default_rng(seed)
    frame = _people(rng, rows)
    true = rng.choice(len(TIERS), rows, p=[0.4, 0.3, 0.2, 0.1])
    step = np.where(rng.random(rows) < 0.5, -1, 1)
    times, v2 = _times(frame, seed)
    wrong = rng.random(rows) < np.where(v2 & (frame["sex"] == "female").to_numpy(), 0.35, 0.2)
    pred = np.clip(np.where(wrong, true + step, true), 0, len(TIERS) - 1)
    black = (frame["race_ethnicity"] == "Black").to_numpy()
    senior = (frame["age_band"] == "65+").to_numpy()
    pred = np.where(black & (true == 0) & (rng.random(rows) < 0.3), 1, pred)
    pred = np.where(senior & (true == 3) & (rng.random(rows) < 0.4), 2, pred)
    names = np.asarray(TIERS, dtype=object)
    tier = names[pred]
    tier[rng.random(rows) < 0.002] = "manual_review"
    frame.insert(0, "case_id", np.arange(1, rows + 1, dtype=np.int64))
    frame["true_tier"] = names[true]
    frame["tier"] = tier
    return _with_time(frame, times, v2)


def _with_time(frame: pd.DataFrame, times: np.ndarray, v2: np.ndarray) -> pd.DataFrame:
    """The frame with its decision time and model version columns, in time order."""
    frame["scored_at"] = times.astype("datetime64[us]")
    frame["model_version"] = np.where(v2, "v2", "v1")
    return frame.sort_values("scored_at", kind="stable", ignore_index=True)


def write_task_demo(path: str | Path, task: str, rows: int = 200_000, seed: int = 7) -> int:
    """Write the task's demo table to a new DuckDB file atomically; returns the rows written."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS}, got {rows}")
    target = os.fspath(path)
    prepare_target(target)
    frame = regression_frame(rows, seed) if task == "regression" else multiclass_frame(rows, seed)
    table = TASK_CONFIGS[task]["source"]["table"]

    def fill(con: duckdb.DuckDBPyConnection) -> None:
        """The task's one table; the regression's failed offers as real NaN (pandas NaN would arrive as NULL)."""
        con.register("df", frame)
        if "failed" in frame.columns:
            con.execute(f'CREATE TABLE "{table}" AS SELECT * EXCLUDE (failed, offered_limit), CASE WHEN failed '
                        f"THEN 'NaN'::DOUBLE ELSE offered_limit END AS offered_limit FROM df")
        else:
            con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM df')

    write_database(target, fill)
    return rows
