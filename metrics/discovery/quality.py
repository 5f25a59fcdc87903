"""Data-quality signals per slice: is the data itself bad there, compared with the rest of the data?

Three signals, each a rate with a Wilson interval, tested against the slice's complement (every
audited row outside the slice) with the project's two-proportion test, and controlled by
Benjamini-Hochberg over every signal and slice tested in one call:

1. ``missing_values``: share of the slice's rows with a NULL (or NaN) in any of the spec's other
   columns (sensitive features and features, minus the slice's own columns: a slice defined by a
   column is never "missing" in it, or always is), and ``missing_column`` per column.
2. ``conflicting_duplicates``: share of the slice's labelled rows that sit in a group of rows
   identical on every sensitive and feature column (and the score, when there is one) whose labels
   disagree. Such rows cannot all be right.
3. ``outlying_labels`` (regression, in place of label errors and conflicting duplicates): share of
   the slice's rows with a finite label whose label lies outside Tukey's fences, [Q1 - 1.5 IQR,
   Q3 + 1.5 IQR], the quartiles of every audited finite label (exact ranks, computed in the engine).
   Multiclass audits compare classes in `conflicting_duplicates`; regression audits do not check
   duplicates: rows identical on a few categorical features hold different numbers almost always, and
   keyed also by the numeric prediction the groups are single rows (a GROUP BY that hashes every row
   to find next to nothing).
4. ``label_errors`` (only with a probability score): confident disagreement between score and
   label, after Confident Learning (Northcutt, Jiang & Chuang, JAIR 2021). Per-class thresholds
   are the classes' average self-confidence over all audited labelled rows,
   ``t1 = mean(score | label = 1)`` and ``t0 = mean(1 - score | label = 0)``; a row labelled 0 with
   ``score >= t1``, or labelled 1 with ``1 - score >= t0``, is a suspected label error.
   ``label_errors_negative`` and ``label_errors_positive`` are the two halves, each over the
   labelled rows of its class.

A signal *fires* when its q-value is below the policy's fdr, its rate is above the complement's,
and (for the three signals themselves, not the halves) the rate is at least ``ratio_high`` times the
complement's: on millions of rows a trivially higher rate is significant, and it must not turn
every finding into a data problem. ``label_errors`` further needs both halves to fire: a model
that scores a slice too low (or too high) produces more confident disagreement on one side only
and fewer on the other, exactly as a model problem would; flipped labels raise both sides. Label
noise in one direction only is therefore not told apart from a model problem here, on purpose.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from fairwatch.metrics.stats.groups import CELLS, LOWER_IS_BETTER, RATES, slice_label
from fairwatch.metrics.stats.intervals import bh_qvalues, two_proportion_pvalue, wilson_interval
from fairwatch.metrics.discovery.slices import material
from fairwatch.metrics.audit.spec import AuditSpec

Slice = tuple[tuple[str, str], ...]

MISSING_ANY = "missing_values"
MISSING_COLUMN = "missing_column"
CONFLICTS = "conflicting_duplicates"
LABEL_ERRORS = "label_errors"
LABEL_ERRORS_NEG = "label_errors_negative"
LABEL_ERRORS_POS = "label_errors_positive"
# Regression: labels beyond Tukey's fences (1.5 IQR outside the quartiles of every audited finite label).
OUTLIERS = "outlying_labels"
# The signals that mean "better data" when they fire; the two halves only support LABEL_ERRORS.
NEED_SIGNALS = (MISSING_ANY, MISSING_COLUMN, CONFLICTS, LABEL_ERRORS, OUTLIERS)
SIGNAL_TEXT = {
    MISSING_ANY: "rows with a missing value in another column",
    MISSING_COLUMN: "rows with {column} missing",
    CONFLICTS: "labelled rows that have an identical twin with the opposite label",
    LABEL_ERRORS: "labelled rows whose label the score confidently contradicts",
    LABEL_ERRORS_NEG: "negative labels the score confidently contradicts",
    LABEL_ERRORS_POS: "positive labels the score confidently contradicts",
    OUTLIERS: "labelled rows whose label lies beyond 1.5 IQR outside the quartiles of all labels",
}
SIGNAL_COLUMNS = ["slice", "signal", "column", "x", "n", "total_x", "total_n"]
# The slice search's error signal (denominator, errors) among the rows a signal does not flag: in the slice
# and over every audited row (NaN where not counted). They say whether the flagged rows explain a gap.
CLEAN_COLUMNS = ["clean_n", "clean_errors", "total_clean_n", "total_clean_errors"]
# The confusion cells (metrics.stats.groups.CELLS order) of the slice's labelled, decided rows a signal does not flag:
# any group metric without the flagged rows (NaN where not counted). They decide a sensitive group's need.
CELL_COLUMNS = ["clean_tn", "clean_fp", "clean_fn", "clean_tp"]


@dataclass(frozen=True)
class LabelErrorRule:
    """The Confident Learning thresholds used for the label-error signal, from all audited rows."""

    t1: float
    t0: float
    positives: int
    negatives: int

    def describe(self) -> str:
        """The rule in words, with the thresholds."""
        return (f"suspected label error: labelled negative with score >= t1 = {self.t1:.4f} (mean score of the "
                f"{self.positives:,} labelled positives), or labelled positive with 1 - score >= t0 = {self.t0:.4f} "
                f"(mean of 1 - score over the {self.negatives:,} labelled negatives)")


@dataclass(frozen=True)
class QualityCounts:
    """What the engine counted: per slice and signal, numerator and denominator, and the totals.

    ``signals`` has one row per (slice, signal, column) with x, n (in the slice) and total_x,
    total_n (over every audited row), so the complement is total minus slice. ``slices`` has one row
    per slice: slice, group, origin ('requested', 'sensitive_group' or 'both'), rows,
    labelled_rows, checked_columns.
    """

    signals: pd.DataFrame
    slices: pd.DataFrame
    total_rows: int
    labelled_rows: int
    positive_label: str
    label_error_rule: LabelErrorRule | None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class QualityTable:
    """Rates, intervals, tests and the fired flag of every signal for every slice.

    ``rows`` columns: slice, group, signal, column, x, n, rate, ci_low, ci_high, complement_x,
    complement_n, complement_rate, complement_ci_low, complement_ci_high, ratio, p_value, q_value,
    fired, CLEAN_COLUMNS and CELL_COLUMNS (NaN where the error signal was not counted).
    """

    rows: pd.DataFrame
    slices: pd.DataFrame
    label_error_rule: LabelErrorRule | None
    notes: tuple[str, ...] = ()

    @cached_property
    def _by_slice(self) -> dict[Slice, pd.DataFrame]:
        """Signal rows grouped by slice, built once (a scan per lookup made diagnosis quadratic)."""
        keys = self.rows["slice"].map(tuple)
        return {k: self.rows.loc[idx] for k, idx in keys.groupby(keys, sort=False).groups.items()}

    def for_slice(self, slice_: Slice) -> pd.DataFrame:
        """The signal rows of one slice (empty when the slice was not checked)."""
        return self._by_slice.get(tuple(tuple(p) for p in slice_), self.rows.iloc[0:0])

    def checked(self, slice_: Slice) -> bool:
        """Whether the slice was among those checked."""
        key = tuple(slice_)
        return bool(self.slices["slice"].map(lambda s: s == key).any()) if len(self.slices) else False

    def fired(self, slice_: Slice) -> pd.DataFrame:
        """The fired need signals of one slice, strongest (lowest q-value) first."""
        rows = self.for_slice(slice_)
        rows = rows[rows["fired"] & rows["signal"].isin(NEED_SIGNALS)]
        return rows.sort_values(["q_value", "signal"], kind="stable")


def _column(value: object) -> str | None:
    """A signal's column, None when the signal is not about one column (pandas may hold NaN there)."""
    return None if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA else str(value)


def signal_name(signal: str, column: str | None) -> str:
    """A signal's short name: 'missing_column:employment' for a column, else the signal."""
    column = _column(column)
    return f"{signal}:{column}" if column else signal


def describe_signal(signal: str, column: str | None) -> str:
    """What a signal counts, in words."""
    return SIGNAL_TEXT[signal].format(column=column)


def empty_signals() -> pd.DataFrame:
    """A signal-count frame with no rows and the right columns."""
    return pd.DataFrame({c: pd.Series(dtype=object if c in ("slice", "signal", "column") else
                                      float if c in CLEAN_COLUMNS + CELL_COLUMNS else np.int64)
                         for c in SIGNAL_COLUMNS + CLEAN_COLUMNS + CELL_COLUMNS})


def compute_quality(counts: QualityCounts, spec: AuditSpec) -> QualityTable:
    """Rates with Wilson intervals against the complement, BH over all tests, and which signals fire."""
    rows = counts.signals.copy() if len(counts.signals) else empty_signals()
    for col in CLEAN_COLUMNS + CELL_COLUMNS:  # counted only when the audit asked for the error signal
        rows[col] = rows[col].astype(float) if col in rows.columns else np.nan
    for col in ("x", "n", "total_x", "total_n"):
        rows[col] = rows[col].astype(np.int64)
    rows["group"] = rows["slice"].map(slice_label)
    # Object dtype keeps None (pandas 3 would store a missing string as NaN).
    rows["column"] = pd.Series([_column(c) for c in rows["column"]], index=rows.index, dtype=object)
    rows["complement_x"] = rows["total_x"] - rows["x"]
    rows["complement_n"] = rows["total_n"] - rows["n"]
    x, n = rows["x"].to_numpy(float), rows["n"].to_numpy(float)
    cx, cn = rows["complement_x"].to_numpy(float), rows["complement_n"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows["rate"] = np.where(n > 0, x / np.where(n > 0, n, 1), np.nan)
        rows["complement_rate"] = np.where(cn > 0, cx / np.where(cn > 0, cn, 1), np.nan)
        comp = rows["complement_rate"].to_numpy(float)
        rows["ratio"] = np.where(comp > 0, rows["rate"].to_numpy(float) / np.where(comp > 0, comp, 1),
                                 np.where(rows["rate"] > 0, np.inf, np.nan))
    rows["ci_low"], rows["ci_high"] = wilson_interval(x, n) if len(rows) else (np.array([]), np.array([]))
    rows["complement_ci_low"], rows["complement_ci_high"] = (
        wilson_interval(cx, cn) if len(rows) else (np.array([]), np.array([])))
    rows["p_value"] = two_proportion_pvalue(x, n, cx, cn) if len(rows) else np.array([])
    # One family per call: every signal of every slice tested here.
    rows["q_value"] = bh_qvalues(rows["p_value"].to_numpy(float)) if len(rows) else np.array([])
    rows["fired"] = _fired(rows, spec)
    ordered = ["slice", "group", "signal", "column", "x", "n", "rate", "ci_low", "ci_high", "complement_x",
               "complement_n", "complement_rate", "complement_ci_low", "complement_ci_high", "ratio",
               "p_value", "q_value", "fired", *CLEAN_COLUMNS, *CELL_COLUMNS]
    return QualityTable(rows=rows[ordered].reset_index(drop=True), slices=counts.slices,
                        label_error_rule=counts.label_error_rule, notes=counts.notes)


def _fired(rows: pd.DataFrame, spec: AuditSpec) -> np.ndarray:
    """Significantly and materially higher than the complement; label errors on both sides."""
    if rows.empty:
        return np.array([], dtype=bool)
    higher = (rows["q_value"] < spec.policy.fdr) & (rows["rate"] > rows["complement_rate"])
    material = (rows["complement_rate"] == 0) | (rows["rate"] >= spec.policy.ratio_high * rows["complement_rate"])
    headline = rows["signal"].isin(NEED_SIGNALS)
    fired = (higher & (material | ~headline)).to_numpy(bool)
    keys = rows["slice"].to_numpy(object)
    sides: dict[tuple, int] = {}
    for key, signal, f in zip(keys, rows["signal"], fired):
        if signal in (LABEL_ERRORS_NEG, LABEL_ERRORS_POS) and f:
            sides[key] = sides.get(key, 0) + 1
    is_le = (rows["signal"] == LABEL_ERRORS).to_numpy(bool)
    both = np.array([sides.get(k, 0) == 2 for k in keys], dtype=bool)
    return np.where(is_le, fired & both, fired)


def fired_summary(table: QualityTable, slice_: Slice) -> list[dict]:
    """The fired need signals of a slice as plain dicts (for evidence and snapshots)."""
    out = []
    for r in table.fired(slice_).to_dict("records"):
        out.append({
            "signal": signal_name(r["signal"], r["column"]), "rate": float(r["rate"]),
            "ci_low": float(r["ci_low"]), "ci_high": float(r["ci_high"]), "rows": int(r["n"]),
            "complement_rate": float(r["complement_rate"]), "q_value": float(r["q_value"]),
        })
    return out


@dataclass(frozen=True)
class GapWithout:
    """A slice's error against the rest with a signal's flagged rows left out of the slice."""

    signal: str
    rate: float | None
    rest_rate: float
    clean_rest_rate: float | None
    ratio: float | None
    rows_left: int
    explains: bool

    def to_dict(self) -> dict:
        """The evidence record."""
        return {"signal": self.signal, "rate_without_flagged": self.rate, "rest_rate": self.rest_rate,
                "rest_rate_without_its_flagged": self.clean_rest_rate, "ratio_without_flagged": self.ratio,
                "rows_left": self.rows_left, "explains_gap": self.explains}


def _clean_counts(r: dict, metric: str | None) -> tuple[float, float, float, float]:
    """(denominator, numerator) in the slice without the flagged rows, and over every row (NaN: not counted).

    metric None: the slice search's error signal; else a group metric from the unflagged confusion cells.
    """
    if metric is None:
        n, x, tn, tx = (float(r.get(c, np.nan)) for c in CLEAN_COLUMNS)
        return n, x, tn, tx
    cells = dict(zip(CELLS, (float(r.get(c, np.nan)) for c in CELL_COLUMNS)))
    num, den = RATES[metric]
    return sum(cells[c] for c in den), sum(cells[c] for c in num), np.nan, np.nan


def gap_without_flagged(table: QualityTable, slice_: Slice, spec: AuditSpec, rest_rate: float | None,
                        signals: pd.DataFrame | None = None, *, metric: str | None = None,
                        rest_counts: tuple[float, float] | None = None,
                        alpha: float | None = None) -> list[GapWithout]:
    """For each fired need signal of a slice: is the slice still materially worse without its flagged rows?

    The slice loses the rows the signal flags; the rest stays as it is (`rest_rate`, the finding's
    comparison), so the question is the one an analyst asks: fix or drop those rows, and is the gap
    gone? The flagged rows explain the gap when what remains is not material by the policy
    (`metrics.discovery.slices.material`: ratio at most ratio_high, or a difference below min_difference), or
    when no row of the slice is left. The rest without its own flagged rows is kept as evidence.
    A sensitive group (`metric`, one of `metrics.stats.groups.RATES`, against its reference's counts
    `rest_counts` = (numerator, denominator)) is judged as its verdict is: still worse only if materially
    (in the metric's worse direction) and significantly, its two-proportion p-value at most `alpha`
    (the Benjamini-Hochberg level of its family, `metrics.stats.intervals.bh_level`).
    Strongest explanation (lowest ratio) first; empty when nothing fired or the error signal was not counted.
    """
    rows = table.fired(slice_) if signals is None else signals
    lower = metric is not None and metric not in LOWER_IS_BETTER
    out = []
    for r in rows.to_dict("records"):
        n, x, tn, tx = _clean_counts(r, metric)
        if np.isnan(n) or rest_rate is None or np.isnan(rest_rate):
            continue
        rate = x / n if n > 0 else None
        clean_rest = (tx - x) / (tn - n) if tn - n > 0 else None
        if rate is None:
            explains, ratio = True, None
        else:
            ratio = rate / rest_rate if rest_rate > 0 else (np.inf if rate > 0 else None)
            worse = bool(material(rate, rest_rate, spec.policy, lower_is_worse=lower))
            if worse and alpha is not None and rest_counts is not None:
                worse = float(two_proportion_pvalue(x, n, rest_counts[0], rest_counts[1])[0]) <= alpha
            explains = not worse
        out.append(GapWithout(signal_name(r["signal"], r["column"]), rate, float(rest_rate), clean_rest,
                              None if ratio is None or not np.isfinite(ratio) else float(ratio), int(n), explains))
    # Strongest explanation first: the gap left closest to none (for a lower-is-worse metric, the highest ratio).
    return sorted(out, key=lambda g: (not g.explains,
                                      (-g.ratio if lower else g.ratio) if g.ratio is not None else -np.inf))
