"""The long group table of regression and multiclass audits, assembled with the binary engine's own parts.

Both tasks compute a (metrics × groups) block of values with `_Values`; this lays it out as the
binary `GroupTable` does (same columns, same row order, same reference choice), so the snapshot,
the CSVs, suppression and the reports read every task the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from metrics.groups import (
    _Finest,
    _Groups,
    _long_frame,
    _reference_ids,
    _row_order,
    _Values,
    grouping_name,
    groupings,
    reference_groups,
)
from metrics.spec import AuditSpec


@dataclass(frozen=True)
class Layout:
    """Every group of every grouping, and per input row its group id in each grouping (-1: none)."""

    groups: _Groups
    member: np.ndarray  # (groupings, input rows)
    population: pd.DataFrame  # sensitive..., n over every row


def layout(frame: pd.DataFrame, sizes: np.ndarray, spec: AuditSpec) -> Layout:
    """The groups of the sensitive features from per-cell rows of `frame` holding `sizes` rows each."""
    population = frame[[*spec.sensitive]].assign(n=np.asarray(sizes, dtype=np.int64))
    finest = _Finest.of(population, spec.sensitive)
    groups = _Groups.of(finest, groupings(spec.sensitive))
    return Layout(groups=groups, member=groups.member[:, finest.locate(frame)], population=population)


def sum_rows(lay: Layout, values: np.ndarray) -> np.ndarray:
    """Per group id, the sum of the input rows' values ((rows,) or (rows, ...)) over every grouping."""
    out = np.zeros((lay.groups.size, *values.shape[1:]), dtype=values.dtype)
    for ids in lay.member:
        ok = ids >= 0
        np.add.at(out, ids[ok], values[ok])
    return out


@dataclass(frozen=True)
class LongRows:
    """The long rows with, per row, its metric index, group id, reference group id and the row of each (metric, group)."""

    rows: pd.DataFrame
    m: np.ndarray
    g: np.ndarray
    ref: np.ndarray
    row_of: np.ndarray


def long_rows(lay: Layout, vals: _Values, total: np.ndarray, labelled: np.ndarray, evaluated: np.ndarray,
              spec: AuditSpec) -> LongRows:
    """Rows in the binary table's order, masked below min_support, with each row's reference group."""
    groups = lay.groups
    m, g = _row_order(groups, len(vals.names))
    slices = np.empty(groups.size, dtype=object)
    slices[:] = groups.slices
    grouping = np.array([grouping_name(c) for c in groups.groupings], dtype=object)[groups.grouping_of()]
    rows = _long_frame(vals, (m, g), slices, total, labelled, grouping, spec.policy.min_support)
    # The reference is chosen by evaluated rows, as binary audits choose it by labelled rows.
    ref = _reference_ids(groups, reference_groups(lay.population, spec), evaluated, total,
                         spec.policy.min_support)[g]
    rows["reference"] = np.where(ref >= 0, slices[np.maximum(ref, 0)], None)
    row_of = np.full((len(vals.names), groups.size), -1)
    row_of[m, g] = np.arange(len(rows))
    return LongRows(rows=rows, m=m, g=g, ref=ref, row_of=row_of)
