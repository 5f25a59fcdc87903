"""Data plan: the greedy objective, the expected intervals, the bad inputs, and the demo's too-small group."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from connectors.audit import run_audit
from connectors.config import write_config
from connectors.demo import DEMO_CONFIG, PLANTED, write_demo
from connectors.queue import plan_pools
from metrics.errors import DataError
from metrics.intervals import wilson_interval
from metrics.plan import OBJECTIVE, build_plan
from metrics.spec import parse_spec

SMALL = next(p.slice for p in PLANTED if p.kind == "too_small")


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
    # 200 rows exceed the group's 20 unlabelled rows: capped, said plainly; its question is settled.
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
