"""Guess which column plays which role (label, prediction, score, sensitive, ...) from names, types and values.

The guesses only pre-fill the Sources page; the user confirms them, and `parse_spec` validates the result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

# Name fragments per role, most specific first. Matching is on lower-cased names split at non-letters.
LABEL_NAMES = ("label", "y_true", "target", "outcome", "actual", "ground_truth", "truth", "repaid", "default",
               "recid", "two_year_recid", "is_recid", "class", "y")
PREDICTION_NAMES = ("y_pred", "prediction", "predicted", "pred", "decision", "approved", "approval", "yhat",
                    "y_hat", "flag")
SCORE_NAMES = ("score", "probability", "proba", "prob", "risk", "likelihood", "propensity", "y_score")
SENSITIVE_NAMES = ("sex", "gender", "race", "ethnicity", "race_ethnicity", "age", "age_band", "age_group",
                   "age_cat", "religion", "disability", "nationality", "national_origin", "native_country",
                   "marital_status", "sexual_orientation", "pregnancy", "veteran", "caste", "language")
TIME_NAMES = ("ts", "timestamp", "time", "date", "datetime", "created_at", "event_time", "decided_at",
              "prediction_time", "scored_at")
VERSION_NAMES = ("model_version", "model", "version", "model_id")
ID_NAMES = ("id", "request_id", "row_id", "uuid", "record_id", "case_id", "application_id")
_NUMERIC = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC", "HUGEINT")
_TEMPORAL = ("TIMESTAMP", "DATE", "TIME")
# A feature with more distinct values than this is an id or a measurement, not a slice dimension.
MAX_FEATURE_VALUES = 50


@dataclass(frozen=True)
class ColumnProfile:
    """What the guesses look at: name, engine type, distinct non-null values in a sample, examples."""

    name: str
    type: str
    distinct: int
    nulls: int
    examples: tuple[str, ...]

    @property
    def numeric(self) -> bool:
        """True for number types (including DECIMAL)."""
        return any(t in self.type.upper() for t in _NUMERIC)

    @property
    def temporal(self) -> bool:
        """True for dates and timestamps."""
        return any(t in self.type.upper() for t in _TEMPORAL)

    @property
    def binary(self) -> bool:
        """True when the sample holds exactly two values (or a boolean type)."""
        return self.distinct == 2 or "BOOL" in self.type.upper()


@dataclass(frozen=True)
class RoleGuess:
    """A suggested mapping; every field may be None or empty when nothing fits."""

    label: str | None
    positive_label: str | None
    prediction: str | None
    score: str | None
    threshold: float | None
    sensitive: tuple[str, ...]
    features: tuple[str, ...]
    time: str | None
    model_version: str | None
    id: str | None


def profile_columns(sample: pd.DataFrame, types: Sequence[tuple[str, str]]) -> list[ColumnProfile]:
    """Profiles of every column from a sample of rows and the engine's column types."""
    out = []
    for name, kind in types:
        col = sample[name] if name in sample.columns else pd.Series([], dtype=object)
        values = col.dropna()
        uniq = pd.unique(values)
        out.append(ColumnProfile(name=name, type=str(kind), distinct=len(uniq), nulls=int(col.isna().sum()),
                                 examples=tuple(str(v) for v in list(uniq)[:5])))
    return out


def _tokens(name: str) -> tuple[str, ...]:
    """The lower-cased name and its parts split at non-alphanumerics and camelCase."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", name)
    parts = [p for p in re.split(r"[^a-z0-9]+", spaced.lower()) if p]
    return (spaced.lower(), *parts)


def _rank(profile: ColumnProfile, names: Sequence[str]) -> int | None:
    """Position of the best name match (lower is better), or None when the name does not match."""
    tokens = _tokens(profile.name)
    for i, wanted in enumerate(names):
        if tokens[0] == wanted:
            return i
    for i, wanted in enumerate(names):
        if wanted in tokens[1:] or (len(wanted) > 3 and tokens[0].startswith(wanted)):
            return len(names) + i
    return None


def _best(profiles: Sequence[ColumnProfile], names: Sequence[str], taken: set[str], ok=lambda p: True) -> str | None:
    """The best-matching column not yet taken that passes a type check."""
    ranked = [(r, p.name) for p in profiles if p.name not in taken and ok(p)
              and (r := _rank(p, names)) is not None]
    return min(ranked)[1] if ranked else None


def _positive_value(profile: ColumnProfile | None) -> str | None:
    """The value of a binary column that most likely means 'positive' (1, true, yes), else None."""
    if profile is None:
        return None
    lowered = {e.lower(): e for e in profile.examples}
    for candidate in ("1", "1.0", "true", "yes", "y", "t", "positive", "pos"):
        if candidate in lowered:
            return "1" if candidate == "1.0" else lowered[candidate]
    return None


def guess_roles(profiles: Sequence[ColumnProfile]) -> RoleGuess:
    """Suggested roles for each column: named matches first, checked against type and distinct values."""
    by_name = {p.name: p for p in profiles}
    taken: set[str] = set()

    def take(value: str | None) -> str | None:
        if value:
            taken.add(value)
        return value

    ident = take(_best(profiles, ID_NAMES, taken, lambda p: not p.temporal))
    time = take(_best(profiles, TIME_NAMES, taken, lambda p: p.temporal or "CHAR" in p.type.upper())
                or next((p.name for p in profiles if p.temporal and p.name not in taken), None))
    version = take(_best(profiles, VERSION_NAMES, taken, lambda p: p.distinct <= 200))
    score = take(_best(profiles, SCORE_NAMES, taken, lambda p: p.numeric and not p.binary))
    label = take(_best(profiles, LABEL_NAMES, taken, lambda p: p.distinct <= 2))
    prediction = take(_best(profiles, PREDICTION_NAMES, taken, lambda p: p.distinct <= 2))
    sensitive = [p.name for p in profiles if p.name not in taken and _rank(p, SENSITIVE_NAMES) is not None
                 and p.distinct <= MAX_FEATURE_VALUES]
    taken.update(sensitive)
    features = [p.name for p in profiles if p.name not in taken and not p.temporal
                and 1 < p.distinct <= MAX_FEATURE_VALUES and not (p.numeric and p.distinct > 20)]
    threshold = 0.5 if (prediction is None and score is not None) else None
    return RoleGuess(label=label, positive_label=_positive_value(by_name.get(label)) if label else None,
                     prediction=prediction, score=score, threshold=threshold, sensitive=tuple(sensitive),
                     features=tuple(features), time=time, model_version=version, id=ident)


def mapping_config(source: Mapping[str, Any], roles: Mapping[str, Any], policy: Mapping[str, Any] | None = None,
                   reference_shares: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The `fairwatch.toml`-shaped mapping from the form's choices (empty choices left out)."""
    def present(value: Any) -> bool:
        return value not in (None, "", (), [])

    columns = {k: (list(v) if isinstance(v, (tuple, list)) else v) for k, v in roles.items() if present(v)}
    if columns.get("prediction"):
        columns.pop("threshold", None)  # the decision is the prediction column; a threshold would conflict
    if columns.get("task", "binary") == "binary":
        columns.pop("task", None)  # binary is the default: its config stays as it always was
    else:
        # A regression or multiclass audit reads the label and the prediction only (the form always sends a threshold).
        for key in ("positive_label", "positive_prediction", "score", "threshold"):
            columns.pop(key, None)
    raw: dict[str, Any] = {"source": {k: v for k, v in source.items() if present(v)}, "columns": columns}
    if policy:
        raw["policy"] = dict(policy)
    if reference_shares:
        shown = {f: s for f, s in reference_shares.items() if f in columns.get("sensitive", [])}
        if shown:
            raw["reference_shares"] = shown
    return raw
