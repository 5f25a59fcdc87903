"""Findings and metric cells across two audit documents: their stable ids and the rule for "it moved".

The snapshot diff and the follow-up of earlier findings both read documents through these, so a finding
has one id and a metric one move rule whichever of the two compares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fairwatch.metrics.discovery.findings import finding_id

MOVE_RULE = ("a metric moved (clear) when the old and new 95% intervals do not overlap; it may have moved "
             "(possible) when they overlap but the new value is outside the old interval")
FLAGGED = "outside"


def record_id(record: Mapping[str, Any]) -> str:
    """The stable id of a finding record of a document: its own `id`, else `finding_id` of its slice and metric."""
    if record.get("id"):
        return str(record["id"])
    return finding_id(record.get("slice") or record.get("predicates"),
                      record.get("metric") or record.get("kind") or "finding")


def findings_of(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The document's findings by id: the slice search's `findings` and the policy gaps flagged in `groups`."""
    out = {}
    if isinstance(doc.get("findings"), list):
        out = {record_id(f): dict(f) for f in doc["findings"] if isinstance(f, Mapping)}
    for g in doc.get("groups") or []:
        for metric, d in (g.get("disparities") or {}).items():
            if d.get("verdict") == FLAGGED:
                rec = {"slice": g.get("slice"), "metric": metric, "grouping": g.get("grouping"),
                       "value": (g.get("metrics") or {}).get(metric, {}).get("value"), "ratio": d.get("ratio"),
                       "q_value": d.get("q_value")}
                out[record_id(rec)] = rec
    return out


def metric_interval(m: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """(value, low, high) of a metric cell, or None when any is missing (masked, suppressed, no interval)."""
    vals = (m.get("value"), m.get("ci_low"), m.get("ci_high"))
    return None if any(v is None for v in vals) else tuple(float(v) for v in vals)  # type: ignore[return-value]


def moved_metric(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """'clear', 'possible' or None for one metric cell in two audits (see MOVE_RULE)."""
    a, b = metric_interval(old), metric_interval(new)
    if a is None or b is None or b[0] == a[0]:  # the same value has not moved, whatever its interval's last bits
        return None
    if b[1] > a[2] or b[2] < a[1]:
        return "clear"
    if b[0] > a[2] or b[0] < a[1]:
        return "possible"
    return None
