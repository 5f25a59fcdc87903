"""Labelling queue: the concrete rows to label or re-check, each with its reason, as CSV and Label Studio tasks.

Three reasons, each over the audit's slices (predicates as in `connectors/quality_counts.py`):

* ``sample`` -- unlabelled rows (delayed labels) of a slice the data plan funds, in a seeded random
  order: labels of a random sample estimate the slice's rate without bias.
* ``near_threshold`` -- unlabelled rows of the same slice nearest the decision threshold
  (uncertainty sampling), ``uncertain_share`` of each slice's allocation. They are the most
  informative rows for the model, but over-represent borderline cases in the audit's estimate:
  keep the share small, or 0 for a strictly unbiased estimate.
* ``label_error`` -- labelled rows of a 'better data' slice whose label_errors signal fired, where
  the score confidently contradicts the label (the Confident Learning rule of the audit,
  `LabelErrorRule`), ranked by self-confidence (cleanlab's default ranking): the lowest score for
  the recorded label first, so priority = the score's probability of the other class. The raw
  margin beyond the thresholds (score - t1, (1 - score) - t0) mixes two classes with different
  thresholds and ranked mostly one side first: on the demo's noisy slice its top 100 held 45%
  flipped labels, self-confidence's 75% (the slice's base rate is 20%).

Only the id and the spec's sensitive features, features and score leave the tool, never a column of
``[privacy] hide_columns`` nor one that looks like personal data (`metrics.privacy`) unless
``show_columns`` lists it; a slice naming such a column is shown as '(hidden)'.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fairwatch.connectors.counts import run_query, where_sql
from fairwatch.connectors.drilldown import visible_columns
from fairwatch.connectors.export import csv_bytes
from fairwatch.metrics.privacy.withholding import jsonable
from fairwatch.connectors.quality_counts import _check_slices, _positive_raw_labels, _predicate, _spec_columns
from fairwatch.connectors.source import OpenSource, opened, quote_ident, resolve_spec_columns
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.groups import slice_label
from fairwatch.metrics.discovery.plan import DataPlan, build_plan
from fairwatch.metrics.discovery.quality import LABEL_ERRORS
from fairwatch.metrics.audit.snapshot import AuditSnapshot
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter

Slice = tuple[tuple[str, str], ...]
HIDDEN = "(hidden)"
# The Label Studio labeling config these tasks expect: <Text name="text" value="$text"/> and
# <Choices name="label" toName="text"> with one choice per label value.
FROM_NAME, TO_NAME = "label", "text"
RECORDED = "recorded label"


@dataclass(frozen=True)
class LabelQueue:
    """Rows to label or re-check: id, reason, slice, rank, the allowed columns, the current label of re-checks."""

    rows: pd.DataFrame
    id_column: str
    columns: tuple[str, ...]  # the data columns that may leave the tool
    label_column: str | None  # None when the label is hidden
    notes: tuple[str, ...] = ()

    def counts(self) -> dict[str, int]:
        """Rows per reason."""
        return {str(k): int(v) for k, v in self.rows["reason"].value_counts().items()} if len(self.rows) else {}


def _allowed(src: OpenSource, spec: AuditSpec) -> tuple[list[str], bool]:
    """The spec's columns that may leave the tool (not hidden, not personal data unless shown), and whether the label may."""
    hidden = {h.lower() for h in spec.hidden_columns}
    names = [*spec.sensitive, *spec.features, *([spec.score] if spec.score else [])]
    out: list[str] = []
    for n in names:
        if n.lower() not in {o.lower() for o in out} and n.lower() != (spec.id or "").lower():
            out.append(n)
    return visible_columns(src, spec, out), spec.label.lower() not in hidden


def _shown(slice_: Slice, allowed: Sequence[str]) -> str:
    """The slice's label, or '(hidden)' when it names a column that may not leave the tool."""
    ok = {a.lower() for a in allowed}
    return HIDDEN if any(c.lower() not in ok for c, _ in slice_) else slice_label(slice_)


def _base(src: OpenSource, spec: AuditSpec, slices: Sequence[Slice], row_filter: RowFilter | None,
          need_id: bool = True) -> tuple[str, dict, list[str], dict[str, str]]:
    """The base relation (id, label, score, c<j> columns), its parameters, one predicate per slice, and the columns.

    Without `need_id` (counting, not picking rows) a spec without an id column gets NULL ids.
    """
    if spec.id is None and need_id:
        raise DataError("a labelling queue needs the id column of the rows: set [columns] id (e.g. id = \"request_id\")")
    cols = resolve_spec_columns(spec, src)
    where, params = where_sql(spec, cols, row_filter)
    spec_cols = _spec_columns(spec, cols)
    names = {n.lower(): j for j, (n, _) in enumerate(spec_cols)}
    types = [src.column_type(c) for _, c in spec_cols]
    preds = []
    for k, s in enumerate(_check_slices(slices, names, src, spec_cols)):
        pred, p, _ = _predicate(s, k, names, types)
        preds.append(pred)
        params.update(p)
    score = f"CAST({quote_ident(cols['score'])} AS DOUBLE)" if spec.score else "CAST(NULL AS DOUBLE)"
    selects = ", ".join(f"{quote_ident(c)} AS c{j}" for j, (_, c) in enumerate(spec_cols))
    fw_id = quote_ident(cols["id"]) if spec.id is not None else "NULL"
    base = (f"SELECT {fw_id} AS fw_id, {quote_ident(cols['label'])} AS fw_label, {score} AS fw_s, "
            f"{selects} FROM src WHERE {where}")
    return base, params, preds, cols


def fetch_unlabelled_counts(src: OpenSource, spec: AuditSpec, slices: Sequence[Slice],
                            row_filter: RowFilter | None = None) -> dict[Slice, int]:
    """Unlabelled rows per slice (the pool a labelling plan can draw from), in one scan."""
    slices = [tuple(tuple(p) for p in s) for s in slices]
    if not slices:
        return {}
    # A plan needs counts only: a file without an id column still gets its plan (the queue then asks for the id).
    base, params, preds, _ = _base(src, spec, slices, row_filter, need_id=False)
    aggs = ", ".join(f"count_if(fw_label IS NULL AND {p}) AS k{k}" for k, p in enumerate(preds))
    row = run_query(src, f"SELECT {aggs} FROM ({base})", params).iloc[0]
    return {s: int(row[f"k{k}"]) for k, s in enumerate(slices)}


def label_error_slices(snapshot: AuditSnapshot) -> list[Slice]:
    """'Better data' slices (findings and groups) whose label_errors signal fired."""
    out: list[Slice] = []
    evidences = [(f.slice, f.need, f.evidence) for f in snapshot.findings or ()]
    if snapshot.group_needs is not None and len(snapshot.group_needs):
        evidences += [(tuple(tuple(p) for p in r["slice"]), r["need"], r["evidence"])
                      for r in snapshot.group_needs.to_dict("records")]
    for slice_, need, ev in evidences:
        fired = (ev.get("quality") or {}).get("signals_fired") or []
        if need == "better_data" and LABEL_ERRORS in fired and slice_ not in out:
            out.append(slice_)
    return out


def _data_columns(frame: pd.DataFrame, spec: AuditSpec, cols: dict[str, str], allowed: list[str]) -> pd.DataFrame:
    """The allowed columns under their spec names, read back from the c<j> aliases."""
    spec_cols = _spec_columns(spec, cols)
    index = {n.lower(): j for j, (n, _) in enumerate(spec_cols)}
    out = {}
    for name in allowed:
        if name == spec.score:
            out[name] = frame["fw_s"]
        else:
            out[name] = frame[f"c{index[name.lower()]}"]
    return pd.DataFrame(out, index=frame.index)


def fetch_queue(src: OpenSource, snapshot: AuditSnapshot, plan: DataPlan, *, recheck_rows: int = 100,
                uncertain_share: float = 0.2, seed: int = 0, row_filter: RowFilter | None = None) -> LabelQueue:
    """The rows to label (stratified to the plan) and to re-check (candidate label errors), with reasons."""
    spec = snapshot.spec
    row_filter = row_filter if row_filter is not None else snapshot.row_filter
    if not 0 <= uncertain_share <= 1:
        raise DataError(f"uncertain_share must be between 0 and 1, got {uncertain_share}")
    if recheck_rows < 0:
        raise DataError(f"recheck_rows must be 0 or more, got {recheck_rows}")
    allocation = {s: k for s, k in plan.allocation().items() if k > 0}
    recheck = label_error_slices(snapshot) if recheck_rows else []
    rule = snapshot.quality.label_error_rule if snapshot.quality is not None else None
    notes: list[str] = []
    if recheck and rule is None:
        notes.append("no label-error rule in the audit (no probability score): no rows to re-check")
        recheck = []
    allowed, label_ok = _allowed(src, spec)
    slices = list(allocation) + [s for s in recheck if s not in allocation]
    frames: list[pd.DataFrame] = []
    cols: dict[str, str] = {}
    if slices:
        base, params, preds, cols = _base(src, spec, slices, row_filter)
        threshold = spec.threshold if spec.threshold is not None else 0.5
        if spec.score is None and uncertain_share > 0:
            notes.append("no score column: the queue has no near-threshold rows, only random samples")
        for k, s in enumerate(slices):
            if s in allocation:
                frames.append(_unlabelled(src, base, params, preds[k], s, allocation[s],
                                          uncertain_share if spec.score else 0.0, threshold, seed))
        if recheck:
            _, pos_raw = _positive_raw_labels(src, cols["label"], spec, "TRUE", {}, snapshot.data.positive_label)
            per = max(recheck_rows // len(recheck), 1)
            for s in recheck:
                frames.append(_label_errors(src, base, params, preds[slices.index(s)], s, per, rule, pos_raw))
    rows = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) else pd.DataFrame(
        columns=["fw_id", "reason", "fw_slice", "rank", "priority", "fw_label", "fw_s"])
    # A row in two funded slices is queued once, for the first reason that picked it.
    rows = rows.drop_duplicates("fw_id", keep="first").reset_index(drop=True)
    out = pd.DataFrame({spec.id: rows["fw_id"], "reason": rows["reason"],
                        "slice": [_shown(s, allowed) for s in rows["fw_slice"]], "rank": rows["rank"],
                        "priority": rows["priority"]})
    if label_ok:
        out["current_label"] = [None if pd.isna(v) else str(v).lower() for v in rows["fw_label"]]
    if allowed and len(rows):
        out = pd.concat([out, _data_columns(rows, spec, cols, allowed).reset_index(drop=True)], axis=1)
    elif allowed:
        out = out.assign(**{c: pd.Series(dtype=object) for c in allowed})
    if not allowed:
        notes.append("the spec hides every data column: the queue holds ids only")
    if plan.allocated == 0 and not recheck:
        notes.append("nothing to queue: the plan allocates no rows and no slice has suspected label errors")
    return LabelQueue(rows=out, id_column=spec.id, columns=tuple(allowed),
                      label_column=spec.label if label_ok else None, notes=tuple(notes))


def _unlabelled(src: OpenSource, base: str, params: dict, pred: str, slice_: Slice, k: int, share: float,
                threshold: float, seed: int) -> pd.DataFrame:
    """k unlabelled rows of a slice: round(k * share) nearest the threshold, the rest a seeded random sample."""
    near = int(round(k * share))
    q = dict(params) | {"fw_k": k, "fw_near": near, "fw_thr": float(threshold), "fw_seed": str(seed)}
    sql = (f"SELECT *, row_number() OVER (ORDER BY abs(fw_s - $fw_thr) NULLS LAST, fw_id) AS fw_near_rank, "
           f"row_number() OVER (ORDER BY hash(CAST(fw_id AS VARCHAR) || $fw_seed), fw_id) AS fw_rand_rank "
           f"FROM ({base}) WHERE fw_label IS NULL AND {pred} QUALIFY fw_near_rank <= $fw_near OR fw_rand_rank <= $fw_k")
    found = run_query(src, sql, q)
    first = found[found["fw_near_rank"] <= near].sort_values("fw_near_rank").assign(reason="near_threshold")
    rest = found[~found["fw_id"].isin(first["fw_id"])].sort_values("fw_rand_rank").head(k - len(first))
    picked = pd.concat([first, rest.assign(reason="sample")], ignore_index=True)
    picked["priority"] = [abs(s - threshold) if r == "near_threshold" and pd.notna(s) else None
                          for r, s in zip(picked["reason"], picked["fw_s"])]
    picked["rank"] = range(1, len(picked) + 1)
    picked["fw_slice"] = [slice_] * len(picked)
    return picked


def _label_errors(src: OpenSource, base: str, params: dict, pred: str, slice_: Slice, k: int, rule: Any,
                  pos_raw: list[str]) -> pd.DataFrame:
    """The k labelled rows of a slice beyond the Confident Learning thresholds, least confident in their label first."""
    pos = {f"fw_lp{i}": v for i, v in enumerate(pos_raw)}
    is_pos = ("CAST(fw_label AS VARCHAR) IN (" + ", ".join(f"${p}" for p in pos) + ")") if pos else "FALSE"
    q = dict(params) | pos | {"fw_t1": rule.t1, "fw_t0": rule.t0, "fw_k": k}
    sql = (f"SELECT * FROM (SELECT *, {is_pos} AS fw_pos, CASE WHEN {is_pos} THEN 1 - fw_s ELSE fw_s END AS fw_other "
           f"FROM ({base}) WHERE fw_label IS NOT NULL AND fw_s IS NOT NULL AND NOT isnan(fw_s) AND {pred}) "
           f"WHERE (fw_pos AND fw_other >= $fw_t0) OR (NOT fw_pos AND fw_other >= $fw_t1) "
           f"ORDER BY fw_other DESC, fw_id LIMIT $fw_k")
    found = run_query(src, sql, q)
    return found.assign(reason="label_error", priority=found["fw_other"], rank=range(1, len(found) + 1),
                        fw_slice=[slice_] * len(found))


def build_queue(snapshot: AuditSnapshot, plan: DataPlan, src: OpenSource | None = None, **options: Any) -> LabelQueue:
    """The queue of a snapshot's source (opened for the call when src is None); options as in `fetch_queue`."""
    with opened(snapshot.spec, src) as source:
        return fetch_queue(source, snapshot, plan, **options)


def plan_pools(snapshot: AuditSnapshot, src: OpenSource | None = None) -> dict[Slice, int]:
    """Unlabelled rows of every slice the plan could fund (opened for the call when src is None)."""
    from fairwatch.metrics.discovery.plan import plan_candidates

    slices = list(dict.fromkeys(c.slice for c in plan_candidates(snapshot)[0]))
    with opened(snapshot.spec, src) as source:
        return fetch_unlabelled_counts(source, snapshot.spec, slices, snapshot.row_filter)


def attach_plan(snapshot: AuditSnapshot, budget: int, src: OpenSource | None = None) -> AuditSnapshot:
    """The snapshot with the data plan of `budget` attached (pools counted in its source), so exports carry it."""
    return snapshot.with_plan(build_plan(snapshot, budget, plan_pools(snapshot, src)))


def _task_text(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """What the labeller reads: the allowed columns as 'name: value' lines (the id alone when all are hidden)."""
    parts = [f"{c}: {'' if row.get(c) is None else row.get(c)}" for c in columns]
    return "\n".join(parts) if parts else "(all columns hidden: look the row up by its id)"


def label_studio_tasks(queue: LabelQueue) -> list[dict[str, Any]]:
    """The queue as a Label Studio import (a JSON list of tasks); re-checks carry the recorded label as a prediction."""
    tasks = []
    keep = [queue.id_column, "reason", "slice", "rank", *queue.columns]
    for r in queue.rows.to_dict("records"):
        r = jsonable(r)
        data = {k: r.get(k) for k in keep} | {"text": _task_text(r, queue.columns)}
        task: dict[str, Any] = {"data": data}
        label = r.get("current_label")
        if r["reason"] == "label_error" and label is not None:
            task["predictions"] = [{"model_version": RECORDED, "result": [
                {"from_name": FROM_NAME, "to_name": TO_NAME, "type": "choices", "value": {"choices": [str(label)]}}]}]
        tasks.append(task)
    return tasks


def queue_csv(queue: LabelQueue) -> bytes:
    """The queue as CSV (id, reason, slice, rank, priority, current label of re-checks, allowed columns)."""
    rows = [jsonable(r) for r in queue.rows.to_dict("records")]
    return csv_bytes(rows) if rows else csv_bytes([{c: None for c in queue.rows.columns}])


def plan_csv(plan: DataPlan) -> bytes:
    """The data plan as CSV, one row per question."""
    rows = [i.to_row() for i in plan.items]
    return csv_bytes(rows) if rows else csv_bytes([{"id": None, "note": "; ".join(plan.notes)}])


def label_studio_json(queue: LabelQueue) -> bytes:
    """The Label Studio import file's bytes."""
    return json.dumps(label_studio_tasks(queue), indent=1, ensure_ascii=False).encode("utf-8")
