"""The drill-down of one slice for regression and multiclass audits: the task's metrics in the slice against the rest.

The audit's own counting queries, keyed by membership instead of the sensitive groups: for
regression `fetch_regression_counts` (and its error buckets) with one leading key, a boolean CASE
over the slice's predicate (the same predicate as the binary drill-down and the quality counts:
`quality_counts._predicate`); for multiclass the binary drill-down's (in_slice, label, prediction)
cells. The two sides then go through the audit's tables (`compute_regression_table`,
`compute_multiclass_table`) as the two groups of one feature, the rest the reference, so every
value, interval, test and verdict is the audit's own arithmetic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from fairwatch.connectors.source import OpenSource, quote_ident
from fairwatch.connectors.task_counts import LeadKeys, fetch_regression_buckets, fetch_regression_counts
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter
from fairwatch.metrics.policy.overview import VERDICT_LABELS
from fairwatch.metrics.presentation.formats import fmt_q, metric_label
from fairwatch.metrics.presentation.slice_views import REST_SIDE, SIDE, SLICE_SIDE, side_versus_records, versus_frame
from fairwatch.metrics.presentation.views import estimate_text
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.stats.multiclass import compute_multiclass_table, multiclass_counts
from fairwatch.metrics.stats.regression import bucket_edges, compute_distributions, compute_regression_table

Slice = tuple[tuple[str, str], ...]
_IN = "fw_in_slice"
# The predicate names the spec's columns by their aliases c<j>; a lead key reads the source's columns.
_ALIAS = re.compile(r"\bc(\d+)\b")


@dataclass(frozen=True)
class TaskSliceAnalysis:
    """One slice of a regression or multiclass audit against the rest of the audited rows.

    `side_rows`: the two-group table of the task's metrics (groups SLICE_SIDE and REST_SIDE, the
    rest the reference: difference, its interval, test, q-value and verdict on the slice's rows);
    `confusion` (multiclass): the slice's y_true, y_pred, n, row_share; `errors` (regression): the
    error histogram of both sides (group, low, high, n, share). Filled by `connectors.drilldown.drill_down`:
    the fields of `SliceSignal` (the searched error signal's test, ratio, the search's verdict, the data
    need, the slice's quality signals), and `values`, rows per (feature, value, in_slice) of the other
    features, as the binary `SliceAnalysis` has them.
    """

    slice: Slice
    label: str
    task: str
    rows: int
    rest_rows: int
    side_rows: pd.DataFrame
    classes: tuple[str, ...] = ()
    confusion: pd.DataFrame | None = None
    errors: pd.DataFrame | None = None
    origin: str = "hand"
    origin_text: str = ""
    metric: str = ""
    error: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    test_note: str = ""
    need: str | None = None
    additional_rows: int | None = None
    message: str = ""
    quality: pd.DataFrame | None = None
    quality_note: str = ""
    label_rule: str = ""
    values: pd.DataFrame | None = None

    def table(self) -> pd.DataFrame:
        """One line per metric: the slice's and the rest's value (95% interval), the gap, its q-value and verdict."""
        rows = self.side_rows
        own = rows[rows["group"] == SLICE_SIDE].set_index("metric")
        rest = rows[rows["group"] == REST_SIDE].set_index("metric")
        digits = 3 if self.task == "multiclass" else 2  # rates to a tenth of a point; amounts to cents

        def text(r: pd.Series, lo: str, hi: str, value: str = "value") -> str:
            """A value with its interval, '—' when there is none."""
            masked = bool(r.get("masked", False))
            return estimate_text(r[value], r[lo], r[hi], masked, int(r["support"]), digits)

        out = []
        for m in own.index:
            if m not in rest.index:
                continue
            o, r = own.loc[m], rest.loc[m]
            out.append({"Metric": metric_label(m), SLICE_SIDE: text(o, "ci_low", "ci_high"),
                        REST_SIDE: text(r, "ci_low", "ci_high"),
                        "Difference": text(o, "diff_ci_low", "diff_ci_high", "difference"),
                        "q-value": fmt_q(o["q_value"]), "Verdict": VERDICT_LABELS.get(o["verdict"], o["verdict"]),
                        "n": int(o["support"])})
        return pd.DataFrame(out)

    def versus_points(self, colour: str, rest_colour: str) -> pd.DataFrame:
        """`versus_chart` data for the rates of a multiclass slice (accuracy, balanced accuracy, recall per class)."""
        if self.task != "multiclass":
            return versus_frame(pd.DataFrame(), self.label, colour, rest_colour)
        wanted = ["accuracy", "balanced_accuracy", *(f"true_positive_rate@{c}" for c in self.classes)]
        records = side_versus_records(self.side_rows, wanted)
        return versus_frame(pd.DataFrame(records), self.label, colour, rest_colour)


def side_spec(spec: AuditSpec) -> AuditSpec:
    """The spec of the two-group table: one 'feature' whose groups are the slice and the rest (the reference)."""
    return replace(spec, sensitive=(SIDE,), reference=((SIDE, REST_SIDE),), reference_shares=())


def membership_lead(predicate: str, params: dict, spec_cols: list[tuple[str, str]]) -> LeadKeys:
    """The slice's membership as the regression counts' leading key: SLICE_SIDE or REST_SIDE per row."""
    inner = _ALIAS.sub(lambda m: quote_ident(spec_cols[int(m.group(1))][1]), predicate)
    outer = f"CASE WHEN {_IN} THEN $fw_side_in ELSE $fw_side_rest END"
    return LeadKeys(keys=((_IN, inner, outer),), params={**params, "fw_side_in": SLICE_SIDE,
                                                         "fw_side_rest": REST_SIDE})


def regression_sides(src: OpenSource, spec: AuditSpec, lead: LeadKeys,
                     row_filter: RowFilter | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The regression sums and error buckets per side (the audit's queries, keyed by membership)."""
    cells = fetch_regression_counts(src, spec, row_filter, lead=lead).rename(columns={_IN: SIDE})
    edges = bucket_edges(cells)
    buckets = fetch_regression_buckets(src, spec, edges, row_filter, lead=lead).rename(columns={_IN: SIDE})
    sspec = side_spec(spec)
    errors = compute_distributions(buckets[[SIDE, "kind", "bucket", "n"]], edges, sspec).histograms
    errors = errors[errors["kind"] == "error"].assign(group=lambda f: [s[SIDE] for s in f["slice"]])
    return cells, errors[["group", "low", "high", "n", "share"]].reset_index(drop=True)


def analyse_regression(slice_: Slice, cells: pd.DataFrame, errors: pd.DataFrame, spec: AuditSpec) -> TaskSliceAnalysis:
    """The nine regression metrics of the slice against the rest, from the per-side sums."""
    sides = cells.drop(columns=list(spec.sensitive))
    rows = compute_regression_table(sides, side_spec(spec)).rows
    return TaskSliceAnalysis(slice=slice_, label=slice_label(slice_), task="regression",
                             rows=_side_rows(cells, "all_rows", True), rest_rows=_side_rows(cells, "all_rows", False),
                             side_rows=_named(rows), errors=errors)


def analyse_multiclass(slice_: Slice, cells: pd.DataFrame, spec: AuditSpec) -> TaskSliceAnalysis:
    """Accuracy, balanced accuracy and the per-class rates of the slice against the rest, and its confusion matrix."""
    frame = cells.assign(**{SIDE: np.where(cells["in_slice"], SLICE_SIDE, REST_SIDE)})
    table, result = compute_multiclass_table(
        multiclass_counts(frame[[SIDE, "label_raw", "pred_raw", "n"]], side_spec(spec)), side_spec(spec))
    conf = result.confusion
    own = conf[[s == {SIDE: SLICE_SIDE} for s in conf["slice"]]]
    inside = int(cells.loc[cells["in_slice"], "n"].sum())
    return TaskSliceAnalysis(slice=slice_, label=slice_label(slice_), task="multiclass", rows=inside,
                             rest_rows=int(cells["n"].sum()) - inside, side_rows=_named(table.rows),
                             classes=result.classes,
                             confusion=own[["y_true", "y_pred", "n", "row_share"]].reset_index(drop=True))


def _side_rows(cells: pd.DataFrame, column: str, inside: bool) -> int:
    """Rows on one side of the regression cells."""
    side = cells[SIDE] == (SLICE_SIDE if inside else REST_SIDE)
    return int(cells.loc[side, column].sum())


def _named(rows: pd.DataFrame) -> pd.DataFrame:
    """The table's rows with the side's name as `group`."""
    return rows.assign(group=rows["slice"].map(lambda s: dict(s)[SIDE]))
