"""Multiclass audits: accuracy, balanced accuracy and one-vs-rest rates per class, from counts per (group, y_true, y_pred).

The counts are the binary audit's own (connectors/counts.py: rows per finest group cell, raw label,
raw prediction); here each group's K×K confusion matrix (rows: true class, columns: predicted) is
their sum, over the classes seen as a label or a prediction. Per group:

- accuracy = trace / n; balanced_accuracy = mean recall over the classes that occur as a label in
  the group (scikit-learn's definition), normal interval from the independent per-class recalls;
- per class c, one-vs-rest: selection_rate@c = predicted c / n, true_positive_rate@c (recall) =
  C[c,c] / labelled c, false_positive_rate@c = predicted c among the rows not labelled c,
  precision@c = C[c,c] / predicted c; each a proportion with a Wilson interval.

Disparities to the reference group are the binary audit's (Newcombe difference, log ratio interval,
score/Fisher test, one BH family, the policy band), class by class.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.errors import DataError
from metrics.groups import GroupTable, _between_groups, _disparities, _Values, slice_label, verdicts
from metrics.intervals import bh_qvalues, normal_interval, wilson_interval
from metrics.outcomes import DataSummary, _normalised, _show, check_rows
from metrics.spec import AuditSpec
from metrics.task_tables import layout, long_rows, sum_rows

# More classes than this is a number or an id, not a set of classes.
MAX_CLASSES = 50
PER_CLASS = ("selection_rate", "true_positive_rate", "false_positive_rate", "precision")


@dataclass(frozen=True)
class MulticlassResult:
    """A multiclass audit's extra sections: the classes, confusion matrices per group, notes."""

    classes: tuple[str, ...]
    confusion: pd.DataFrame  # grouping, slice, group, y_true, y_pred, n, row_share
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MulticlassCounts:
    """Counts per finest group cell and (true, predicted) class index, the classes, and where every row went."""

    labelled: pd.DataFrame  # sensitive..., y_true, y_pred (class indexes), n
    population: pd.DataFrame  # sensitive..., n
    classes: tuple[str, ...]
    summary: DataSummary
    notes: tuple[str, ...]


def metric_names(classes: tuple[str, ...]) -> tuple[str, ...]:
    """Metrics of a multiclass audit in display order: accuracy, balanced accuracy, then per class."""
    return ("accuracy", "balanced_accuracy", *(f"{m}@{c}" for c in classes for m in PER_CLASS))


def _refuse_too_many(values: set[str], column: str, role: str) -> DataError:
    """The error for a column with too many classes: a number is regression, else an id."""
    numeric = all(_is_number(v) for v in values)
    hint = "audit the number with {task=regression}" if numeric else "map it to a few classes"
    return DataError(f"the {role} column {column} has {len(values):,} distinct values ({_show(values)}), more than "
                     f"{MAX_CLASSES} classes: {hint}")


def _is_number(text: str) -> bool:
    """True when the text reads as a number."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def multiclass_counts(cells: pd.DataFrame, spec: AuditSpec) -> MulticlassCounts:
    """Classes and counts from the raw label/prediction cells; one-line errors where the data cannot be audited."""
    sens = list(spec.sensitive)
    label, pred = _normalised(cells["label_raw"]), _normalised(cells["pred_raw"])
    has_label = label.notna()
    rows, labelled_rows = check_rows(int(cells["n"].sum()) if len(cells) else 0,
                                     int(cells.loc[has_label, "n"].sum()), spec)
    label_classes = set(label.dropna())
    if len(label_classes) > MAX_CLASSES:
        raise _refuse_too_many(label_classes, spec.label, "label")
    if len(label_classes) == 1:
        raise DataError(f"the label column {spec.label} holds a single class {next(iter(label_classes))!r} in all "
                        f"{labelled_rows:,} labelled rows; a multiclass audit compares at least two: widen the rows "
                        f"audited or check the label column")
    pred_classes = set(pred.dropna())
    if len(pred_classes) > MAX_CLASSES:
        raise _refuse_too_many(pred_classes, str(spec.prediction), "prediction")
    usable = has_label & pred.notna()
    unseen = sorted(pred_classes - label_classes, key=str)
    notes = []
    if unseen:
        n_unseen = int(cells.loc[usable & pred.isin(unseen), "n"].sum())
        notes.append(f"predicted class(es) {_show(unseen)} never occur as a label ({n_unseen:,} labelled rows): "
                     f"they count as errors; their recall is undefined")
    classes = tuple(sorted(label_classes | pred_classes, key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0, v)))
    index = {c: i for i, c in enumerate(classes)}
    lab = cells.loc[usable, sens].copy()
    lab["y_true"] = label[usable].map(index).to_numpy(np.int64)
    lab["y_pred"] = pred[usable].map(index).to_numpy(np.int64)
    lab["n"] = cells.loc[usable, "n"].astype(np.int64).to_numpy()
    labelled = lab.groupby(sens + ["y_true", "y_pred"], as_index=False, sort=True, observed=True)["n"].sum()
    population = cells.groupby(sens, as_index=False, sort=True, observed=True)["n"].sum()
    summary = DataSummary(rows=rows, labelled_rows=labelled_rows, unlabelled_rows=rows - labelled_rows,
                          unpredicted_rows=int(cells.loc[has_label & pred.isna(), "n"].sum()),
                          positive_label=None, positive_prediction=None)
    return MulticlassCounts(labelled=labelled, population=population, classes=classes, summary=summary,
                            notes=tuple(notes))


def _confusions(counts: MulticlassCounts, spec: AuditSpec):
    """The layout of the groups and each group's K×K confusion matrix and size."""
    k = len(counts.classes)
    pop = counts.population
    # One frame holds the population cells and the labelled cells, so both locate the same groups.
    lab = counts.labelled
    both = pd.concat([pop[list(spec.sensitive)], lab[list(spec.sensitive)]], ignore_index=True)
    sizes = np.r_[pop["n"].to_numpy(np.int64), np.zeros(len(lab), dtype=np.int64)]
    lay = layout(both, sizes, spec)
    per_row = np.zeros((len(both), k, k), dtype=np.int64)
    at = np.arange(len(pop), len(both))
    per_row[at, lab["y_true"].to_numpy(np.int64), lab["y_pred"].to_numpy(np.int64)] = lab["n"].to_numpy(np.int64)
    conf = sum_rows(lay, per_row)
    total = sum_rows(lay, sizes)
    return lay, conf, total


def multiclass_values(conf: np.ndarray, classes: tuple[str, ...]) -> _Values:
    """Every metric of every group from the confusion matrices (groups, K, K), with intervals."""
    n = conf.sum(axis=(1, 2)).astype(float)
    diag = np.einsum("gkk->gk", conf).astype(float)
    true_c = conf.sum(axis=2).astype(float)  # labelled c
    pred_c = conf.sum(axis=1).astype(float)  # predicted c
    num, den = [diag.sum(axis=1)], [n]
    for c in range(len(classes)):
        num += [pred_c[:, c], diag[:, c], pred_c[:, c] - diag[:, c], diag[:, c]]
        den += [n, true_c[:, c], n - true_c[:, c], pred_c[:, c]]
    num, den = np.vstack(num), np.vstack(den)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        recall = np.where(true_c > 0, diag / np.where(true_c > 0, true_c, 1), np.nan)
        present = (true_c > 0).sum(axis=1)
        bal = np.where(present > 0, np.nansum(recall, axis=1) / np.where(present > 0, present, 1), np.nan)
        var = np.where(true_c > 0, recall * (1 - recall) / np.where(true_c > 0, true_c, 1), 0.0)
        se = np.sqrt(var.sum(axis=1)) / np.where(present > 0, present, np.nan)
    low, high = (a.reshape(den.shape) for a in wilson_interval(num.ravel(), den.ravel()))
    bl, bh = normal_interval(bal, se)
    nan = np.full(len(n), np.nan)

    def stacked(rates: np.ndarray, extra: np.ndarray) -> np.ndarray:
        """Accuracy, balanced accuracy, then the per-class rates."""
        return np.vstack([rates[:1], extra, rates[1:]])

    return _Values(names=metric_names(classes), value=stacked(value, bal), ci_low=stacked(low, np.clip(bl, 0, 1)),
                   ci_high=stacked(high, np.clip(bh, 0, 1)),
                   support=stacked(den, np.where(present > 0, true_c.min(axis=1, where=true_c > 0, initial=np.inf), 0)),
                   successes=stacked(num, nan),
                   proportion=np.array([True, False] + [True] * (len(value) - 1)))


def compute_multiclass_table(counts: MulticlassCounts, spec: AuditSpec) -> tuple[GroupTable, MulticlassResult]:
    """Metrics, intervals, disparities per class, and confusion matrices for every grouping."""
    lay, conf, total = _confusions(counts, spec)
    vals = multiclass_values(conf, counts.classes)
    labelled = conf.sum(axis=(1, 2))
    lr = long_rows(lay, vals, total, labelled, labelled, spec)
    rows = _disparities(lr.rows, lr.g, lr.ref, np.where(lr.ref >= 0, lr.row_of[lr.m, np.maximum(lr.ref, 0)], -1))
    rows["q_value"] = bh_qvalues(rows["p_value"].to_numpy())
    rows["verdict"] = verdicts(rows, spec, is_ref=(lr.g == lr.ref))
    rows = rows.drop(columns=["proportion"])
    table = GroupTable(rows=rows, summary=_between_groups(rows))
    return table, MulticlassResult(classes=counts.classes, confusion=_confusion_records(lay, conf, counts.classes),
                                   notes=counts.notes)


def _confusion_records(lay, conf: np.ndarray, classes: tuple[str, ...]) -> pd.DataFrame:
    """One record per (group, true class, predicted class): the count and its share of the true class's rows."""
    from metrics.groups import grouping_name

    k = len(classes)
    g, t, p = (a.ravel() for a in np.meshgrid(np.arange(lay.groups.size), np.arange(k), np.arange(k), indexing="ij"))
    n = conf[g, t, p]
    row = conf.sum(axis=2)[g, t]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(row > 0, n / np.where(row > 0, row, 1), np.nan)
    names = [grouping_name(c) for c in lay.groups.groupings]
    grouping = np.asarray(names, dtype=object)[lay.groups.grouping_of()]
    slices = lay.groups.slices
    return pd.DataFrame({"grouping": grouping[g], "slice": [dict(slices[i]) for i in g],
                         "group": [slice_label(slices[i]) for i in g], "y_true": np.asarray(classes, dtype=object)[t],
                         "y_pred": np.asarray(classes, dtype=object)[p], "n": n.astype(np.int64), "row_share": share})
