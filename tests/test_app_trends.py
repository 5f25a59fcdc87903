"""The Trends page and the Overview's trend arrows: AppTest on the small demo, and the arrow and gap rules on
made-up numbers whose answer is known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.connectors.config import load_spec, write_config
from fairwatch.metrics.policy.overview import STEADY, Disparity, coverage_arrow, gap_arrow, trend_arrows, window_text
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.presentation.charts import trend_chart
from fairwatch.metrics.presentation.trend_views import trend_points
from fairwatch.metrics.presentation.text import md_unescape
from tests.test_app import ROOT, _app, _clean, demo_dir, env  # noqa: F401 - fixtures shared with the other page tests

PAGE = "pages/6_Trends.py"


def _trends() -> AppTest:
    """The Trends page on its own (the first test also reaches it from the Overview, as a user does)."""
    at = AppTest.from_file(str(ROOT / PAGE), default_timeout=60).run()
    _clean(at)
    return at


def _caption(at, start: str) -> str:
    return next(c.value for c in at.caption if c.value.startswith(start))


def _drift_tests(at) -> pd.DataFrame:
    return next(d for d in at.dataframe if "PSI" in d.value.columns).value


def test_overview_arrows_then_every_trends_section_and_a_grain_change(env):
    at = _app().run()
    _clean(at)
    coverage = next(m for m in at.metric if m.label == "Label coverage")
    gap = next(m for m in at.metric if m.label.startswith("Largest gap"))
    assert coverage.delta == STEADY or coverage.delta.endswith("pts")
    assert gap.delta == STEADY or "×" in gap.delta or gap.delta.startswith("no trend")
    at.switch_page(PAGE).run()
    _clean(at)
    assert [h.value for h in at.subheader] == ["Metrics over time", "Label coverage", "Model versions side by side",
                                               "Population drift", "Alerts"]
    assert len(at.get("vega_lite_chart")) == 5  # metrics, coverage, versions, shares, PSI
    assert len(at.dataframe) >= 4
    assert "Windows are weeks" in _caption(at, "Windows are")
    assert any("no [alerts] rules" in i.value for i in at.info)
    weeks = len(at.dataframe[1].value)
    at.selectbox(key="fw.trend.grain").select("month").run()
    _clean(at)
    assert "Windows are months" in _caption(at, "Windows are")
    coverage = at.dataframe[1].value
    assert len(coverage) == 12 < weeks
    assert coverage["n"].sum() == 100_000


def test_version_pair_and_baseline_change_the_comparison(env):
    at = _trends()
    worse = next(md_unescape(m.value) for m in at.markdown
                 if m.value.startswith("**Significantly worse under v2 than under v1"))
    assert "race_ethnicity=Black" in worse  # the demo's planted v2 effect
    drift = _drift_tests(at)
    assert (drift.loc[drift["Groups of"] == "age_band", "PSI"] > 0.05).all()  # 65+ falls from ~12% to ~4%
    at.selectbox(key="fw.trend.version_a").select("v2")
    second = at.selectbox(key="fw.trend.baseline.week").options[1]
    at.selectbox(key="fw.trend.baseline.week").select(second).run()
    _clean(at)
    assert at.selectbox(key="fw.trend.version_b.v2").options == ["v1"]
    assert any(m.value.startswith("**Significantly better under v1 than under v2") for m in at.markdown)
    assert _drift_tests(at)["Baseline n"].iloc[0] != drift["Baseline n"].iloc[0]


def test_a_rule_is_checked_and_a_bad_rule_is_one_error_line(env):
    at = _trends()
    at.text_input(key="fw.trend.rule").input("psi of age_band > 0.01").run()
    _clean(at)
    table = at.dataframe[-1].value
    assert table["Rule"].tolist() == ["psi of age_band > 0.01"] and "fired" in table["Status"].iloc[0]
    at.text_input(key="fw.trend.rule").input("fnr ratio >> 1.25").run()
    assert not at.exception
    assert len(at.error) == 1 and "expected a number" in at.error[0].value
    assert "\n" not in at.error[0].value and "Traceback" not in at.error[0].value
    assert len(at.get("vega_lite_chart")) == 5  # the other sections still drew


# --------------------------------------------------------------------------- the rules on known numbers


def _coverage(labelled: list[int], rows: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"window": pd.date_range("2025-01-06", periods=len(rows), freq="W-MON"), "rows": rows,
                         "labelled_rows": labelled, "label_coverage": np.divide(labelled, rows)})


def test_coverage_arrow_only_beyond_its_interval():
    assert coverage_arrow(_coverage([90, 88], [100, 100]), "week").delta == STEADY  # 2 points on n=100: noise
    drop = coverage_arrow(_coverage([9000, 6000], [10000, 10000]), "week")
    assert (drop.delta, drop.arrow, drop.colour) == ("-30.0 pts", "down", "orange")
    assert "60.0% of 10,000 rows vs 90.0% of 10,000" in drop.detail  # every share with its n
    assert coverage_arrow(_coverage([5], [10]), "week").delta is None  # one window: nothing to compare


def _gap_rows(own: list[tuple[float, int]], ref: list[tuple[float, int]], masked: tuple[bool, ...] = ()) -> pd.DataFrame:
    windows = pd.date_range("2025-01-06", periods=len(own), freq="W-MON")
    masked = masked or (False,) * len(own)
    frames = [pd.DataFrame({"window": windows, "grouping": "g", "metric": "false_negative_rate", "group": name,
                            "value": [v for v, _ in pairs], "support": [n for _, n in pairs],
                            "masked": list(flags)})
              for name, pairs, flags in (("g=b", own, masked), ("g=a", ref, (False,) * len(own)))]
    return pd.concat(frames, ignore_index=True)


WORST = Disparity("g", "g=b", "false_negative_rate", 0.2, 0.1, 0.3, 100, "g=a", 0.1, 1000, 2.0, 1.5, 2.5, 0.01,
                  "outside")


def test_the_largest_gap_is_named_without_a_time_column():
    """No windows, no arrows; the Overview's largest-gap number still says which gap it is (an empty metric label
    was what the law school file, which has no time column, got)."""
    arrows = trend_arrows(None, WORST)
    assert arrows.gap.delta is None and arrows.coverage.delta is None
    assert arrows.gap_label == "Largest gap: g=b, false negative rate vs g=a"
    assert trend_arrows(None, None).gap_label == ""


def test_gap_arrow_uses_the_latest_measurable_windows_and_its_interval():
    widening = gap_arrow(_gap_rows([(0.10, 5000), (0.20, 5000)], [(0.10, 5000), (0.10, 5000)]), WORST, "week")
    assert (widening.arrow, widening.colour) == ("up", "red") and "widening" in widening.delta
    noisy = gap_arrow(_gap_rows([(0.10, 40), (0.15, 40)], [(0.10, 40), (0.10, 40)]), WORST, "week")
    assert noisy.delta == STEADY
    # The last window is masked for the group: the two before it are compared, and the text says which.
    skipped = gap_arrow(_gap_rows([(0.20, 5000), (0.10, 5000), (np.nan, 3)], [(0.1, 5000)] * 3,
                                  masked=(False, False, True)), WORST, "week")
    assert (skipped.arrow, skipped.colour) == ("down", "green") and "2025-01-13 vs week of 2025-01-06" in skipped.description
    assert gap_arrow(_gap_rows([(np.nan, 3)] * 2, [(0.1, 50)] * 2, masked=(True, True)), WORST, "week").delta \
        .startswith("no trend")


def test_trend_points_keep_gaps_as_empty_values_and_flag_lone_windows():
    rows = pd.DataFrame({
        "window": pd.date_range("2025-01-06", periods=5, freq="W-MON"), "grouping": "g", "group": "g=a",
        "metric": "selection_rate", "value": [0.5, 0.0, 0.4, 0.0, 0.3], "ci_low": 0.1, "ci_high": 0.9,
        "support": [50, 3, 50, 2, 50], "masked": [False, True, False, True, False]})
    pts = trend_points(rows, "g", ["selection_rate"])
    assert pts["value"].isna().tolist() == [False, True, False, True, False]  # never a zero
    assert pts["isolated"].tolist() == [True, False, True, False, True]
    assert pts["shown"].iloc[1] == "too few rows (n=3)"


@pytest.mark.parametrize("grain, text", [("week", "week of 2025-01-06"), ("month", "January 2025"),
                                         ("day", "2025-01-06")])
def test_window_text(grain, text):
    assert window_text(pd.Timestamp("2025-01-06"), grain) == text


def test_the_configs_alert_rules_are_listed_with_where_they_fired(demo_dir, monkeypatch, tmp_path):
    raw = load_spec(demo_dir / "fairwatch.toml").to_dict()
    rules = ["psi of age_band > 0.01", "false_negative_rate ratio > 1.25 for any race_ethnicity group"]
    write_config(parse_spec({**raw, "alerts": {"rules": rules, "grain": "month"}}), tmp_path / "alerts.toml")
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(demo_dir))
    monkeypatch.setenv("FAIRWATCH_CONFIG", str(tmp_path / "alerts.toml"))
    at = _trends()
    table = at.dataframe[-1].value
    assert table["Rule"].tolist() == rules
    assert "fired" in table.loc[0, "Status"] and "age_band: PSI" in table.loc[0, "Fired for"]
    assert any(md_unescape(c.value).startswith("period 2025-12-01") for c in at.caption)  # the latest month, as [alerts] asks


def test_trend_chart_breaks_lines_at_gaps_and_every_mark_tells_n():
    rows = pd.DataFrame({
        "window": pd.date_range("2025-01-06", periods=3, freq="W-MON"), "grouping": "g", "group": "g=a",
        "metric": "selection_rate", "value": [0.5, np.nan, 0.4], "ci_low": [0.4, np.nan, 0.3],
        "ci_high": [0.6, np.nan, 0.5], "support": [50, 3, 50], "masked": [False, True, False]})
    spec = trend_chart(trend_points(rows, "g", ["selection_rate"]), ["g=a"], "rate", facet=True).to_dict()
    band, line, lone = spec["spec"]["layer"]
    assert band["mark"]["invalid"] == line["mark"]["invalid"] == "break-paths-show-domains"  # a gap, not a join
    assert {"field": "support", "title": "n", "type": "quantitative", "format": ","} in line["encoding"]["tooltip"]
    assert lone["transform"] == [{"filter": "datum.isolated"}]
    values = next(iter(spec["datasets"].values()))
    assert [v["value"] for v in values] == [0.5, None, 0.4]  # the masked window travels as null, never 0


def test_arrows_from_the_gap_grouping_alone_equal_those_from_every_grouping(demo_dir):  # noqa: F811
    """The Overview counts only the largest gap's features per window: its arrows equal the full trend table's,
    for every one of the demo's worst gaps (single features and intersections)."""
    from fairwatch.connectors.audit import run_audit
    from fairwatch.connectors.config import load_spec
    from fairwatch.connectors.monitor import run_trends
    from fairwatch.connectors.source import open_source
    from fairwatch.metrics.policy.overview import arrow_spec, trend_arrows, worst_disparities
    from fairwatch.metrics.audit.spec import RowFilter

    spec = load_spec(demo_dir / "fairwatch.toml")
    src = open_source(spec.source)
    full = run_trends(spec, None, RowFilter(), src)
    rows = run_audit(spec, RowFilter(), src, search_slices=False).groups.rows
    worst = [*worst_disparities(rows, spec.sensitive, limit=6), *worst_disparities(rows, spec.sensitive[1:2], limit=2)]
    assert any(" × " in w.grouping for w in worst) and any(" × " not in w.grouping for w in worst)
    for gap in [*worst, None]:
        narrowed = arrow_spec(spec, gap)
        assert set(narrowed.sensitive) == (set(gap.grouping.split(" × ")) if gap else {spec.sensitive[0]})
        assert trend_arrows(run_trends(narrowed, None, RowFilter(), src), gap) == trend_arrows(full, gap)
    src.close()
