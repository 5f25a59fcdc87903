"""Seeded, realistic loan-approval prediction log with planted fairness effects.

``write_demo(path)`` writes a DuckDB file with three tables:

* ``predictions`` -- one row per model decision in 2025 (``request_id``, ``ts``,
  ``model_version`` = 'v1' before 2025-07-01 and 'v2' from then on, the sensitive
  columns ``sex``, ``race_ethnicity``, ``age_band``, the features ``region``,
  ``channel``, ``employment``, ``income_band``, ``loan_purpose``,
  ``credit_history_band``, ``loan_amount``, ``applicant_income``, the calibrated
  repayment probability ``score`` and ``approved`` = ``score >= 0.5``).
* ``labels`` -- the delayed outcome (``request_id``, ``repaid``, ``labelled_at``).
  Outcomes arrive 1-10 weeks after the decision, so almost everything before
  mid-October is labelled, the last ten weeks progressively less and the last two
  weeks hardly at all; about 0.2% of outcomes are never recorded.  Unlabelled
  requests are simply absent.
* ``ground_truth`` -- for tests only: ``true_repaid`` for every request and
  ``label_flipped`` where the recorded label differs from the truth.

How the data is made: a true repayment logit is a logistic model of the features
(credit history, employment, income, loan-to-income, purpose, channel, region,
and a bureau score the log does not contain) plus an unobserved applicant effect;
the true outcome is drawn from it.  The score is the model's noisy view of the
observed part (v2 slightly less noisy than v1), Platt-calibrated per model version
against the true outcome, so it is a roughly calibrated estimate of p.
Sensitive attributes only touch the features mildly (age shapes income, credit
history, purpose and retirement), so apart from the planted effects below the
groups have similar error rates (on v1 every large sensitive group's
false-negative rate is within about 0.9-1.1x the rest).

Planted effects (also in ``PLANTED``):

* ``fnr_gap`` -- race_ethnicity='Black' AND age_band='18-24', model v2 only: the
  score of applicants who actually repay is pushed down, by exactly the logit shift
  that makes the slice's false-negative rate (repaid but declined) twice the rest of
  v2.  Under v1 the slice is like everyone else, and each attribute alone shows only
  a diluted gap (the slice is ~12% of either group).
* ``too_small`` -- race_ethnicity='Pacific Islander' has only ``min(200, rows //
  750)`` rows in the whole year (at most 0.13% of rows: under-represented against its
  0.2% reference share): its applications come from an outreach partnership launched on
  10 November and ramp up linearly from then, so with the usual 1-10 week delay only
  ~20% of its outcomes are recorded by year end (some 20-35 repaying applicants:
  below ``min_support`` = 30, or too few for the gap to be significant) while ~80%
  are a pool of unlabelled rows (delayed labels).  Its false-negative rate is 0.17 higher
  (absolute) than everyone else's, planted exactly both among its labelled and its
  unlabelled repaying applicants: a real gap that the labelled rows cannot decide,
  but that labelling its pending rows (the data plan's queue) settles.
* ``noisy_labels`` -- channel='broker' AND region='south': 20% of the recorded
  outcomes are flipped relative to the truth (``ground_truth.label_flipped``); the
  score there is as good as elsewhere, so the model confidently disagrees with the
  flipped labels.  No labels are flipped anywhere else.
* ``missing_values`` -- channel='mobile': ``employment``, ``income_band`` and
  ``applicant_income`` are each NULL for ~35% of rows (a quarter of mobile
  applicants skip all three optional fields, the rest skip each one at ~13%);
  elsewhere ~1%.  The score is unaffected (the model saw the full application).
* ``falling_share`` -- age_band='65+' falls linearly from ~12% of predictions in
  early January to ~4% in late December; the other age bands grow proportionally.

Additionally ~1% of ``race_ethnicity`` is NULL (a missing group), spread at random.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

__all__ = ["DEMO_CONFIG", "PLANTED", "DemoSummary", "PlantedEffect", "write_demo"]

MIN_ROWS = 1000

# The data covers calendar 2025; the log is "read" at the very end of the year.
_START = np.datetime64("2025-01-01T00:00:00", "s")
_DAYS = 365
_AS_OF = np.datetime64("2026-01-01T00:00:00", "s")
_V2_FROM = np.datetime64("2025-07-01T00:00:00", "s")

# Category vocabularies; order matters for the index-coded generation below.
SEXES = ("female", "male")
RACES = ("White", "Hispanic", "Black", "Asian", "Pacific Islander")
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
REGIONS = ("north", "south", "east", "west", "central")
CHANNELS = ("branch", "online", "mobile", "broker")
EMPLOYMENTS = ("salaried", "self-employed", "unemployed", "retired")
INCOME_BANDS = ("<25k", "25-50k", "50-75k", "75-100k", "100k+")
PURPOSES = ("home_improvement", "auto", "education", "debt_consolidation", "business", "personal")
CREDIT_BANDS = ("none", "thin", "fair", "good", "excellent")

_FNR_GAP_SLICE = (("race_ethnicity", "Black"), ("age_band", "18-24"))
_FNR_GAP_RATIO = 2.0
_SMALL_GROUP = "Pacific Islander"
_SMALL_GROUP_SIZE = 200
_SMALL_GROUP_ROWS_PER = 750  # one row of the group per this many rows, up to _SMALL_GROUP_SIZE
_SMALL_GROUP_FROM = np.datetime64("2025-11-10T00:00:00", "s")
# Large enough that labelling the pending rows detects the false-negative gap at 80% power at the audit's
# Benjamini-Hochberg level (0.15 needed more repaying applicants than the ~200-row group has), small
# enough that the labelled rows alone leave it undecided at every demo size.
_SMALL_GROUP_EXTRA_FNR = 0.17
_NOISY_SLICE = (("channel", "broker"), ("region", "south"))
_FLIP_RATE = 0.20
_MISSING_CHANNEL = "mobile"
_MISSING_COLUMNS = ("employment", "income_band", "applicant_income")
_SENIOR_SHARE_START, _SENIOR_SHARE_END = 0.12, 0.04


@dataclass(frozen=True)
class DemoSummary:
    """What write_demo wrote."""

    path: str
    rows: int
    labelled_rows: int
    seed: int


@dataclass(frozen=True)
class PlantedEffect:
    """One effect deliberately planted in the demo data."""

    kind: str
    # A tuple of (column, value) pairs keeps the dataclass hashable.
    slice: tuple[tuple[str, str], ...]
    description: str
    # Only set where the effect is limited to one model version.
    model_version: str | None = None
    # Only set where the effect concerns particular columns (missing values).
    columns: tuple[str, ...] = field(default=())

    def slice_dict(self) -> dict[str, str]:
        """Return the slice as a {column: value} dict."""
        return dict(self.slice)


PLANTED: tuple[PlantedEffect, ...] = (
    PlantedEffect(
        kind="fnr_gap",
        slice=_FNR_GAP_SLICE,
        description=(
            "Under model v2 only, applicants in race_ethnicity='Black' AND age_band='18-24' "
            "who repay get a lower score, so the slice's false-negative rate is about 2x "
            "the rest of v2; under v1 it is like everyone else, and either attribute alone "
            "shows only a diluted gap."
        ),
        model_version="v2",
    ),
    PlantedEffect(
        kind="too_small",
        slice=(("race_ethnicity", _SMALL_GROUP),),
        description=(
            "race_ethnicity='Pacific Islander' has only ~200 rows, all from 10 November on, so "
            "only ~20% are labelled by year end (too few to judge) and ~80% wait for their "
            "label; its true false-negative rate is 0.17 above the population's in both: a "
            "real gap the labelled rows cannot decide but labelling the pending rows settles."
        ),
    ),
    PlantedEffect(
        kind="noisy_labels",
        slice=_NOISY_SLICE,
        description=(
            "In channel='broker' AND region='south', ~20% of recorded labels are flipped "
            "relative to the truth (ground_truth.label_flipped); the score is as good as "
            "elsewhere, so the model confidently disagrees with the flipped labels."
        ),
    ),
    PlantedEffect(
        kind="missing_values",
        slice=(("channel", _MISSING_CHANNEL),),
        description=(
            "In channel='mobile', employment, income_band and applicant_income are each "
            "NULL for ~35% of rows (elsewhere ~1%)."
        ),
        columns=_MISSING_COLUMNS,
    ),
    PlantedEffect(
        kind="falling_share",
        slice=(("age_band", "65+"),),
        description=(
            "age_band='65+' falls steadily from ~12% of predictions in January to ~4% "
            "in December."
        ),
    ),
)


DEMO_CONFIG: dict = {
    "source": {
        "path": "data/demo.duckdb",
        "table": "predictions",
        "labels_table": "labels",
        "id_column": "request_id",
    },
    "columns": {
        "label": "repaid",
        "positive_label": "true",
        "prediction": "approved",
        "score": "score",
        "sensitive": ["sex", "race_ethnicity", "age_band"],
        "features": [
            "region",
            "channel",
            "employment",
            "income_band",
            "loan_purpose",
            "credit_history_band",
        ],
        "time": "ts",
        "model_version": "model_version",
        "id": "request_id",
    },
    "reference": {},
    # Census-like shares of the adult applicant population.  The age shares are the
    # applicant mix at the start of the year, so 65+ drifts away from it over 2025.
    "reference_shares": {
        "sex": {"female": 0.5, "male": 0.5},
        "race_ethnicity": {
            "White": 0.60,
            "Hispanic": 0.19,
            "Black": 0.13,
            "Asian": 0.078,
            "Pacific Islander": 0.002,
        },
        "age_band": {
            "18-24": 0.12,
            "25-34": 0.22,
            "35-44": 0.20,
            "45-54": 0.18,
            "55-64": 0.16,
            "65+": 0.12,
        },
    },
    "policy": {"min_support": 30},
}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 1.0 / (1.0 + np.exp(-z))


def _draw(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """Draw one category index per row from per-row probability rows (n x k)."""
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0  # guard against rounding leaving a sliver above the last bin
    u = rng.random(len(probs))[:, None]
    return (u >= cum).sum(axis=1).astype(np.int8)


def _platt(s: np.ndarray, y: np.ndarray, iters: int = 30) -> tuple[float, float]:
    """Fit y ~ sigmoid(a + b*s) by Newton's method (Platt scaling)."""
    a, b = 0.0, 1.0
    for _ in range(iters):
        p = _sigmoid(a + b * s)
        w = p * (1.0 - p)
        r = y - p
        g = np.array([r.sum(), (r * s).sum()])
        h = np.array([[w.sum(), (w * s).sum()], [(w * s).sum(), (w * s * s).sum()]])
        step = np.linalg.solve(h, g)
        a, b = a + step[0], b + step[1]
        if np.abs(step).max() < 1e-10:
            break
    return float(a), float(b)


def _timestamps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Sorted decision times over 2025 with weekly and daily seasonality."""
    day = np.arange(_DAYS)
    # 2025-01-01 is a Wednesday; weekday index 0 = Monday.
    weekday = (day + 2) % 7
    week_w = np.array([1.15, 1.10, 1.05, 1.00, 0.95, 0.55, 0.45])[weekday]
    # A mild spring peak and a quiet late December, as in consumer credit.
    season = 1.0 + 0.10 * np.sin(2 * np.pi * (day - 60) / _DAYS)
    season[day >= 355] *= 0.7
    w = week_w * season
    days = rng.choice(_DAYS, size=n, p=w / w.sum())
    hour_w = np.array(
        [1, 1, 1, 1, 1, 2, 4, 7, 10, 12, 12, 12, 12, 12, 12, 12, 11, 10, 10, 10, 9, 7, 4, 2],
        dtype=float,
    )
    hours = rng.choice(24, size=n, p=hour_w / hour_w.sum())
    secs = days.astype(np.int64) * 86400 + hours * 3600 + rng.integers(0, 3600, size=n)
    return _START + np.sort(secs).astype("timedelta64[s]")


def _generate(rows: int, seed: int) -> dict[str, pa.Table]:
    """Generate the three tables as Arrow tables (pure function of rows and seed)."""
    rng = np.random.default_rng(seed)
    n = rows

    ts = _timestamps(rng, n)
    request_id = 100_000_001 + np.arange(n, dtype=np.int64)
    is_v2 = ts >= _V2_FROM
    year_frac = (ts - _START).astype(np.int64) / (_DAYS * 86400)

    # --- sensitive attributes -------------------------------------------------
    sex = (rng.random(n) < 0.51).astype(np.int8)  # slightly more male applicants
    # Only the four large groups are drawn; the tiny group is placed explicitly.
    race = _draw(rng, np.tile([0.606, 0.192, 0.131, 0.071], (n, 1)))
    n_small = min(_SMALL_GROUP_SIZE, n // _SMALL_GROUP_ROWS_PER)
    # Its applications come from an outreach partnership launched on 10 November and ramp up
    # linearly from then, so most of them are still awaiting an outcome at year end.
    ramp = np.maximum((ts - _SMALL_GROUP_FROM).astype(np.int64), 0).astype(float)
    # Its own stream, so the group's size and timing leave every other draw (and effect) as it was;
    # the main stream still makes the draw that placed the group in earlier versions of the demo, unused,
    # so that every column drawn after it keeps its values (and the tests their exact counts).
    small_rng = np.random.default_rng([seed, 1])
    small_idx = small_rng.choice(n, size=n_small, replace=False, p=ramp / ramp.sum())
    rng.choice(n, size=min(100, n // 1000), replace=False, p=year_frac**2 / (year_frac**2).sum())
    race[small_idx] = RACES.index(_SMALL_GROUP)
    # ~1% missing race, never overwriting the tiny group (it must keep its size).
    race_missing = rng.random(n) < 0.01
    race_missing[small_idx] = False
    race = np.where(race_missing, -1, race).astype(np.int8)

    # falling_share: 65+ declines linearly over the year, the rest scale up evenly.
    senior = _SENIOR_SHARE_START + (_SENIOR_SHARE_END - _SENIOR_SHARE_START) * year_frac
    base = np.array([0.12, 0.22, 0.20, 0.18, 0.16]) / 0.88
    age_p = np.column_stack([base[None, :] * (1.0 - senior)[:, None], senior])
    age = _draw(rng, age_p)

    # --- features -------------------------------------------------------------
    region = _draw(rng, np.tile([0.18, 0.24, 0.20, 0.22, 0.16], (n, 1)))
    channel = _draw(rng, np.tile([0.25, 0.35, 0.28, 0.12], (n, 1)))

    # Employment depends on age (retirement) only.
    emp_by_age = np.array(
        [
            [0.85, 0.08, 0.07, 0.00],
            [0.80, 0.13, 0.07, 0.00],
            [0.77, 0.16, 0.07, 0.00],
            [0.75, 0.17, 0.07, 0.01],
            [0.66, 0.17, 0.07, 0.10],
            [0.20, 0.12, 0.03, 0.65],
        ]
    )
    employment = _draw(rng, emp_by_age[age])

    # Income: age profile, employment effect, a small sex gap, lognormal spread.
    age_income = np.log([55_000, 57_000, 60_000, 61_000, 60_000, 54_000])[age]
    emp_income = np.array([0.0, 0.05, -0.70, -0.15])[employment]
    log_income = age_income + emp_income - 0.04 * (sex == 0) + rng.normal(0, 0.5, n)
    income = np.round(np.exp(log_income), -2)
    income_band = np.searchsorted([25_000, 50_000, 75_000, 100_000], income, side="right")
    income_band = income_band.astype(np.int8)

    purpose_by_age = np.array(
        [
            [0.10, 0.28, 0.12, 0.24, 0.04, 0.22],
            [0.14, 0.24, 0.08, 0.28, 0.08, 0.18],
            [0.22, 0.20, 0.04, 0.28, 0.10, 0.16],
            [0.24, 0.20, 0.03, 0.28, 0.10, 0.15],
            [0.26, 0.20, 0.02, 0.28, 0.09, 0.15],
            [0.30, 0.20, 0.01, 0.26, 0.05, 0.18],
        ]
    )
    purpose = _draw(rng, purpose_by_age[age])

    credit_by_age = np.array(
        [
            [0.05, 0.11, 0.29, 0.36, 0.19],
            [0.04, 0.10, 0.29, 0.36, 0.21],
            [0.04, 0.10, 0.28, 0.36, 0.22],
            [0.04, 0.09, 0.28, 0.36, 0.23],
            [0.04, 0.09, 0.28, 0.36, 0.23],
            [0.04, 0.09, 0.28, 0.36, 0.23],
        ]
    )
    credit = _draw(rng, credit_by_age[age])

    purpose_amount = np.log([22_000, 20_000, 14_000, 15_000, 30_000, 8_000])[purpose]
    log_amount = purpose_amount + 0.5 * (log_income - np.log(55_000)) + rng.normal(0, 0.45, n)
    loan_amount = np.clip(np.round(np.exp(log_amount), -2), 1_000, 250_000)
    lti = loan_amount / income

    # --- true outcome -----------------------------------------------------------
    # The model also sees a bureau score that is not part of the log.
    bureau = rng.normal(0, 1, n)
    logit_obs = (
        0.75
        + 0.9 * bureau
        + np.array([-1.2, -0.7, -0.2, 0.35, 0.9])[credit]
        + np.array([0.20, -0.05, -0.80, 0.20])[employment]
        + 0.5 * (log_income - np.log(55_000))
        - 1.2 * np.minimum(lti - 0.3, 2.0)
        + np.array([0.20, 0.15, 0.0, -0.20, -0.30, -0.05])[purpose]
        + np.array([0.10, 0.0, -0.05, -0.10])[channel]
        + np.array([0.05, -0.05, 0.0, 0.05, -0.05])[region]
    )
    # An unobserved applicant effect keeps the score from being a perfect oracle.
    p_true = _sigmoid(logit_obs + rng.normal(0, 0.7, n))
    true_repaid = rng.random(n) < p_true

    # --- score ------------------------------------------------------------------
    # Each version sees the observed logit with its own estimation noise (v2 is a
    # slightly better model), then is Platt-calibrated against the true outcome.
    noise_sd = np.where(is_v2, 0.45, 0.55)
    s = logit_obs + rng.normal(0, 1, n) * noise_sd
    z = np.empty(n)
    for ver in (False, True):
        m = is_v2 == ver
        a, b = _platt(s[m], true_repaid[m].astype(float))
        z[m] = a + b * s[m]

    # fnr_gap: under v2, repaying applicants in the slice are scored down by the
    # logit shift that makes the slice's FNR exactly _FNR_GAP_RATIO x the rest of v2.
    gap_slice = (race == RACES.index("Black")) & (age == AGE_BANDS.index("18-24"))
    gap_pos = gap_slice & is_v2 & true_repaid
    rest_pos = ~gap_slice & is_v2 & true_repaid
    if gap_pos.any() and rest_pos.any():
        target = min(0.95, _FNR_GAP_RATIO * float(np.mean(z[rest_pos] < 0)))
        shift = max(0.0, float(np.quantile(z[gap_pos], target)))
        z[gap_pos] -= shift

    # --- missing values -----------------------------------------------------------
    # Mobile: a quarter skip all optional fields, the rest skip each with 13.3%,
    # giving ~35% per column; elsewhere each column is missing 1% at random.
    mobile = channel == CHANNELS.index(_MISSING_CHANNEL)
    skip_all = mobile & (rng.random(n) < 0.25)
    each_rate = np.where(mobile, 0.10 / 0.75, 0.01)
    miss = {col: skip_all | (rng.random(n) < each_rate) for col in _MISSING_COLUMNS}
    employment = np.where(miss["employment"], -1, employment).astype(np.int8)
    income_band = np.where(miss["income_band"], -1, income_band).astype(np.int8)
    income_values = np.where(miss["applicant_income"], np.nan, income)

    # --- labels -------------------------------------------------------------------
    # Outcomes are known 1-10 weeks after the decision; 0.2% are never recorded.
    delay = 7 * 86400 + (63 * 86400 * rng.beta(2.0, 2.5, n)).astype(np.int64)
    labelled_at = ts + delay.astype("timedelta64[s]")
    labelled = (labelled_at < _AS_OF) & (rng.random(n) >= 0.002)
    noisy = (channel == CHANNELS.index("broker")) & (region == REGIONS.index("south"))
    flip = noisy & (rng.random(n) < _FLIP_RATE)
    recorded = true_repaid ^ flip

    # too_small: among the tiny group's repaying applicants, exactly the number that
    # makes its true FNR _SMALL_GROUP_EXTRA_FNR above everyone else's are pushed below
    # the threshold (the least confident ones, by one common logit shift), separately
    # among those whose outcome is recorded by year end and those still pending.
    # Planting it exactly, in both, keeps the few labelled rows showing the true gap
    # (undecided at their size, not absent) and makes labelling the pending ones
    # settle it, rather than leaving either to the luck of the draw.
    small = np.zeros(n, dtype=bool)
    small[small_idx] = True
    rest_pos = true_repaid & ~small
    rest_fnr = float(np.mean(z[rest_pos] < 0)) if rest_pos.any() else 0.0
    for stratum in (labelled, ~labelled):
        small_pos = small & true_repaid & stratum
        m = int(small_pos.sum())
        if not m:
            continue
        k = int(round(min(0.95, rest_fnr + _SMALL_GROUP_EXTRA_FNR) * m))
        zs = np.sort(z[small_pos])
        if 0 < k < m:
            shift = max(0.0, float(zs[k - 1] + zs[k]) / 2.0)
        else:
            shift = max(0.0, float(zs[-1]) + 1e-9) if k >= m else 0.0
        z[small_pos] -= shift

    score = _sigmoid(z)
    approved = score >= 0.5

    def cat(codes: np.ndarray, values: tuple[str, ...]) -> pa.Array:
        """Index codes (-1 = NULL) to a dictionary-encoded Arrow string column."""
        return pa.DictionaryArray.from_arrays(
            pa.array(codes, type=pa.int8(), mask=codes < 0), pa.array(values, type=pa.string())
        )

    ts_us = pa.array(ts.astype("datetime64[us]"), type=pa.timestamp("us"))
    predictions = pa.table(
        {
            "request_id": request_id,
            "ts": ts_us,
            "model_version": cat(is_v2.astype(np.int8), ("v1", "v2")),
            "sex": cat(sex, SEXES),
            "race_ethnicity": cat(race, RACES),
            "age_band": cat(age, AGE_BANDS),
            "region": cat(region, REGIONS),
            "channel": cat(channel, CHANNELS),
            "employment": cat(employment, EMPLOYMENTS),
            "income_band": cat(income_band, INCOME_BANDS),
            "loan_purpose": cat(purpose, PURPOSES),
            "credit_history_band": cat(credit, CREDIT_BANDS),
            "loan_amount": loan_amount,
            "applicant_income": pa.array(income_values, mask=np.isnan(income_values)),
            "score": score,
            "approved": approved,
        }
    )
    labels = pa.table(
        {
            "request_id": request_id[labelled],
            "repaid": recorded[labelled],
            "labelled_at": pa.array(
                labelled_at[labelled].astype("datetime64[us]"), type=pa.timestamp("us")
            ),
        }
    )
    ground_truth = pa.table(
        {
            "request_id": request_id,
            "true_repaid": true_repaid,
            # Only a recorded label can disagree with the truth.
            "label_flipped": flip & labelled,
        }
    )
    return {"predictions": predictions, "labels": labels, "ground_truth": ground_truth}


# Explicit column types so the schema does not depend on how Arrow types map.
_SCHEMAS: dict[str, tuple[tuple[str, str], ...]] = {
    "predictions": (
        ("request_id", "BIGINT"),
        ("ts", "TIMESTAMP"),
        ("model_version", "VARCHAR"),
        ("sex", "VARCHAR"),
        ("race_ethnicity", "VARCHAR"),
        ("age_band", "VARCHAR"),
        ("region", "VARCHAR"),
        ("channel", "VARCHAR"),
        ("employment", "VARCHAR"),
        ("income_band", "VARCHAR"),
        ("loan_purpose", "VARCHAR"),
        ("credit_history_band", "VARCHAR"),
        ("loan_amount", "DOUBLE"),
        ("applicant_income", "DOUBLE"),
        ("score", "DOUBLE"),
        ("approved", "BOOLEAN"),
    ),
    "labels": (("request_id", "BIGINT"), ("repaid", "BOOLEAN"), ("labelled_at", "TIMESTAMP")),
    "ground_truth": (
        ("request_id", "BIGINT"),
        ("true_repaid", "BOOLEAN"),
        ("label_flipped", "BOOLEAN"),
    ),
}


def _write_tables(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table]) -> None:
    """Create each table in the open database from its Arrow table."""
    for name, columns in _SCHEMAS.items():
        con.register("df", tables[name])
        select = ", ".join(f'CAST("{c}" AS {t}) AS "{c}"' for c, t in columns)
        con.execute(f'CREATE TABLE "{name}" AS SELECT {select} FROM df')
        con.unregister("df")


def _remove_quietly(path: str) -> None:
    """Delete a file if it exists."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def write_demo(path: str | Path, rows: int = 600_000, seed: int = 7) -> DemoSummary:
    """Generate the demo prediction log and write it atomically as a DuckDB file."""
    if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)):
        raise TypeError(f"rows must be an integer, got {type(rows).__name__}")
    if rows < MIN_ROWS:
        raise ValueError(f"rows must be at least {MIN_ROWS}, got {rows}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__}")
    rows, seed = int(rows), int(seed)

    target = os.fspath(path)
    prepare_target(target)
    tables = _generate(rows, seed)
    write_database(target, lambda con: _write_tables(con, tables))
    return DemoSummary(path=target, rows=rows, labelled_rows=tables["labels"].num_rows, seed=seed)


def prepare_target(target: str) -> None:
    """Refuse a folder as the demo file and create its parent folder (before any data is generated)."""
    if os.path.isdir(target):
        raise IsADirectoryError(f"cannot write demo database to {target}: it is a directory")
    try:
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot write demo database to {target}: {exc}") from exc


def write_database(target: str, fill: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
    """Write a new DuckDB file atomically: `fill` creates the tables in a temporary file that then replaces target."""
    tmp = target + ".tmp"
    # A stale .tmp from a crashed run would be opened as an existing database.
    for leftover in (tmp, tmp + ".wal"):
        _remove_quietly(leftover)
    try:
        try:
            con = duckdb.connect(tmp)
        except duckdb.Error as exc:
            raise OSError(f"cannot write demo database at {target}: {exc}") from exc
        try:
            fill(con)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, target)
    except BaseException:
        # Never leave a half-written file behind.
        for leftover in (tmp, tmp + ".wal"):
            _remove_quietly(leftover)
        raise
