"""The error signal of regression and multiclass audits, as SQL for the slice search and the quality counts.

The binary slice search (`connectors/slice_counts.py`) and the quality counts read one row's error
signal as three SQL expressions: has a label, is in the signal's denominator, the error. For the
other tasks only these expressions change, so the same search (cells, GROUPING SETS, the Welch or
exact tests of `metrics/discovery/slices.py`) runs on them:

- regression: |ŷ - y| (`absolute_error`, the default) or (ŷ - y)² (`squared_error`) over the rows
  whose label and prediction are finite numbers; NULL, NaN and ±inf are outside the denominator, as
  the regression counts leave them out (`x - x = 0` holds exactly for finite x on every engine).
- multiclass: prediction ≠ label (`misclassification`) over labelled rows with a prediction, or
  one class's false negatives (`false_negative` with `[slices] class`: predicted another class,
  among the rows labelled that class). Label and prediction are compared as the group table
  compares them (`normalise_value`: '1.0' is '1'): each raw spelling is mapped to a class code by a
  parameter list, so the engine compares codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fairwatch.connectors.counts import run_query
from fairwatch.connectors.source import OpenSource, quote_ident
from fairwatch.connectors.task_counts import check_numeric, _number
from fairwatch.metrics.audit.outcomes import normalise_value
from fairwatch.metrics.audit.spec import AuditSpec
from fairwatch.metrics.errors import DataError

# Distinct (label, prediction) spellings read at most: the audit refuses more than 50 classes before the search.
_MAX_PAIRS = 1_000_000


def regression_values_sql(src: OpenSource, spec: AuditSpec, cols: dict[str, str]) -> tuple[str, str, str]:
    """SQL for (label as DOUBLE, prediction as DOUBLE, both finite) of one row."""
    y = _number(cols["label"], src.column_type(cols["label"]))
    p = _number(cols["prediction"], src.column_type(cols["prediction"]))
    return y, p, f"({y} IS NOT NULL AND {p} IS NOT NULL AND {y} - {y} = 0 AND {p} - {p} = 0)"


def _codes(expr: str, prefix: str, spellings: dict[str, int]) -> str:
    """SQL: the class code of a raw text value (NULL when missing), over parameters $prefix0.."""
    if not spellings:
        return "CAST(NULL AS INTEGER)"
    whens = " ".join(f"WHEN ${prefix}{i} THEN {code}" for i, code in enumerate(spellings.values()))
    return f"CASE {expr} {whens} END"


def _class_codes(src: OpenSource, cols: dict[str, str], where: str,
                 params: dict) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Raw label spellings -> code, raw prediction spellings -> code, and the label classes -> code."""
    label, pred = (f"CAST({quote_ident(cols[r])} AS VARCHAR)" for r in ("label", "prediction"))
    raw = run_query(src, f"SELECT DISTINCT {label} AS l, {pred} AS p FROM src WHERE {where} "
                         f"LIMIT {_MAX_PAIRS}", params)
    labels = sorted({str(v) for v in raw["l"].dropna()})
    preds = sorted({str(v) for v in raw["p"].dropna()})
    classes: dict[str, int] = {}
    for v in [*labels, *preds]:
        classes.setdefault(normalise_value(v), len(classes))
    label_classes = {normalise_value(v): classes[normalise_value(v)] for v in labels}
    return ({v: classes[normalise_value(v)] for v in labels}, {v: classes[normalise_value(v)] for v in preds},
            label_classes)


@dataclass(frozen=True)
class TaskSignal:
    """One row's error signal as SQL, its parameters, and the label as it is compared (class code or finite number)."""

    labelled: str
    den: str
    err: str
    params: dict = field(hash=False)
    label: str


def task_signal(src: OpenSource, spec: AuditSpec, cols: dict[str, str], where: str, params: dict) -> TaskSignal:
    """The regression or multiclass error signal of the spec's [slices] error (see the module docstring)."""
    label_raw = quote_ident(cols["label"])
    labelled = f"({label_raw} IS NOT NULL)"
    if spec.task == "regression":
        check_numeric(src, spec, cols, where, params)
        y, p, ok = regression_values_sql(src, spec, cols)
        diff = f"({p} - {y})"
        # A product, not power(): every engine rounds x * x the same way (IEEE).
        err = f"abs({diff})" if spec.slices.error == "absolute_error" else f"{diff} * {diff}"
        # Every reader sums the error only over the denominator (`ok`): NaN or inf never reaches a sum.
        return TaskSignal(labelled, ok, err, {},
                          f"CASE WHEN {y} IS NOT NULL AND {y} - {y} = 0 THEN {y} END")
    lab_codes, pred_codes, label_classes = _class_codes(src, cols, where, params)
    qp = {f"mcl{i}": v for i, v in enumerate(lab_codes)} | {f"mcp{i}": v for i, v in enumerate(pred_codes)}
    y = _codes(f"CAST({label_raw} AS VARCHAR)", "mcl", lab_codes)
    yhat = _codes(f"CAST({quote_ident(cols['prediction'])} AS VARCHAR)", "mcp", pred_codes)
    both = f"({y} IS NOT NULL AND {yhat} IS NOT NULL)"
    if spec.slices.error == "misclassification":
        return TaskSignal(labelled, both, f"CAST({y} <> {yhat} AS INTEGER)", qp, y)
    wanted = normalise_value(str(spec.slices.error_class))
    if wanted not in label_classes:
        shown = ", ".join(repr(c) for c in sorted(label_classes)[:20])
        raise DataError(f"[slices] class {spec.slices.error_class!r} never occurs as a label in column {spec.label} "
                        f"(classes: {shown}); choose one of them (--error-class)")
    qp["mcc"] = label_classes[wanted]
    return TaskSignal(labelled, f"({both} AND {y} = $mcc)", f"CAST({yhat} <> $mcc AS INTEGER)", qp, y)


def task_signal_sql(src: OpenSource, spec: AuditSpec, cols: dict[str, str], where: str,
                    params: dict) -> tuple[str, str, str, dict]:
    """SQL for (has a label, in the error signal's denominator, the error) of a row, and its parameters."""
    sig = task_signal(src, spec, cols, where, params)
    return sig.labelled, sig.den, sig.err, sig.params
