"""Follow-up: what became of each finding and open question of an earlier audit in a later one.

Tracked from the earlier audit, by stable id ('metric|feature=value&...', `metrics/monitoring/diff.py.finding_id`):
its findings (the slice search's, and the policy gaps flagged in `groups`), and every open
question of a group that needed more data (a headline metric whose verdict was insufficient_data or
inconclusive).

Rule, first match wins, with the numbers then and now on every row:

* ``still_undecided`` -- now insufficient_data or inconclusive (or the slice is not in the later audit).
* ``resolved`` -- now decided and not a gap: within the tolerance (or better), or a former finding
  the later slice search no longer flags.
* ``worse`` -- now a significant gap (verdict 'outside', or a finding) that was undecided before
  (the question is settled against the group), or a gap whose 95% interval moved to the worse
  side without overlapping the earlier one.
* ``improved`` -- still a significant gap, but its interval moved to the better side without overlap.
* ``unchanged`` -- still a significant gap, the two intervals overlap.

Non-overlap of 95% intervals is the conservative test of `metrics/monitoring/diff.py.MOVE_RULE` ("clear").
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from fairwatch.metrics.discovery.diagnosis import UNDECIDED, higher_is_worse, metric_text
from fairwatch.metrics.presentation.formats import HEADLINE_METRICS
from fairwatch.metrics.monitoring.finding_ids import FLAGGED, findings_of, moved_metric, record_id
from fairwatch.metrics.discovery.findings import finding_id
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.stats.regression import LOWER_IS_BETTER as REGRESSION_LOWER_IS_BETTER
from fairwatch.metrics.privacy.redaction import redact_document
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter
from fairwatch.metrics.privacy.suppression import slice_key

STATUSES = ("resolved", "improved", "unchanged", "worse", "still_undecided")
RULE = ("still_undecided: insufficient_data or inconclusive now; resolved: decided and not a gap now; worse: a "
        "significant gap now that was undecided before, or whose 95% interval moved to the worse side without "
        "overlap; improved: still a gap, interval moved to the better side without overlap; unchanged: still a gap, "
        "intervals overlap")


@dataclass(frozen=True)
class FollowUp:
    """One earlier finding or open question, its state then and now, and the status the rule gives."""

    id: str
    group: str
    metric: str
    status: str
    then: dict[str, Any]
    now: dict[str, Any]
    explanation: str

    def sentence(self) -> str:
        """One line for people: status, id, the numbers then and now."""
        return (f"{self.status.replace('_', ' ')}: {self.id}: {state_text(self.then)} -> {state_text(self.now)} "
                f"({self.explanation})")

    def to_row(self) -> dict[str, Any]:
        """A flat row for tables and CSV."""
        flat = {"id": self.id, "group": self.group, "metric": self.metric, "status": self.status}
        for when, d in (("then", self.then), ("now", self.now)):
            for k in ("verdict", "value", "ci_low", "ci_high", "n", "q_value", "need"):
                flat[f"{k}_{when}"] = d.get(k)
        return flat | {"explanation": self.explanation}


def _group_states(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every group metric of a document with a disparity, by stable id: verdict, value, interval, n, q, need."""
    out = {}
    for g in doc.get("groups") or []:
        for metric, d in (g.get("disparities") or {}).items():
            m = (g.get("metrics") or {}).get(metric) or {}
            rec = {"slice": g.get("slice"), "metric": metric}
            out[record_id(rec)] = {"verdict": d.get("verdict"), "value": m.get("value"), "ci_low": m.get("ci_low"),
                                    "ci_high": m.get("ci_high"), "n": m.get("support"), "q_value": d.get("q_value"),
                                    "need": g.get("need"), "slice": g.get("slice"), "metric": metric,
                                    "source": "groups"}
    return out


def _finding_state(f: Mapping[str, Any]) -> dict[str, Any]:
    """A finding record as a state (a finding is a significant gap: verdict 'outside')."""
    return {"verdict": FLAGGED, "value": f.get("value"), "ci_low": f.get("ci_low"), "ci_high": f.get("ci_high"),
            "n": f.get("n"), "q_value": f.get("q_value"), "need": f.get("need"), "slice": f.get("slice"),
            "metric": f.get("metric"), "source": "findings"}


def tracked(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The earlier audit's findings and open questions, by stable id."""
    groups = _group_states(doc)
    # A gap flagged in `groups` is read from its group cell, which has the interval and n.
    out = {k: groups.get(k) or _finding_state(f) for k, f in findings_of(doc).items()}
    for k, s in groups.items():
        if k not in out and s["need"] == "more_data" and s["metric"] in HEADLINE_METRICS and s["verdict"] in UNDECIDED:
            out[k] = s
    return out


def _direction(metric: str) -> int:
    """-1 when a higher value is worse for the group, +1 when better, 0 for a task's output measures (no better side)."""
    base = metric.partition("@")[0]
    # higher_is_worse reads a class's measure by its base ('false_negative@c', a multiclass finding's metric).
    if higher_is_worse(metric) or metric in REGRESSION_LOWER_IS_BETTER or (metric != base and base == "false_positive_rate"):
        return -1
    # A regression's mean prediction or error and a class's selection rate: a gap either way (not binary's rates).
    if metric in ("mean_prediction", "mean_error", "mean_label") or (metric != base and base == "selection_rate"):
        return 0
    return 1


def _status(then: Mapping[str, Any], now: Mapping[str, Any] | None) -> tuple[str, str]:
    """The status by the rule, and why."""
    if now is None:
        return "still_undecided", "not in the later audit (slice or metric not computed)"
    if now["verdict"] in UNDECIDED:
        return "still_undecided", f"still {now['verdict'].replace('_', ' ')}"
    if now["verdict"] != FLAGGED:
        return "resolved", f"now {now['verdict'] or 'not flagged'}"
    if then["verdict"] in UNDECIDED:
        return "worse", "now a significant gap: the open question is settled against the group"
    if moved_metric(then, now) == "clear":
        direction = _direction(str(then["metric"]))
        if direction == 0:
            return "unchanged", "still a significant gap; its interval moved, but this measure has no better side"
        higher = float(now["value"]) > float(then["value"])
        bad = higher == (direction < 0)
        return ("worse", "the gap's interval moved to the worse side") if bad else (
            "improved", "the gap's interval moved to the better side")
    return "unchanged", "still a significant gap; the two 95% intervals overlap"


# A later search's verdict of a former finding, in the follow-up's words ('explained': still a material gap, shown
# as part of another finding, so judged as a gap; 'small': significant but inside the band, no longer a finding).
_SLICE_VERDICTS = {"explained": FLAGGED, "small": "real but small", "inconclusive": "inconclusive"}


def _slice_state(later: Mapping[str, Any], then: Mapping[str, Any]) -> dict[str, Any]:
    """A former finding's state in a later slice search that does not show it (its record there, if listed)."""
    slices = later.get("slices") if isinstance(later.get("slices"), Mapping) else {}
    records = list(slices.get("top") or []) + list(slices.get("real_but_small") or [])
    hit = next((r for r in records if isinstance(r, Mapping)
                and finding_id(r.get("slice"), then["metric"]) == finding_id(then["slice"], then["metric"])), None)
    if hit is None or slices.get("error") != then["metric"]:
        return {"verdict": "not flagged", "value": None, "ci_low": None, "ci_high": None, "n": None,
                "q_value": None, "need": None, "slice": then["slice"], "metric": then["metric"]}
    return {"verdict": _SLICE_VERDICTS.get(hit.get("verdict"), "not flagged"), "value": hit.get("rate"),
            "ci_low": hit.get("ci_low"), "ci_high": hit.get("ci_high"), "n": hit.get("n"),
            "q_value": hit.get("q_value"), "need": None, "slice": then["slice"], "metric": then["metric"]}


def follow_up(earlier: Mapping[str, Any], later: Mapping[str, Any]) -> tuple[FollowUp, ...]:
    """Each finding and open question of the earlier audit document, followed into the later one (see RULE)."""
    later_groups = _group_states(later)
    later_findings = {k: later_groups.get(k) or _finding_state(f) for k, f in findings_of(later).items()}
    searched = isinstance(later.get("findings"), list)
    out = []
    for key, then in tracked(earlier).items():
        now = later_findings.get(key) or later_groups.get(key)
        if now is None and then["source"] == "findings" and searched:
            # The later slice search ran and does not show it: its numbers there, when the search lists them.
            now = _slice_state(later, then)
        status, why = _status(then, now)
        clean_then = {k: v for k, v in then.items() if k not in ("slice", "source")}
        clean_now = {k: v for k, v in (now or {}).items() if k not in ("slice", "source")}
        out.append(FollowUp(key, slice_label(slice_key(then["slice"])), str(then["metric"]), status, clean_then,
                            clean_now, why))
    return tuple(sorted(out, key=lambda f: (STATUSES.index(f.status), f.id)))


def state_text(state: Mapping[str, Any]) -> str:
    """A state's numbers in a few words: 'outside · 0.300 (0.270–0.330) · n 900'; '—' when not computed."""
    if not state:
        return "—"
    parts = [str(state.get("verdict") or "—").replace("_", " ")]
    if state.get("value") is not None:
        ci = ("" if state.get("ci_low") is None or state.get("ci_high") is None
              else f" ({float(state['ci_low']):.3f}–{float(state['ci_high']):.3f})")
        parts.append(f"{float(state['value']):.3f}{ci}")
    if state.get("n") is not None:
        parts.append(f"n {int(state['n']):,}")
    return " · ".join(parts)


def status_counts(items: Sequence[FollowUp]) -> dict[str, int]:
    """How many earlier findings have each status, in the order of STATUSES (every status, zeros included)."""
    return {s: sum(f.status == s for f in items) for s in STATUSES}


def counts_line(items: Sequence[FollowUp]) -> str:
    """'2 resolved · 0 improved · 1 unchanged · 0 worse · 3 still undecided' for a caption or a text diff."""
    return " · ".join(f"{n} {s.replace('_', ' ')}" for s, n in status_counts(items).items())


def follow_up_table(items: Sequence[FollowUp]) -> pd.DataFrame:
    """One row per earlier finding: status, group, metric, the numbers then and now, and why."""
    return pd.DataFrame([{"Status": f.status.replace("_", " "), "Group": f.group, "Metric": metric_text(f.metric),
                          "Then": state_text(f.then), "Now": state_text(f.now), "Why": f.explanation}
                         for f in items], columns=["Status", "Group", "Metric", "Then", "Now", "Why"])


def audit_target(spec: Mapping[str, Any] | None, row_filter: Mapping[str, Any] | None) -> str:
    """What an audit audited, as a key: its spec and row filter, JSON-normalised and redacted as exports are."""
    # A snapshot's spec went through JSON and secret redaction on export; the live spec is put through the same.
    doc = json.loads(json.dumps({"spec": spec or {}, "filter": row_filter or {}}, default=str))
    return json.dumps(redact_document(doc), sort_keys=True)


def target_of(spec: AuditSpec, row_filter: RowFilter) -> str:
    """The `audit_target` of a live audit: the spec and row filter it would be exported with."""
    return audit_target(spec.to_dict(), asdict(row_filter))


def doc_target(doc: Mapping[str, Any]) -> str:
    """The `audit_target` of an audit document (a snapshot)."""
    return audit_target(doc.get("spec"), doc.get("filter"))


@dataclass(frozen=True)
class SinceLast:
    """The Overview's follow-up: the earlier snapshot of the same spec and view, and what became of its findings."""

    earlier: str | None  # the earlier snapshot's label; None when the history holds none of this spec and view
    items: tuple[FollowUp, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def caption(self) -> str:
        """One line: what was compared with what, or that there is nothing to compare with."""
        if self.earlier is None:
            return ("No earlier snapshot of this source, spec and view in the history: take one on the Audit "
                    "export page, and later audits show here what became of its findings.")
        followed = (f"{len(self.items)} finding(s) and open question(s) followed" if self.items
                    else "it had no finding or open question to follow")
        return " ".join([f"Compared with snapshot {self.earlier}: {followed}. Rule: {RULE}.", *self.notes])

    def table(self) -> pd.DataFrame:
        """The earlier findings with status and the numbers then and now."""
        return follow_up_table(self.items)


def since_last(earlier: Mapping[str, Any] | None, later: Mapping[str, Any], label: str | None) -> SinceLast:
    """The follow-up of the earlier snapshot document (None: there is none) in the later audit document."""
    if earlier is None:
        return SinceLast(None)
    items = follow_up(earlier, later)
    notes = ()
    waiting = sum(1 for f in items if f.now == {} and f.then.get("verdict") == FLAGGED)
    if not isinstance(later.get("findings"), list) and waiting:
        # The Overview's audit skips the slice search until asked: its findings are not gone, just not looked for.
        notes = (f"{waiting} slice-search finding(s) stay undecided until this view's slice search runs "
                 f"(Findings by need, above).",)
    return SinceLast(label, items, notes)
