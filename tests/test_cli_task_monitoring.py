"""`fairwatch trends`, `check` and `diff` on the regression and multiclass demos (issue 19): the planted change
over time (model v2, sex=female) shows in each, and bad inputs are one line with exit 2."""

from __future__ import annotations

import json

import pytest

from fairwatch.cli import main
from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.config import load_spec
from fairwatch.connectors.demo_tasks import TASK_PLANTED_OVER_TIME
from fairwatch.connectors.export import export_snapshot
from fairwatch.metrics.audit.spec import RowFilter

RULES = {"regression": "mae_ratio > 1.25 for any sex group", "multiclass": "accuracy difference < -0.05 for any sex group"}
METRIC = {"regression": "mean_absolute_error", "multiclass": "accuracy"}


@pytest.fixture(scope="module", params=["regression", "multiclass"])
def demo(request, tmp_path_factory):
    """A 40k-row demo of the task (half a year, v1 then v2) and its config, written by `fairwatch demo`."""
    task = request.param
    root = tmp_path_factory.mktemp(f"cli-{task}")
    db, toml = root / "demo.duckdb", root / "fairwatch.toml"
    assert main(["demo", "--task", task, "--rows", "40000", "--out", str(db), "--config-out", str(toml)]) == 0
    return task, root, toml


def test_demo_plants_the_change_over_time(demo):
    """The generator documents its effects over time; the config names the time and version columns."""
    task, _, toml = demo
    spec = load_spec(toml)
    assert spec.time == "scored_at" and spec.model_version == "model_version"
    assert {p.model_version for p in TASK_PLANTED_OVER_TIME[task]} == {"v2", None}


def test_trends_prints_windows_and_the_v2_change(demo, capsys, tmp_path):
    """26 weekly windows with coverage, the task's metric per sex group, v2 worse for women, a CSV of every row."""
    task, _, toml = demo
    csv = tmp_path / "trends.csv"
    assert main(["trends", "--config", str(toml), "--versions", "v1", "v2", "--csv", str(csv)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("26 weeks, 40,000 rows")
    assert "week of 2025-06-30 sex=female" in out
    worse = out.split("significantly worse:")[1].split("significantly better")[0]
    assert "sex=female" in worse and "sex=male —" not in worse
    assert METRIC[task] in csv.read_text()
    assert main(["trends", "--config", str(toml), "--csv", str(csv)]) == 2  # never overwritten
    assert main(["trends", "--config", str(toml), "--metric", "false_negative_rate"]) == 2
    err = capsys.readouterr().err
    assert "no metric false_negative_rate" in err and len(err.strip().splitlines()) == 2


def test_check_fires_the_tasks_rule_on_the_latest_week(demo, capsys):
    """Exit 1 with the rule fired for sex=female in v2's last week; as of a v1 week it stays quiet (exit 0)."""
    task, _, toml = demo
    assert main(["check", "--config", str(toml), "--rule", RULES[task], "--rule", "psi of age_band > 0.05",
                 "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in result["rules"]] == ["fired", "fired"]
    assert [h["group"] for h in result["rules"][0]["hits"]] == ["sex=female"]
    assert main(["check", "--config", str(toml), "--rule", RULES[task], "--now", "2025-03-05"]) == 0
    assert main(["check", "--config", str(toml), "--rule", "fnr ratio > 1.25"]) == 2
    err = capsys.readouterr().err
    assert f"unknown metric for a {task} audit" in err and len(err.strip().splitlines()) == 1


def test_diff_and_follow_up_between_v1_and_v2_audits(demo, capsys):
    """v1's audit against v2's: the women's gap is a new finding, the task's metrics moved, and v1's planted
    findings are followed into v2 (still gaps)."""
    task, root, toml = demo
    spec = load_spec(toml)
    old = export_snapshot(run_audit(spec, RowFilter(model_version="v1")), root / "history" / "v1").path
    new = export_snapshot(run_audit(spec, RowFilter(model_version="v2")), root / "history" / "v2").path
    assert main(["diff", str(old), str(new), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    # Regression: women's MAE ratio ~1.7; multiclass: accuracy 0.86x is inside the band, a class's FPR is not.
    assert any(f["id"].endswith("|sex=female") for f in doc["new_findings"])
    assert any(m["metric"] == METRIC[task] and m["group"] == "sex=female" for m in doc["moved"])
    followed = {f["id"]: f["status"] for f in doc["follow_up"]}
    assert followed and all(s in ("unchanged", "improved", "worse", "resolved", "still_undecided")
                            for s in followed.values())
    assert f"{METRIC[task]}|sex=female" not in followed  # not a finding under v1
    assert main(["diff", str(old), str(new), "--fail-on-new"]) == 1
    text = capsys.readouterr().out
    assert "sex=female" in text
