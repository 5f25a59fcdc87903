"""The audit snapshot: the one artifact the pages, the exports and the CLI all read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from metrics.groups import GroupTable
from metrics.outcomes import DataSummary
from metrics.spec import AuditSpec, RowFilter

SCHEMA_VERSION = 1
_METRIC_FIELDS = ("value", "ci_low", "ci_high", "support", "masked")
_DISPARITY_FIELDS = ("ratio", "ratio_ci_low", "ratio_ci_high", "difference", "diff_ci_low", "diff_ci_high",
                     "p_value", "q_value", "verdict")


def clean(value: Any) -> Any:
    """A JSON-safe value: NaN and NA become None, numpy scalars become Python numbers."""
    if value is None or value is pd.NA:
        return None
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

    def group_entries(self) -> list[dict[str, Any]]:
        """`groups` of the JSON: one entry per group of each feature and intersection."""
        entries: dict[tuple, dict[str, Any]] = {}
        for r in self.groups.rows.to_dict("records"):
            key = r["slice"]
            entry = entries.setdefault(key, {
                "grouping": r["grouping"], "slice": dict(key), "n": int(r["n"]),
                "labelled_n": int(r["labelled_n"]), "share": clean(r["n"] / self.data.rows),
                "reference": dict(r["reference"]) if r["reference"] else None,
                "metrics": {}, "disparities": {},
            })
            entry["metrics"][r["metric"]] = {f: clean(r[f]) for f in _METRIC_FIELDS}
            if r["reference"] is not None:
                entry["disparities"][r["metric"]] = {"reference": dict(r["reference"])} | {
                    f: clean(r[f]) for f in _DISPARITY_FIELDS}
        return list(entries.values())

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
                "positive_label": self.data.positive_label,
                "positive_prediction": self.data.positive_prediction,
            },
            "groups": self.group_entries(),
            "between_groups": [{k: clean(v) for k, v in r.items()} for r in self.groups.summary.to_dict("records")],
            "representation": [{k: clean(v) for k, v in r.items()} for r in rep.drop(columns=["group"], errors="ignore").to_dict("records")],
            "representation_tests": [{k: clean(v) for k, v in r.items()} for r in self.representation_tests.to_dict("records")],
        }
