"""Data plan: the greedy objective, the expected intervals, the bad inputs, and the demo's too-small group."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import json

import jsonschema
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.config import write_config
from fairwatch.connectors.demo import DEMO_CONFIG, PLANTED, write_demo
from fairwatch.connectors.export import export_document, load_snapshot
from fairwatch.connectors.queue import attach_plan, plan_pools
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.stats.intervals import wilson_interval
from fairwatch.metrics.discovery.plan import OBJECTIVE, build_plan, plan_places
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.privacy.suppression import suppress_document

SMALL = next(p.slice for p in PLANTED if p.kind == "too_small")
NOISY = next(p.slice for p in PLANTED if p.kind == "noisy_labels")
SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "schema" / "snapshot.schema.json").read_text())
# The published schema's `data_plan` section on its own, with the definitions it refers to.
PLAN_SCHEMA = {"$defs": SCHEMA["$defs"], **SCHEMA["properties"]["data_plan"]}


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory) -> Path:
    """A 150k-row demo and its fairwatch.toml in a fresh data folder."""
    path = tmp_path_factory.mktemp("plan") / "demo.duckdb"
    write_demo(path, rows=150_000)
    write_config(spec_of(path), path.parent / "fairwatch.toml")
    return path


def spec_of(path: Path):
    """The demo's spec pointed at a file."""
    cfg = copy.deepcopy(DEMO_CONFIG)
    cfg["source"]["path"] = str(path)
    return parse_spec(cfg)


@pytest.fixture(scope="module")
def snap(demo_path):
    """The audit of the demo."""
    return run_audit(spec_of(demo_path))


def need(value: str, extra: int, rate: float, comparison: float, support: int = 100, labelled: int = 150) -> dict:
    """A group-needs row of race_ethnicity=value that `extra` labelled rows would settle."""
    slice_ = (("race_ethnicity", value),)
    ev = {"metric": "false_negative_rate", "support": support, "labelled_rows": labelled, "rate": rate,
          "comparison_rate": comparison, "verdict": "inconclusive",
          "additional_rows_plan": {"additional_labelled_rows": extra, "target_rate": rate}}
    return {"grouping": "race_ethnicity", "slice": slice_, "group": f"race_ethnicity={value}",
            "metric": "false_negative_rate", "verdict": "inconclusive", "need": "more_data", "additional_rows": extra,
            "message": "", "evidence": ev, "problems": ()}


def with_needs(snap, rows):
    """The snapshot with these group needs and no findings."""
    return replace(snap, findings=(), group_needs=pd.DataFrame(rows))


def test_demo_plan_sends_the_budget_to_the_too_small_group(snap):
    pools = plan_pools(snap)
    for budget in (10, 200):
        plan = build_plan(snap, budget, pools)
        alloc = plan.allocation()
        assert alloc[SMALL] >= 0.5 * budget or alloc[SMALL] == pools[SMALL]
        assert alloc[SMALL] == max(alloc.values()) and alloc[SMALL] / plan.allocated == 1.0
    # 200 rows exceed the group's ~160 unlabelled rows: capped, said plainly; its question is settled.
    assert any("stay unspent" in n for n in plan.notes)
    assert plan.items[0].settles and plan.allocated == pools[SMALL]
    assert any("under-represented" in why for _, why in plan.skipped)
    assert plan.objective == OBJECTIVE and "greedy" in plan.objective


def test_greedy_settles_by_weight_per_row_then_spreads(snap):
    s = with_needs(snap, [need("Black", 50, 0.30, 0.10), need("Asian", 500, 0.40, 0.10), need("Hispanic", 30, 0.12, 0.10)])
    pools = {(("race_ethnicity", v),): p for v, p in (("Black", 50), ("Asian", 10_000), ("Hispanic", 30))}
    plan = build_plan(s, 100, pools)
    by = {i.candidate.slice[0][1]: i for i in plan.items}
    assert by["Black"].settles and by["Hispanic"].settles and not by["Asian"].settles
    assert (by["Black"].allocated, by["Hispanic"].allocated, by["Asian"].allocated) == (50, 30, 20)
    assert plan.allocated == 100 and not plan.notes
    # A question whose pool is smaller than its need cannot be settled by labels; the plan says why.
    short = build_plan(s, 1000, {**pools, (("race_ethnicity", "Asian"),): 100})
    asian = next(i for i in short.items if i.candidate.slice[0][1] == "Asian")
    assert asian.allocated == 100 and not asian.settles and "cannot settle" in asian.reason


def test_expected_interval_is_wilson_at_the_new_denominator(snap):
    s = with_needs(snap, [need("Black", 50, 0.30, 0.10, support=100, labelled=200)])
    item = build_plan(s, 40, {(("race_ethnicity", "Black"),): 1000}).items[0]
    low, high = wilson_interval([30, 0.30 * 120], [100, 120])  # 40 labelled rows at 100 positives per 200
    assert item.ci_low == pytest.approx(low[0]) and item.expected_ci_high == pytest.approx(high[1])
    assert item.expected_width < item.ci_high - item.ci_low


def test_bad_budgets_and_no_findings(snap):
    zero = build_plan(snap, 0, plan_pools(snap))
    assert zero.allocated == 0 and "budget is 0" in zero.notes[0] and zero.items
    with pytest.raises(DataError, match="whole number"):
        build_plan(snap, -5)
    empty = build_plan(with_needs(snap, []), 100)
    assert empty.items == () and "plan is empty" in empty.notes[-1] and empty.table().empty
    assert empty.to_dict()["allocated"] == 0
    unknown = build_plan(with_needs(snap, [need("Black", 50, 0.3, 0.1)]), 80)
    assert "were not counted" in unknown.notes[0] and unknown.allocated == 80


def test_the_plan_is_in_the_snapshot_with_its_objective_budget_and_expected_widths(snap):
    pools = plan_pools(snap)
    plan = build_plan(snap, 200, pools)
    assert "data_plan" not in snap.to_dict()  # none until one is attached
    attached = attach_plan(snap, 200)
    assert attached.data_plan == plan and attached.groups is snap.groups
    section = attached.to_dict()["data_plan"]
    assert (section["budget"], section["allocated"], section["unspent"]) == (200, pools[SMALL], 200 - pools[SMALL])
    assert section["objective"] == OBJECTIVE and section["notes"] == list(plan.notes)
    (item,) = section["items"]
    assert (item["rank"], item["slice"], item["allocated"]) == (1, dict(SMALL), pools[SMALL])
    # The expected 95% interval after the plan: Wilson at the grown denominator (the plan's own rule) ...
    c = plan.items[0].candidate
    grown = c.n + pools[SMALL] * c.n / c.labelled_n
    low, high = wilson_interval(c.rate * grown, grown)
    assert item["expected_ci_width"] == pytest.approx(high[0] - low[0])
    assert item["expected_ci_width"] < item["ci_width"]
    # ... and the rows to settle it at the Benjamini-Hochberg level of the audit, far below 0.05.
    assert item["alpha"] < 0.005 and item["additional_rows"] <= pools[SMALL] and item["settles"]
    assert [s["group"] for s in section["skipped"]] == ["age_band=65+"]
    json.dumps(section, allow_nan=False)


def test_the_exported_snapshot_carries_the_plan_as_json_and_csv_with_small_cells_withheld(snap, tmp_path):
    doc = attach_plan(snap, 200).to_dict()
    validator = jsonschema.Draft202012Validator(PLAN_SCHEMA)
    shown, _ = suppress_document(doc, 10)
    withheld, summary = suppress_document(doc, 100)  # the group's labelled rows are fewer than 100
    for d in (shown, withheld):
        assert not list(validator.iter_errors(d["data_plan"])), next(validator.iter_errors(d["data_plan"])).message
    assert shown["data_plan"]["items"][0]["allocated"] > 0 and not shown["data_plan"]["items"][0]["suppressed"]
    hidden = withheld["data_plan"]["items"][0]
    assert hidden["suppressed"] and hidden["allocated"] is None and hidden["n"] is None
    assert hidden["slice"] == dict(SMALL) and summary.cells_suppressed > 0
    assert list(validator.iter_errors({**shown["data_plan"], "budget": -1}))
    assert list(validator.iter_errors({**shown["data_plan"], "items": [{"id": "x"}]}))
    # A snapshot folder: the plan in snapshot.json (schema-checked on write) and one CSV row per question.
    result = export_document(doc, tmp_path / "snap", k=10)
    assert load_snapshot(result.path)["data_plan"]["items"][0]["slice"] == dict(SMALL)
    csv = (result.path / "data_plan_items.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(csv) == 2
    assert {"rank", "allocated", "additional_rows", "alpha", "expected_ci_width"} <= set(csv[0].split(","))


def test_each_finding_has_its_place_in_the_plan(snap):
    """Every finding: its rank and rows in the plan, why it is not planned, or why labels are not its fix."""
    f0 = snap.findings[0]
    ev = {"metric": "misclassification", "support": 200, "labelled_rows": 200, "rate": 0.3, "comparison_rate": 0.2,
          "verdict": "inconclusive", "additional_rows_plan": {"additional_labelled_rows": 80, "target_rate": 0.3}}
    planned = replace(f0, id="misclassification|channel=online", slice=(("channel", "online"),), need="more_data",
                      evidence=ev)
    unplanned = replace(planned, id="misclassification|channel=mobile", slice=(("channel", "mobile"),),
                        evidence={**ev, "additional_rows_plan": {}})
    # A model finding of its own (issue 16: at 150k rows the demo's only material finding may be the noisy slice).
    modelled = replace(f0, id="misclassification|region=north", slice=(("region", "north"),), need="model")
    s = replace(snap, findings=(*snap.findings, planned, unplanned, modelled))
    plan = build_plan(s, 500, {**plan_pools(snap), (("channel", "online"),): 1000})
    places = plan_places(s, plan)
    assert set(places) == {f.id for f in s.findings}
    k, item = next((k, i) for k, i in enumerate(plan.items, 1) if i.candidate.id == planned.id)
    assert item.settles and places[planned.id] == (
        f"#{k} of {len(plan.items)} in the plan: {item.allocated:,} labelled rows planned, 80 settle it")
    assert places[unplanned.id] == "not planned: the power rule gives no number of rows that would settle it"
    noisy = next(f for f in snap.findings if set(f.slice) == set(NOISY))
    assert places[noisy.id] == "in the labelling queue: its suspected label errors, to re-check"
    model = [f for f in s.findings if f.need == "model"]
    assert model and all(places[f.id].endswith("the model needs the fix") for f in model)
    # A budget too small to settle it: its rows so far, and that they do not settle it.
    short = build_plan(s, 40, {**plan_pools(snap), (("channel", "online"),): 1000})
    k, item = next((k, i) for k, i in enumerate(short.items, 1) if i.candidate.id == planned.id)
    assert not item.settles and plan_places(s, short)[planned.id] == (
        f"#{k} of {len(short.items)} in the plan: {item.allocated:,} labelled rows planned, of the 80 that would "
        f"settle it")


def test_data_plan_page_draws_chart_queue_and_downloads(demo_path, monkeypatch):
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(demo_path.parent))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(demo_path.parent / "fairwatch.toml"))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "app.py"), default_timeout=90).run()
    at.switch_page("pages/8_Data_plan.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("vega_lite_chart")) >= 1 and len(at.dataframe) >= 2
    assert any("Pacific Islander" in str(c.value) for c in at.caption) or "Pacific Islander" in at.dataframe[0].value.to_string()
    at.slider(key="fw.plan.budget").set_value(0).run()
    assert not at.exception and any("budget is 0" in i.value for i in at.info)
