"""Charts and display tables: valid Vega-Lite, tooltips with n, intervals drawn, masked values never a number."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.presentation import charts
from fairwatch.metrics.policy.overview import HEADLINE_METRICS, worst_disparities
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.stats.threshold import threshold_curves
from fairwatch.metrics.presentation.views import (disparity_points, fit_tests_table, groupings_shown, intersection_cells, masked_groups,
                           metric_table, rate_points, representation_table, share_points, worst_points, worst_table)


@pytest.fixture(scope="module")
def snap():
    rng = np.random.default_rng(5)
    n = 6000
    df = pd.DataFrame({"sex": rng.choice(["f", "m"], n), "race": rng.choice(["A", "B", "C"], n, p=[.6, .395, .005]),
                       "y": rng.integers(0, 2, n), "p": rng.integers(0, 2, n)})
    df.loc[df.index[:40], "sex"] = None  # a (missing) group
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "y", "prediction": "p", "sensitive": ["sex", "race"]},
                       "reference_shares": {"race": {"A": 0.5, "B": 0.4, "C": 0.1}}, "policy": {"min_support": 30}})
    return run_audit(spec, src=open_frame(df))


def _marks(spec: dict) -> list[dict]:
    """Every unit spec (with a mark) inside a Vega-Lite dict."""
    out = []
    if "mark" in spec:
        out.append(spec)
    for key in ("layer", "vconcat", "hconcat", "concat"):
        for sub in spec.get(key, []):
            out += _marks(sub)
    if "spec" in spec:
        out += _marks(spec["spec"])
    return out


def _check(chart) -> list[dict]:
    """Validate against the Vega-Lite schema; every data mark has a tooltip (rules for bands may not)."""
    spec = chart.to_dict(validate=True)
    marks = _marks(spec)
    data_marks = [m for m in marks if "tooltip" in m.get("encoding", {})]
    assert data_marks, "no mark has a tooltip"
    return marks


def _has_interval(marks: list[dict], low: str, high: str) -> bool:
    return any(m["encoding"].get("x", {}).get("field") == low and m["encoding"].get("x2", {}).get("field") == high
               or m["encoding"].get("y", {}).get("field") == low and m["encoding"].get("y2", {}).get("field") == high
               for m in marks if "encoding" in m)


def test_rate_and_disparity_charts_draw_intervals_and_the_band(snap):
    rows = snap.groups.rows
    groups = rows.loc[rows["grouping"] == "race", "group"].unique()
    marks = _check(charts.rate_chart(rate_points(rows, "race", HEADLINE_METRICS), groups))
    assert _has_interval(marks, "ci_low", "ci_high")
    marks = _check(charts.disparity_chart(disparity_points(rows, "race", HEADLINE_METRICS), groups, 0.8, 1.25))
    assert _has_interval(marks, "ratio_ci_low", "ratio_ci_high")
    band = [m for m in marks if m["mark"].get("type") == "rect"]
    assert band and band[0]["encoding"]["x"]["datum"] == 0.8 and band[0]["encoding"]["x2"]["datum"] == 1.25


def test_tooltips_carry_n(snap):
    rows = snap.groups.rows
    groups = rows.loc[rows["grouping"] == "sex", "group"].unique()
    for chart in (charts.rate_chart(rate_points(rows, "sex", HEADLINE_METRICS), groups),
                  charts.share_chart(share_points(snap.representation, "sex"), groups)):
        titles = [t.get("title") for m in _marks(chart.to_dict()) for t in m["encoding"].get("tooltip", [])]
        assert "n" in titles


def test_group_colours_are_stable_and_missing_is_grey():
    a = charts.group_colours(["race=B", "race=A", "race=(missing)"])
    b = charts.group_colours(["race=A", "race=(missing)", "race=B"])
    assert a == b and a["race=(missing)"] == charts.MISSING_COLOR and a["race=A"] != a["race=B"]


def test_share_chart_heatmap_and_tables(snap):
    rep = snap.representation
    marks = _check(charts.share_chart(share_points(rep, "race"), rep["group"]))
    assert _has_interval(marks, "ci_low", "ci_high")
    assert any(m["mark"].get("type") == "tick" for m in marks)  # the reference share
    cells = intersection_cells(rep, "sex", "race", 30)
    assert len(cells) == 9 and cells["below_min_support"].any()
    assert cells.loc[cells["below_min_support"], "label"].str.contains("small").all()
    _check(charts.intersection_heatmap(cells, "sex", "race", 30))
    table = representation_table(rep, "race")
    assert table["Share"].between(0, 1).all() and (table["n"] > 0).all()
    assert fit_tests_table(snap.representation_tests)["Feature"].tolist() == ["race"]


def test_masked_values_read_too_few_rows_never_zero(snap):
    rows = snap.groups.rows
    table = metric_table(rows, "race", HEADLINE_METRICS)
    small = table[table["Group"] == "race=C"]
    assert small["Estimate (95% interval)"].str.match(r"too few rows \(n=\d+\)").all()
    assert small["Value"].isna().all()
    assert masked_groups(rows, "race", HEADLINE_METRICS)
    assert rate_points(rows, "race", HEADLINE_METRICS).query("masked")["shown"].str.startswith("too few rows").all()
    ok = table[table["Group"] == "race=A"]
    assert ok["Estimate (95% interval)"].str.match(r"0\.\d{3} \(0\.\d{3}–0\.\d{3}\)").all()


def test_worst_chart_and_table(snap):
    worst = worst_disparities(snap.groups.rows, None, limit=4)
    colours = {(d.grouping, d.group): "#123456" for d in worst}
    if worst:
        _check(charts.worst_chart(worst_points(worst, colours), 0.8, 1.25))
        assert worst_table(worst)["Group rate"].str.contains("n=").all()


def test_threshold_chart_draws_bands(snap):
    counts = pd.DataFrame({"sex": ["f", "f", "m", "m"] * 2, "race": ["A"] * 8, "label_raw": ["1", "0"] * 4,
                           "bucket": [10, 10, 60, 60, 90, 90, 30, 30], "n": [50, 40, 60, 70, 80, 30, 40, 50]})
    curves = threshold_curves(counts, ("sex",), "1", 0.0, 1.0, 100, 30)
    marks = _check(charts.threshold_chart(curves, ["sex=f", "sex=m"], 0.5, 0.4))
    assert _has_interval(marks, "ci_low", "ci_high")


def test_groupings_shown_follow_the_sidebar(snap):
    assert groupings_shown(snap.groups.rows, ["sex", "race"]) == ["sex", "race", "sex × race"]
    assert groupings_shown(snap.groups.rows, ["race"]) == ["race"]


# --------------------------------------------------------------------------- the report draws the dashboard's charts


def _unit_encodings(spec: dict) -> list[tuple]:
    """What a chart encodes, apart from its look and data: per mark, its type and each channel's field or datum,
    type, and the tooltip's fields and titles (sizes, colours' domains, scales and axis titles left out)."""
    out = []
    for m in _marks(spec):
        mark = m["mark"]["type"] if isinstance(m["mark"], dict) else m["mark"]
        channels = []
        for name, enc in sorted(m.get("encoding", {}).items()):
            if name == "tooltip":
                channels.append((name, tuple((t["field"], t.get("title")) for t in enc)))
            elif isinstance(enc, dict):
                channels.append((name, enc.get("field", "datum" if "datum" in enc else "value"), enc.get("type")))
        out.append((mark, tuple(channels), json.dumps(m.get("transform"), sort_keys=True)))
    return out


def _report_spec(model, chart_id: str) -> dict:
    """The spec of one chart of a report model."""
    return next(c.spec for c in model.charts() if c.chart_id == chart_id)


def _rows(spec: dict) -> list[dict]:
    """The rows a standalone spec draws (its one inline dataset)."""
    (values,) = spec["datasets"].values()
    return values


@pytest.fixture(scope="module")
def report(snap):
    """The report model of the fixture's audit, built from its exported document."""
    from fairwatch.metrics.presentation.report_model import build_report

    return build_report(json.loads(json.dumps(snap.to_dict(), default=str)))


def test_report_charts_are_the_dashboard_charts(snap, report):
    """Each report chart encodes exactly what the dashboard's chart of the same thing encodes (marks, fields,
    tooltips, transforms): one builder for both, whatever sizes and print colours the report chooses."""
    rows, rep = snap.groups.rows, snap.representation
    metrics = [m for m in HEADLINE_METRICS if m in set(rows["metric"])]
    race = rows.loc[rows["grouping"] == "race", "group"].unique().tolist()
    page = {
        "rates_1": charts.rate_chart(rate_points(rows, "race", metrics), race),
        "ratios": charts.disparity_chart(disparity_points(rows, "race", metrics), race, 0.8, 1.25),
        "representation": charts.share_chart(share_points(rep, "race"), rep.loc[rep["grouping"] == "race", "group"]),
    }
    for chart_id, chart in page.items():
        printed = _report_spec(report, chart_id)
        assert _unit_encodings(printed) == _unit_encodings(chart.to_dict(validate=False)), chart_id
        assert printed["config"]["font"].startswith("Liberation Sans")  # the report's own, printable look


def test_report_charts_draw_the_dashboards_numbers(snap, report):
    """The report's rates, ratios and shares are the dashboard's chart data for the same groups (from the
    exported document rather than the snapshot's frames): a second, diverging selection would fail here."""
    rows, rep = snap.groups.rows, snap.representation
    metrics = [m for m in HEADLINE_METRICS if m in set(rows["metric"])]

    def same(printed: list[dict], page: pd.DataFrame, key: list[str], values: list[str]) -> None:
        """Equal rows on `key`, equal numbers in `values` (NaN as missing)."""
        got = pd.DataFrame(printed)[key + values].sort_values(key, ignore_index=True)
        want = page[key + values].sort_values(key, ignore_index=True)
        pd.testing.assert_frame_equal(got.astype({v: float for v in values}), want.astype({v: float for v in values}),
                                      check_dtype=False)

    for feature in ("sex", "race"):
        page = rate_points(rows, feature, metrics).dropna(subset=["value"])
        page = page[~page["masked"]].assign(group=lambda d: d["group"].str.split("=", n=1).str[1])
        rates = _report_spec(report, f"rates_{0 if feature == 'sex' else 1}")
        same(_rows(rates), page, ["group", "metric_label"], ["value", "ci_low", "ci_high", "support"])
    ratios = pd.DataFrame(_rows(_report_spec(report, "ratios")))
    for feature in ("sex", "race"):
        page = disparity_points(rows, feature, metrics).assign(group=lambda d: d["group"].str.split("=", n=1).str[1])
        same(ratios[ratios["feature"] == feature].to_dict("records"), page, ["group", "metric_label"],
             ["ratio", "ratio_ci_low", "ratio_ci_high", "support"])
    shares = pd.DataFrame(_rows(_report_spec(report, "representation")))
    page = share_points(rep, "race").assign(group=lambda d: d["group"].str.split("=", n=1).str[1])
    same(shares[shares["feature"] == "race"].to_dict("records"), page, ["group"],
         ["n", "share", "ci_low", "ci_high", "reference_share"])


def test_report_specs_are_valid_vega_lite_with_data_inline(report):
    """The report never asks Altair to validate (it is slow): the tests do, once, for every chart it draws."""
    from altair.vegalite.v6.schema.core import Root

    assert len(report.charts()) >= 4
    for chart in report.charts():
        Root.validate(chart.spec)
        assert "url" not in json.dumps(chart.spec.get("data", {}))  # nothing to fetch: the rows are in the spec


def test_report_colours_each_group_as_its_page_does(snap, report):
    """A group has its dashboard colour in every report chart, also where several features share one chart."""
    rep = snap.representation
    for chart_id in ("ratios", "representation"):
        scale = next(m["encoding"]["color"]["scale"] for m in _marks(_report_spec(report, chart_id))
                     if "scale" in m.get("encoding", {}).get("color", {}))
        given = dict(zip(scale["domain"], scale["range"]))
        for feature in ("sex", "race"):
            page = charts.group_colours(rep.loc[rep["grouping"] == feature, "group"])
            assert {g.split("=", 1)[1]: c for g, c in page.items()}.items() <= given.items(), (chart_id, feature)


def test_building_a_report_model_does_not_import_altair_until_it_draws():
    """The CLI's import path stays free of Altair (issue 18: `fairwatch audit` start-up); build_report loads it."""
    import subprocess
    import sys

    code = ("import sys, fairwatch.cli, fairwatch.connectors.export, fairwatch.connectors.report, "
            "fairwatch.metrics.presentation.report_model; print('altair' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_measures_that_are_not_rates_get_their_own_axis_and_a_drawable_size():
    """A regression's errors (thousands, in the label's unit) are no rates: each measure its own zero-based axis,
    no percent format. On the 0–1 rate axis the marks would land thousands of widths away (a 4-million-pixel
    wide report chart that the PDF refused)."""
    import re

    import vl_convert as vlc

    points = pd.DataFrame({"group": ["a", "b"] * 2, "metric_label": ["Mean absolute error"] * 2 + ["Mean prediction"] * 2,
                           "value": [1046.7, 2657.9, 10671.3, 8057.5], "ci_low": [1031.8, 2621.3, 10602.0, 7963.8],
                           "ci_high": [1061.6, 2694.4, 10740.6, 8151.1], "shown": ["x"] * 4, "support": [100] * 4})
    for across in (False, True):
        spec = charts.rate_chart(points, ["a", "b"], width=170, across=across).to_dict(validate=True)
        x = _marks(spec)[0]["encoding"]["x"]
        assert x["scale"] == {"zero": True} and x["axis"]["format"] != "%" and x["title"].startswith("value")
        assert spec["resolve"]["scale"]["x"] == "independent"
        svg = vlc.vegalite_to_svg(charts.report_spec(charts.rate_chart, points, ["a", "b"], width=170, across=across))
        assert float(re.search(r'width="([\d.]+)"', svg).group(1)) < 1500
    rates = points.assign(value=[.1, .2, .3, .4], ci_low=[.05, .15, .25, .35], ci_high=[.15, .25, .35, .45])
    x = _marks(charts.rate_chart(rates, ["a", "b"]).to_dict(validate=False))[0]["encoding"]["x"]
    assert x["scale"] == {"domain": [0, 1]} and x["axis"]["format"] == "%"
