"""What goes in an audit's report and tables, in what order, in plain words (pure: the writers only draw it).

`build_report(doc)` turns the exported JSON document into a `ReportModel`: sections of paragraphs,
bullet lists, fact lists, tables (already formatted text) and charts (Vega-Lite specs, with their
data inline, drawn by the dashboard's own builders in `charts.py`: one definition of each chart, which
the report only sizes and gives a printable look). The HTML and PDF writers in `connectors/report.py` render the same model, so the two
cannot disagree with each other or with `snapshot.json`. `csv_tables(doc)` flattens every table of
the document for the CSV files. Both work generically over the document's sections: a section this
module does not know (a list of records) still gets a table in the report and a CSV file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from fairwatch.metrics.presentation.formats import (HEADLINE_METRICS, METRIC_EXPLANATIONS, MISSING, TASK_HEADLINES, fmt_num, fmt_pct, fmt_q,
                             fmt_ratio, metric_label, metric_meaning)
from fairwatch.metrics.privacy.suppression import KNOWN_TABLES, iter_tables, slice_text

PERCENT_METRICS = frozenset({"base_rate", "selection_rate", "accuracy", "true_positive_rate", "false_negative_rate",
                             "false_positive_rate", "true_negative_rate", "precision", "false_discovery_rate",
                             "negative_predictive_value", "false_omission_rate", "balanced_accuracy"})
VERDICT_TEXT = {
    "outside": "Gap outside policy",
    "inconclusive": "Possible gap, not confirmed",
    "within": "Within policy",
    "insufficient_data": "Too few people to judge",
    "reference": "Reference group",
    "descriptive": "Describes the data",
    "suppressed": "Withheld (small group)",
}
# Worst first: the policy check of a group is its worst verdict over all metrics.
_VERDICT_RANK = {"outside": 0, "inconclusive": 1, "insufficient_data": 2, "suppressed": 3, "within": 4}
MAX_TABLE_ROWS = 15
MAX_GENERIC_COLUMNS = 8


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class Paragraph:
    """A paragraph; kind is text, heading (a sub-heading), or note, good, warn, bad (a call-out)."""

    text: str
    kind: str = "text"


@dataclass(frozen=True)
class Bullets:
    """A bullet list."""

    items: tuple[str, ...]


@dataclass(frozen=True)
class Facts:
    """Label: value pairs."""

    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Table:
    """A formatted table: header, rows of text, which columns are numeric, and an optional style per row."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...]
    caption: str = ""
    row_styles: tuple[str, ...] = ()  # per row: "", "bad", "warn", "muted"
    note: str = ""
    widths: tuple[float, ...] = ()  # relative column widths (PDF); empty = equal


@dataclass(frozen=True)
class Chart:
    """A chart: a Vega-Lite spec (JSON text, so the model stays immutable), a title and a description."""

    chart_id: str
    title: str
    spec_json: str
    description: str

    @property
    def spec(self) -> dict[str, Any]:
        """The Vega-Lite spec as a dict."""
        return json.loads(self.spec_json)


Block = Paragraph | Bullets | Facts | Table | Chart


@dataclass(frozen=True)
class Section:
    """A titled part of the report."""

    section_id: str
    title: str
    blocks: tuple[Block, ...]
    level: int = 2


@dataclass(frozen=True)
class ReportModel:
    """The whole report: header, a status banner, key figures and sections."""

    title: str
    subtitle: str
    status: str  # "bad", "warn" or "good"
    headline: str
    key_figures: tuple[tuple[str, str], ...]
    sections: tuple[Section, ...]
    footer: str
    issued_at: str = ""  # ISO time the report was made (the export time), for the PDF's metadata
    author: str = ""  # who created the snapshot (its export block's author name), for the header and PDF metadata

    def charts(self) -> list[Chart]:
        """Every chart, in order."""
        return [b for s in self.sections for b in s.blocks if isinstance(b, Chart)]


# ----------------------------------------------------------------------------- formatting


def _num(value: Any) -> float | None:
    """A finite float, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt_int(value: Any) -> str:
    """48,777; a withheld count is 'withheld'."""
    x = _num(value)
    return "withheld" if x is None else f"{int(x):,}"


def fmt_value(metric: str, value: Any) -> str:
    """A metric value in its natural unit: percent for rates, 3 decimals otherwise."""
    x = _num(value)
    if x is None:
        return MISSING
    return fmt_pct(x) if metric.partition("@")[0] in PERCENT_METRICS else f"{x:.3f}"


def report_headlines(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """The measures a report leads with: by the audit's task (binary audits have no `task` key)."""
    return TASK_HEADLINES.get(str(doc.get("task", "binary")), HEADLINE_METRICS)


def cell_text(metric: str, cell: Mapping[str, Any] | None) -> str:
    """'78.4% (78.0–78.8%)', 'withheld', or 'too few (n=12)'."""
    if not cell:
        return MISSING
    if cell.get("suppressed"):
        return "withheld"
    if cell.get("masked") or _num(cell.get("value")) is None:
        support = cell.get("support")
        return f"too few (n={support})" if support is not None else MISSING
    value = fmt_value(metric, cell["value"])
    lo, hi = _num(cell.get("ci_low")), _num(cell.get("ci_high"))
    if lo is None or hi is None:
        return value
    return f"{value} ({fmt_value(metric, lo).rstrip('%')}–{fmt_value(metric, hi)})"


def section_title(name: str) -> str:
    """'data_quality.signals' -> 'Data quality: signals'."""
    parts = [p.replace("_", " ") for p in name.split(".")]
    return (parts[0].capitalize() + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")).strip()


def _plain(value: Any) -> str:
    """Any JSON value as short text for a generic table cell."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "; ".join(_plain(v) for v in value)
    return str(value)


# ----------------------------------------------------------------------------- CSV tables


def flatten_record(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A record with nested mappings as dotted columns (slice.sex); lists become JSON text."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_record(value, name + "."))
        elif isinstance(value, list):
            out[name] = json.dumps(value, ensure_ascii=False)
        else:
            out[name] = value
    return out


def group_metric_rows(groups: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`groups` flattened: one row per group x metric, with the group's sizes and the metric's disparity."""
    features: list[str] = []
    for g in groups:
        for f in (g.get("slice") or {}):
            if f not in features:
                features.append(f)
    rows = []
    for g in groups:
        base = {"grouping": g.get("grouping"), "group": slice_text(g.get("slice") or {})}
        base.update({f"slice.{f}": (g.get("slice") or {}).get(f) for f in features})
        base.update({"n": g.get("n"), "labelled_n": g.get("labelled_n"), "share": g.get("share"),
                     "group_suppressed": bool(g.get("suppressed", False))})
        for metric, cell in (g.get("metrics") or {}).items():
            d = (g.get("disparities") or {}).get(metric) or {}
            row = dict(base)
            row["metric"] = metric
            row.update({k: v for k, v in cell.items() if k != "suppressed"})
            row["reference"] = slice_text(d["reference"]) if d.get("reference") else None
            row.update({k: v for k, v in d.items() if k not in ("reference", "suppressed")})
            row["suppressed"] = bool(cell.get("suppressed") or d.get("suppressed") or g.get("suppressed"))
            rows.append(row)
    return rows


def csv_tables(doc: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Every table of the document as flat rows, keyed by file stem (groups, representation, ...)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, records in iter_tables(doc):
        rows = group_metric_rows(records) if name == "groups" else [flatten_record(r) for r in records]
        out[name.replace(".", "_")] = rows
    return out


# ----------------------------------------------------------------------------- charts

# The report's printable look; the charts themselves are the dashboard's (metrics/presentation/charts.py).
PRINT_CONFIG = {
    "view": {"stroke": None},
    "axis": {"labelFontSize": 11, "titleFontSize": 11, "gridColor": "#e6e6e6", "domainColor": "#999999",
             "tickColor": "#999999", "labelColor": "#333333", "titleColor": "#333333"},
    "header": {"labelFontSize": 12, "labelFontWeight": "bold", "labelColor": "#222222", "titleFontSize": 12},
    "legend": {"labelFontSize": 11, "titleFontSize": 11, "orient": "bottom", "direction": "horizontal"},
    "font": "Liberation Sans, Arial, Helvetica, sans-serif",
    "background": "white",
}
# Panel widths on an A4 page (the PDF scales the picture to the text width).
RATES_WIDTH, RATIO_WIDTH, SHARE_WIDTH = 170, 200, 460


def _chart_json(builder: Any, *args: Any, **kwargs: Any) -> str:
    """A dashboard builder's chart (charts.py) as the report's JSON text: data inline, the printable config merged."""
    from fairwatch.metrics.presentation.charts import report_spec

    return json.dumps(report_spec(builder, *args, config=PRINT_CONFIG, **kwargs), sort_keys=True)


def short_label(slice_: Mapping[str, Any]) -> str:
    """A group's label inside a chart or table about one feature: just the value ('Black')."""
    return str(next(iter(slice_.values()))) if len(slice_) == 1 else slice_text(slice_)


def tested(d: Mapping[str, Any]) -> bool:
    """True when a disparity has a significance test (a q-value): only then is 'not confirmed' meaningful."""
    return _num(d.get("q_value")) is not None


def _counted_verdict(d: Mapping[str, Any]) -> str:
    """The verdict as the report counts it: an untested 'inconclusive' is 'untested', not a possible gap."""
    v = d.get("verdict") or ""
    return "untested" if v == "inconclusive" and not tested(d) else v


def _nan(value: Any) -> float:
    """A finite float, or NaN (a frame's missing number)."""
    x = _num(value)
    return math.nan if x is None else x


def group_colours_by_feature(groups: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each group's colour as the dashboard gives it within its own feature (keyed by its short label)."""
    from fairwatch.metrics.presentation.charts import group_colours

    by_feature: dict[str, list[str]] = {}
    for g in groups:
        by_feature.setdefault(str(g.get("grouping")), []).append(short_label(g["slice"]))
    return {label: colour for labels in by_feature.values() for label, colour in group_colours(labels).items()}


def rate_frame(groups: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> pd.DataFrame:
    """The rates chart's points (`views.rate_points`' columns) from the document: shown values only."""
    from fairwatch.metrics.presentation.views import estimate_text

    recs = []
    for metric in metrics:
        for g in groups:
            cell = (g.get("metrics") or {}).get(metric) or {}
            value = _num(cell.get("value"))
            if value is None or cell.get("suppressed") or cell.get("masked"):
                continue
            lo, hi, support = _nan(cell.get("ci_low")), _nan(cell.get("ci_high")), int(cell.get("support") or 0)
            recs.append({"group": short_label(g["slice"]), "metric": metric, "metric_label": metric_label(metric),
                         "value": value, "ci_low": lo, "ci_high": hi, "support": support,
                         "shown": estimate_text(value, lo, hi, False, support)})
    return pd.DataFrame(recs)


def rates_chart(chart_id: str, feature: str, groups: Sequence[Mapping[str, Any]],
                metrics: Sequence[str]) -> Chart | None:
    """Dots with 95% intervals: each headline rate per group of one feature, one panel per metric."""
    df = rate_frame(groups, metrics)
    if df.empty:
        return None
    from fairwatch.metrics.presentation.charts import rate_chart

    names = ", ".join(metric_label(m).lower() for m in metrics)
    spec = _chart_json(rate_chart, df, [short_label(g["slice"]) for g in groups], width=RATES_WIDTH, across=True)
    return Chart(chart_id, f"{feature}: {names}", spec,
                 f"For each group of {feature}, the {names}, each with its 95% interval (the line), all on one 0–100% "
                 f"axis. Withheld or too-small groups are not drawn.")


def ratio_frame(groups: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> pd.DataFrame:
    """The ratio chart's points (`views.disparity_points`' columns, with the feature) from the document."""
    from fairwatch.metrics.policy.overview import VERDICT_LABELS

    recs = []
    for g in groups:
        for metric in metrics:
            d = (g.get("disparities") or {}).get(metric) or {}
            cell = (g.get("metrics") or {}).get(metric) or {}
            ratio = _num(d.get("ratio"))
            # As the dashboard: masked, withheld and undefined ratios are not drawn.
            if ratio is None or ratio <= 0 or cell.get("masked") or d.get("suppressed") or cell.get("suppressed"):
                continue
            verdict = d.get("verdict")
            # A reference group's own interval is not a comparison: its point only.
            lo, hi = (math.nan, math.nan) if verdict == "reference" else (_nan(d.get("ratio_ci_low")),
                                                                        _nan(d.get("ratio_ci_high")))
            recs.append({"feature": str(g.get("grouping")), "group": short_label(g["slice"]), "metric": metric,
                         "metric_label": metric_label(metric), "ratio": ratio, "ratio_ci_low": lo, "ratio_ci_high": hi,
                         "support": int(cell.get("support") or 0), "q_value": _nan(d.get("q_value")),
                         "q": fmt_q(d.get("q_value")), "verdict": verdict,
                         "verdict_label": VERDICT_LABELS.get(verdict, verdict)})
    return pd.DataFrame(recs)


def ratio_chart(chart_id: str, groups: Sequence[Mapping[str, Any]], metrics: Sequence[str], low: float,
                high: float) -> Chart | None:
    """Each group's rate divided by its reference group's, per feature (rows) and metric (columns), with the policy band."""
    df = ratio_frame(groups, metrics)
    if df.empty:
        return None
    from fairwatch.metrics.presentation.charts import disparity_chart

    spec = _chart_json(disparity_chart, df, group_colours_by_feature(groups), low, high, width=RATIO_WIDTH,
                       by_feature=True)
    return Chart(chart_id, "Gaps against the reference group", spec,
                 f"Each point is a group's rate divided by the rate of its reference group (the square), with its 95% "
                 f"interval. The shaded band is the policy ({low:g} to {high:g}); 1 means no gap. Diamonds are gaps "
                 f"outside the band that are unlikely to be chance; triangles are outside the band but not confirmed.")


def share_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The representation chart's points (`views.share_points`' columns, with the feature) from the document."""
    recs = []
    for r in rows:
        share = _num(r.get("share"))
        if share is None:
            continue
        lo, hi, ref = _num(r.get("ci_low")), _num(r.get("ci_high")), _num(r.get("reference_share"))
        lo, hi = share if lo is None else lo, share if hi is None else hi
        recs.append({"feature": str(r.get("grouping")), "group": short_label(r["slice"]), "n": int(r.get("n") or 0),
                     "share": share, "ci_low": lo, "ci_high": hi, "reference_share": _nan(ref),
                     "reference_text": "none given" if ref is None else f"{100 * ref:.2f}%",
                     "shown": f"{100 * share:.2f}% ({100 * lo:.2f}–{100 * hi:.2f}%)"})
    return pd.DataFrame(recs)


def representation_chart(chart_id: str, rows: Sequence[Mapping[str, Any]]) -> Chart | None:
    """Bars: each group's share of the rows with its interval, and a tick at its reference population share."""
    df = share_frame(rows)
    if df.empty:
        return None
    from fairwatch.metrics.presentation.charts import share_chart

    spec = _chart_json(share_chart, df, group_colours_by_feature(rows), width=SHARE_WIDTH, by_feature=True)
    return Chart(chart_id, "Share of each group in the data", spec,
                 "Bars show each group's share of the audited rows, with its 95% interval (the line); the black tick "
                 "is the group's share of the reference population where one was given.")


# ----------------------------------------------------------------------------- sections


def _single_groups(doc: Mapping[str, Any], feature: str) -> list[Mapping[str, Any]]:
    """Groups of one sensitive feature alone, largest first."""
    out = [g for g in doc.get("groups") or [] if list((g.get("slice") or {}).keys()) == [feature]]
    return sorted(out, key=lambda g: -(g.get("n") or 0))


def _check_text(g: Mapping[str, Any]) -> tuple[str, str]:
    """A group's policy check over all its tested metrics (worst verdict, naming the metrics) and a row style."""
    if g.get("suppressed"):
        return VERDICT_TEXT["suppressed"], "muted"
    verdicts: dict[str, list[str]] = {}
    for metric, d in (g.get("disparities") or {}).items():
        verdicts.setdefault(_counted_verdict(d), []).append(metric)
    if "reference" in verdicts:
        return VERDICT_TEXT["reference"], ""
    for v in ("outside", "inconclusive"):
        if v in verdicts:
            names = ", ".join(metric_label(m).lower() for m in verdicts[v][:3]) + (" …" if len(verdicts[v]) > 3 else "")
            return f"{VERDICT_TEXT[v]}: {names}", "bad" if v == "outside" else "warn"
    if verdicts.keys() <= {"insufficient_data", "descriptive", "suppressed", "untested"}:
        return VERDICT_TEXT["insufficient_data"], "muted"
    return VERDICT_TEXT["within"], ""


def _feature_table(groups: Sequence[Mapping[str, Any]], metrics: Sequence[str]) -> Table:
    """Per group of one feature: sizes, headline rates with intervals, and the policy check."""
    rows, styles = [], []
    for g in groups:
        check, style = _check_text(g)
        rows.append((short_label(g["slice"]), fmt_int(g.get("n")), fmt_int(g.get("labelled_n")),
                     *(cell_text(m, (g.get("metrics") or {}).get(m)) for m in metrics), check))
        styles.append(style)
    cols = ("Group", "People", "With outcome", *(metric_label(m) for m in metrics), "Policy check")
    return Table(cols, tuple(rows), (False, True, True, *(True for _ in metrics), False), row_styles=tuple(styles),
                 widths=(1.5, 0.8, 0.9, *(1.25 for _ in metrics), 2.0))


def _gap_rows(doc: Mapping[str, Any], verdicts: set[str], multi: bool | None = None) -> list[tuple[Mapping, str, Mapping]]:
    """(group, metric, disparity) whose counted verdict is in `verdicts`; multi: only intersections (True) or single features (False)."""
    out = []
    for g in doc.get("groups") or []:
        k = len(g.get("slice") or {})
        if multi is not None and (k > 1) != multi:
            continue
        for metric, d in (g.get("disparities") or {}).items():
            if _counted_verdict(d) in verdicts:
                out.append((g, metric, d))

    def distance(item: tuple[Mapping, str, Mapping]) -> float:
        """How far the ratio is from 1 (log scale), negated so the largest gaps sort first."""
        r = _num(item[2].get("ratio"))
        return -abs(math.log(r)) if r and r > 0 else 0.0

    return sorted(out, key=lambda it: (it[2].get("verdict") != "outside", _num(it[2].get("q_value")) or 1.0, distance(it)))


def _ref_value(doc_groups: Mapping[tuple, Mapping], d: Mapping[str, Any], metric: str) -> str:
    """'White, 25-34: 12.0%' for the reference group of a disparity."""
    ref = d.get("reference") or {}
    g = doc_groups.get(tuple(sorted(ref.items())))
    value = fmt_value(metric, ((g or {}).get("metrics") or {}).get(metric, {}).get("value")) if g else MISSING
    return f"{', '.join(str(v) for v in ref.values())}: {value}"


def _gap_table(doc: Mapping[str, Any], items: Sequence[tuple[Mapping, str, Mapping]], caption: str) -> Table:
    """Gaps as a table: group, measure, values, ratio with interval, q-value, verdict."""
    by_key = {tuple(sorted((g.get("slice") or {}).items())): g for g in doc.get("groups") or []}
    rows, styles = [], []
    for g, metric, d in items[:MAX_TABLE_ROWS]:
        # As the dashboard's worst-gaps table: the ratio and its interval as plain numbers.
        ratio = fmt_num(d.get("ratio"))
        if _num(d.get("ratio_ci_low")) is not None and _num(d.get("ratio_ci_high")) is not None:
            ratio += f" ({fmt_num(d['ratio_ci_low'])}–{fmt_num(d['ratio_ci_high'])})"
        rows.append((slice_text(g["slice"]), metric_label(metric), cell_text(metric, (g.get("metrics") or {}).get(metric)),
                     _ref_value(by_key, d, metric), ratio, fmt_q(d.get("q_value")), VERDICT_TEXT.get(d.get("verdict"), "")))
        styles.append("bad" if d.get("verdict") == "outside" else "warn")
    note = f"Showing the first {MAX_TABLE_ROWS} of {len(items)}; all are in groups.csv." if len(items) > MAX_TABLE_ROWS else ""
    return Table(("Group", "Measure", "Group's value (95% interval)", "Reference group: value", "Ratio (95% interval)",
                  "q-value", "Verdict"), tuple(rows), (False, False, True, False, True, True, False),
                 caption=caption, row_styles=tuple(styles), note=note, widths=(2.2, 1.4, 1.6, 1.6, 1.4, 0.8, 1.4))


def gap_sentence(doc: Mapping[str, Any], g: Mapping[str, Any], metric: str, d: Mapping[str, Any]) -> str:
    """'False negative rate (…) is 17.1% for race_ethnicity=Black, age_band=18-24, 1.40 times that of … (12.2%).'"""
    by_key = {tuple(sorted((x.get("slice") or {}).items())): x for x in doc.get("groups") or []}
    ref = d.get("reference") or {}
    ref_cell = ((by_key.get(tuple(sorted(ref.items()))) or {}).get("metrics") or {}).get(metric, {})
    value = fmt_value(metric, (g.get("metrics") or {}).get(metric, {}).get("value"))
    meaning = metric_meaning(metric.partition("@")[0])
    ratio = _num(d.get("ratio"))
    times = f"{ratio:.2f} times" if ratio is not None else "unlike"
    return (f"{metric_label(metric)}{f' ({meaning})' if meaning else ''} is {value} for {slice_text(g['slice'])}, {times} that of the reference "
            f"group {slice_text(ref)} ({fmt_value(metric, ref_cell.get('value'))}); q = {fmt_q(d.get('q_value'))}.")


def _counts(doc: Mapping[str, Any]) -> dict[str, int]:
    """How many (group, metric) pairs got each counted verdict (untested 'inconclusive' apart)."""
    out: dict[str, int] = {}
    for g in doc.get("groups") or []:
        for d in (g.get("disparities") or {}).values():
            v = _counted_verdict(d)
            out[v] = out.get(v, 0) + 1
    return out


def _sensitive(doc: Mapping[str, Any]) -> list[str]:
    """The sensitive features, from the spec or else from the groups."""
    features = list(((doc.get("spec") or {}).get("columns") or {}).get("sensitive") or [])
    if not features:
        for g in doc.get("groups") or []:
            if len(g.get("slice") or {}) == 1:
                f = next(iter(g["slice"]))
                if f not in features:
                    features.append(f)
    return features


def _decision_text(doc: Mapping[str, Any]) -> tuple[str, str]:
    """(positive outcome, positive decision) in words from the spec and data."""
    cols = (doc.get("spec") or {}).get("columns") or {}
    data = doc.get("data") or {}
    if doc.get("task") in TASK_HEADLINES:
        kind = "a number" if doc["task"] == "regression" else "one of the classes " + ", ".join(doc.get("classes") or [])
        return f"{cols.get('label', 'label')} ({kind})", f"{cols.get('prediction', 'prediction')} ({kind})"
    positive = data.get("positive_label", cols.get("positive_label", "1"))
    positive = " or ".join(map(str, positive)) if isinstance(positive, list) else positive
    outcome = f"{cols.get('label', 'label')} = {positive}"
    if cols.get("prediction"):
        decision = f"{cols['prediction']} = {data.get('positive_prediction', cols.get('positive_prediction', '1'))}"
    else:
        decision = f"{cols.get('score', 'score')} ≥ {cols.get('threshold')}"
    return outcome, decision


def _plural(n: int, one: str, many: str | None = None) -> str:
    """'1 gap', '3 gaps'."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _summary(doc: Mapping[str, Any], counts: Mapping[str, int]) -> tuple[str, str, list[str]]:
    """(status, headline, bullets) of the summary."""
    data = doc.get("data") or {}
    policy = (doc.get("spec") or {}).get("policy") or {}
    low, high, fdr = policy.get("ratio_low", 0.8), policy.get("ratio_high", 1.25), policy.get("fdr", 0.05)
    outside, unsure = counts.get("outside", 0), counts.get("inconclusive", 0)
    if outside:
        status = "bad"
        headline = (f"Attention needed: {_plural(outside, 'gap')} between groups "
                    f"{'is' if outside == 1 else 'are'} outside the policy and unlikely to be chance.")
    elif unsure:
        status = "warn"
        headline = f"No confirmed gap, but {_plural(unsure, 'possible gap')} could not be confirmed with the data available."
    else:
        status, headline = "good", "No gap between groups is outside the policy."
    features = _sensitive(doc)
    groups = doc.get("groups") or []
    singles = {f: sum(1 for g in groups if list((g.get("slice") or {}).keys()) == [f]) for f in features}
    combos = sum(1 for g in groups if len(g.get("slice") or {}) > 1)
    outcome, decision = _decision_text(doc)
    filt = doc.get("filter") or {}
    scope = ", ".join(p for p in (
        f"model version {filt['model_version']}" if filt.get("model_version") else "",
        f"from {filt['time_from']}" if filt.get("time_from") else "", f"to {filt['time_to']}" if filt.get("time_to") else "",
    ) if p) or "all rows"
    rows, labelled = data.get("rows"), data.get("labelled_rows")
    bullets = [
        f"The audit covers {fmt_int(rows)} decisions ({scope}). {fmt_int(labelled)} of them "
        f"({fmt_pct(data.get('label_coverage'))}) have a known outcome; the rest count only towards group sizes.",
        (f"Actual outcome: {outcome}. Model output: {decision}." if doc.get("task") in TASK_HEADLINES else
         f"Positive outcome: {outcome}. Positive decision: {decision}."),
        "Groups compared: " + ", ".join(f"{f} ({_plural(singles.get(f, 0), 'group')})" for f in features)
        + (f", and {combos:,} combinations of them." if combos else "."),
        f"Policy: a group is flagged when its rate divided by the reference group's rate is below {low:g} or above "
        f"{high:g}, and the gap is statistically significant after allowing for the number of comparisons "
        f"(false discovery rate {fdr:.0%}).",
        f"Result: {_plural(outside, 'gap')} outside the policy; {_plural(unsure, 'possible gap')} not confirmed; "
        f"{_plural(counts.get('insufficient_data', 0), 'group-measure pair')} with too few people to judge.",
    ]
    if counts.get("untested"):
        bullets.append(f"{_plural(counts['untested'], 'further measure')} (scores such as ROC AUC, Brier score, "
                       f"calibration error, F1) differ from the reference by more than the band but have no "
                       f"significance test; they are listed in groups.csv, not judged here.")
    sup = doc.get("suppression") or {}
    if sup.get("k"):
        extra = (f", plus {sup['complementary_groups']} more so that withheld numbers cannot be worked out by subtraction"
                 if sup.get("complementary_groups") else "")
        bullets.append(f"Privacy: numbers for groups of fewer than {sup['k']} people are withheld "
                       f"({_plural(sup.get('primary_groups', 0), 'group')}{extra}). No individual rows are included.")
    return status, headline, bullets


def _gaps_section(doc: Mapping[str, Any], low: float, high: float) -> Section:
    """Flagged gaps (any grouping), the ratio chart, and unconfirmed gaps of single features."""
    blocks: list[Block] = []
    flagged = _gap_rows(doc, {"outside"})
    unsure = _gap_rows(doc, {"inconclusive"}, multi=False)
    if flagged:
        blocks.append(Paragraph(f"{_plural(len(flagged), 'gap')} {'is' if len(flagged) == 1 else 'are'} outside the "
                                f"policy band and statistically significant:", "bad"))
        blocks.append(Bullets(tuple(gap_sentence(doc, g, m, d) for g, m, d in flagged[:10])))
        blocks.append(_gap_table(doc, flagged, "Gaps outside the policy"))
    else:
        blocks.append(Paragraph("No gap is both outside the policy band and statistically significant.", "good"))
    singles = [g for g in doc.get("groups") or [] if len(g.get("slice") or {}) == 1]
    chart = ratio_chart("ratios", singles, report_headlines(doc), low, high)
    if chart:
        blocks.append(chart)
    if unsure:
        blocks.append(Paragraph(
            f"{_plural(len(unsure), 'gap')} for single features {'is' if len(unsure) == 1 else 'are'} outside the band "
            f"but could be chance with the data available; more labelled rows for these groups would settle "
            f"{'it' if len(unsure) == 1 else 'them'}. (Combinations of features follow in their own section.)", "warn"))
        blocks.append(_gap_table(doc, unsure, "Possible gaps, not confirmed"))
    return Section("gaps", "Gaps that need attention", tuple(blocks))


def _features_section(doc: Mapping[str, Any]) -> Section:
    """Per sensitive feature: the headline rates chart and table."""
    metrics = [m for m in report_headlines(doc) if any(m in (g.get("metrics") or {}) for g in doc.get("groups") or [])]
    blocks: list[Block] = [Paragraph(
        f"For each sensitive feature, the headline measures ({', '.join(metric_label(m).lower() for m in metrics)}) "
        "per group with their 95% intervals. The reference group is the one the others are compared with; the "
        "policy check covers every measure with a significance test.")]
    for i, feature in enumerate(_sensitive(doc)):
        groups = _single_groups(doc, feature)
        if not groups:
            continue
        blocks.append(Paragraph(f"By {feature}", "heading"))
        chart = rates_chart(f"rates_{i}", feature, groups, metrics)
        if chart:
            blocks.append(chart)
        blocks.append(_feature_table(groups, metrics))
    return Section("groups", "Outcomes by group", tuple(blocks))


def _intersections_section(doc: Mapping[str, Any]) -> Section | None:
    """Combinations of features: only the gaps, with counts of what else there is."""
    combos = [g for g in doc.get("groups") or [] if len(g.get("slice") or {}) > 1]
    if not combos:
        return None
    # The gaps section's table lists flagged gaps of every grouping: those rows are not repeated here.
    above = {_gap_key(it) for it in _gap_rows(doc, {"outside"})[:MAX_TABLE_ROWS]}
    every = _gap_rows(doc, {"outside", "inconclusive"}, multi=True)
    items = [it for it in every if _gap_key(it) not in above]
    small = sum(1 for g in combos if g.get("suppressed") or all(
        (m.get("masked") or m.get("suppressed")) for m in (g.get("metrics") or {}).values()))
    blocks: list[Block] = [Paragraph(
        f"{len(combos):,} groups combine two or more sensitive features (for example a sex within an age band); a "
        f"gap can hide inside such a combination while each feature alone looks fine. {small:,} of them are too small "
        f"to measure or withheld. All of them, with every measure, are in groups.csv.")]
    listed = len(every) - len(items)
    if listed:
        blocks.append(Paragraph(f"{_plural(listed, 'gap')} in combinations {'is' if listed == 1 else 'are'} outside "
                                f"the policy and listed under \"Gaps that need attention\" above.", "bad"))
    if items:
        blocks.append(_gap_table(doc, items, "More gaps in combinations of features" if listed else
                                 "Gaps in combinations of features"))
    elif not listed:
        blocks.append(Paragraph("No combination shows a gap outside the policy band.", "good"))
    return Section("intersections", "Combinations of groups", tuple(blocks))


def _gap_key(item: tuple[Mapping, str, Mapping]) -> tuple:
    """A gap's identity: its group's slice and the measure."""
    g, metric, _ = item
    return tuple(sorted((g.get("slice") or {}).items())), metric


def _share_text(r: Mapping[str, Any]) -> str:
    """'8.0% (7.8–8.1%)'; two decimals below 1% so tiny groups do not read as 0.1–0.1%."""
    if r.get("suppressed"):
        return "withheld"
    share = _num(r.get("share"))
    if share is None:
        return MISSING
    digits = 2 if share < 0.01 else 1
    text = fmt_pct(share, digits)
    lo, hi = _num(r.get("ci_low")), _num(r.get("ci_high"))
    if lo is not None and hi is not None:
        text += f" ({fmt_pct(lo, digits).rstrip('%')}–{fmt_pct(hi, digits)})"
    return text


def _representation_section(doc: Mapping[str, Any]) -> Section | None:
    """Who is in the data: shares against reference population shares, and fit tests."""
    order = {f: i for i, f in enumerate(_sensitive(doc))}
    rep = sorted((r for r in doc.get("representation") or [] if len(r.get("slice") or {}) == 1),
                 key=lambda r: (order.get(next(iter(r["slice"])), len(order)), -(r.get("n") or 0)))
    if not rep:
        return None
    blocks: list[Block] = [Paragraph(
        "How many of the audited decisions concern each group. A group that is much rarer in the data than in the "
        "population it serves is measured less precisely, and a model may have learned less about it.")]
    chart = representation_chart("representation", rep)
    if chart:
        blocks.append(chart)
    rows, styles = [], []
    for r in rep:
        ratio = _num(r.get("ratio"))
        style = "muted" if r.get("suppressed") else ("warn" if ratio is not None and not 0.8 <= ratio <= 1.25 else "")
        ref = _num(r.get("reference_share"))
        rows.append((slice_text(r["slice"]), fmt_int(r.get("n")), _share_text(r),
                     fmt_pct(ref, 2 if ref is not None and ref < 0.01 else 1), fmt_ratio(ratio)))
        styles.append(style)
    blocks.append(Table(("Group", "People", "Share of rows (95% interval)", "Reference share", "Ratio"), tuple(rows),
                        (False, True, True, True, True), row_styles=tuple(styles), widths=(2.2, 1, 1.8, 1.2, 0.8),
                        note="Ratio = share of rows / reference share; rows outside 0.8–1.25 are tinted."))
    tests = []
    for t in doc.get("representation_tests") or []:
        feature = t.get("feature")
        if t.get("suppressed"):
            tests.append(f"{feature}: the comparison with the reference population is withheld because a group is withheld.")
            continue
        p = _num(t.get("p_value"))
        if p is None:
            continue
        furthest = max((r for r in rep if list(r["slice"]) == [feature] and _num(r.get("ratio"))),
                       key=lambda r: abs(math.log(_num(r["ratio"]))), default=None)
        detail = ""
        if furthest is not None:
            detail = (f"; the largest difference is {short_label(furthest['slice'])}: {_share_text(furthest).split(' (')[0]} "
                      f"of the rows against {fmt_pct(furthest.get('reference_share'))} of the population")
        verdict = "differs from" if p < 0.05 else "is consistent with"
        p_text = "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
        tests.append(f"{feature}: the mix of groups {verdict} the reference population (chi-square test, {p_text}){detail}.")
    if tests:
        blocks.append(Bullets(tuple(tests)))
    return Section("representation", "Who is in the data", tuple(blocks))


# Generic tables show these columns first (when present), under these headers; raw ids and nested
# evidence are left to the CSV. Fewer columns than the CSV so the table fits an A4 page.
_GENERIC_ORDER = ("group", "metric", "signal", "column", "need", "verdict", "fired", "n", "value", "rate", "errors",
                  "difference", "ratio", "q_value", "additional_rows")
_GENERIC_HEADERS = {"group": "Group", "metric": "Measure", "signal": "Signal", "column": "Column", "need": "Needs",
                    "verdict": "Verdict", "fired": "Signal fired", "n": "Rows", "value": "Value", "rate": "Rate",
                    "errors": "Errors", "difference": "Difference", "ratio": "Ratio", "q_value": "q-value",
                    "p_value": "p-value", "ci_low": "95% low", "ci_high": "95% high", "additional_rows": "Rows needed",
                    "depth": "Depth", "x": "Count"}
_GENERIC_HIDDEN = ("id", "evidence", "slice", "parent", "suppressed", "redundant")
MAX_GENERIC_SHOWN = 7


def _group_text(record: Mapping[str, Any]) -> str | None:
    """A record's group in words ('race=Black, sex=female') from its `group` text or its `slice` mapping."""
    if record.get("group"):
        return str(record["group"])
    sl = record.get("slice")
    if isinstance(sl, Mapping) and sl:
        return ", ".join(f"{k}={v}" for k, v in sl.items())
    return None


def _human(column: str) -> str:
    """A column header in words: 'q_value' -> 'q-value', 'complement_rate' -> 'Complement rate'."""
    return _GENERIC_HEADERS.get(column) or column.replace("_", " ").replace(".", " · ").capitalize()


def generic_table(name: str, records: Sequence[Mapping[str, Any]]) -> Table:
    """Any other table of the document: its main columns and rows in words (group, measure), as plain text."""
    flat = []
    for r in records:
        row = {k: v for k, v in flatten_record(r).items() if k.split(".")[0] not in _GENERIC_HIDDEN}
        group = _group_text(r)
        if group is not None:
            row["group"] = group
        if isinstance(row.get("metric"), str):
            row["metric"] = metric_label(row["metric"])
        flat.append(row)
    columns: list[str] = []
    for r in flat:
        for c in r:
            if c not in columns:
                columns.append(c)
    ordered = [c for c in _GENERIC_ORDER if c in columns] + [c for c in columns if c not in _GENERIC_ORDER]
    shown = ordered[:MAX_GENERIC_SHOWN]
    rows = tuple(tuple(_plain(r.get(c)) for c in shown) for r in flat[:MAX_TABLE_ROWS])
    numeric = tuple(all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                        for r in flat if r.get(c) is not None) and any(r.get(c) is not None for r in flat) for c in shown)
    more = []
    if len(flat) > MAX_TABLE_ROWS:
        more.append(f"{len(flat) - MAX_TABLE_ROWS} more rows")
    if len(columns) > len(shown):
        more.append("more columns")
    note = (", ".join(more) + f" in {name.replace('.', '_')}.csv.") if more else ""
    styles = tuple("muted" if r.get("suppressed") else "" for r in records[:MAX_TABLE_ROWS])
    return Table(tuple(_human(c) for c in shown), rows, numeric, row_styles=styles, note=note)


def _findings_section(doc: Mapping[str, Any]) -> Section | None:
    """The document's own findings (from the slice search), in words where they carry text."""
    findings = doc.get("findings")
    if not isinstance(findings, list) or not findings:
        return None
    texts = [str(f.get(k)) for f in findings if isinstance(f, Mapping)
             for k in ("summary", "description", "message", "title") if f.get(k)][:MAX_TABLE_ROWS]
    rule = (doc.get("slices") or {}).get("rule") if isinstance(doc.get("slices"), Mapping) else None
    blocks: list[Block] = [Paragraph(f"{len(findings)} finding{'s' if len(findings) != 1 else ''} from the search "
                                     f"over slices of the data." + (f" {rule}" if rule else ""))]
    if texts:
        blocks.append(Bullets(tuple(texts)))
    blocks.append(generic_table("findings", findings))
    return Section("findings", "Findings", tuple(blocks))


def _whatif_section(doc: Mapping[str, Any]) -> Section | None:
    """The attached what-if: its summary in words and each group's rule (thresholds and weights)."""
    whatif = doc.get("whatif")
    if not isinstance(whatif, Mapping):
        return None
    policy = whatif.get("policy") or {}
    blocks: list[Block] = [Bullets(tuple(str(line) for line in whatif.get("summary") or ()))]
    rows = tuple((str(g.get("group")), "today's decisions" if g.get("kept_today") else _plain(g.get("threshold0")),
                  _plain(g.get("p0")), _plain(g.get("threshold1")), _plain(g.get("p1")), _plain(g.get("p_ignore")))
                 for g in policy.get("groups") or ())
    if rows:
        blocks.append(Table(("Group", "Threshold 0", "Weight 0", "Threshold 1", "Weight 1", "Ignore score"), rows,
                            (False, True, True, True, True, True),
                            caption="Decide yes with probability weight 0 when score > threshold 0, plus weight 1 "
                                    "when score > threshold 1 (or, with probability 'ignore score', at the constant "
                                    "rate of the policy file)."))
    return Section("whatif", "What would meet the policy", tuple(blocks))


def _other_sections(doc: Mapping[str, Any]) -> list[Section]:
    """One section per table the report does not know, so new sections flow through."""
    out = []
    for name, records in iter_tables(doc):
        if name in KNOWN_TABLES or name == "findings":
            continue
        out.append(Section(f"t_{name.replace('.', '_')}", section_title(name), (generic_table(name, records),)))
    return out


def _glossary(doc: Mapping[str, Any]) -> Section:
    """How to read the report: measures, intervals, ratio, q-value, verdicts."""
    outcome, decision = _decision_text(doc)
    present: list[str] = []
    for g in doc.get("groups") or []:
        for m in g.get("metrics") or {}:
            if m not in present:
                present.append(m)
    policy = (doc.get("spec") or {}).get("policy") or {}
    facts = [(metric_label(m), metric_meaning(m)) for m in present if m in METRIC_EXPLANATIONS]
    facts += [
        (("Actual outcome / model output", f"In this audit the actual outcome is {outcome} and the model output is {decision}.")
         if doc.get("task") in TASK_HEADLINES else
         ("Positive outcome / decision", f"In this audit the positive outcome is {outcome} and the positive decision is {decision}.")),
        ("95% interval", "The range the true value most likely lies in, given how many people the number is based on; "
                         "small groups have wide intervals."),
        ("Reference group", "The group others are compared with: the one named in the audit settings, else the largest."),
        ("Ratio", "A group's value divided by the reference group's value; 1 means no gap."),
        ("Policy band", f"Ratios from {policy.get('ratio_low', 0.8):g} to {policy.get('ratio_high', 1.25):g} are within "
                        f"policy (the four-fifths rule and its mirror)."),
        ("q-value", "The chance-of-a-false-alarm measure after allowing for the many comparisons in one audit "
                    f"(Benjamini-Hochberg); a gap counts as significant when q < {policy.get('fdr', 0.05):g}."),
        ("Too few people to judge", f"The measure is based on fewer than {policy.get('min_support', 30)} people, "
                                    f"so it is not shown."),
    ]
    return Section("glossary", "How to read this report", (Facts(tuple(facts)),))


def _policy_metrics(doc: Mapping[str, Any]) -> str:
    """The measures whose ratio to the reference is judged against the policy band (those with a verdict)."""
    judged: list[str] = []
    for g in doc.get("groups") or []:
        for m, d in (g.get("disparities") or {}).items():
            # A descriptive measure (the base rate) is shown beside the others but never judged.
            if m not in judged and isinstance(d, Mapping) and d.get("verdict") not in ("descriptive", "reference",
                                                                                        "suppressed"):
                judged.append(m)
    if not judged:
        return "none (no group could be compared with its reference)"
    return (", ".join(metric_label(m) for m in judged) + "; the ratio chart and the outcomes table show "
            + ", ".join(metric_label(m) for m in HEADLINE_METRICS if m in judged))


def _author_text(author: Any) -> str:
    """'Alice Example (alice@example.org, auditor, signed in)', or 'not recorded'."""
    if not isinstance(author, Mapping) or not author.get("name"):
        return "not recorded"
    how = {"oidc": "signed in", "local": "local mode, no sign-in", "cli": "command line"}
    extra = [str(author[k]) for k in ("id", "role") if author.get(k)]
    if author.get("signed_in"):
        extra.append(how.get(str(author["signed_in"]), str(author["signed_in"])))
    return f"{author['name']} ({', '.join(extra)})" if extra else str(author["name"])


def _details(doc: Mapping[str, Any], files: Sequence[str]) -> Section:
    """Audit details for reproducing and checking the audit."""
    spec = doc.get("spec") or {}
    cols = spec.get("columns") or {}
    export = doc.get("export") or {}
    fp = doc.get("fingerprint") or {}
    data = doc.get("data") or {}
    sup = doc.get("suppression") or {}
    policy = spec.get("policy") or {}
    refs = spec.get("reference") or {}
    outcome, decision = _decision_text(doc)
    pairs = [
        ("Snapshot", str(export.get("snapshot_id", MISSING))),
        ("Audit run at", str(doc.get("created_at", MISSING))),
        ("Exported at", str(export.get("exported_at", MISSING))),
        ("Created by", _author_text(export.get("author"))),
        ("Data source", str(data.get("source", MISSING))),
        ("Rows audited", f"{fmt_int(data.get('rows'))} ({fmt_int(data.get('labelled_rows'))} with an outcome)"),
        ("Data fingerprint", f"{fp.get('digest', '–')} ({fp.get('algorithm', '')}, {fp.get('engine', '')})"
         if fp else "not recorded"),
        ("Outcome and decision", f"{outcome}; {decision}"),
        ("Sensitive features", ", ".join(cols.get("sensitive") or []) or MISSING),
        ("Reference groups", ", ".join(f"{k} = {v}" for k, v in refs.items()) or "the largest group of each feature"),
        ("Policy", f"band {policy.get('ratio_low', 0.8):g}–{policy.get('ratio_high', 1.25):g}, false discovery rate "
                   f"{policy.get('fdr', 0.05):g}, smallest measured group {policy.get('min_support', 30)}"),
        ("Measures the policy covers", _policy_metrics(doc)),
        ("Privacy", str(sup.get("rule", "no suppression recorded"))),
        ("Schema version", str(doc.get("schema_version", MISSING))),
        ("Software", ", ".join(f"{k} {v}" for k, v in (doc.get("tool") or {}).items() if v != "not installed")),
    ]
    blocks: list[Block] = [Facts(tuple(pairs))]
    if files:
        blocks.append(Paragraph("Files in this snapshot: " + ", ".join(files) + ". Every file is listed with its SHA-256 "
                                "hash in manifest.json, which also holds the hash of the previous snapshot's manifest. "
                                "To check that nothing was changed, run: fairwatch verify <this folder>.", "note"))
    return Section("details", "Audit details", tuple(blocks))


def build_report(doc: Mapping[str, Any], files: Sequence[str] = ()) -> ReportModel:
    """The report of one exported audit document (suppressed, with fingerprint and export blocks)."""
    counts = _counts(doc)
    status, headline, bullets = _summary(doc, counts)
    policy = (doc.get("spec") or {}).get("policy") or {}
    low, high = float(policy.get("ratio_low", 0.8)), float(policy.get("ratio_high", 1.25))
    data = doc.get("data") or {}
    sections: list[Section] = [Section("summary", "Summary", (Bullets(tuple(bullets)),))]
    findings = _findings_section(doc)
    if findings:
        sections.append(findings)
    sections.append(_gaps_section(doc, low, high))
    sections.append(_features_section(doc))
    for extra in (_intersections_section(doc), _representation_section(doc)):
        if extra:
            sections.append(extra)
    whatif = _whatif_section(doc)
    if whatif:
        sections.append(whatif)
    sections += _other_sections(doc)
    sections += [_glossary(doc), _details(doc, files)]
    groups = doc.get("groups") or []
    key = (("Decisions audited", fmt_int(data.get("rows"))),
           ("With a known outcome", fmt_pct(data.get("label_coverage"))),
           ("Groups compared", f"{len(groups):,}"),
           ("Gaps outside policy", f"{counts.get('outside', 0):,}"))
    export = doc.get("export") or {}
    # The snapshot's time is when it was taken (exported); the audit's own run time is in the details.
    created = str(export.get("exported_at") or doc.get("created_at", ""))[:19].replace("T", " ")
    snapshot_id = export.get("snapshot_id", "")
    author = export.get("author") or {}
    name = str(author.get("name") or "") if isinstance(author, Mapping) else ""
    return ReportModel(
        title="Fairness audit report",
        subtitle=f"{data.get('source', '')} · snapshot of {created} UTC" + (f" · by {name}" if name else ""),
        status=status, headline=headline, key_figures=key, sections=tuple(sections),
        footer=f"fairwatch snapshot {snapshot_id} · data fingerprint {str((doc.get('fingerprint') or {}).get('digest', ''))[:16]}",
        issued_at=str(export.get("exported_at") or doc.get("created_at") or ""),
        author=name,
    )
