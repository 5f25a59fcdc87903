"""Turn raw label/prediction values in the counts into 0/1 outcomes, accounting for every row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.errors import DataError
from metrics.spec import AuditSpec

_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


@dataclass(frozen=True)
class DataSummary:
    """Where every row of the audited source went: nothing is dropped without being counted."""

    rows: int
    labelled_rows: int
    unlabelled_rows: int
    unpredicted_rows: int
    positive_label: str | tuple[str, ...] | None  # several when the analyst mapped a many-valued label; None for
    positive_prediction: str | None               # regression and multiclass audits, which have no positive value
    # Regression: rows with a label and a prediction of which one is NaN or infinite (counted, never averaged in).
    nonfinite_rows: int = 0

    @property
    def evaluated_rows(self) -> int:
        """Rows with both a label and a decision: the ones performance metrics use."""
        return self.labelled_rows - self.unpredicted_rows - self.nonfinite_rows

    @property
    def label_coverage(self) -> float:
        """Share of rows that have a label."""
        return self.labelled_rows / self.rows if self.rows else float("nan")


@dataclass(frozen=True)
class Outcomes:
    """Counts per group with binary outcomes, plus the counts of all rows for representation."""

    labelled: pd.DataFrame  # sensitive..., y_true, y_pred, n
    population: pd.DataFrame  # sensitive..., n (every row, labelled or not)
    summary: DataSummary


def normalise_value(value: str) -> str:
    """Spell a raw value the way it is compared: '1.0' as '1', booleans lower case."""
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    return str(int(number)) if number.is_integer() else text


def _show(values) -> str:
    """A short list of values for a message."""
    values = sorted(values, key=str)
    shown = ", ".join(repr(v) for v in values[:8])
    return shown + (f", … ({len(values)} in all)" if len(values) > 8 else "")


def task_hint(values) -> str:
    """The task that fits values which are not binary: regression for many numbers, else multiclass (as a term)."""
    numeric = 0
    for v in values:
        try:
            float(v)
            numeric += 1
        except (TypeError, ValueError):
            pass
    many_numbers = numeric == len(values) and len(values) > 20
    return "{task=regression} (a number)" if many_numbers else "{task=multiclass} (one of several classes)"


def positive_set(positive: str | tuple[str, ...]) -> frozenset[str]:
    """The normalised values that count as positive: one value, or the several an analyst mapped."""
    values = (positive,) if isinstance(positive, str) else tuple(positive)
    return frozenset(normalise_value(v) for v in values)


def positive_text(positive: str | tuple[str, ...]) -> str:
    """The positive value(s) for a sentence: '1', or '<30 or >30'."""
    return positive if isinstance(positive, str) else " or ".join(positive)


def _match(value: str, values: set[str]) -> str | None:
    """`value` as spelled in the data (exactly, else the one case-folded match), or None."""
    norm = normalise_value(value)
    if norm in values:
        return norm
    folded = [v for v in values if v.lower() == norm.lower()]
    return folded[0] if len(folded) == 1 else None


def choose_positive(values: set[str], given: str | tuple[str, ...] | None, role: str, column: str,
                    flag: str) -> str | tuple[str, ...]:
    """The value(s) counted as positive: the ones given, or 1/true when the values are plainly binary.

    `flag` is the field id (metrics.errors.FIELDS) the messages tell the user to fix.
    """
    if isinstance(given, tuple):
        # Several positive values: a mapping of a many-valued label; every other value is negative.
        found = [_match(v, values) for v in given]
        missing = [v for v, f in zip(given, found) if f is None]
        if missing and values:
            raise DataError(f"the positive {role} value(s) {', '.join(map(repr, missing))} are not values of {column}; "
                            f"its values are {_show(values)}: fix {{field}}", field=flag)
        return tuple(f or normalise_value(v) for v, f in zip(given, found))
    if given is not None:
        found = _match(given, values)
        if found is not None or not values:
            # Named explicitly, it maps any number of values: this one positive, the rest negative.
            return found or normalise_value(given)
        if len(values) >= 2:
            raise DataError(f"the positive {role} {given!r} is not a value of {column}; its values are {_show(values)}: "
                            f"fix {{field}}", field=flag)
        return normalise_value(given)  # one value present, and it is the negative one: every row is negative
    if len(values) > 2:
        raise DataError(
            f"the {role} column {column} has {len(values)} distinct values ({_show(values)}); a binary "
            f"{role} has two: say which value(s) count as positive with {{field}} (the rest are negative), or audit "
            f"it as it is with {task_hint(values)}", field=flag
        )
    lowered = {v.lower() for v in values}
    if lowered <= _TRUE | _FALSE and len(lowered & _TRUE) <= 1 and len(lowered & _FALSE) <= 1:
        positive = lowered & _TRUE
        if positive:
            return next(v for v in values if v.lower() in positive)
        return "1" if lowered <= {"0", "1"} else "true"
    raise DataError(f"the {role} column {column} holds {_show(values)}; say which value is positive with {{field}}",
                    field=flag)


def _normalised(values: pd.Series) -> pd.Series:
    """normalise_value of each value (NaN stays NaN), computed once per distinct value, not once per row."""
    return values.map({v: normalise_value(v) for v in values.dropna().unique()})


def check_rows(rows: int, labelled_rows: int, spec: AuditSpec) -> tuple[int, int]:
    """(rows, labelled rows), or the one-line error for no rows or no labels (every task)."""
    if rows == 0:
        raise DataError("the source has no rows (after the chosen filters); check the file or widen the time window")
    if labelled_rows == 0:
        raise DataError(
            f"all {rows:,} rows are unlabelled (the label column {spec.label} is empty); "
            f"audit a period whose outcomes are known, or join the labels table ([source] labels_table)"
        )
    return rows, labelled_rows


def binarize(cells: pd.DataFrame, spec: AuditSpec) -> Outcomes:
    """Map raw labels and predictions to 0/1 and split labelled from unlabelled rows."""
    sens = list(spec.sensitive)
    label, pred = _normalised(cells["label_raw"]), _normalised(cells["pred_raw"])
    has_label = label.notna()
    rows, labelled_rows = check_rows(int(cells["n"].sum()) if len(cells) else 0,
                                     int(cells.loc[has_label, "n"].sum()), spec)
    pos_label = choose_positive(set(label.dropna()), spec.positive_label, "label", spec.label, "positive_label")
    if spec.prediction is None:
        pos_pred = "1"
    else:
        pred_values = set(pred.dropna())
        given = spec.positive_prediction
        # Inferred, it must not map a many-valued prediction: only an explicit choice does that.
        if given is None and isinstance(pos_label, str) and pos_label in pred_values and len(pred_values) <= 2:
            given = pos_label  # same vocabulary as the label, e.g. both booleans or both yes/no
        pos_pred = choose_positive(pred_values, given, "prediction", spec.prediction, "positive_prediction")
    usable = has_label & pred.notna()
    unpredicted = int(cells.loc[has_label & pred.isna(), "n"].sum())
    lab = cells.loc[usable, sens].copy()
    lab["y_true"] = label[usable].isin(positive_set(pos_label)).astype(np.int64).to_numpy()
    lab["y_pred"] = (pred[usable] == pos_pred).astype(np.int64).to_numpy()
    lab["n"] = cells.loc[usable, "n"].astype(np.int64).to_numpy()
    labelled = lab.groupby(sens + ["y_true", "y_pred"], as_index=False, sort=True, observed=True)["n"].sum()
    population = cells.groupby(sens, as_index=False, sort=True, observed=True)["n"].sum()
    summary = DataSummary(
        rows=rows,
        labelled_rows=labelled_rows,
        unlabelled_rows=rows - labelled_rows,
        unpredicted_rows=unpredicted,
        positive_label=pos_label,
        positive_prediction=pos_pred,
    )
    return Outcomes(labelled=labelled, population=population, summary=summary)


def binarize_scores(scores: pd.DataFrame, spec: AuditSpec, positive_label: str | tuple[str, ...]) -> pd.DataFrame:
    """Counts per (groups, y_true as 0/1, score bucket), summed over raw labels and predictions.

    Rows without a label or a score were excluded in the query.
    """
    sens = list(spec.sensitive)
    labels = scores["label_raw"]
    # A handful of distinct labels over many bucket rows: normalise each distinct label once.
    wanted = positive_set(positive_label)
    positive = {v: normalise_value(v) in wanted for v in labels.dropna().unique()}
    out = scores[sens + ["score", "n"]].copy()
    out["y_true"] = labels.map(positive).to_numpy(dtype=np.int64)
    return out.groupby(sens + ["y_true", "score"], as_index=False, sort=True, observed=True)["n"].sum()
