"""Findings: the slice search's significant slices, each with its data need, as the snapshot lists them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from fairwatch.metrics.discovery.diagnosis import diagnose
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.discovery.quality import QualityTable
from fairwatch.metrics.discovery.slices import SliceTable, top_findings
from fairwatch.metrics.audit.spec import MEAN_LOSSES, AuditSpec
from fairwatch.metrics.privacy.suppression import slice_key

Slice = tuple[tuple[str, str], ...]
NEED_ORDER = {"model": 0, "better_data": 1, "more_data": 2}


def finding_id(slice_: Any, metric: str) -> str:
    """The one stable, readable id of a finding: metric and predicates sorted by feature ('fnr|race=x&sex=f').

    `slice_` may be pairs or a {feature: value} mapping (as a snapshot document holds it), so the ids an
    audit gives its findings and the ids a diff reads back from documents are the same strings.
    """
    return f"{metric}|" + "&".join(f"{f}={v}" for f, v in slice_key(slice_))


@dataclass(frozen=True)
class Finding:
    """A slice significantly worse than the rest of the data, with what would fix it."""

    id: str
    slice: Slice
    metric: str
    n: int
    value: float
    ci_low: float | None
    ci_high: float | None
    complement_value: float | None
    difference: float | None
    p_value: float | None
    q_value: float | None
    score: float | None
    need: str | None
    additional_rows: int | None
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    children: tuple[str, ...] = ()

    @property
    def summary(self) -> str:
        """One line for lists: the slice and its gap."""
        fmt = ".4g" if self.metric in MEAN_LOSSES else ".1%"  # a mean loss is an amount, not a share
        return (f"{slice_label(self.slice)}: {self.metric.replace('_', ' ')} {self.value:{fmt}} vs "
                f"{self.complement_value:{fmt}}")

    def to_dict(self) -> dict[str, Any]:
        """The JSON record of `findings` in snapshot.json."""
        return {"id": self.id, "slice": dict(self.slice), "metric": self.metric, "n": self.n, "value": self.value,
                "ci_low": self.ci_low, "ci_high": self.ci_high, "complement_value": self.complement_value,
                "difference": self.difference, "p_value": self.p_value, "q_value": self.q_value,
                "score": self.score, "need": self.need, "additional_rows": self.additional_rows,
                "evidence": self.evidence, "message": self.message, "children": list(self.children)}


def _num(value: Any) -> float | None:
    """A float, or None for NaN/None."""
    return None if value is None or pd.isna(value) else float(value)


def build_findings(table: SliceTable, quality: QualityTable | None, spec: AuditSpec) -> tuple[Finding, ...]:
    """One Finding per non-redundant significant slice, diagnosed, ordered by severity.

    Severity: model problems first (data will not fix them), then bad data, then too little data;
    within each, by SliceLine score. Explained slices are listed (`children`) under the finding shown
    that describes them best (`metrics.discovery.slices`: parent, sharper child, or the same rows).
    """
    rows = top_findings(table)
    # A multiclass false-negative search is about one class: its findings name it ('false_negative@high').
    metric = f"{table.error}@{spec.slices.error_class}" if spec.slices.error_class is not None else table.error
    redundant = table.rows[table.rows["finding"] & table.rows["redundant"]]
    parent_of = {tuple(r["slice"]): tuple(r["parent"]) for r in redundant.to_dict("records") if r["parent"]}
    children: dict[Slice, list[str]] = {}
    for r in redundant.to_dict("records"):
        # Listed under the finding shown at the end of its chain (a parent may itself be listed under another).
        host, seen = tuple(r["slice"]), set()
        while host in parent_of and host not in seen:
            seen.add(host)
            host = parent_of[host]
        children.setdefault(host, []).append(finding_id(tuple(r["slice"]), metric))
    out = []
    for r in rows.to_dict("records"):
        slice_ = tuple(tuple(p) for p in r["slice"])
        proportion = table.error not in MEAN_LOSSES
        diag = diagnose(slice_, int(r["n"]), int(r["errors"]) if proportion else None, int(r["complement_n"]),
                        int(round(table.total_errors - r["errors"])) if proportion else None, spec,
                        metric=metric, verdict="finding", q_value=_num(r["q_value"]), quality=quality,
                        rest_rate=_num(r["complement_rate"]), rate=None if proportion or spec.task == "binary" else _num(r["rate"]))
        out.append(Finding(
            id=finding_id(slice_, metric), slice=slice_, metric=metric, n=int(r["n"]),
            value=float(r["rate"]), ci_low=_num(r["ci_low"]), ci_high=_num(r["ci_high"]),
            complement_value=_num(r["complement_rate"]), difference=_num(r["difference"]),
            p_value=_num(r["p_value"]), q_value=_num(r["q_value"]), score=_num(r["score"]), need=diag.need,
            additional_rows=diag.additional_rows, message=diag.message, evidence=diag.evidence,
            children=tuple(children.get(slice_, ())),
        ))
    return tuple(sorted(out, key=lambda f: (NEED_ORDER.get(f.need or "model", 3), -(f.score or 0))))
