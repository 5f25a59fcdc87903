"""What changed between two audits: findings, metrics that moved, spec, data; and whether a document is readable.

Rules (stated in `MOVE_RULE` and printed by `fairwatch diff`):
- Findings are matched by a stable id: the finding's own `id`, else its slice predicates (sorted by
  feature) and metric, e.g. `false_negative_rate|age_band=18-24&race_ethnicity=Black`. Without a
  `findings` section, the flagged gaps (`verdict == "outside"`) of `groups` are the findings.
- A metric "moved" when its two 95% intervals do not overlap ("clear"); it "may have moved" when the
  intervals overlap but the new value lies outside the old interval ("possible"). Non-overlap is
  the conservative rule (with equal precision, about 0.6% of unchanged cells pass it by chance);
  the second catches drift worth a look (about 16% by chance), so the diff also states how many of
  each would be expected by chance alone over all the cells it compared.
- Besides the rates of `groups`, each group's `share` of the audited rows (from `representation`, with
  its 95% interval) is compared by the same rule, so a group whose share drifts between two windows
  is listed as a moved metric.
- Every finding and open question of the older audit is followed into the newer one
  (`metrics/monitoring/followup.py`): resolved, improved, unchanged, worse or still undecided, with the numbers
  then and now.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fairwatch.metrics.errors import SnapshotError
from fairwatch.metrics.monitoring.finding_ids import MOVE_RULE, findings_of, metric_interval, moved_metric
from fairwatch.metrics.monitoring.followup import RULE as FOLLOW_UP_RULE
from fairwatch.metrics.monitoring.followup import FollowUp, counts_line, follow_up
from fairwatch.metrics.audit.snapshot import SCHEMA_VERSION
from fairwatch.metrics.privacy.suppression import iter_tables, slice_key




def check_schema_version(doc: Any, where: str = "snapshot.json") -> int:
    """The document's schema_version, or a SnapshotError saying how to read it."""
    if not isinstance(doc, Mapping) or "schema_version" not in doc:
        raise SnapshotError(f"{where} is not a fairwatch snapshot (no schema_version); point to a folder written by fairwatch audit")
    version = doc["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SnapshotError(f"{where} has an invalid schema_version {version!r}; it is damaged or not a fairwatch snapshot")
    if version > SCHEMA_VERSION:
        raise SnapshotError(
            f"{where} uses schema_version {version}, newer than this fairwatch reads ({SCHEMA_VERSION}); "
            f"upgrade fairwatch (pip install -U fairwatch) to read it")
    return version


@dataclass(frozen=True)
class MetricMove:
    """One metric of one group whose value moved between two audits."""

    group: str
    metric: str
    old_value: float
    new_value: float
    old_ci: tuple[float, float]
    new_ci: tuple[float, float]
    strength: str  # "clear" (intervals apart) or "possible" (new value outside the old interval)

    def sentence(self) -> str:
        """One line for people."""
        verb = "moved" if self.strength == "clear" else "may have moved"
        return (f"{self.group}: {self.metric} {verb} from {self.old_value:.3f} [{self.old_ci[0]:.3f}, {self.old_ci[1]:.3f}] "
                f"to {self.new_value:.3f} [{self.new_ci[0]:.3f}, {self.new_ci[1]:.3f}]")


@dataclass(frozen=True)
class Change:
    """One changed setting or fact: a dotted path and its old and new values."""

    path: str
    old: Any
    new: Any

    def sentence(self) -> str:
        """One line for people."""
        if self.old is None:
            return f"{self.path}: added ({self.new!r})"
        if self.new is None:
            return f"{self.path}: removed (was {self.old!r})"
        return f"{self.path}: {self.old!r} -> {self.new!r}"


@dataclass(frozen=True)
class SnapshotDiff:
    """Everything that differs between an older and a newer audit."""

    old_created: str | None
    new_created: str | None
    new_findings: tuple[tuple[str, dict], ...]
    resolved_findings: tuple[tuple[str, dict], ...]
    moved: tuple[MetricMove, ...]
    spec_changes: tuple[Change, ...]
    data_changes: tuple[Change, ...]
    fingerprint_changed: bool | None  # None when either audit has no fingerprint
    groups_added: tuple[str, ...]
    groups_removed: tuple[str, ...]
    sections: tuple[Change, ...] = field(default=())  # tables whose record count changed, or appeared
    notes: tuple[str, ...] = field(default=())
    compared: int = 0  # metric cells with an interval in both audits
    expected_clear: float = 0.0  # clear moves expected by chance alone if nothing changed
    expected_possible: float = 0.0
    follow_up: tuple[FollowUp, ...] = field(default=())  # the older audit's findings, followed into the newer

    @property
    def unchanged(self) -> bool:
        """True when nothing of substance changed."""
        return not (self.new_findings or self.resolved_findings or self.moved or self.spec_changes
                    or self.data_changes or self.fingerprint_changed or self.groups_added or self.groups_removed)

    def lines(self) -> list[str]:
        """The diff as plain lines, most important first."""
        out = [f"comparing {self.old_created or '?'} (old) with {self.new_created or '?'} (new)"]
        if self.fingerprint_changed is None:
            out.append("data: no fingerprint in one of the audits; cannot tell whether the data changed")
        else:
            out.append("data: " + ("CHANGED (different fingerprint)" if self.fingerprint_changed else "same rows (same fingerprint)"))
        out += [f"  {c.sentence()}" for c in self.data_changes]
        # A changed spec (threshold, policy, columns) explains the moves below it: said before them.
        out.append(f"spec changes: {len(self.spec_changes)}")
        out += [f"  {c.sentence()}" for c in self.spec_changes]
        out.append(f"new findings: {len(self.new_findings)}")
        out += [f"  + {fid}" for fid, _ in self.new_findings]
        out.append(f"resolved findings: {len(self.resolved_findings)}")
        out += [f"  - {fid}" for fid, _ in self.resolved_findings]
        clear = sum(1 for m in self.moved if m.strength == "clear")
        out.append(f"metrics that moved beyond their intervals: {clear} clear, {len(self.moved) - clear} possible, of "
                   f"{self.compared:,} compared; by chance alone about {self.expected_clear:.0f} clear and "
                   f"{self.expected_possible:.0f} possible are expected ({MOVE_RULE})")
        out += [f"  {m.sentence()}" for m in self.moved]
        if self.groups_added or self.groups_removed:
            out.append(f"groups: {len(self.groups_added)} new, {len(self.groups_removed)} gone")
            out += [f"  + {g}" for g in self.groups_added] + [f"  - {g}" for g in self.groups_removed]
        out += [f"table {c.sentence()}" for c in self.sections]
        if self.follow_up:
            out.append(f"follow-up of the old audit's findings and open questions: {len(self.follow_up)} "
                       f"({counts_line(self.follow_up)})")
            out += [f"  {f.sentence()}" for f in self.follow_up]
        else:
            out.append("follow-up of the old audit's findings and open questions: none to follow")
        out += [f"note: {n}" for n in self.notes]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The diff as JSON-ready data (`fairwatch diff --json`)."""
        return {
            "old_created": self.old_created, "new_created": self.new_created, "unchanged": self.unchanged,
            "rule": MOVE_RULE,
            "new_findings": [{"id": i, **f} for i, f in self.new_findings],
            "resolved_findings": [{"id": i, **f} for i, f in self.resolved_findings],
            "compared": self.compared, "expected_clear": self.expected_clear,
            "expected_possible": self.expected_possible,
            "moved": [{"group": m.group, "metric": m.metric, "old_value": m.old_value, "new_value": m.new_value,
                       "old_ci": list(m.old_ci), "new_ci": list(m.new_ci), "strength": m.strength} for m in self.moved],
            "spec_changes": [{"path": c.path, "old": c.old, "new": c.new} for c in self.spec_changes],
            "data_changes": [{"path": c.path, "old": c.old, "new": c.new} for c in self.data_changes],
            "fingerprint_changed": self.fingerprint_changed,
            "groups_added": list(self.groups_added), "groups_removed": list(self.groups_removed),
            "sections": [{"path": c.path, "old": c.old, "new": c.new} for c in self.sections],
            "follow_up_rule": FOLLOW_UP_RULE,
            "follow_up": [{"id": f.id, "group": f.group, "metric": f.metric, "status": f.status, "then": f.then,
                           "now": f.now, "explanation": f.explanation} for f in self.follow_up],
            "notes": list(self.notes),
        }


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as {dotted.path: leaf}; lists are leaves."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def compare_mappings(old: Any, new: Any, prefix: str) -> tuple[Change, ...]:
    """Changed leaves between two nested mappings, as dotted paths under `prefix`."""
    a, b = flatten(old or {}, prefix), flatten(new or {}, prefix)
    return tuple(Change(p, a.get(p), b.get(p)) for p in sorted(set(a) | set(b)) if a.get(p) != b.get(p))


def chance_of_move(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[float, float]:
    """(P(clear), P(possible)) for one cell if the true value did not change, from its two 95% intervals.

    Normal approximation: each interval's half-width is 1.96 standard errors; the difference of two
    independent estimates has variance s_old^2 + s_new^2. With equal precision a clear move happens by
    chance about 0.6% of the time and a possible one about 16%: many cells give some of each.
    """
    a, b = metric_interval(old), metric_interval(new)
    if a is None or b is None:
        return 0.0, 0.0
    s_old, s_new = (a[2] - a[1]) / 3.92, (b[2] - b[1]) / 3.92
    sd = math.hypot(s_old, s_new)
    if sd == 0:
        return 0.0, 0.0

    def tail(z: float) -> float:
        """P(|Z| > z) for a standard normal Z."""
        return math.erfc(z / math.sqrt(2))

    clear = tail(1.96 * (s_old + s_new) / sd)
    return clear, max(tail(1.96 * s_old / sd) - clear, 0.0)


def _group_label(slice_: Any) -> str:
    """A group's stable label: predicates sorted by feature."""
    return ", ".join(f"{k}={v}" for k, v in slice_key(slice_))


def _moves(old_groups: Sequence[Mapping], new_groups: Sequence[Mapping]) -> tuple[list[MetricMove], int, float, float]:
    """Metric cells in both audits that moved beyond the intervals; cells compared; moves expected by chance."""
    before = {slice_key(g.get("slice")): g for g in old_groups}
    out = []
    compared, exp_clear, exp_possible = 0, 0.0, 0.0
    for g in new_groups:
        key = slice_key(g.get("slice"))
        if key not in before:
            continue
        old_metrics = before[key].get("metrics") or {}
        for metric, cell in (g.get("metrics") or {}).items():
            if metric not in old_metrics:
                continue
            if metric_interval(old_metrics[metric]) is not None and metric_interval(cell) is not None:
                compared += 1
                p_clear, p_possible = chance_of_move(old_metrics[metric], cell)
                exp_clear += p_clear
                exp_possible += p_possible
            strength = moved_metric(old_metrics[metric], cell)
            if strength:
                o, n = metric_interval(old_metrics[metric]), metric_interval(cell)
                out.append(MetricMove(_group_label(g.get("slice")), metric, o[0], n[0], (o[1], o[2]), (n[1], n[2]), strength))
    # Clear moves first, then the largest change.
    moves = sorted(out, key=lambda m: (m.strength != "clear", -abs(m.new_value - m.old_value)))
    return moves, compared, exp_clear, exp_possible


def _share_entries(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `representation` table as group entries with one metric, `share` (value and 95% interval)."""
    return [{"slice": r.get("slice"), "metrics": {"share": {"value": r.get("share"), "ci_low": r.get("ci_low"),
                                                            "ci_high": r.get("ci_high")}}}
            for r in doc.get("representation") or [] if isinstance(r, Mapping)]


def diff_snapshots(old: Mapping[str, Any], new: Mapping[str, Any]) -> SnapshotDiff:
    """What changed from the older audit document to the newer one."""
    check_schema_version(old, "the old snapshot")
    check_schema_version(new, "the new snapshot")
    f_old, f_new = findings_of(old), findings_of(new)
    fp_old, fp_new = (old.get("fingerprint") or {}).get("digest"), (new.get("fingerprint") or {}).get("digest")
    notes = []
    engines = ((old.get("fingerprint") or {}).get("engine"), (new.get("fingerprint") or {}).get("engine"))
    if fp_old and fp_new and fp_old != fp_new and engines[0] != engines[1]:
        notes.append(f"the fingerprint engine changed ({engines[0]} -> {engines[1]}); the same rows may hash differently")
    data_keys = ("rows", "labelled_rows", "unlabelled_rows", "source")
    data_changes = compare_mappings({k: (old.get("data") or {}).get(k) for k in data_keys},
                                    {k: (new.get("data") or {}).get(k) for k in data_keys}, "data")
    data_changes += compare_mappings(old.get("filter"), new.get("filter"), "filter")
    groups_old = {_group_label(g.get("slice")) for g in old.get("groups") or []}
    groups_new = {_group_label(g.get("slice")) for g in new.get("groups") or []}
    tables_old = {name: len(rows) for name, rows in iter_tables(old)}
    tables_new = {name: len(rows) for name, rows in iter_tables(new)}
    sections = tuple(Change(f"{name} records", tables_old.get(name), tables_new.get(name))
                     for name in sorted(set(tables_old) | set(tables_new))
                     if tables_old.get(name) != tables_new.get(name))
    rates = _moves(old.get("groups") or [], new.get("groups") or [])
    # Shares are a separate pass: the same group appears in both tables, keyed by the same slice.
    shares = _moves(_share_entries(old), _share_entries(new))
    moves = sorted(rates[0] + shares[0], key=lambda m: (m.strength != "clear", -abs(m.new_value - m.old_value)))
    compared, exp_clear, exp_possible = (a + b for a, b in zip(rates[1:], shares[1:]))

    return SnapshotDiff(
        old_created=old.get("created_at"), new_created=new.get("created_at"),
        new_findings=tuple((i, f_new[i]) for i in sorted(set(f_new) - set(f_old))),
        resolved_findings=tuple((i, f_old[i]) for i in sorted(set(f_old) - set(f_new))),
        moved=tuple(moves),
        spec_changes=compare_mappings(old.get("spec"), new.get("spec"), "spec"),
        data_changes=data_changes,
        fingerprint_changed=None if not (fp_old and fp_new) else fp_old != fp_new,
        groups_added=tuple(sorted(groups_new - groups_old)),
        groups_removed=tuple(sorted(groups_old - groups_new)),
        sections=sections,
        notes=tuple(notes),
        compared=compared, expected_clear=exp_clear, expected_possible=exp_possible,
        follow_up=follow_up(old, new),
    )
