"""Labelling queue on the demo: stratified to the plan, enriched for flipped labels, Label Studio valid, private."""

from __future__ import annotations

import copy
import json
import shutil
from dataclasses import replace
from pathlib import Path

import duckdb
import jsonschema
import pytest
from sklearn.metrics import recall_score

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.demo import DEMO_CONFIG, PLANTED, write_demo
from fairwatch.connectors.queue import (
    build_queue,
    label_studio_json,
    label_studio_tasks,
    plan_csv,
    plan_pools,
    queue_csv,
)
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.monitoring.followup import follow_up
from fairwatch.metrics.discovery.plan import build_plan
from fairwatch.metrics.audit.spec import parse_spec

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "schema" / "label_studio_tasks.schema.json").read_text())
SMALL = next(p.slice for p in PLANTED if p.kind == "too_small")
NOISY = next(p.slice for p in PLANTED if p.kind == "noisy_labels")
SMALL_FNR = "false_negative_rate|race_ethnicity=Pacific Islander"


def demo_spec(path: Path):
    """The demo's spec pointed at a file."""
    cfg = copy.deepcopy(DEMO_CONFIG)
    cfg["source"]["path"] = str(path)
    return parse_spec(cfg)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A 150k-row demo, its audit, a plan of 200 rows and the queue (built once for the module)."""
    path = tmp_path_factory.mktemp("queue") / "demo.duckdb"
    write_demo(path, rows=150_000)
    snap = run_audit(demo_spec(path))
    plan = build_plan(snap, 200, plan_pools(snap))
    queue = build_queue(snap, plan, recheck_rows=100)
    return path, snap, plan, queue


def test_queue_is_stratified_to_the_plan(demo):
    _, _, plan, queue = demo
    rows = queue.rows[queue.rows["reason"].isin(["sample", "near_threshold"])]
    for slice_, k in plan.allocation().items():
        label = ", ".join(f"{c}={v}" for c, v in slice_)
        assert (rows["slice"] == label).sum() == k
    # The small group's pool (~160 unlabelled rows) is smaller than the budget: the plan takes all of it.
    assert plan.allocation()[SMALL] == plan.items[0].available
    assert rows["current_label"].isna().all()
    assert set(rows["race_ethnicity"]) == {"Pacific Islander"}


def test_label_error_rows_are_enriched_for_flipped_labels(demo):
    path, _, _, queue = demo
    recheck = queue.rows[queue.rows["reason"] == "label_error"]
    assert len(recheck) == 100 and recheck["slice"].nunique() == 1
    with duckdb.connect(str(path), read_only=True) as con:
        ids = [int(i) for i in recheck["request_id"]]
        hits = con.execute("SELECT avg(CAST(label_flipped AS DOUBLE)) FROM ground_truth WHERE list_contains($ids, request_id)",
                           {"ids": ids}).fetchall()[0][0]
        base = con.execute(
            "SELECT avg(CAST(g.label_flipped AS DOUBLE)) FROM predictions p JOIN labels l USING (request_id) "
            "JOIN ground_truth g USING (request_id) WHERE p.channel = $c AND p.region = $r",
            {"c": dict(NOISY)["channel"], "r": dict(NOISY)["region"]}).fetchall()[0][0]
    assert hits >= 3 * base, (hits, base)
    # Ranked by the score's confidence in the other class, largest first.
    assert list(recheck["priority"]) == sorted(recheck["priority"], reverse=True)


def test_label_studio_export_validates(demo):
    _, _, _, queue = demo
    tasks = json.loads(label_studio_json(queue))
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(tasks, SCHEMA, cls=jsonschema.Draft202012Validator)
    rechecks = [t for t in tasks if t["data"]["reason"] == "label_error"]
    assert rechecks and all(t["predictions"][0]["result"][0]["value"]["choices"] in (["true"], ["false"])
                            for t in rechecks)
    assert all("predictions" not in t for t in tasks if t["data"]["reason"] != "label_error")
    bad = [{"data": {}}]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, SCHEMA, cls=jsonschema.Draft202012Validator)


def test_csv_exports(demo):
    _, _, plan, queue = demo
    text = queue_csv(queue).decode("utf-8-sig").splitlines()
    assert text[0].startswith("request_id,reason,slice,rank,priority,current_label") and len(text) == len(queue.rows) + 1
    assert plan_csv(plan).decode("utf-8-sig").splitlines()[0].startswith("id,group,metric")


def test_hidden_columns_never_leave(demo):
    _, snap, plan, _ = demo
    spec = snap.spec
    every = (*spec.sensitive, *spec.features, spec.score, spec.label, spec.prediction, spec.time, spec.model_version)
    hidden = replace(snap, spec=replace(spec, hidden_columns=tuple(every)))
    queue = build_queue(hidden, plan, recheck_rows=10)
    assert list(queue.rows.columns) == ["request_id", "reason", "slice", "rank", "priority"]
    assert set(queue.rows["slice"]) == {"(hidden)"}
    assert "ids only" in " ".join(queue.notes)
    tasks = label_studio_tasks(queue)
    jsonschema.validate(tasks, SCHEMA, cls=jsonschema.Draft202012Validator)
    assert set(tasks[0]["data"]) == {"request_id", "reason", "slice", "rank", "text"}
    some = replace(snap, spec=replace(spec, hidden_columns=("race_ethnicity", "score")))
    q2 = build_queue(some, plan, recheck_rows=10)
    assert "race_ethnicity" not in q2.rows.columns and "score" not in q2.rows.columns
    assert "Pacific Islander" not in queue_csv(q2).decode("utf-8-sig")


def test_bad_inputs_give_plain_empty_results(demo):
    """Budget 0, no findings, a budget beyond every pool, out-of-range options: plain notes or one-line errors."""
    _, snap, _, _ = demo
    zero = build_plan(snap, 0, plan_pools(snap))
    # Budget 0: nothing to label, only the re-checks; with none of those either, an empty queue said plainly.
    queue = build_queue(snap, zero, recheck_rows=20)
    assert set(queue.rows["reason"]) == {"label_error"} and len(queue.rows) == 20
    empty = build_queue(snap, zero, recheck_rows=0)
    assert empty.rows.empty and any("nothing to queue" in n for n in empty.notes)
    assert queue_csv(empty).decode("utf-8-sig").startswith("request_id,reason,slice,rank,priority")
    assert json.loads(label_studio_json(empty)) == []
    jsonschema.validate([], SCHEMA, cls=jsonschema.Draft202012Validator)
    # No findings and no group needs: an empty plan whose CSV carries the note instead of rows.
    none = build_plan(replace(snap, findings=(), group_needs=snap.group_needs.iloc[0:0]), 100, {})
    assert none.items == () and "plan is empty" in none.notes[-1]
    assert "plan is empty" in plan_csv(none).decode("utf-8-sig")
    assert build_queue(replace(snap, findings=()), none, recheck_rows=0).rows.empty
    # A budget beyond every pool: the pool is queued, not more, and the rest is said to stay unspent.
    huge = build_plan(snap, 10**6, plan_pools(snap))
    assert huge.allocated == sum(plan_pools(snap).values()) and "stay unspent" in " ".join(huge.notes)
    assert len(build_queue(snap, huge, recheck_rows=0).rows) == huge.allocated
    with pytest.raises(DataError, match="uncertain_share"):
        build_queue(snap, zero, uncertain_share=1.5)
    with pytest.raises(DataError, match="recheck_rows"):
        build_queue(snap, zero, recheck_rows=-1)
    with pytest.raises(DataError, match="whole number"):
        build_plan(snap, True)


def test_labelling_the_queue_and_following_up(demo, tmp_path):
    """Audit, label the queued rows with their true values, audit again: the follow-up reports the small group."""
    path, snap, plan, queue = demo
    copy_path = tmp_path / "labelled.duckdb"
    shutil.copy(path, copy_path)
    new_ids = [int(i) for i in queue.rows.loc[queue.rows["reason"] != "label_error", "request_id"]]
    fixed = [int(i) for i in queue.rows.loc[queue.rows["reason"] == "label_error", "request_id"]]
    with duckdb.connect(str(copy_path)) as con:
        con.execute("INSERT INTO labels SELECT request_id, true_repaid, TIMESTAMP '2026-01-02' FROM ground_truth "
                    "WHERE list_contains($ids, request_id)", {"ids": new_ids})
        con.execute("UPDATE labels SET repaid = g.true_repaid FROM ground_truth AS g "
                    "WHERE labels.request_id = g.request_id AND list_contains($ids, labels.request_id)", {"ids": fixed})
    later = run_audit(demo_spec(copy_path))
    assert later.data.labelled_rows == snap.data.labelled_rows + len(new_ids)
    # The plan funded the whole pool of the planted group and said labels would settle it.
    item = next(i for i in plan.items if i.candidate.slice == SMALL)
    assert item.settles and item.allocated == item.available == len(new_ids)
    report = {f.id: f for f in follow_up(snap.to_dict(), later.to_dict())}
    small = report[SMALL_FNR]
    # Too few labelled rows to judge before; after labelling, the planted +0.17 gap is decided against the group.
    assert small.then["verdict"] in ("insufficient_data", "inconclusive")
    assert small.now["n"] > 3 * small.then["n"]
    assert small.now["verdict"] == "outside" and small.now["q_value"] < snap.spec.policy.fdr
    assert small.status == "worse" and "settled against the group" in small.explanation
    # The follow-up's numbers are the later audit's own, recomputed here from the raw rows by sklearn.
    with duckdb.connect(str(copy_path), read_only=True) as con:
        raw = con.execute("SELECT l.repaid, p.approved FROM predictions p JOIN labels l USING (request_id) "
                          "WHERE p.race_ethnicity = $g", {"g": dict(SMALL)["race_ethnicity"]}).df()
    assert small.now["n"] == int(raw["repaid"].sum())
    assert small.now["value"] == pytest.approx(1 - recall_score(raw["repaid"], raw["approved"]))
    # The flat row (tables and CSV) carries the numbers then and now.
    row = small.to_row()
    assert (row["verdict_then"], row["verdict_now"], row["status"]) == (small.then["verdict"], "outside", "worse")


def test_a_source_without_an_id_column_gets_its_plan_and_a_one_line_queue_error(demo):
    """A plan only counts unlabelled rows: a file without an id column (the diabetes file, walked on the Slices page,
    lost the whole page to the queue's id error) gets the same plan; only the queue, which picks rows, asks for it."""
    _, snap, plan, _ = demo
    no_id = replace(snap, spec=replace(snap.spec, id=None))
    pools = plan_pools(no_id)
    assert pools == plan_pools(snap)
    assert build_plan(no_id, 200, pools).allocation() == plan.allocation()
    with pytest.raises(DataError, match=r"needs the id column of the rows: set \[columns\] id"):
        build_queue(no_id, build_plan(no_id, 200, pools), recheck_rows=100)
