"""Small-cell suppression: no count or rate of a group smaller than k leaves in an exported file.

Applied to the JSON document (`AuditSnapshot.to_dict()`), so every exported file, all written from
the suppressed document, agrees. The rules, also stated in the document's `suppression` block and
in the report:

1. Primary: a group with fewer than k rows loses all its counts and rates (n, shares, every
   metric, interval, support and disparity become null and the record says `suppressed: true`).
   In a group with n >= k, a metric whose denominator (`support`) is below k is withheld the same way,
   and so is `labelled_n` when it is below k.
2. Complementary: a hidden count must not be recoverable by subtraction. Every grouping is a
   partition of its parent group (race x sex inside each race, each race inside all rows), so in
   each such line where the parent is shown, hidden children must be at least two and hold at
   least k rows together; otherwise the smallest shown child is hidden too, repeated to a fixed
   point. This protects the group sizes of the audit's own nested tables; it is not a full
   disclosure-control solver (linked tables of metric denominators are protected by rule 1 only).
3. Everything derived from a hidden number is hidden with it: a disparity to a hidden reference,
   a between-groups gap whose smallest or largest group is hidden, the fit test of a feature
   with a hidden group.
4. Any other table in the document (a list of records, e.g. findings) hides a record whose slice
   is a hidden group, or whose own count (`n`, `count`, `size`, `support`, `labelled_n`) is below k:
   all its numbers become null. Records nested in a shown record (a trend's points) get the same rule.

The document never holds raw rows (only aggregates), so suppression is the last step before files.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SliceKey = tuple[tuple[str, str], ...]

# Record keys that hold a count of people: a record whose count is below k is withheld.
COUNT_KEYS = ("n", "count", "size", "support", "labelled_n")
_METRIC_NUMBERS = ("value", "ci_low", "ci_high", "support")
_DISPARITY_NUMBERS = ("ratio", "ratio_ci_low", "ratio_ci_high", "difference", "diff_ci_low", "diff_ci_high",
                      "p_value", "q_value")
_REPRESENTATION_NUMBERS = ("n", "share", "ci_low", "ci_high", "ratio")
# Sections with their own rules below; every other table gets the generic rule 4.
KNOWN_TABLES = ("groups", "between_groups", "representation", "representation_tests")
SUPPRESSED_VERDICT = "suppressed"


@dataclass(frozen=True)
class SuppressionSummary:
    """What suppression withheld, as stated in `snapshot.json` and in the report."""

    k: int
    cells_suppressed: int
    groups_suppressed: int
    primary_groups: int
    complementary_groups: int
    rule: str

    def to_dict(self) -> dict[str, Any]:
        """The `suppression` block of the document."""
        return {"k": self.k, "cells_suppressed": self.cells_suppressed, "groups_suppressed": self.groups_suppressed,
                "primary_groups": self.primary_groups, "complementary_groups": self.complementary_groups,
                "rule": self.rule}


def rule_text(k: int) -> str:
    """The suppression rule in one plain sentence."""
    if k <= 0:
        return "No small-cell suppression (k = 0): every group's numbers are shown."
    return (f"Numbers for any group of fewer than {k} people are withheld, as is any rate based on fewer than {k} "
            f"people; where a withheld number could be worked out by subtraction from totals, the next smallest "
            f"group is withheld too.")


def slice_key(slice_: Any) -> SliceKey:
    """A slice ({feature: value} or [(feature, value), ...] or [{feature, value}]) as sorted pairs."""
    if slice_ is None:
        return ()
    if isinstance(slice_, Mapping):
        items = slice_.items()
    else:
        items = []
        for item in slice_:
            if isinstance(item, Mapping):
                items.append((item.get("feature", item.get("column")), item.get("value")))
            else:
                items.append(tuple(item))
    return tuple(sorted((str(k), str(v)) for k, v in items))


def slice_text(slice_: Any) -> str:
    """'race=Black, sex=female' in the slice's own order (the engine's `slice_label`)."""
    if isinstance(slice_, Mapping):
        return ", ".join(f"{k}={v}" for k, v in slice_.items())
    return ", ".join(f"{k}={v}" for k, v in slice_key(slice_))


def iter_tables(doc: Mapping[str, Any]) -> Iterator[tuple[str, list[dict]]]:
    """Every table of the document: a top-level list of records, or a list of records one level down.

    Names are the section key (`groups`) or `section.key` (`data_quality.signals`). New sections that
    follow the convention (tables are lists of flat-ish records) flow through export and suppression.
    """
    for key, value in doc.items():
        if _is_table(value):
            yield key, value
        elif isinstance(value, Mapping):
            for sub, inner in value.items():
                if _is_table(inner):
                    yield f"{key}.{sub}", inner


def _is_table(value: Any) -> bool:
    """A non-empty list whose items are all records (dicts)."""
    return isinstance(value, list) and bool(value) and all(isinstance(r, Mapping) for r in value)


def _count_below(value: Any, k: int) -> bool:
    """A count (int, not bool) below k."""
    return isinstance(value, int) and not isinstance(value, bool) and value < k


def hidden_groups(groups: Sequence[Mapping[str, Any]], k: int) -> tuple[frozenset[SliceKey], frozenset[SliceKey]]:
    """(primary, complementary) hidden group keys of the `groups` section (rules 1 and 2)."""
    sizes: dict[SliceKey, int] = {}
    for g in groups:
        if isinstance(g.get("n"), int):
            sizes[slice_key(g.get("slice"))] = int(g["n"])
    primary = {key for key, n in sizes.items() if n < k}
    # A line: the children of one parent group along one feature (parent () is all rows, always shown).
    lines: dict[tuple[SliceKey, str], list[SliceKey]] = {}
    for key in sizes:
        for i, (feature, _) in enumerate(key):
            lines.setdefault((key[:i] + key[i + 1:], feature), []).append(key)
    hidden = set(primary)
    changed = bool(primary)
    while changed:
        changed = False
        for (parent, _), children in lines.items():
            if parent in hidden:
                continue
            shut = [c for c in children if c in hidden]
            if not shut or (len(shut) >= 2 and sum(sizes[c] for c in shut) >= k):
                continue
            rest = sorted((c for c in children if c not in hidden), key=lambda c: (sizes[c], c))
            if rest:
                hidden.add(rest[0])
                changed = True
    return frozenset(primary), frozenset(hidden - primary)


def _null_numbers(value: Any) -> Any:
    """The same structure with every number (not bool) replaced by None."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return None
    if isinstance(value, Mapping):
        return {k: _null_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_null_numbers(v) for v in value]
    return value


def _suppress_groups(groups: list[dict], hidden: frozenset[SliceKey], primary: frozenset[SliceKey],
                     k: int) -> tuple[int, dict[tuple[SliceKey, str], bool]]:
    """Rules 1 and 3 on `groups` in place; returns cells withheld and which (group, metric) are hidden."""
    cells = 0
    metric_hidden: dict[tuple[SliceKey, str], bool] = {}
    for g in groups:
        key = slice_key(g.get("slice"))
        whole = key in hidden
        g["suppressed"] = whole
        if whole:
            g["suppression"] = "primary" if key in primary else "complementary"
            for f in ("n", "labelled_n", "share"):
                g[f] = None
        elif _count_below(g.get("labelled_n"), k):
            g["labelled_n"] = None
        for name, m in (g.get("metrics") or {}).items():
            hide = whole or _count_below(m.get("support"), k)
            metric_hidden[(key, name)] = hide
            if hide:
                # Flagged only when withheld: a metric cell keeps its documented five keys otherwise.
                m["suppressed"] = True
                cells += 1
                for f in _METRIC_NUMBERS:
                    m[f] = None
    for g in groups:
        key = slice_key(g.get("slice"))
        for name, d in (g.get("disparities") or {}).items():
            ref = slice_key(d.get("reference"))
            hide = metric_hidden.get((key, name), False) or ref in hidden or metric_hidden.get((ref, name), False)
            if hide:
                d["suppressed"] = True
                for f in _DISPARITY_NUMBERS:
                    d[f] = None
                d["verdict"] = SUPPRESSED_VERDICT
    return cells, metric_hidden


def _suppress_between(rows: list[dict], labels: dict[str, SliceKey],
                      metric_hidden: dict[tuple[SliceKey, str], bool]) -> int:
    """Rule 3 on `between_groups`: a gap whose smallest or largest group is withheld is withheld."""
    cells = 0
    for r in rows:
        ends = [labels.get(r.get(f)) for f in ("min_group", "max_group")]
        hide = any(e is not None and metric_hidden.get((e, r.get("metric")), False) for e in ends)
        r["suppressed"] = hide
        if hide:
            cells += 1
            for f in ("difference", "ratio", "min_group", "max_group"):
                r[f] = None
    return cells


def _suppress_representation(rows: list[dict], hidden: frozenset[SliceKey], k: int) -> int:
    """Rule 1 on `representation`: a withheld group shows no size, share or interval."""
    cells = 0
    for r in rows:
        hide = slice_key(r.get("slice")) in hidden or _count_below(r.get("n"), k)
        r["suppressed"] = hide
        if hide:
            cells += 1
            for f in _REPRESENTATION_NUMBERS:
                if f in r:
                    r[f] = None
    return cells


def _suppress_fit_tests(rows: list[dict], hidden: frozenset[SliceKey], k: int) -> int:
    """Rule 3 on `representation_tests`: a fit test over a feature with a withheld group is withheld."""
    features = {key[0][0] for key in hidden if len(key) == 1}
    cells = 0
    for r in rows:
        hide = r.get("feature") in features
        r["suppressed"] = hide
        if hide:
            cells += 1
            for f in ("statistic", "p_value", "unlisted_rows"):
                if f in r:
                    r[f] = None
        elif _count_below(r.get("unlisted_rows"), k) and r.get("unlisted_rows", 0) > 0:
            r["unlisted_rows"] = None
    return cells


def _suppress_other(rows: list[dict], hidden: frozenset[SliceKey], k: int) -> int:
    """Rule 4 on any other table: withhold a record about a hidden group or with a small count.

    Records nested in a shown record (a trend's points per period, say) get the same rule.
    """
    cells = 0
    for i, r in enumerate(rows):
        has_slice = "slice" in r and r["slice"] is not None
        hide = (has_slice and slice_key(r["slice"]) in hidden) or any(_count_below(r.get(c), k) for c in COUNT_KEYS)
        if hide:
            cells += 1
            rows[i] = {**_null_numbers({key: v for key, v in r.items() if key != "slice"}),
                       **({"slice": r["slice"]} if has_slice else {}), "suppressed": True}
            continue
        r["suppressed"] = False
        for value in r.values():
            if _is_table(value):
                cells += _suppress_other(value, hidden, k)
    return cells


def suppress_document(doc: Mapping[str, Any], k: int) -> tuple[dict[str, Any], SuppressionSummary]:
    """A copy of the document with small cells withheld and a `suppression` block; the input is untouched."""
    out = copy.deepcopy(dict(doc))
    k = max(int(k), 0)
    groups = out.get("groups") if isinstance(out.get("groups"), list) else []
    primary, complementary = hidden_groups(groups, k) if k > 0 else (frozenset(), frozenset())
    hidden = primary | complementary
    cells, metric_hidden = _suppress_groups(groups, hidden, primary, k)
    labels = {slice_text(g.get("slice")): slice_key(g.get("slice")) for g in groups}
    for name, table in list(iter_tables(out)):
        if name == "groups":
            continue
        if name == "between_groups":
            cells += _suppress_between(table, labels, metric_hidden)
        elif name == "representation":
            cells += _suppress_representation(table, hidden, k)
        elif name == "representation_tests":
            cells += _suppress_fit_tests(table, hidden, k)
        else:
            cells += _suppress_other(table, hidden, k)
    summary = SuppressionSummary(k=k, cells_suppressed=cells, groups_suppressed=len(hidden),
                                 primary_groups=len(primary), complementary_groups=len(complementary),
                                 rule=rule_text(k))
    out["suppression"] = summary.to_dict()
    return out, summary
