"""The audit snapshot: the one artifact the pages, the exports and the CLI all read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pandas as pd

from metrics.findings import Finding
from metrics.groups import GroupTable
from metrics.multiclass import MulticlassResult
from metrics.regression import RegressionResult
from metrics.outcomes import DataSummary
from metrics.quality import QualityTable
from metrics.slices import SliceTable
from metrics.spec import AuditSpec, RowFilter

if TYPE_CHECKING:  # metrics.plan reads snapshots, so the import only serves the type checker
    from metrics.plan import DataPlan
    from metrics.whatif_result import WhatIfResult

SCHEMA_VERSION = 1
# Slices listed as real but small (significant, inside the band) in snapshot.json, best score first.
SMALL_LISTED = 100
_METRIC_FIELDS = ("value", "ci_low", "ci_high", "support", "masked")
_DISPARITY_FIELDS = ("ratio", "ratio_ci_low", "ratio_ci_high", "difference", "diff_ci_low", "diff_ci_high",
                     "p_value", "q_value", "verdict")


def clean(value: Any) -> Any:
    """A JSON-safe value: NaN and NA become None, numpy scalars become Python numbers, tuples of pairs dicts."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in value):
            return {k: clean(v) for k, v in value}
        return [clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


@dataclass(frozen=True)
class AuditSnapshot:
    """Everything one audit found, with what it was computed from."""

    spec: AuditSpec
    row_filter: RowFilter
    data: DataSummary
    source_description: str
    groups: GroupTable
    representation: pd.DataFrame
    representation_tests: pd.DataFrame
    created_at: str
    tool_versions: dict[str, str] = field(default_factory=dict)
    duration_seconds: float | None = None
    # The slice search, data-quality signals and data needs (None when the audit skipped the search).
    slices: SliceTable | None = None
    quality: QualityTable | None = None
    group_needs: pd.DataFrame | None = None
    findings: tuple[Finding, ...] | None = None
    # The labelling plan made from this audit's findings for a budget (None until one is attached).
    data_plan: DataPlan | None = None
    # Per-group thresholds that would meet a constraint (None until one is attached).
    whatif: WhatIfResult | None = None
    # Regression or multiclass audits: their own sections (histograms and distribution gaps; confusion matrices).
    task_result: RegressionResult | MulticlassResult | None = None

    def with_plan(self, plan: DataPlan | None) -> AuditSnapshot:
        """This snapshot with a data plan attached, so it is exported with it (`data_plan` of the JSON)."""
        return replace(self, data_plan=plan)

    def with_whatif(self, result: WhatIfResult | None) -> AuditSnapshot:
        """This snapshot with a what-if attached, so it is exported with it (`whatif` of the JSON)."""
        return replace(self, whatif=result)

    def group_entries(self) -> list[dict[str, Any]]:
        """`groups` of the JSON: one entry per group of each feature and intersection."""
        entries: dict[tuple, dict[str, Any]] = {}
        needs = self._needs_by_slice()
        empty = {"need": None, "additional_rows": None, "message": None}
        for r in self.groups.rows.to_dict("records"):
            key = r["slice"]
            entry = entries.setdefault(key, {
                "grouping": r["grouping"], "slice": dict(key), "n": int(r["n"]),
                "labelled_n": int(r["labelled_n"]), "share": clean(r["n"] / self.data.rows),
                "reference": dict(r["reference"]) if r["reference"] else None,
                "metrics": {}, "disparities": {},
            })
            entry["metrics"][r["metric"]] = {f: clean(r[f]) for f in _METRIC_FIELDS}
            if "need" not in entry:
                entry.update(needs.get(tuple(key), empty))
            if r["reference"] is not None:
                entry["disparities"][r["metric"]] = {"reference": dict(r["reference"])} | {
                    f: clean(r[f]) for f in _DISPARITY_FIELDS}
        return list(entries.values())

    def _needs_by_slice(self) -> dict[tuple, dict[str, Any]]:
        """need, additional_rows and message of each sensitive group with a problem, by slice (first row wins).

        One pass over the needs: a filter per group (125 groups x 11 metrics) cost a third of a second.
        """
        out: dict[tuple, dict[str, Any]] = {}
        if self.group_needs is None or not len(self.group_needs):
            return out
        for r in self.group_needs.to_dict("records"):
            out.setdefault(tuple(r["slice"]), {"need": clean(r["need"]), "additional_rows": clean(r["additional_rows"]),
                                               "message": clean(r["message"])})
        return out

    def slice_entries(self, limit: int | None = None) -> dict[str, Any] | None:
        """`slices` of the JSON: the search's totals and its best-ranked slices, findings or not."""
        if self.slices is None:
            return None
        table = self.slices
        rows = table.rows if limit is None else table.rows.head(limit)
        keep = ["group", "depth", "n", "errors", "rate", "ci_low", "ci_high", "complement_n", "complement_rate",
                "difference", "diff_ci_low", "diff_ci_high", "p_value", "q_value", "score", "verdict", "redundant",
                "relation"]
        records = [{"slice": dict(r["slice"]), "parent": dict(r["parent"]) if r["parent"] else None}
                   | {k: clean(r.get(k)) for k in keep} for r in rows.to_dict("records")]
        small = table.rows[table.rows["verdict"] == "small"].head(SMALL_LISTED)
        return {"error": table.error, "evaluated": table.evaluated, "tested": table.tested,
                "findings": table.findings, "shown": table.shown, "small": table.small,
                "threshold": clean(table.threshold), "rule": table.rule,
                "overall_rate": clean(table.overall_rate), "max_depth": table.max_depth,
                "alpha": table.alpha, "notes": list(table.notes), "top": records,
                "real_but_small": [{"slice": dict(r["slice"])} | {k: clean(r.get(k)) for k in keep}
                                   for r in small.to_dict("records")]}

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (`snapshot.json`)."""
        rep = self.representation.assign(slice=self.representation["slice"].map(dict)) if len(self.representation) else self.representation
        return {
            "schema_version": SCHEMA_VERSION,
            "created_at": self.created_at,
            "tool": self.tool_versions,
            "duration_seconds": clean(self.duration_seconds),
            "spec": self.spec.to_dict(),
            "filter": {"model_version": self.row_filter.model_version, "time_from": self.row_filter.time_from,
                       "time_to": self.row_filter.time_to},
            "data": {
                "source": self.source_description,
                "rows": self.data.rows,
                "labelled_rows": self.data.labelled_rows,
                "unlabelled_rows": self.data.unlabelled_rows,
                "unpredicted_rows": self.data.unpredicted_rows,
                "evaluated_rows": self.data.evaluated_rows,
                "label_coverage": clean(self.data.label_coverage),
                "positive_label": (list(self.data.positive_label) if isinstance(self.data.positive_label, tuple)
                                   else self.data.positive_label),
                "positive_prediction": self.data.positive_prediction,
            } | ({"nonfinite_rows": self.data.nonfinite_rows} if self.spec.task == "regression" else {}),
            "groups": self.group_entries(),
            "between_groups": [{k: clean(v) for k, v in r.items()} for r in self.groups.summary.to_dict("records")],
            "representation": [{k: clean(v) for k, v in r.items()} for r in rep.drop(columns=["group"], errors="ignore").to_dict("records")],
            "representation_tests": [{k: clean(v) for k, v in r.items()} for r in self.representation_tests.to_dict("records")],
        } | self._task_sections() | self._search_sections() | ({"data_plan": self.data_plan.to_dict()} if self.data_plan is not None else {}) | (
            {"whatif": self.whatif.to_dict()} if self.whatif is not None else {})

    def _task_sections(self) -> dict[str, Any]:
        """task, and the task's own tables, for regression and multiclass audits only (binary JSON is unchanged)."""
        if self.spec.task == "binary":
            return {}

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            """JSON-safe records of a table."""
            return [{k: clean(v) for k, v in r.items()} for r in frame.to_dict("records")]

        out: dict[str, Any] = {"task": self.spec.task}
        result = self.task_result
        if isinstance(result, RegressionResult):
            out["distributions"] = records(result.histograms)
            out["distribution_gaps"] = records(result.distribution_gaps)
        elif isinstance(result, MulticlassResult):
            out["classes"] = list(result.classes)
            out["confusion_matrices"] = records(result.confusion)
        out["task_notes"] = list(result.notes) if result is not None else []
        return out

    def _search_sections(self) -> dict[str, Any]:
        """findings, slices and data_quality, present only when the slice search ran."""
        if self.findings is None:
            return {}
        quality = []
        if self.quality is not None:
            cols = ["signal", "column", "x", "n", "rate", "ci_low", "ci_high", "complement_rate", "ratio", "p_value",
                    "q_value", "fired"]
            quality = [{"slice": dict(r["slice"]), "group": r["group"]} | {k: clean(r.get(k)) for k in cols}
                       for r in self.quality.rows.to_dict("records")]
        return {"findings": [clean(f.to_dict()) for f in self.findings], "slices": self.slice_entries(limit=200),
                "data_quality": quality}
