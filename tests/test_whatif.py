"""The what-if on the demo, on every bad input, in the CLI and on the Performance page."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.cli import main
from fairwatch.connectors.config import write_config
from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
from fairwatch.connectors.whatif import run_whatif
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.audit.spec import RowFilter, parse_spec
from fairwatch.metrics.policy.whatif import (
    Objective,
    Tolerance,
    WhatIfError,
    fit_thresholds,
    raw_cells,
)
from fairwatch.metrics.policy.whatif_result import (
    split_ranges,
)
from tests.demo_data import point_app_at

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A 200k-row demo and its spec."""
    folder = tmp_path_factory.mktemp("whatif-demo")
    write_demo(folder / "demo.duckdb", rows=200_000)
    spec = parse_spec(DEMO_CONFIG)
    spec = spec.with_source(replace(spec.source, path=str(folder / "demo.duckdb")))
    write_config(spec, folder / "fairwatch.toml")
    return spec, folder


def _fnr(result_range, group):
    """A group's FNR today and with the what-if."""
    r = result_range.rates
    row = r[(r["metric"] == "false_negative_rate") & (r["group"] == group)].iloc[0]
    return row["today"], row["whatif"]


def test_demo_fnr_parity_under_v2_removes_the_gap_and_says_what_survives(demo):
    """The planted v2 false-negative gap (Black applicants) is gone on the fit range; the later month says how much is left."""
    spec, _ = demo
    result = run_whatif(spec, ["race_ethnicity"], "false_negative_rate_parity", row_filter=RowFilter(model_version="v2"),
                        grain="month")
    black, white = "race_ethnicity=Black", "race_ethnicity=White"
    today_b, whatif_b = _fnr(result.fitted, black)
    today_w, whatif_w = _fnr(result.fitted, white)
    # The planted gap (young Black applicants, v2), diluted over the whole group, is there today.
    assert today_b / today_w > 1.03
    assert whatif_b == pytest.approx(whatif_w, abs=1e-9)  # and gone with the what-if
    assert result.fitted.gap_whatif == pytest.approx(0, abs=1e-9) and result.fitted.gap_today > 0.01
    # Evaluated on December only, which the fit never saw; the summary says how much of the gap survives.
    assert result.eval_filter.time_from.startswith("2025-12-01")
    assert result.fit_filter.time_to.startswith("2025-11-30")
    assert result.later is not None and not result.later.too_small
    later = result.summary()[-1]
    assert "never seen by the fit" in later and "survives" in later
    assert np.isfinite(result.survival())
    # Pacific Islander has too few labelled rows: left at today's decisions, and said so.
    kept = {r.group: r for r in result.fit.rules if r.kept}
    assert "race_ethnicity=Pacific Islander" in kept and "min_support" in kept["race_ethnicity=Pacific Islander"].note
    assert "left at today's decisions" in result.summary()[0]


def test_demo_fnr_parity_on_race_by_age_removes_the_planted_slice_gap(demo):
    """On race × age the planted slice itself (Black, 18-24: FNR about twice the rest) is equalised on the fit range."""
    spec, _ = demo
    result = run_whatif(spec, ["race_ethnicity", "age_band"], "false_negative_rate_parity",
                        row_filter=RowFilter(model_version="v2"), grain="month")
    slice_, ref = "race_ethnicity=Black, age_band=18-24", "race_ethnicity=White, age_band=35-44"
    today_s, whatif_s = _fnr(result.fitted, slice_)
    today_r, whatif_r = _fnr(result.fitted, ref)
    assert today_s / today_r > 1.5
    assert whatif_s == pytest.approx(whatif_r, abs=1e-9)


def test_demo_default_split_says_the_latest_week_is_too_small(demo):
    """Fit on all but the latest week; the last week has hardly any labels yet, and the summary says so."""
    spec, _ = demo
    result = run_whatif(spec, ["race_ethnicity"], "demographic_parity", row_filter=RowFilter(model_version="v2"))
    assert result.later is not None and result.later.too_small
    assert "wait for more labels" in result.summary()[-1]


def test_split_ranges_fit_all_but_the_latest_window():
    """Windows as metrics/monitoring/trends.py defines them (ISO weeks from Monday)."""
    fit, later, grain, _ = split_ranges(pd.Timestamp("2025-01-01"), pd.Timestamp("2025-03-12 10:00"), RowFilter())
    assert grain == "week"
    assert later.time_from == "2025-03-10T00:00:00" and fit.time_to == "2025-03-09T23:59:59.999999"
    fit, later, _, note = split_ranges(pd.Timestamp("2025-01-01"), pd.Timestamp("2025-01-01 20:00"), RowFilter())
    assert later is None and "single day" in note


def test_no_score_says_there_is_nothing_to_optimise(demo):
    """Without a score column the what-if refuses with the reason."""
    spec, _ = demo
    with pytest.raises(DataError, match="nothing to optimise"):
        run_whatif(replace(spec, score=None), ["race_ethnicity"], "demographic_parity")


def coarse(seed: int = 0, rows: int = 4000) -> pd.DataFrame:
    """Deciles, two groups with different score distributions."""
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 2, rows)
    y = (rng.random(rows) < 0.4 + 0.1 * g).astype(int)
    score = np.clip(np.round(rng.normal(4 + 3 * y + g, 2)), 1, 10)
    return pd.DataFrame({"g": g.astype(str), "score": score, "y": y, "pred": (score >= 5).astype(int)})


def test_an_impossible_constraint_is_said_plainly_with_the_closest_achievable():
    """Deterministic thresholds on deciles cannot make selection rates 0.001 apart: not feasible, closest shown."""
    cells = raw_cells(coarse(), ["g"], "score", "y", "pred")
    fit = fit_thresholds(cells, "demographic_parity", tolerance=Tolerance("difference", 0.001), randomise=False)
    assert not fit.feasible
    assert "no single threshold per group makes the rates" in fit.message and "closest achievable" in fit.message
    spread = fit.chosen["x"].max() - fit.chosen["x"].min()
    assert f"{spread:.3f}" in fit.message
    # With randomisation the same constraint is met exactly.
    assert fit_thresholds(cells, "demographic_parity", tolerance=Tolerance("difference", 0.001)).feasible


def test_small_groups_stay_at_todays_decisions():
    """A group below min_support keeps today's decisions and the message says so."""
    frame = coarse()
    frame.loc[frame.index[:20], "g"] = "tiny"
    cells = raw_cells(frame, ["g"], "score", "y", "pred")
    fit = fit_thresholds(cells, "false_negative_rate_parity", min_support=30)
    tiny = fit.rule_of("g=tiny")
    assert tiny.kept and "min_support 30" in tiny.note and "g=tiny" in fit.message
    today = cells[cells["group"] == "g=tiny"]
    assert np.array_equal(tiny.yes_probability(today["score"], today["y_pred"]), today["y_pred"].to_numpy(float))


@pytest.mark.parametrize("kwargs, message", [
    ({"constraint": "equal_everything"}, "unknown constraint"),
    ({"constraint": "equalized_odds", "randomise": False}, "needs randomised decisions"),
])
def test_bad_choices_are_one_line_errors(kwargs, message):
    """Unknown constraints and combinations without a meaning are refused with a message."""
    cells = raw_cells(coarse(), ["g"], "score", "y", "pred")
    with pytest.raises(WhatIfError, match=message):
        fit_thresholds(cells, **kwargs)


def test_bad_objective_and_tolerance_values_are_refused():
    """Negative costs, an unknown objective, a band without 1 in it."""
    with pytest.raises(WhatIfError, match="costs"):
        Objective("cost", -1, 1)
    with pytest.raises(WhatIfError, match="unknown objective"):
        Objective("recall")
    with pytest.raises(WhatIfError, match="must contain 1"):
        Tolerance("band", low=1.1, high=1.3)


def test_one_group_only_is_nothing_to_equalise():
    """Fewer than two groups with enough rows: refused, not a vacuous pass."""
    cells = raw_cells(coarse().assign(g="a"), ["g"], "score", "y", "pred")
    with pytest.raises(WhatIfError, match="fewer than two groups"):
        fit_thresholds(cells, "demographic_parity")


def test_cost_objective_prefers_fewer_false_negatives_when_they_cost_more():
    """A false negative ten times as costly moves the thresholds down (more yes decisions)."""
    cells = raw_cells(coarse(), ["g"], "score", "y", "pred")
    even = fit_thresholds(cells, "true_positive_rate_parity", Objective("cost", 1, 1))
    costly_fn = fit_thresholds(cells, "true_positive_rate_parity", Objective("cost", 10, 1))
    assert costly_fn.chosen["x"].iloc[0] > even.chosen["x"].iloc[0]


def test_band_tolerance_keeps_each_rate_within_the_band_of_the_reference():
    """The policy band as tolerance: every group's rate within [0.8, 1.25] × the reference's, objective no worse."""
    cells = raw_cells(coarse(), ["g"], "score", "y", "pred")
    exact = fit_thresholds(cells, "false_negative_rate_parity")
    band = fit_thresholds(cells, "false_negative_rate_parity", tolerance=Tolerance("band", reference="g=0"))
    x = dict(zip(band.chosen["group"], band.chosen["x"]))
    assert 0.8 - 1e-9 <= x["g=1"] / x["g=0"] <= 1.25 + 1e-9
    assert band.objective_value >= exact.objective_value - 1e-12


def test_cli_whatif_prints_rules_and_writes_the_policy(demo, tmp_path, capsys):
    """fairwatch whatif: summary, one rule per group, a JSON policy file with what the issue asks for."""
    _, folder = demo
    out = tmp_path / "policy.json"
    code = main(["whatif", "--config", str(folder / "fairwatch.toml"), "--group", "race_ethnicity", "--constraint",
                 "false_negative_rate_parity", "--version", "v2", "--grain", "month", "--policy-out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "race_ethnicity=Black: score >" in text
    policy = json.loads(out.read_text())
    assert policy["constraint"] == "false_negative_rate_parity" and policy["objective"]["name"] == "accuracy"
    assert policy["fit_range"]["time_to"].startswith("2025-11-30") and len(policy["fingerprint"]["digest"]) == 64
    black = next(g for g in policy["groups"] if g["group"] == "race_ethnicity=Black")
    assert black["p0"] + black["p1"] == pytest.approx(1) and isinstance(black["threshold0"], float)


def test_cli_whatif_without_score_is_exit_2(demo, capsys):
    """No score: exit 2 and the reason in one line."""
    _, folder = demo
    code = main(["whatif", "--config", str(folder / "fairwatch.toml"), "--group", "race_ethnicity", "--constraint",
                 "demographic_parity", "--score", ""])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1


def test_performance_page_what_if_section(demo, monkeypatch):
    """The page draws the curves, both ranges and a JSON download, with no error."""
    _, folder = demo
    point_app_at(monkeypatch, folder)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/3_Performance.py").run()
    charts = len(at.get("vega_lite_chart"))
    at.toggle(key="fw.whatif.on").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    assert len(at.get("vega_lite_chart")) == charts + 1
    assert [s.value for s in at.success] == ["Thresholds found that meet the constraint on the fit range."]
    assert any("false negative rate parity" in t.value for t in at.text)
    assert len(at.get("download_button")) >= 1


def test_snapshot_carries_the_whatif_valid_and_small_groups_withheld(demo, tmp_path):
    """`fairwatch audit --whatif-group` puts the what-if into snapshot.json (schema-valid), the report and CSVs;
    a group below k has its rates and changed decisions withheld."""
    import jsonschema

    _, folder = demo
    out = tmp_path / "audit"
    assert main(["audit", "--config", str(folder / "fairwatch.toml"), "--out", str(out), "--whatif-group",
                 "race_ethnicity", "--suppress-below", "40"]) == 0
    doc = json.loads((out / "snapshot.json").read_text())
    jsonschema.validate(doc, json.loads((ROOT / "schema" / "snapshot.schema.json").read_text()))
    whatif = doc["whatif"]
    assert whatif["policy"]["constraint"] == "false_negative_rate_parity"
    small = [r for r in whatif["fit_changes"] if r["group"] == "race_ethnicity=Pacific Islander"]
    assert small and small[0]["suppressed"] and small[0]["no_to_yes"] is None
    assert "What would meet the policy" in (out / "report.html").read_text()
    assert (out / "whatif_fit_rates.csv").is_file()


def test_performance_page_without_a_score_says_why_there_is_nothing_to_optimise(demo, monkeypatch, tmp_path):
    """A spec without a score: the What if section explains itself instead of drawing nothing."""
    spec, folder = demo
    write_config(replace(spec, score=None), tmp_path / "fairwatch.toml")
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(folder))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(tmp_path / "fairwatch.toml"))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/3_Performance.py").run()
    assert not at.exception and not at.error
    assert any("nothing to optimise" in i.value for i in at.info)


def test_todays_decisions_are_exact_when_scores_are_finer_than_the_buckets():
    """score >= threshold is decided in SQL per row, not from the bucket: rates and changes equal pandas on raw rows.

    Scores carry 7+ decimals and half of them lie within half a bucket (0.0005) of the threshold, where the
    bucketed score would put a row on the wrong side of today's decision.
    """
    from fairwatch.connectors.source import open_frame
    from fairwatch.metrics.audit.spec import parse_spec

    rng = np.random.default_rng(20)
    rows = 4000
    g = rng.choice(["a", "b"], rows)
    near = rng.random(rows) < 0.5
    score = np.where(near, 0.5 + rng.uniform(-0.0005, 0.0005, rows), rng.random(rows))
    y = (rng.random(rows) < np.where(g == "a", 0.3, 0.5) + 0.3 * (score - 0.5)).astype(int)
    frame = pd.DataFrame({"g": g, "score": score, "y": y})
    spec = parse_spec({"source": {"path": "x"}, "columns": {"label": "y", "score": "score", "threshold": 0.5,
                                                            "sensitive": ["g"]}, "policy": {"min_support": 1}})
    src = open_frame(frame)
    try:
        result = run_whatif(spec, ["g"], "true_positive_rate_parity", src=src, fit_filter=RowFilter())
    finally:
        src.close()
    today = (frame["score"] >= 0.5).astype(int)
    # Bucketing would move these rows across today's threshold: the test only bites if there are some.
    bucketed = (np.floor(frame["score"] * 1000 + 0.5) / 1000 >= 0.5).astype(int)
    assert (bucketed != today).sum() > 100
    rates = result.fitted.rates.set_index(["group", "metric"])
    changes = result.fitted.changes.set_index("group")
    for name, sub in frame.groupby("g"):
        label = f"g={name}"
        t, yy = today[sub.index], sub["y"]
        assert rates.loc[(label, "selection_rate"), "today"] == pytest.approx(t.mean(), rel=1e-12)
        assert rates.loc[(label, "true_positive_rate"), "today"] == pytest.approx(t[yy == 1].mean(), rel=1e-12)
        assert rates.loc[(label, "false_positive_rate"), "today"] == pytest.approx(t[yy == 0].mean(), rel=1e-12)
        rule = result.fit.rule_of(label)
        # The rule on the raw score: bucket(s) > t  <=>  s > t for a midpoint t (no raw score sits on one).
        p = rule.yes_probability(sub["score"].to_numpy(), t.to_numpy())
        assert changes.loc[label, "no_to_yes"] == pytest.approx(((1 - t) * p).sum(), rel=1e-9, abs=1e-9)
        assert changes.loc[label, "yes_to_no"] == pytest.approx((t * (1 - p)).sum(), rel=1e-9, abs=1e-9)
