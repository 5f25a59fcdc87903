"""Altair charts for the pages: every rate with its interval, every mark with a tooltip that gives n.

Colours: `group_scale` maps a grouping's groups, sorted, onto one fixed palette, and every page
passes the full group list of the snapshot, so a group has the same colour on every page.

The report (report_model.py) draws the same builders' charts. Builders it uses write channels as
objects (`alt.X2(field="ci_high")`, `alt.XDatum(...)`), not shorthand strings or `alt.datum`: Altair turns
each of those through `from_dict`, which rebuilds a table of its whole schema (about 20 ms a channel).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import altair as alt
from altair.utils.schemapi import debug_mode
import numpy as np
import pandas as pd


# Tableau 10 then its lighter partners: distinguishable, and colour-blind-friendlier than the default.
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#17becf", "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#f1ce63", "#d37295",
           "#fabfd2", "#86bcb6", "#d4a6c8", "#79706e")
MISSING_COLOR = "#9e9e9e"
BAND_COLOR = "#59a14f"
FACET_WIDTH = 520
ROW_STEP = 22


def group_colours(groups: Sequence[str]) -> dict[str, str]:
    """The colour of each group of one grouping: sorted groups onto the palette; '(missing)' is grey."""
    out, i = {}, 0
    for g in sorted({str(g) for g in groups}):
        if "(missing)" in g:
            out[g] = MISSING_COLOR
        else:
            out[g] = PALETTE[i % len(PALETTE)]
            i += 1
    return out


def group_scale(groups: Sequence[str] | Mapping[str, str]) -> alt.Scale:
    """The colour scale of one grouping's groups (see `group_colours`), or of a given {group: colour}."""
    # A report chart over several features passes each feature's own colours, so a group keeps its page colour.
    colours = groups if isinstance(groups, Mapping) else group_colours(groups)
    return alt.Scale(domain=list(colours), range=list(colours.values()))


def _colour(scale: alt.Scale, legend: bool = False) -> alt.Color:
    """The group colour encoding (legend off: the y axis already names the group)."""
    return alt.Color("group:N", scale=scale, legend=alt.Legend(title="Group") if legend else None)


def _facet_row(order: Sequence[str], field: str = "metric_label") -> alt.Row:
    """Facet rows per metric (or per feature, in a report), in the order given."""
    return alt.Row(f"{field}:N", title=None, sort=list(order),
                   header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold", labelLimit=160))


def _faceted(layers: Sequence[alt.Chart], data: pd.DataFrame, width: int | str, height: alt.Step,
             row: alt.Row | None, column: alt.Column | None = None, own_x: bool = False) -> alt.FacetChart:
    """Layers in one panel per facet: as `alt.layer(...).properties(...).facet(...).resolve_scale(...)` writes it,
    built in one step (each step of that chain deep-copies the whole chart). Rows: y scales independent;
    `own_x`: each panel its own x scale (measures in different units)."""
    spec = alt.LayerChart(layer=list(layers), width=width, height=height)
    facet = alt.FacetMapping(**{k: v for k, v in (("row", row), ("column", column)) if v is not None})
    # Side by side only: the same groups on one shared y axis.
    own = {**({"y": "independent"} if row is not None else {}), **({"x": "independent"} if own_x else {})}
    if not own:
        return alt.FacetChart(data=data, spec=spec, facet=facet)
    return alt.FacetChart(data=data, spec=spec, facet=facet, resolve=alt.Resolve(scale=alt.ScaleResolveMap(**own)))


def ratio_domain(points: pd.DataFrame, low: float, high: float) -> list[float]:
    """A log-axis domain that holds the policy band and every interval, with a little room."""
    values = pd.concat([points["ratio"], points["ratio_ci_low"], points["ratio_ci_high"]]).dropna()
    values = values[values > 0]
    lo = min([low / 1.1, *values.tolist()]) / 1.05
    hi = max([high * 1.1, *values.tolist()]) * 1.05
    return [max(lo, 0.01), min(hi, 100.0)]


def report_spec(builder: Callable[..., alt.TopLevelMixin], *args: Any, config: Mapping[str, Any] | None = None,
                **kwargs: Any) -> dict[str, Any]:
    """One of the builders' charts as a standalone Vega-Lite dict for a printed report: data inline, `config` merged.

    The report draws the dashboard's own charts (one definition of every encoding); only its look
    (sizes given to the builder, fonts and colours in `config`) differs. Never validated, and Altair's
    check at each object's creation is off while the chart is built: those checks cost more than the
    drawing, and the builders' output is validated by the tests.
    """
    with debug_mode(False):
        chart = builder(*args, **kwargs)
        if isinstance(chart.data, pd.DataFrame):
            # pandas writes the rows as JSON in one call; Altair's own conversion cleans them column by column.
            chart.data = {"values": json.loads(chart.data.to_json(orient="records", date_format="iso"))}
        spec = chart.to_dict(validate=False)
    spec["config"] = {**spec.get("config", {}), **(config or {})}
    return spec


def rate_chart(points: pd.DataFrame, groups: Sequence[str], *, width: int = FACET_WIDTH,
               across: bool = False) -> alt.FacetChart:
    """Per metric, one point per group with its 95% interval as an error bar (all on the same 0–1 axis).

    `points`: group, metric_label, value, ci_low, ci_high, shown, support (`views.rate_points`, or the
    report's `report_model.rate_frame`). `width` is the page's or the printed report's panel width;
    `across` (the printed report) puts the metrics side by side, one narrow panel each.
    """
    scale = group_scale(groups)
    tooltip = [alt.Tooltip("group:N", title="Group"), alt.Tooltip("metric_label:N", title="Metric"),
               alt.Tooltip("shown:N", title="Estimate (95% interval)"), alt.Tooltip("support:Q", title="n", format=",")]
    y = alt.Y("group:N", title=None, sort="ascending")
    base = alt.Chart().encode(y=y, tooltip=tooltip)
    data = points.dropna(subset=["value"])
    # Rates: one honest 0–1 axis (a zoomed axis per metric would make a 0.3-point gap look like a chasm).
    # Other measures (a regression's errors, in the label's unit): each its own zero-based axis.
    numbers = data[["value", "ci_low", "ci_high"]].to_numpy(dtype=float)
    rates = bool(np.all((numbers >= 0) & (numbers <= 1) | np.isnan(numbers)))
    x_scale, axis, word = ((alt.Scale(domain=[0, 1]), alt.Axis(format="%"), "rate") if rates else
                           (alt.Scale(zero=True), alt.Axis(format="~s"), "value"))
    # Narrow panels side by side would run a long axis title into the next panel's.
    title = f"{word} (point), 95% interval" if across else f"{word} (point) and its 95% interval (line)"
    bars = base.mark_rule(strokeWidth=3).encode(x=alt.X("ci_low:Q", title=title, scale=x_scale, axis=axis),
                                                x2=alt.X2(field="ci_high"), color=_colour(scale))
    dots = base.mark_point(filled=True, size=70).encode(x=alt.X("value:Q", scale=x_scale), color=_colour(scale))
    order = list(dict.fromkeys(points["metric_label"]))
    if across:
        return _faceted([bars, dots], data, width, alt.Step(ROW_STEP), None,
                        alt.Column("metric_label:N", title=None, sort=order, header=alt.Header(labelFontWeight="bold")),
                        own_x=not rates)
    return _faceted([bars, dots], data, width, alt.Step(ROW_STEP), _facet_row(order), own_x=not rates)


def disparity_chart(points: pd.DataFrame, groups: Sequence[str] | Mapping[str, str], low: float, high: float, *,
                    width: int = FACET_WIDTH, by_feature: bool = False) -> alt.FacetChart:
    """Per metric, each group's ratio to the reference with its interval, over the shaded policy band.

    `points`: group, metric_label, ratio, ratio_ci_low, ratio_ci_high, support, q, verdict_label
    (`views.disparity_points`). `by_feature` (the report: every sensitive feature in one chart) puts
    one row of panels per `feature` and the metrics side by side, each panel `width` wide.
    """
    scale = group_scale(groups)
    x_scale = alt.Scale(type="log", domain=ratio_domain(points, low, high), nice=False)
    tooltip = [alt.Tooltip("group:N", title="Group"), alt.Tooltip("metric_label:N", title="Metric"),
               alt.Tooltip("ratio:Q", title="Ratio to reference", format=".2f"),
               alt.Tooltip("ratio_ci_low:Q", title="95% interval from", format=".2f"),
               alt.Tooltip("ratio_ci_high:Q", title="95% interval to", format=".2f"),
               alt.Tooltip("support:Q", title="n", format=","), alt.Tooltip("q:N", title="q-value"),
               alt.Tooltip("verdict_label:N", title="Verdict")]
    y = alt.Y("group:N", title=None, sort="ascending")
    band = (alt.Chart().transform_aggregate(rows="count()")
            .mark_rect(color=BAND_COLOR, opacity=0.15)
            .encode(x=alt.XDatum(low, scale=x_scale), x2=alt.X2Datum(high)))
    one = alt.Chart().transform_aggregate(rows="count()").mark_rule(color="#555", strokeDash=[4, 3]).encode(
        x=alt.XDatum(1.0, scale=x_scale))
    # Narrow panels side by side (by feature) would run a long axis title into the next panel's.
    title = "ratio (log scale)" if by_feature else f"ratio to reference (log scale); shaded: policy band {low:g}–{high:g}"
    base = alt.Chart().encode(y=y, tooltip=tooltip)
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ratio_ci_low:Q", title=title, scale=x_scale), x2=alt.X2(field="ratio_ci_high"), color=_colour(scale))
    dots = base.mark_point(filled=True, size=80).encode(
        x=alt.X("ratio:Q", scale=x_scale), color=_colour(scale),
        shape=alt.Shape("verdict_label:N", legend=alt.Legend(title="Verdict", orient="bottom", labelLimit=300),
                        scale=alt.Scale(domain=["outside the band (significant)", "outside the band, not significant",
                                                "within the band", "reference group"],
                                        range=["diamond", "triangle", "circle", "square"])))
    order = list(dict.fromkeys(points["metric_label"]))
    layers = [band, one, bars, dots]
    if by_feature:
        return _faceted(layers, points, width, alt.Step(ROW_STEP),
                        _facet_row(list(dict.fromkeys(points["feature"])), "feature"),
                        alt.Column("metric_label:N", title=None, sort=order, header=alt.Header(labelFontWeight="bold")))
    return _faceted(layers, points, width, alt.Step(ROW_STEP), _facet_row(order))


def share_chart(points: pd.DataFrame, groups: Sequence[str] | Mapping[str, str], *, width: int | str = "container",
                by_feature: bool = False) -> alt.LayerChart | alt.FacetChart:
    """Each group's share of rows (bar) with its 95% interval and the reference share (black tick).

    `points`: group, n, share, ci_low, ci_high, reference_share, reference_text, shown
    (`views.share_points`). `by_feature` (the report: every sensitive feature in one chart) draws one
    row per `feature`; a printed report gives a `width` in pixels.
    """
    scale = group_scale(groups)
    tooltip = [alt.Tooltip("group:N", title="Group"), alt.Tooltip("n:Q", title="n", format=","),
               alt.Tooltip("shown:N", title="Share (95% interval)"),
               alt.Tooltip("reference_text:N", title="Reference share")]
    y = alt.Y("group:N", title=None, sort="-x")
    base = alt.Chart().encode(y=y, tooltip=tooltip)
    bars = base.mark_bar(opacity=0.85).encode(x=alt.X("share:Q", title="share of rows (bar), 95% interval (line), "
                                                                         "reference share (black tick)",
                                                      axis=alt.Axis(format="%")), color=_colour(scale))
    err = base.mark_rule(color="#222", strokeWidth=1.5).encode(x=alt.X("ci_low:Q"), x2=alt.X2(field="ci_high"))
    ref = base.mark_tick(color="black", thickness=3, size=ROW_STEP - 4).encode(x=alt.X("reference_share:Q"))
    if by_feature:
        return _faceted([bars, err, ref], points, width, alt.Step(ROW_STEP),
                        _facet_row(list(dict.fromkeys(points["feature"])), "feature"))
    return alt.layer(bars, err, ref, data=points).properties(width=width, height=alt.Step(ROW_STEP))


def intersection_heatmap(cells: pd.DataFrame, first: str, second: str, min_support: int) -> alt.LayerChart:
    """Row counts of a two-feature intersection; cells below min_support are outlined in red and labelled."""
    # Feature names come from the data: as field names, Altair would read a ':' as a type and Vega-Lite a '.' or
    # '[' as a path into the row. Fixed field names; the real names are only titles (drawn as text).
    cells = cells.rename(columns={first: "row_value", second: "column_value"})
    tooltip = [alt.Tooltip("row_value:N", title=first), alt.Tooltip("column_value:N", title=second),
               alt.Tooltip("n:Q", title="n", format=","),
               alt.Tooltip("below_min_support:N", title=f"below min_support ({min_support})")]
    base = alt.Chart(cells).encode(x=alt.X("column_value:N", title=second), y=alt.Y("row_value:N", title=first),
                                   tooltip=tooltip)
    rect = base.mark_rect().encode(
        color=alt.Color("n:Q", title="rows", scale=alt.Scale(type="symlog", scheme="blues")),
        stroke=alt.condition("datum.below_min_support", alt.value("#d62728"), alt.value("white")),
        strokeWidth=alt.condition("datum.below_min_support", alt.value(3), alt.value(1)))
    # Text colour comes with the data (views.intersection_cells): red when small, white on dark cells.
    text = base.mark_text(fontSize=11, fontWeight="bold").encode(text="label:N",
                                                                 color=alt.Color("text_colour:N", scale=None))
    return (alt.layer(rect, text).resolve_scale(color="independent")
            .properties(width="container", height=alt.Step(34)))


def threshold_chart(curves: pd.DataFrame, groups: Sequence[str], threshold: float,
                    current: float | None = None) -> alt.FacetChart:
    """Per metric, each group's rate as the threshold moves, with a 95% band; rule at the chosen threshold."""
    scale = group_scale(groups)
    data = curves.dropna(subset=["value"]).copy()
    data["metric_label"] = data["metric"].map({"selection_rate": "Selection rate",
                                               "true_positive_rate": "True positive rate",
                                               "false_positive_rate": "False positive rate"})
    tooltip = [alt.Tooltip("group:N", title="Group"), alt.Tooltip("threshold:Q", format=".3f"),
               alt.Tooltip("value:Q", title="rate", format=".3f"),
               alt.Tooltip("ci_low:Q", title="95% from", format=".3f"),
               alt.Tooltip("ci_high:Q", title="95% to", format=".3f"), alt.Tooltip("support:Q", title="n", format=",")]
    x = alt.X("threshold:Q", title="threshold (decide yes when score ≥ threshold)")
    band = alt.Chart().mark_area(opacity=0.15).encode(x=x, y="ci_low:Q", y2="ci_high:Q", color=_colour(scale))
    line = alt.Chart().mark_line(strokeWidth=2).encode(
        x=x, y=alt.Y("value:Q", title="rate (line) and 95% interval (band)", scale=alt.Scale(domain=[0, 1])),
        color=_colour(scale, legend=True), tooltip=tooltip)
    layers = [band, line, alt.Chart().transform_aggregate(rows="count()").mark_rule(color="black").encode(
        x=alt.datum(threshold))]
    if current is not None:
        layers.append(alt.Chart().transform_aggregate(rows="count()").mark_rule(color="#888", strokeDash=[4, 3])
                      .encode(x=alt.datum(current)))
    return (alt.layer(*layers, data=data).properties(width=260, height=220)
            .facet(column=alt.Column("metric_label:N", title=None,
                                     sort=["Selection rate", "True positive rate", "False positive rate"])))


def worst_chart(points: pd.DataFrame, low: float, high: float) -> alt.LayerChart:
    """The worst gaps across groupings: ratio with interval over the policy band, in each group's own colour.

    `points` has label, group, colour (from `group_colours` of the group's own grouping), ratio,
    ratio_ci_low, ratio_ci_high, support, q, verdict_label.
    """
    x_scale = alt.Scale(type="log", domain=ratio_domain(points, low, high), nice=False)
    tooltip = [alt.Tooltip("label:N", title="Group and metric"),
               alt.Tooltip("ratio:Q", title="Ratio to reference", format=".2f"),
               alt.Tooltip("ratio_ci_low:Q", title="95% interval from", format=".2f"),
               alt.Tooltip("ratio_ci_high:Q", title="95% interval to", format=".2f"),
               alt.Tooltip("support:Q", title="n", format=","), alt.Tooltip("q:N", title="q-value"),
               alt.Tooltip("verdict_label:N", title="Verdict")]
    y = alt.Y("label:N", title=None, sort=None, axis=alt.Axis(labelLimit=480))
    # The band and the line at 1 are one mark each: drawn from one inline empty row, not by aggregating the points
    # (two fewer datasets and aggregate steps for the browser to build on every new tab; same picture).
    one_row = alt.InlineData(values=[{}])
    band = (alt.Chart(one_row).mark_rect(color=BAND_COLOR, opacity=0.15)
            .encode(x=alt.datum(low, scale=x_scale), x2=alt.datum(high)))
    one = alt.Chart(one_row).mark_rule(color="#555", strokeDash=[4, 3]).encode(x=alt.datum(1.0, scale=x_scale))
    base = alt.Chart(points).encode(y=y, tooltip=tooltip, color=alt.Color("colour:N", scale=None))
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ratio_ci_low:Q", scale=x_scale,
                title=f"ratio to the reference group (log scale); shaded: policy band {low:g}–{high:g}"),
        x2="ratio_ci_high:Q")
    dots = base.mark_point(filled=True, size=90).encode(x=alt.X("ratio:Q", scale=x_scale))
    return alt.layer(band, one, bars, dots).properties(width=FACET_WIDTH, height=alt.Step(ROW_STEP + 4))


TREND_WIDTH = 600
# Vega-Lite 6 breaks a line at an empty value by default; said explicitly so a window with too few
# rows stays a gap whatever the renderer's default.
_GAPS = "break-paths-show-domains"


def trend_chart(points: pd.DataFrame, groups: Sequence[str], y_title: str, *, facet: bool = False,
                marker: pd.Timestamp | None = None, height: int = 220, y_format: str = "%") -> alt.TopLevelMixin:
    """Each group's value per window as a line over its 95% interval band; gaps where a window has too few rows."""
    # `points`: window, group, value, ci_low, ci_high, support, shown, isolated (metric_label when faceted:
    # one row of charts per metric). A lone window between gaps gets its interval as a bar; `marker` draws
    # a dashed rule at one window (the drift baseline).
    scale = group_scale(groups)
    tooltip = [alt.Tooltip("group:N", title="Group"), alt.Tooltip("window:T", title="Window from", format="%Y-%m-%d"),
               alt.Tooltip("shown:N", title="Estimate (95% interval)"), alt.Tooltip("support:Q", title="n", format=",")]
    if facet:
        tooltip.insert(1, alt.Tooltip("metric_label:N", title="Metric"))
    x = alt.X("window:T", title="window")
    y = alt.Y("value:Q", title=y_title, scale=alt.Scale(zero=False), axis=alt.Axis(format=y_format))
    # The same legend on every layer (a layer with the legend off turns the merged legend off). Beside a
    # single chart, which Streamlit fits to the page (a legend below would squeeze the plot flat); below
    # facets, which keep their width (beside them it would be cut off).
    place = {"orient": "bottom", "columns": 3} if facet else {}
    colour = alt.Color("group:N", scale=scale, legend=alt.Legend(title="Group", labelLimit=320, symbolOpacity=1,
                                                                 **place))
    band = alt.Chart().mark_area(opacity=0.15, invalid=_GAPS).encode(x=x, y="ci_low:Q", y2="ci_high:Q", color=colour)
    line = alt.Chart().mark_line(point=True, strokeWidth=2, invalid=_GAPS).encode(x=x, y=y, color=colour,
                                                                                  tooltip=tooltip)
    lone = alt.Chart().transform_filter("datum.isolated").mark_rule(strokeWidth=2, opacity=0.6).encode(
        x=x, y="ci_low:Q", y2="ci_high:Q", color=colour, tooltip=tooltip)
    layers = [band, line, lone]
    if marker is not None:
        layers.append(alt.Chart(pd.DataFrame({"window": [marker]})).mark_rule(color="#555", strokeDash=[4, 3])
                      .encode(x="window:T", tooltip=[alt.Tooltip("window:T", title="Baseline window from",
                                                                 format="%Y-%m-%d")]))
    chart = alt.layer(*layers, data=points).properties(width=TREND_WIDTH, height=height)
    if not facet:
        return chart
    order = list(dict.fromkeys(points["metric_label"]))
    return chart.facet(row=_facet_row(order)).resolve_scale(y="independent")


def psi_chart(points: pd.DataFrame, moderate: float, large: float) -> alt.LayerChart:
    """PSI per window for each grouping against the baseline; shaded: moderate and large shift."""
    scale = group_scale(points["group"].unique())
    tooltip = [alt.Tooltip("group:N", title="Groups of"), alt.Tooltip("window:T", title="Window from", format="%Y-%m-%d"),
               alt.Tooltip("shown:N", title="PSI and test"), alt.Tooltip("n:Q", title="n", format=",")]
    top = max(float(points["psi"].max()) if len(points) else 0.0, large) * 1.1
    bands = pd.DataFrame({"from": [moderate, large], "to": [large, top], "shift": ["moderate", "large"]})
    shade = alt.Chart(bands).mark_rect(opacity=0.12).encode(
        y="from:Q", y2="to:Q", color=alt.Color("shift:N", scale=alt.Scale(domain=["moderate", "large"],
                                                                          range=["#edc948", "#e15759"]), legend=None))
    x = alt.X("window:T", title="window")
    line = alt.Chart(points).mark_line(point=True, strokeWidth=2, invalid=_GAPS).encode(
        x=x, y=alt.Y("psi:Q", title="PSI vs baseline", scale=alt.Scale(domain=[0, top])),
        color=alt.Color("group:N", scale=scale, legend=alt.Legend(title="Groups of", labelLimit=320)), tooltip=tooltip)
    return alt.layer(shade, line).resolve_scale(color="independent").properties(width=TREND_WIDTH, height=240)


def version_chart(points: pd.DataFrame, groups: Sequence[str]) -> alt.FacetChart:
    """Per metric, each group's change B − A with its 95% interval around the no-change line (shape: the change)."""
    scale = group_scale(groups)
    tooltip = [alt.Tooltip("group:N", title="Group"), alt.Tooltip("metric_label:N", title="Metric"),
               alt.Tooltip("a:N", title="Version A"), alt.Tooltip("b:N", title="Version B"),
               alt.Tooltip("shown:N", title="B − A (95% interval)"), alt.Tooltip("q:N", title="q-value"),
               alt.Tooltip("change_label:N", title="Change")]
    y = alt.Y("group:N", title=None, sort="ascending")
    zero = alt.Chart().transform_aggregate(rows="count()").mark_rule(color="#555", strokeDash=[4, 3]).encode(
        x=alt.datum(0.0))
    base = alt.Chart().encode(y=y, tooltip=tooltip)
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("diff_ci_low:Q", title="change B − A (point) and its 95% interval (line); dashed: no change"),
        x2="diff_ci_high:Q", color=_colour(scale))
    shapes = points[["change_label", "shape"]].drop_duplicates()  # each change its own shape, named in the legend
    dots = base.mark_point(filled=True, size=80).encode(
        x="difference:Q", color=_colour(scale),
        shape=alt.Shape("change_label:N", legend=alt.Legend(title="Change", orient="bottom", labelLimit=300),
                        scale=alt.Scale(domain=shapes["change_label"].tolist(), range=shapes["shape"].tolist())))
    order = list(dict.fromkeys(points["metric_label"]))
    return (alt.layer(zero, bars, dots, data=points)
            .properties(width=FACET_WIDTH, height=alt.Step(ROW_STEP))
            .facet(row=_facet_row(order))
            .resolve_scale(y="independent"))


# --------------------------------------------------------------------------- one slice or group against the rest
REST_COLOUR = "#555555"  # 'all other rows' in every against-the-rest chart: dark grey, apart from (missing)'s grey
SLICE_COLOUR = PALETTE[0]  # a slice is no group of a grouping: one colour for every slice


def versus_chart(points: pd.DataFrame, flag_title: str, labels: bool = True, across: bool = False) -> alt.FacetChart:
    """Per metric or signal, each slice's (or group's) value and that of all other rows, both with 95% intervals.

    `points` has metric_label (one chart each), label (y), side ('own' or 'rest'), side_label, value,
    ci_low, ci_high, n, shown, colour, flag and flag_label (`slice_views.versus_frame`). The slice's
    own point is filled in its colour, a large diamond when flagged (a fired signal, a significant
    gap); all other rows are a hollow grey circle just below it. One zero-based axis for all the
    charts, so a tiny rate never looks like a large one. `labels` False leaves the y axis unlabelled
    (one slice: its name is the section's title); `across` puts the charts side by side (many
    groups, few measures) instead of one under the other.
    """
    tooltip = [alt.Tooltip("label:N", title="Slice or group"), alt.Tooltip("metric_label:N", title="Measure"),
               alt.Tooltip("side_label:N", title="Rows"), alt.Tooltip("shown:N", title="Value (95% interval)"),
               alt.Tooltip("n:Q", title="n", format=","), alt.Tooltip("flag_label:N", title=flag_title)]
    axis = alt.Axis(labelLimit=360) if labels else None
    base = alt.Chart().encode(y=alt.Y("label:N", title=None, sort=None, axis=axis),
                              yOffset=alt.YOffset("side:N", sort=["own", "rest"]), tooltip=tooltip)
    colour = alt.Color("colour:N", scale=None)
    bars = base.mark_rule(strokeWidth=2).encode(
        x=alt.X("ci_low:Q", title="value (point), 95% interval (line)", axis=alt.Axis(format="%"),
                scale=alt.Scale(zero=True)), x2="ci_high:Q", color=colour)
    own = base.transform_filter("datum.side == 'own'").mark_point(filled=True, opacity=1).encode(
        x="value:Q", color=colour, shape=alt.condition("datum.flag", alt.value("diamond"), alt.value("circle")),
        size=alt.condition("datum.flag", alt.value(170), alt.value(70)))
    rest = base.transform_filter("datum.side == 'rest'").mark_point(filled=False, size=60, strokeWidth=2).encode(
        x="value:Q", color=colour)
    order = list(dict.fromkeys(points["metric_label"]))
    layered = alt.layer(bars, own, rest, data=points)
    if across:
        return (layered.properties(width=210, height=alt.Step(ROW_STEP - 6))
                .facet(column=alt.Column("metric_label:N", title=None, sort=order,
                                         header=alt.Header(labelFontWeight="bold", labelLimit=210))))
    return (layered.properties(width=FACET_WIDTH, height=alt.Step(ROW_STEP - 4))
            .facet(row=alt.Row("metric_label:N", title=None, sort=order,
                               header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold",
                                                 labelLimit=220)))
            .resolve_scale(y="independent"))


def distribution_chart(points: pd.DataFrame, own_colour: str, sides: Sequence[str]) -> alt.FacetChart:
    """Per feature, each value's share of the slice's rows and of the rest's (bars), with 95% intervals.

    `points` has feature, value, side_label (one of `sides`: the slice's first), n, total, share,
    ci_low, ci_high, shown and order (values with the most rows first).
    """
    tooltip = [alt.Tooltip("feature:N", title="Feature"), alt.Tooltip("value:N", title="Value"),
               alt.Tooltip("side_label:N", title="Rows"), alt.Tooltip("shown:N", title="Share (95% interval)"),
               alt.Tooltip("n:Q", title="n", format=",")]
    base = alt.Chart().encode(y=alt.Y("value:N", title=None, sort=alt.EncodingSortField("order", op="min"),
                                      axis=alt.Axis(labelLimit=240)),
                              yOffset=alt.YOffset("side_label:N", sort=list(sides)), tooltip=tooltip)
    colour = alt.Color("side_label:N", scale=alt.Scale(domain=list(sides), range=[own_colour, REST_COLOUR]),
                       legend=alt.Legend(title="Rows", orient="bottom"))
    bars = base.mark_bar(opacity=0.8).encode(
        x=alt.X("share:Q", title="share of the rows (bar) and its 95% interval (line)", axis=alt.Axis(format="%")),
        color=colour)
    err = base.mark_rule(color="#222", strokeWidth=1.2).encode(x="ci_low:Q", x2="ci_high:Q")
    order = list(dict.fromkeys(points["feature"]))
    return (alt.layer(bars, err, data=points)
            .properties(width=FACET_WIDTH, height=alt.Step(ROW_STEP - 8))
            .facet(row=alt.Row("feature:N", title=None, sort=order,
                               header=alt.Header(labelAngle=0, labelAlign="left", labelFontWeight="bold",
                                                 labelLimit=160)))
            .resolve_scale(y="independent"))


_WHATIF_AXES = {"selection_rate": "selection rate", "true_positive_rate": "true positive rate",
                "false_positive_rate": "false positive rate", "false_negative_rate": "false negative rate",
                "accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "cost": "minus cost per decision"}


def whatif_chart(curves: pd.DataFrame, chosen: pd.DataFrame, groups: Sequence[str], x_metric: str,
                 y_metric: str) -> alt.LayerChart:
    """Per group, every threshold's (constraint rate, objective) and its upper hull; diamonds: the chosen points."""
    scale = group_scale(groups)
    x = alt.X("x:Q", title=_WHATIF_AXES.get(x_metric, x_metric), scale=alt.Scale(domain=[0, 1]))
    y = alt.Y("y:Q", title=_WHATIF_AXES.get(y_metric, y_metric), scale=alt.Scale(zero=False))
    tooltip = [alt.Tooltip("group:N", title="Group"), alt.Tooltip("threshold:Q", title="score >", format=".4g"),
               alt.Tooltip("x:Q", title=_WHATIF_AXES.get(x_metric, x_metric), format=".3f"),
               alt.Tooltip("y:Q", title=_WHATIF_AXES.get(y_metric, y_metric), format=".3f")]
    data = curves.replace([np.inf, -np.inf], np.nan)
    points = alt.Chart(data).mark_circle(size=14, opacity=0.35).encode(x=x, y=y, color=_colour(scale),
                                                                          tooltip=tooltip)
    hull = alt.Chart(data[data["hull"]]).mark_line(strokeWidth=2).encode(
        x=x, y=y, color=_colour(scale, legend=True), order="x:Q")
    marks = alt.Chart(chosen).mark_point(shape="diamond", size=160, filled=True, stroke="black").encode(
        x=x, y=y, color=_colour(scale), tooltip=[alt.Tooltip("group:N", title="Group"),
                                                 alt.Tooltip("x:Q", format=".3f"), alt.Tooltip("y:Q", format=".3f")])
    return alt.layer(points, hull, marks).properties(width=FACET_WIDTH, height=320)


def confusion_heatmap(cells: pd.DataFrame, classes: Sequence[str]) -> alt.LayerChart:
    """One group's confusion matrix (multiclass audits): true class down, predicted across, shaded by row share.

    `cells` holds y_true, y_pred, n and row_share (the snapshot's `confusion_matrices` records of one
    group); the text shows the count, the tooltip both, so a small class's rows are not lost in the shading.
    """
    order = [str(c) for c in classes]
    base = alt.Chart(cells.assign(pct=cells["row_share"] * 100)).encode(
        x=alt.X("y_pred:N", title="Predicted class", sort=order),
        y=alt.Y("y_true:N", title="True class", sort=order),
    )
    tooltip = [alt.Tooltip("y_true:N", title="True"), alt.Tooltip("y_pred:N", title="Predicted"),
               alt.Tooltip("n:Q", title="Rows", format=","), alt.Tooltip("pct:Q", title="Share of true class (%)",
                                                                          format=".1f")]
    rect = base.mark_rect().encode(color=alt.Color("row_share:Q", title="Share of true class",
                                                   scale=alt.Scale(domain=[0, 1], scheme="blues")), tooltip=tooltip)
    text = base.mark_text(baseline="middle").encode(
        text=alt.Text("n:Q", format=","),
        color=alt.condition("datum.row_share > 0.5", alt.value("white"), alt.value("black")))
    # Fit the width only: Streamlit's default for a stretched chart fits the whole chart, axes and their (rotated)
    # class labels included, into this height, which squeezed the cells of five classes into a line.
    return alt.layer(rect, text).properties(width=40 * max(len(order), 3), height=32 * max(len(order), 3),
                                            autosize=alt.AutoSizeParams(type="fit-x", contains="padding"))


def histogram_chart(bins: pd.DataFrame, groups: Sequence[str], title: str) -> alt.Chart:
    """Histograms of one grouping's groups (regression predictions or errors) as share per bin, one line per group.

    `bins` holds group, low, high, n and share (the snapshot's `distributions` records of one kind).
    """
    data = bins.assign(mid=(bins["low"] + bins["high"]) / 2)
    return alt.Chart(data).mark_line(point=True, interpolate="step-after").encode(
        x=alt.X("low:Q", title=title),
        y=alt.Y("share:Q", title="Share of the group's rows", axis=alt.Axis(format="%")),
        color=alt.Color("group:N", scale=group_scale(groups), legend=alt.Legend(title="Group")),
        tooltip=[alt.Tooltip("group:N"), alt.Tooltip("low:Q", format=".3g", title="From"),
                 alt.Tooltip("high:Q", format=".3g", title="To"), alt.Tooltip("n:Q", format=",", title="Rows"),
                 alt.Tooltip("share:Q", format=".1%")],
    ).properties(width=FACET_WIDTH, height=200)
