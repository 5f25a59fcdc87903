"""Guess which column plays which role (label, prediction, score, sensitive, ...) from names, types and values.

The guesses only pre-fill the Sources page; the user confirms them, and `parse_spec` validates the result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from metrics.privacy import personal_data_reason

# Name fragments per role, most specific first. Matching is on lower-cased names split at non-letters.
LABEL_NAMES = ("label", "y_true", "target", "outcome", "actual", "ground_truth", "truth", "repaid", "default",
               "two_year_recid", "recid", "is_recid", "class", "y")
PREDICTION_NAMES = ("y_pred", "prediction", "predicted", "pred", "decision", "approved", "approval", "yhat",
                    "y_hat", "flag")
SCORE_NAMES = ("score", "probability", "proba", "prob", "risk", "likelihood", "propensity", "y_score")
SENSITIVE_NAMES = ("sex", "gender", "race", "ethnicity", "race_ethnicity", "age", "age_band", "age_group",
                   "age_cat", "religion", "disability", "nationality", "national_origin", "native_country",
                   "marital_status", "sexual_orientation", "pregnancy", "veteran", "caste", "language", "female",
                   "male", "foreign", "foreign_worker", "citizenship", "immigrant")
TIME_NAMES = ("ts", "timestamp", "time", "date", "datetime", "created_at", "event_time", "decided_at",
              "prediction_time", "scored_at")
VERSION_NAMES = ("model_version", "model", "version", "model_id")
ID_NAMES = ("id", "request_id", "row_id", "uuid", "record_id", "case_id", "application_id")
_NUMERIC = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "NUMERIC", "HUGEINT")
_TEMPORAL = ("TIMESTAMP", "DATE", "TIME")
# A feature with more distinct values than this is an id or a measurement, not a slice dimension.
MAX_FEATURE_VALUES = 50
# A feature whose values alone remove this share of the error in guessing the label, the decision or
# the score (`association`) mirrors the outcome. Measured on the public files: COMPAS' is_recid and
# r_charge_degree 0.93 and event 0.77 for the label, decile_score_1 1.0, score_text 0.88 and
# v_decile_score 0.62 for the score; the strongest genuine inputs stay far below (priors_count 0.21,
# age 0.16; German credit's Account_status 0.45 for its model's probability).
PROXY_ASSOCIATION = 0.6
# A value that covers a sizeable share of rows and (nearly) fixes a rare label records the outcome even
# when the column as a whole explains little: COMPAS' vr_charge_degree is set in 11% of rows, and 95% of
# those re-offended against 45% overall (it is the charge of the violent re-offence), yet its lambda is 0.23.
OUTCOME_VALUE_SHARE = 0.05
OUTCOME_VALUE_PURITY = 0.9
OUTCOME_BASE_SHARE = 0.6
# Fewer rows with a target than this measure nothing (lambda and eta squared overfit a small sample).
MIN_ASSOCIATION_ROWS = 50
# A number with more than twice this many values is measured in this many rank bins.
NUMBER_BINS = 10
# An id column holds a different value in (nearly) every row.
UNIQUE_SHARE = 0.95
# A time column empty in more than this share of rows is a poor time axis.
TIME_NULL_SHARE = 0.1
# A threshold with at most this share of scored rows on one side puts (almost) every row on the other.
ONE_SIDED_SHARE = 0.01


@dataclass(frozen=True)
class ColumnProfile:
    """What the guesses look at: name, engine type, distinct non-null values in a sample, examples."""

    name: str
    type: str
    distinct: int
    nulls: int
    examples: tuple[str, ...]
    rows: int = 0  # rows in the sample (0 when unknown)

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
    """A suggested mapping; every field may be None or empty when nothing fits. Each guess says why."""

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
    reasons: tuple[tuple[str, str], ...] = ()  # (role, why this column was chosen for it)
    excluded: tuple[tuple[str, str], ...] = ()  # (column, why it is not a default slicing feature)
    warnings: tuple[str, ...] = ()  # what the analyst should check before using the guesses

    def reason(self, role: str) -> str | None:
        """Why the guessed column of a role was chosen, or None."""
        return dict(self.reasons).get(role)

    def why_excluded(self, column: str) -> str | None:
        """Why a column is not among the guessed slicing features, or None when it is (or has a role)."""
        return dict(self.excluded).get(column)


def profile_columns(sample: pd.DataFrame, types: Sequence[tuple[str, str]]) -> list[ColumnProfile]:
    """Profiles of every column from a sample of rows and the engine's column types."""
    out = []
    for name, kind in types:
        col = sample[name] if name in sample.columns else pd.Series([], dtype=object)
        values = col.dropna()
        uniq = pd.unique(values)
        out.append(ColumnProfile(name=name, type=str(kind), distinct=len(uniq), nulls=int(col.isna().sum()),
                                 examples=tuple(str(v) for v in list(uniq)[:5]), rows=len(sample)))
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
        # A longer word that begins with the name counts too: Two_yr_Recidivism is a recid column.
        if any(t == wanted or (len(wanted) > 3 and t.startswith(wanted)) for t in tokens):
            return len(names) + i
    return None


def _best(profiles: Sequence[ColumnProfile], names: Sequence[str], taken: set[str], ok=lambda p: True) -> str | None:
    """The best-matching column not yet taken that passes a type check."""
    ranked = [(r, p.name) for p in profiles if p.name not in taken and ok(p)
              and (r := _rank(p, names)) is not None]
    return min(ranked)[1] if ranked else None


def _positive_value(profile: ColumnProfile | None) -> str | None:
    """The value of a binary column that most likely means 'positive' (1, true, yes, or the column's own name)."""
    if profile is None:
        return None
    lowered = {e.lower(): e for e in profile.examples}
    for candidate in ("1", "1.0", "true", "yes", "y", "t", "positive", "pos"):
        if candidate in lowered:
            return "1" if candidate == "1.0" else lowered[candidate]
    # A column named BAD holding GOOD/BAD: the value that repeats the name is what the column flags.
    return lowered.get(profile.name.lower())


def _null_share(p: ColumnProfile) -> float:
    """Share of the sample's rows in which the column is empty (0 when the sample size is unknown)."""
    return p.nulls / p.rows if p.rows else 0.0


def association(feature: pd.Series, target: pd.Series, target_is_number: bool = False) -> float | None:
    """How much of the error in guessing `target` knowing a feature's value alone removes (0 none, 1 all).

    A proportional reduction in error, in the one form for each kind of target: for a category
    (label, decision) Goodman and Kruskal's lambda, the share of wrong guesses of the most common
    value that guessing the most common value per feature value avoids; for a number (a score) the
    correlation ratio eta squared, the share of the score's variance between the feature's values.
    Numbers with many values are cut into ten rank bins first, and an empty value is a value of its
    own (a column empty exactly when the outcome is known is a proxy too). None when fewer than
    `MIN_ASSOCIATION_ROWS` rows have a target, or the target does not vary.
    """
    x = _association_codes(feature)
    if target_is_number:
        y = pd.to_numeric(target, errors="coerce").astype("float64")
        keep = y.notna() & np.isfinite(y)
    else:
        y = target.astype("string")
        keep = y.notna()
    if int(keep.sum()) < MIN_ASSOCIATION_ROWS:
        return None
    x, y = x[keep.to_numpy()], y[keep]
    x = pd.factorize(x)[0]  # dense codes 0..k-1 for the counts below
    if target_is_number:
        values = y.to_numpy()
        total = float(((values - values.mean()) ** 2).sum())
        if total <= 0:
            return None
        count, sums = np.bincount(x), np.bincount(x, weights=values)
        means = sums[count > 0] / count[count > 0]
        return float((count[count > 0] * (means - values.mean()) ** 2).sum() / total)
    codes, classes = pd.factorize(y)
    joint = np.bincount(x * len(classes) + codes, minlength=(x.max() + 1) * len(classes)).reshape(-1, len(classes))
    n, base = len(x), int(joint.sum(axis=0).max())
    if n == base:
        return None
    return float((joint.max(axis=1).sum() - base) / (n - base))


def outcome_value(feature: pd.Series, target: pd.Series) -> tuple[str, float, float, str] | None:
    """A value of the feature (empty counts as one) that nearly fixes an otherwise uncommon label, or None.

    Returns (value, its share of rows, the label's share among them, that label) for the largest such
    value: at least `OUTCOME_VALUE_SHARE` of the rows with a label, the label the same in at least
    `OUTCOME_VALUE_PURITY` of them, and that label at most `OUTCOME_BASE_SHARE` of all rows.
    """
    y = target.astype("string")
    keep = y.notna().to_numpy()
    if int(keep.sum()) < MIN_ASSOCIATION_ROWS:
        return None
    y = y[keep]
    raw = feature[keep]
    x = raw.astype("string").fillna("(empty)")
    table = pd.crosstab(x, y)
    if raw.isna().any() and raw.notna().sum() > 0:
        # "Set at all" is a value too: a column filled in only after the outcome is split over many values.
        table.loc["(any value)"] = pd.crosstab(raw.notna(), y).loc[True]
    overall = table.sum(axis=0) / len(y)
    rows = table.sum(axis=1)
    best = None
    for value, counts in table.iterrows():
        share = rows[value] / len(y)
        top = counts.idxmax()
        purity = counts[top] / rows[value]
        if (share >= OUTCOME_VALUE_SHARE and purity >= OUTCOME_VALUE_PURITY and overall[top] <= OUTCOME_BASE_SHARE
                and (best is None or share > best[1])):
            best = (str(value), float(share), float(purity), str(top))
    return best


def _association_codes(feature: pd.Series) -> np.ndarray:
    """A feature's values as integer codes: ten rank bins for a many-valued number, an empty value as its own code."""
    numbers = pd.to_numeric(feature, errors="coerce") if pd.api.types.is_numeric_dtype(feature) else None
    if numbers is not None and numbers.nunique() > NUMBER_BINS * 2:
        ranks = numbers.rank(method="first")
        bins = pd.cut(ranks, NUMBER_BINS, labels=False)
        return bins.fillna(-1).astype("int64").to_numpy()
    text = feature.astype("string")
    return pd.factorize(text.fillna("\0missing"))[0]


def threshold_warning(scores: pd.Series, threshold: float, column: str) -> str | None:
    """A warning when `score >= threshold` puts (almost) every scored row on one side, else None."""
    values = pd.to_numeric(scores, errors="coerce").dropna()
    values = values[np.isfinite(values)]
    if values.empty:
        return None
    positive = float((values >= threshold).mean())
    if min(positive, 1 - positive) <= ONE_SIDED_SHARE:
        side = "positive" if positive > 0.5 else "negative"
        return (f"a threshold of {threshold:g} makes {max(positive, 1 - positive):.0%} of the sampled rows "
                f"{side} ({column} runs from {values.min():g} to {values.max():g}); choose a threshold inside that range")
    return None


def default_threshold(scores: pd.Series | None, profile: ColumnProfile | None = None) -> float:
    """A threshold inside the score's range: 0.5 for probabilities, else the midpoint (a whole number for whole scores)."""
    values = pd.to_numeric(scores, errors="coerce").dropna() if scores is not None else pd.Series(dtype="float64")
    values = values[np.isfinite(values)]
    if values.empty:
        numbers = pd.to_numeric(pd.Series(profile.examples if profile else ()), errors="coerce").dropna()
        values = numbers if not numbers.empty else pd.Series([0.0, 1.0])
    lo, hi = float(values.min()), float(values.max())
    if 0 <= lo and hi <= 1:
        return 0.5
    middle = (lo + hi) / 2
    # A 1-10 decile score: 5 (rows of 5 and above positive, as ProPublica reads COMPAS), not 5.5.
    return float(math.floor(middle)) if bool((values == values.round()).all()) else middle


def _is_identifier(p: ColumnProfile) -> bool:
    """True for a column holding a different value in (almost) every sampled row, or named like an id."""
    tokens = _tokens(p.name)
    named = tokens[0] in ID_NAMES or (tokens[-1] in ("id", "uuid", "guid", "key") and len(tokens) > 1)
    nonnull = p.rows - p.nulls
    unique = p.rows > 0 and nonnull > MAX_FEATURE_VALUES and p.distinct >= UNIQUE_SHARE * nonnull
    # Unique text of single words (codes such as 13011352CF10A) identifies rows; unique sentences are free text.
    words = bool(p.examples) and not any(" " in e.strip() for e in p.examples)
    return named and p.distinct > MAX_FEATURE_VALUES or (unique and not p.numeric and words)


def _exclusion(p: ColumnProfile, sample: pd.DataFrame | None, targets: Sequence[tuple[str, str, bool]]) -> str | None:
    """Why a column should not be a default slicing feature, or None when it may be one."""
    personal = personal_data_reason(p.name, p.examples)
    if personal:
        return personal + "; never shown unless you add it"
    if p.rows and p.nulls == p.rows:
        return "empty in every sampled row"
    if p.distinct <= 1:
        return "one value in every sampled row: nothing to compare"
    if p.temporal:
        return "a date or time: slices over it are time windows (see Trends)"
    if _is_identifier(p):
        return f"an identifier: {p.distinct:,} different values in {p.rows - p.nulls:,} sampled rows"
    if not p.numeric and p.distinct > MAX_FEATURE_VALUES:
        return f"free text: {p.distinct:,} different values in the sample"
    if _rank(p, SCORE_NAMES) is not None:
        return "named like a score: another model's output, not a description of the case"
    if _rank(p, LABEL_NAMES) is not None:
        return "named like an outcome: another label, known only after the decision"
    if sample is not None and p.name in sample.columns:
        for role, column, is_number in targets:
            value = association(sample[p.name], sample[column], is_number)
            if value is not None and value >= PROXY_ASSOCIATION:
                how = "variance" if is_number else "errors"
                return (f"nearly determines the {role} {column}: its values alone explain {value:.0%} of the "
                        f"{how} in guessing it ({len(sample):,} sampled rows), so a slice on it mirrors the outcome")
            if role == "label" and not p.numeric:
                fixed = outcome_value(sample[p.name], sample[column])
                if fixed is not None:
                    value_, share, purity, outcome = fixed
                    return (f"records the outcome: where it is {value_!r} ({share:.0%} of sampled rows) the label "
                            f"{column} is {outcome!r} in {purity:.0%} of them, against "
                            f"{float((sample[column].astype('string') == outcome).mean()):.0%} overall")
    if p.numeric and p.distinct > 20:
        return (f"a number with {p.distinct:,} values in the sample: add it by hand and the slice search cuts it "
                f"into bins")
    return None


def _sensitive_exclusion(p: ColumnProfile) -> str | None:
    """Why a column named like a sensitive attribute is not guessed as one, or None."""
    if personal_data_reason(p.name, p.examples):
        return personal_data_reason(p.name, p.examples)
    if p.distinct > MAX_FEATURE_VALUES:
        return (f"named like a sensitive attribute but has {p.distinct:,} values in the sample: audit it in bands "
                f"(a column such as age_cat), or add it by hand as a feature to slice in bins")
    if p.distinct <= 1:
        return "named like a sensitive attribute but holds one value in every sampled row"
    return None


def guess_roles(profiles: Sequence[ColumnProfile], sample: pd.DataFrame | None = None) -> RoleGuess:
    """Suggested roles for each column by name, type and content, each with its reason.

    `sample` (the rows the profiles were made from) lets the guess measure content: how well each
    candidate feature alone predicts the label, the decision or the score (`association`), and
    where the score's values lie for the threshold. Without it the guesses use names and types only.
    """
    by_name = {p.name: p for p in profiles}
    taken: set[str] = set()
    reasons: list[tuple[str, str]] = []
    warnings: list[str] = []

    def take(role: str, value: str | None, why: str) -> str | None:
        """Claim a column for a role and record why."""
        if value:
            taken.add(value)
            reasons.append((role, why))
        return value

    ident = take("id", _best(profiles, ID_NAMES, taken, lambda p: not p.temporal and _is_unique(p)),
                 "named like a row id, a different value in every sampled row")
    time = take("time", _pick_time(profiles, taken), "a date or time with the fewest empty values (named like a time first)")
    if time and _null_share(by_name[time]) > TIME_NULL_SHARE:
        warnings.append(f"the time column {time} is empty in {_null_share(by_name[time]):.0%} of the sampled rows; "
                        f"rows without a time are left out of trends")
    version = take("model_version", _best(profiles, VERSION_NAMES, taken, lambda p: 1 < p.distinct <= 200),
                   "named like a model version")
    score = take("score", _best(profiles, SCORE_NAMES, taken, lambda p: p.numeric and not p.binary),
                 "named like a score and holds numbers")
    label = take("label", _best(profiles, LABEL_NAMES, taken, lambda p: p.distinct == 2 or "BOOL" in p.type.upper())
                 or _best(profiles, ("bad",), taken, lambda p: p.distinct == 2),
                 "named like a label (the actual outcome) and holds two values")
    if label is None:
        # A column literally named like a label with more values still is the label: the analyst maps its values.
        label = take("label", _best(profiles, LABEL_NAMES[:6], taken, lambda p: 2 < p.distinct <= MAX_FEATURE_VALUES),
                     "named like a label (the actual outcome)")
        if label:
            warnings.append(f"the label {label} has {by_name[label].distinct} values in the sample "
                            f"({', '.join(by_name[label].examples)}); map them to a positive and a negative value")
    prediction = take("prediction", _best(profiles, PREDICTION_NAMES, taken, lambda p: p.distinct == 2 or p.binary),
                      "named like a prediction (the decision) and holds two values")
    if prediction is None and score is None:
        # A 'score' of only 0 and 1 (Aequitas' files) is the decision itself.
        prediction = take("prediction", _best(profiles, SCORE_NAMES, taken, lambda p: p.binary and p.numeric),
                          "named like a score but holds only two values: it is the decision")
    sensitive, excluded = [], []
    for p in profiles:
        if p.name in taken or (_rank(p, SENSITIVE_NAMES) is None and not _holds_sexes(p)):
            continue
        why = _sensitive_exclusion(p)
        if why:
            excluded.append((p.name, why))
        else:
            sensitive.append(p.name)
    taken.update(sensitive)
    if sensitive:
        reasons.append(("sensitive", "named like a protected attribute (sex, race, age, ...), or holding sexes, "
                                     "with few values"))
    threshold = None
    if prediction is None and score is not None:
        scores = sample[score] if sample is not None and score in sample.columns else None
        threshold = default_threshold(scores, by_name[score])
        reasons.append(("threshold", f"the middle of {score}'s range" if threshold != 0.5 else
                        f"{score} lies between 0 and 1: 0.5"))
        if scores is not None and (warning := threshold_warning(scores, threshold, score)):
            warnings.append(warning)
    targets = [(role, column, role == "score") for role, column in
               (("label", label), ("prediction", prediction), ("score", score)) if column]
    features = []
    for p in profiles:
        if p.name in taken or any(p.name == c for c, _ in excluded):
            continue
        why = _exclusion(p, sample, targets)
        if why:
            excluded.append((p.name, why))
        else:
            features.append(p.name)
    if features:
        reasons.append(("features", "few values, and none of them alone predicts the outcome or the score"))
    return RoleGuess(label=label, positive_label=_positive_value(by_name.get(label)) if label else None,
                     prediction=prediction, score=score, threshold=threshold, sensitive=tuple(sensitive),
                     features=tuple(features), time=time, model_version=version, id=ident, reasons=tuple(reasons),
                     excluded=tuple(excluded), warnings=tuple(warnings))


def _holds_sexes(p: ColumnProfile) -> bool:
    """True for a column whatever its name whose values are sexes (German credit's 'Female' holds Male/Female)."""
    values = {e.strip().lower() for e in p.examples}
    return 1 < p.distinct <= 3 and bool(values) and values <= {"male", "female", "m", "f", "man", "woman", "other"} \
        and bool(values & {"male", "female", "man", "woman"})


def _is_unique(p: ColumnProfile) -> bool:
    """True when the sampled values are all different (or the sample size is unknown)."""
    return not p.rows or p.distinct >= UNIQUE_SHARE * (p.rows - p.nulls)


def _pick_time(profiles: Sequence[ColumnProfile], taken: set[str]) -> str | None:
    """The time column: a date or time (or text named like one) with few empty values, named like a time first.

    Ordered by emptiness first (in steps, so a name still decides between two full columns), then by
    name: COMPAS' compas_screening_date (never empty) before c_arrest_date (empty in 84% of rows).
    Dates of birth are not event times.
    """
    candidates = []
    for i, p in enumerate(profiles):
        if p.name in taken or p.distinct <= 1 or personal_data_reason(p.name, p.examples):
            continue
        rank = _rank(p, TIME_NAMES)
        if not (p.temporal or (rank is not None and "CHAR" in p.type.upper())):
            continue
        share = _null_share(p)
        step = 0 if share <= 0.01 else 1 if share <= TIME_NULL_SHARE else 2
        candidates.append((step, rank if rank is not None else 10**6, i, p.name))
    return min(candidates)[3] if candidates else None


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
