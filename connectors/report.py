"""Draw a `ReportModel` as a self-contained HTML page and as a PDF; render its charts offline.

Charts are rendered by vl-convert (Vega and Vega-Lite compiled into the wheel, with a bundled font),
so nothing is fetched: SVG inlined in the HTML, PNG in the PDF. The HTML has no script and no
external reference (fonts, styles and images are all inline), so it opens offline, prints on A4,
and cannot phone home. Every piece of text goes through `esc`: group names come from the data.
The PDF is drawn with fpdf2 in a Unicode TrueType font found on the system (DejaVu or Liberation);
where none is found it falls back to Helvetica with text reduced to Latin-1.
"""

from __future__ import annotations

import html
import importlib
import io
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from fairwatch.metrics.errors import ReportError
from fairwatch.metrics.presentation.report_model import Bullets, Chart, Facts, Paragraph, ReportModel, Section, Table

# (regular, bold) TrueType fonts tried in order for the PDF.
PDF_FONTS = (
    ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    ("/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
     "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf"),
    ("/usr/share/fonts/TTF/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf"),
    ("/Library/Fonts/Arial Unicode.ttf", "/Library/Fonts/Arial Bold.ttf"),
    ("C:/Windows/Fonts/arial.ttf", "C:/Windows/Fonts/arialbd.ttf"),
)
STATUS_COLORS = {"bad": ("#fdecea", "#c0392b"), "warn": ("#fff4e0", "#b9770e"), "good": ("#e9f7ef", "#1e8449")}
_XML_PROLOG = re.compile(r"^\s*<\?xml[^>]*>\s*")


@dataclass(frozen=True)
class RenderedChart:
    """One chart drawn: inline SVG for the HTML, PNG bytes and size in CSS pixels for the PDF."""

    svg: str
    png: bytes
    width_px: float
    height_px: float


def esc(text: object) -> str:
    """HTML-escaped text (quotes too: text also goes into attributes)."""
    return html.escape(str(text), quote=True)


_WARM = threading.Lock()
_warm_thread: threading.Thread | None = None


def start_chart_runtime() -> None:
    """Convert one tiny chart: starts vl-convert's JavaScript runtime (a failure shows up later, in render_charts)."""
    try:
        import vl_convert as vlc

        vlc.vegalite_to_svg({"mark": "point", "data": {"values": [{"x": 1}]},
                             "encoding": {"x": {"field": "x", "type": "quantitative"}}})
    except Exception:  # noqa: BLE001 - a failed warm-up shows up, with its message, in render_charts
        pass


def warm_up_charts() -> None:
    """Start the chart renderer in the background (once per process), and load the chart builders.

    vl-convert's first call starts its JavaScript runtime (about 1 s); an export starts it first. It holds
    the GIL while it converts (a competing Python thread ran at 7% of its speed, issue 18), so the overlap
    that pays is with DuckDB's queries, which release it; the report worker (report_worker.py) draws in
    its own process. The report's charts
    are the dashboard's Altair builders (metrics/presentation/charts.py): Altair's import (about half
    a second) is started here too, so `fairwatch audit` loads it while DuckDB counts, and a process
    that never draws a report never imports it.
    """
    global _warm_thread
    with _WARM:
        if _warm_thread is not None:
            return

        def load() -> None:
            """Import the chart builders (Altair), which build_report calls."""
            try:
                importlib.import_module("fairwatch.metrics.presentation.charts")
            except ImportError:  # build_report says what is missing, with its message
                pass

        _warm_thread = threading.Thread(target=start_chart_runtime, name="fairwatch-chart-warm-up", daemon=True)
        _warm_thread.start()
        threading.Thread(target=load, name="fairwatch-altair-warm-up", daemon=True).start()


def warm_up_reports() -> None:
    """Start the chart renderer and import the PDF library in the background (once per process).

    `fairwatch audit` calls this first: the imports (fpdf2 with Pillow and fontTools, about half a
    second) then run while the audit's queries run in DuckDB, which releases the GIL.
    """
    warm_up_charts()

    def load() -> None:
        """Import what render_pdf needs."""
        try:
            import fpdf  # noqa: F401
            from fpdf.fonts import FontFace  # noqa: F401
        except ImportError:  # render_pdf says what is missing, with its message
            pass

    threading.Thread(target=load, name="fairwatch-pdf-warm-up", daemon=True).start()


def render_charts(model: ReportModel, png_scale: float = 2.0) -> dict[str, RenderedChart]:
    """Every chart of the report as SVG and PNG, keyed by chart id."""
    try:
        import vl_convert as vlc
    except ImportError:
        raise ReportError("charts need vl-convert-python: pip install vl-convert-python (it renders offline)") from None
    out = {}
    for chart in model.charts():
        try:
            svg = _XML_PROLOG.sub("", vlc.vegalite_to_svg(chart.spec))
            png = vlc.svg_to_png(svg, scale=png_scale)
        except Exception as exc:  # noqa: BLE001 - vl-convert raises plain ValueError/RuntimeError
            raise ReportError(f"chart {chart.title!r} could not be drawn: {str(exc).splitlines()[0]}") from None
        width, height = _svg_size(svg)
        out[chart.chart_id] = RenderedChart(svg=svg, png=png, width_px=width, height_px=height)
    return out


def _svg_size(svg: str) -> tuple[float, float]:
    """The width and height attributes of the root <svg>."""
    head = svg[:400]
    w = re.search(r'width="([\d.]+)', head)
    h = re.search(r'height="([\d.]+)', head)
    return (float(w.group(1)) if w else 600.0, float(h.group(1)) if h else 300.0)


# ----------------------------------------------------------------------------- HTML

_CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#d9dee3;--soft:#f5f7f9;--accent:#1f4e79}
*{box-sizing:border-box}
body{margin:0;background:#eef1f4;color:var(--ink);font:15px/1.5 "Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",sans-serif}
main{max-width:1000px;margin:24px auto;background:#fff;padding:40px 48px;box-shadow:0 1px 4px rgba(0,0,0,.08)}
header h1{margin:0;font-size:28px;color:var(--accent);letter-spacing:-.01em}
header .sub{color:var(--muted);margin:4px 0 18px;word-break:break-all}
.status{border-left:6px solid;padding:12px 16px;border-radius:4px;font-weight:600;font-size:16px;margin:0 0 18px}
.figures{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:8px}
.figure{background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:10px 14px}
.figure .v{font-size:22px;font-weight:700;color:var(--accent)}
.figure .l{font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.04em}
nav{font-size:13px;color:var(--muted);margin:14px 0 6px}
nav a{color:var(--accent);text-decoration:none;margin-right:14px}
h2{font-size:20px;color:var(--accent);border-bottom:2px solid var(--accent);padding-bottom:4px;margin:34px 0 12px;break-after:avoid}
h3{font-size:16px;margin:22px 0 8px;break-after:avoid}
p{margin:8px 0}
ul{margin:8px 0 8px 20px;padding:0}
li{margin:4px 0}
.callout{padding:8px 12px;border-radius:4px;border-left:4px solid}
.callout.bad{background:#fdecea;border-color:#c0392b}
.callout.warn{background:#fff4e0;border-color:#e08e0b}
.callout.good{background:#e9f7ef;border-color:#1e8449}
.callout.note{background:var(--soft);border-color:#8a99a8;color:#3e4c59;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:10px 0 4px}
caption{text-align:left;font-weight:600;padding:4px 0;color:var(--ink)}
th{background:#e8edf2;text-align:left;padding:6px 8px;border-bottom:2px solid #b8c4ce;font-weight:600;vertical-align:bottom}
td{padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:anywhere}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.bad td{background:#fdecea}
tr.bad td:first-child{box-shadow:inset 4px 0 0 #c0392b}
tr.warn td{background:#fff8ec}
tr.warn td:first-child{box-shadow:inset 4px 0 0 #e08e0b}
tr.muted td{color:#8a99a8}
.tnote{font-size:12px;color:var(--muted);margin:2px 0 10px}
figure{margin:14px 0 18px;break-inside:avoid}
figure .chart{overflow-x:auto}
figure svg{max-width:100%;height:auto}
figcaption{font-size:13px;color:var(--muted);margin-top:6px}
figcaption b{color:var(--ink)}
dl.facts{display:grid;grid-template-columns:220px 1fr;gap:6px 16px;margin:10px 0;font-size:14px}
dl.facts dt{font-weight:600;color:#3e4c59}
dl.facts dd{margin:0;word-break:break-word}
footer{margin-top:34px;padding-top:10px;border-top:1px solid var(--line);font-size:12px;color:var(--muted)}
@page{size:A4;margin:14mm}
@media print{
 body{background:#fff;font-size:11pt}
 main{box-shadow:none;margin:0;padding:0;max-width:none}
 nav{display:none}
 tr,figure,.status,.figures,dl.facts div{break-inside:avoid}
 h2{break-before:auto}
 thead{display:table-header-group}
 tr.bad td,tr.warn td,.status,.callout,.figure,th{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def _html_table(t: Table) -> str:
    """A table block."""
    head = "".join(f'<th class="{"num" if num else ""}" scope="col">{esc(c)}</th>' for c, num in zip(t.columns, t.numeric))
    body = []
    for i, row in enumerate(t.rows):
        style = t.row_styles[i] if i < len(t.row_styles) else ""
        cells = "".join(f'<td class="{"num" if num else ""}">{esc(v)}</td>' for v, num in zip(row, t.numeric))
        body.append(f'<tr class="{esc(style)}">{cells}</tr>')
    caption = f"<caption>{esc(t.caption)}</caption>" if t.caption else ""
    note = f'<p class="tnote">{esc(t.note)}</p>' if t.note else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}"


def _html_block(block: object, charts: Mapping[str, RenderedChart]) -> str:
    """One block of a section."""
    if isinstance(block, Paragraph):
        if block.kind == "heading":
            return f"<h3>{esc(block.text)}</h3>"
        if block.kind == "text":
            return f"<p>{esc(block.text)}</p>"
        return f'<p class="callout {esc(block.kind)}">{esc(block.text)}</p>'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in block.items) + "</ul>"
    if isinstance(block, Facts):
        return '<dl class="facts">' + "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in block.pairs) + "</dl>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Chart):
        drawn = charts.get(block.chart_id)
        body = drawn.svg if drawn else f"<p>{esc('(chart not drawn)')}</p>"
        return (f'<figure id="{esc(block.chart_id)}" data-chart="{esc(block.chart_id)}" role="img" '
                f'aria-label="{esc(block.title)}"><div class="chart">{body}</div>'
                f"<figcaption><b>{esc(block.title)}.</b> {esc(block.description)}</figcaption></figure>")
    raise TypeError(f"unknown report block {type(block).__name__}")


def render_html(model: ReportModel, charts: Mapping[str, RenderedChart]) -> str:
    """The report as one self-contained HTML page (inline CSS and SVG, no scripts, no external links)."""
    bg, fg = STATUS_COLORS.get(model.status, STATUS_COLORS["warn"])
    figures = "".join(f'<div class="figure"><div class="v">{esc(v)}</div><div class="l">{esc(k)}</div></div>'
                      for k, v in model.key_figures)
    nav = "".join(f'<a href="#{esc(s.section_id)}">{esc(s.title)}</a>' for s in model.sections)
    sections = "".join(
        f'<section id="{esc(s.section_id)}"><h2>{esc(s.title)}</h2>'
        + "".join(_html_block(b, charts) for b in s.blocks) + "</section>"
        for s in model.sections
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        # No network: forbid every fetch, even if someone later edits the page.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">"
        f"<title>{esc(model.title)}</title><style>{_CSS}</style></head><body><main>"
        f"<header><h1>{esc(model.title)}</h1><div class=\"sub\">{esc(model.subtitle)}</div>"
        f"<div class=\"status\" style=\"background:{bg};border-color:{fg};color:{fg}\">{esc(model.headline)}</div>"
        f"<div class=\"figures\">{figures}</div></header>"
        f"<nav>{nav}</nav>{sections}<footer>{esc(model.footer)}</footer></main></body></html>\n"
    )


# ----------------------------------------------------------------------------- PDF


def _pdf_font() -> tuple[str, str] | None:
    """(regular, bold) TrueType paths, or None to fall back to Helvetica."""
    extra = os.environ.get("FAIRWATCH_PDF_FONT")
    candidates = ((extra, extra),) + PDF_FONTS if extra else PDF_FONTS
    for regular, bold in candidates:
        if regular and os.path.isfile(regular):
            return regular, bold if bold and os.path.isfile(bold) else regular
    return None


_TYPOGRAPHY = str.maketrans({"–": "-", "—": "-", "≥": ">=", "≤": "<=", "…": "...", "•": "-", "’": "'", "‘": "'",
                             "“": '"', "”": '"', "−": "-"})


def _to_latin1(text: str) -> str:
    """Typographic characters spelled in Latin-1; anything else that Helvetica cannot draw becomes '?'."""
    return text.translate(_TYPOGRAPHY).encode("latin-1", "replace").decode("latin-1")


def _model_texts(model: ReportModel) -> list[str]:
    """Every piece of text the PDF will draw."""
    out = [model.title, model.subtitle, model.headline, model.footer]
    out += [t for pair in model.key_figures for t in pair]
    for s in model.sections:
        out.append(s.title)
        for b in s.blocks:
            if isinstance(b, Paragraph):
                out.append(b.text)
            elif isinstance(b, Bullets):
                out += list(b.items)
            elif isinstance(b, Facts):
                out += [t for pair in b.pairs for t in pair]
            elif isinstance(b, Table):
                out += [b.caption, b.note, *b.columns, *(v for row in b.rows for v in row)]
            elif isinstance(b, Chart):
                out += [b.title, b.description]
    return out


def _latin1_only(model: ReportModel) -> bool:
    """True when Helvetica can draw the whole report (after spelling typographic characters in Latin-1)."""
    try:
        for t in _model_texts(model):
            t.translate(_TYPOGRAPHY).encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _hex(color: str) -> tuple[int, int, int]:
    """'#c0392b' -> (192, 57, 43)."""
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


class _Pdf:
    """A thin drawing layer over fpdf2 with the report's styles."""

    MARGIN = 15.0

    def __init__(self, model: ReportModel) -> None:
        """An A4 document with the report's fonts, running header and page footer."""
        from fpdf import FPDF

        self.model = model
        pdf = FPDF(orientation="P", unit="mm", format="A4")
        pdf.set_margins(self.MARGIN, 16, self.MARGIN)
        pdf.set_auto_page_break(True, margin=16)
        pdf.set_title(model.title)
        pdf.set_author(model.author or "fairwatch")
        pdf.set_creator("fairwatch")
        try:
            # The export time, not "now": the same model gives the same PDF metadata.
            pdf.set_creation_date(datetime.fromisoformat(model.issued_at))
        except ValueError:
            pass
        # Helvetica is built into every PDF reader and costs nothing to embed; a TrueType font (0.2-0.4 s to
        # load and subset) is used only when the report holds text outside Latin-1, such as non-Latin group names.
        fonts = None if _latin1_only(model) else _pdf_font()
        self.unicode = fonts is not None
        if fonts:
            pdf.add_font("Body", "", fonts[0])
            pdf.add_font("Body", "B", fonts[1])
            self.family = "Body"
        else:
            self.family = "helvetica"
        footer = model.footer
        title = model.title
        outer = self

        def header() -> None:
            """The report title on every page after the first."""
            if pdf.page_no() == 1:
                return
            pdf.set_font(outer.family, "", 7.5)
            pdf.set_text_color(120, 130, 140)
            pdf.set_y(8)
            pdf.cell(0, 4, outer.text(title), align="L")
            pdf.set_draw_color(210, 215, 220)
            pdf.line(outer.MARGIN, 12.5, pdf.w - outer.MARGIN, 12.5)
            pdf.set_y(16)

        def footer_fn() -> None:
            """Snapshot id, fingerprint and page number on every page."""
            pdf.set_y(-11)
            pdf.set_font(outer.family, "", 7.5)
            pdf.set_text_color(120, 130, 140)
            pdf.cell(0, 4, outer.text(footer), align="L")
            pdf.set_x(outer.MARGIN)
            pdf.cell(0, 4, f"page {pdf.page_no()} of {{nb}}", align="R")

        pdf.header = header  # type: ignore[method-assign]
        pdf.footer = footer_fn  # type: ignore[method-assign]
        self.pdf = pdf

    @property
    def width(self) -> float:
        """Usable width in mm."""
        return self.pdf.w - 2 * self.MARGIN

    def text(self, value: str) -> str:
        """Text the font can draw (Latin-1 with Helvetica)."""
        if self.unicode:
            return value
        return _to_latin1(value)

    def ensure(self, height: float) -> None:
        """Start a new page unless `height` mm still fit on this one."""
        if self.pdf.get_y() + height > self.pdf.h - 18:
            self.pdf.add_page()

    def para(self, text: str, size: float = 9.5, bold: bool = False, color: tuple[int, int, int] = (31, 41, 51),
             height: float = 4.8) -> None:
        """A wrapped paragraph."""
        self.pdf.set_font(self.family, "B" if bold else "", size)
        self.pdf.set_text_color(*color)
        self.pdf.multi_cell(0, height, self.text(text), align="L", new_x="LMARGIN", new_y="NEXT")

    def callout(self, text: str, kind: str) -> None:
        """A paragraph on a tinted background with a coloured bar."""
        bg, fg = {"bad": ("#fdecea", "#c0392b"), "warn": ("#fff4e0", "#e08e0b"), "good": ("#e9f7ef", "#1e8449"),
                  "note": ("#f5f7f9", "#8a99a8")}.get(kind, ("#f5f7f9", "#8a99a8"))
        pdf = self.pdf
        pdf.set_font(self.family, "", 9.5)
        lines = pdf.multi_cell(self.width - 6, 4.8, self.text(text), dry_run=True, output="LINES")
        h = 4.8 * len(lines) + 4
        self.ensure(h + 2)
        x, y = pdf.get_x(), pdf.get_y()
        pdf.set_fill_color(*_hex(bg))
        pdf.rect(x, y, self.width, h, style="F")
        pdf.set_fill_color(*_hex(fg))
        pdf.rect(x, y, 1.4, h, style="F")
        pdf.set_xy(x + 4, y + 2)
        pdf.set_text_color(31, 41, 51)
        pdf.multi_cell(self.width - 6, 4.8, self.text(text), align="L", new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(y + h + 2)

    def heading(self, text: str, level: int) -> None:
        """A section (2) or subsection (3) heading, kept with what follows."""
        pdf = self.pdf
        self.ensure(30 if level == 2 else 22)
        pdf.ln(4 if level == 2 else 2)
        pdf.set_font(self.family, "B", 14 if level == 2 else 11)
        pdf.set_text_color(31, 78, 121)
        pdf.cell(0, 7 if level == 2 else 6, self.text(text), new_x="LMARGIN", new_y="NEXT")
        if level == 2:
            pdf.set_draw_color(31, 78, 121)
            pdf.set_line_width(0.5)
            pdf.line(self.MARGIN, pdf.get_y(), pdf.w - self.MARGIN, pdf.get_y())
            pdf.set_line_width(0.2)
            pdf.ln(2.5)

    def bullets(self, items: tuple[str, ...]) -> None:
        """A bullet list with hanging indent."""
        pdf = self.pdf
        for item in items:
            pdf.set_font(self.family, "", 9.5)
            pdf.set_text_color(31, 41, 51)
            self.ensure(6)
            y = pdf.get_y()
            # A drawn dot: the same in every font.
            pdf.set_fill_color(31, 78, 121)
            pdf.circle(x=self.MARGIN + 2.2, y=y + 2.4, radius=0.7, style="F")
            pdf.set_xy(self.MARGIN + 5, y)
            pdf.multi_cell(self.width - 5, 4.8, self.text(item), align="L", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(0.8)

    def facts(self, pairs: tuple[tuple[str, str], ...]) -> None:
        """Label/value pairs as a borderless two-column table."""
        from fpdf.fonts import FontFace

        pdf = self.pdf
        pdf.set_font(self.family, "", 8.5)
        pdf.set_text_color(31, 41, 51)
        pdf.set_fill_color(255, 255, 255)
        plain = FontFace(fill_color=(255, 255, 255))
        with pdf.table(col_widths=(0.28, 0.72), first_row_as_headings=False, borders_layout="NONE",
                       line_height=4.4, padding=(0.8, 1.5, 0.8, 0), text_align="LEFT") as table:
            for k, v in pairs:
                row = table.row(style=plain)
                row.cell(self.text(k), style=FontFace(emphasis="BOLD", color=(62, 76, 89), fill_color=(255, 255, 255)))
                row.cell(self.text(v))
        pdf.ln(2)

    def table(self, t: Table) -> None:
        """A data table with a repeated header, tinted flagged rows and right-aligned numbers."""
        from fpdf.fonts import FontFace

        pdf = self.pdf
        if t.caption:
            self.ensure(20)
            self.para(t.caption, size=9.5, bold=True)
        n = len(t.columns)
        widths = t.widths if len(t.widths) == n else tuple(1.0 for _ in range(n))
        pdf.set_font(self.family, "", 7.5 if n > 5 else 8.5)
        pdf.set_text_color(31, 41, 51)
        pdf.set_draw_color(200, 207, 214)
        # Every row gets an explicit fill: fpdf2 otherwise fills some rows with the last fill colour used.
        styles = {"bad": FontFace(fill_color=(253, 236, 234)), "warn": FontFace(fill_color=(255, 244, 224)),
                  "muted": FontFace(color=(138, 153, 168), fill_color=(255, 255, 255)),
                  "": FontFace(fill_color=(255, 255, 255))}
        pdf.set_fill_color(255, 255, 255)
        self.ensure(14)
        with pdf.table(col_widths=widths, width=self.width, line_height=3.9, borders_layout="HORIZONTAL_LINES",
                       headings_style=FontFace(emphasis="BOLD", fill_color=(232, 237, 242), color=(31, 41, 51)),
                       text_align=tuple("RIGHT" if num else "LEFT" for num in t.numeric), repeat_headings=1,
                       padding=(1.0, 1.2, 1.0, 1.2)) as table:
            head = table.row()
            for c in t.columns:
                head.cell(self.text(c))
            for i, values in enumerate(t.rows):
                style = styles.get(t.row_styles[i] if i < len(t.row_styles) else "", styles[""])
                row = table.row(style=style)
                for v in values:
                    row.cell(self.text(v))
        if t.note:
            self.para(t.note, size=8, color=(97, 110, 124), height=4)
        pdf.ln(2)

    def chart(self, chart: Chart, drawn: RenderedChart | None) -> None:
        """A chart image scaled to the page, kept whole on one page, with its caption."""
        pdf = self.pdf
        if drawn is None:
            self.para(f"({chart.title}: chart not drawn)")
            return
        # CSS pixels at 96 per inch; never wider than the text column.
        w = min(drawn.width_px * 25.4 / 96, self.width)
        h = drawn.height_px * w / drawn.width_px
        max_h = pdf.h - 40
        if h > max_h:
            w, h = w * max_h / h, max_h
        self.ensure(h + 14)
        pdf.image(io.BytesIO(drawn.png), x=self.MARGIN + (self.width - w) / 2, w=w, h=h, alt_text=chart.description)
        pdf.ln(1.5)
        pdf.set_font(self.family, "B", 8.5)
        pdf.set_text_color(31, 41, 51)
        pdf.multi_cell(0, 4.2, self.text(chart.title + ". ") , new_x="LMARGIN", new_y="NEXT")
        self.para(chart.description, size=8.5, color=(97, 110, 124), height=4.2)
        pdf.ln(2)

    def cover(self) -> None:
        """Title, subtitle, status banner and key figures on page 1."""
        pdf, m = self.pdf, self.model
        pdf.add_page()
        pdf.set_font(self.family, "B", 22)
        pdf.set_text_color(31, 78, 121)
        pdf.cell(0, 11, self.text(m.title), new_x="LMARGIN", new_y="NEXT")
        self.para(m.subtitle, size=9, color=(97, 110, 124))
        pdf.ln(3)
        bg, fg = STATUS_COLORS.get(m.status, STATUS_COLORS["warn"])
        pdf.set_font(self.family, "B", 11)
        lines = pdf.multi_cell(self.width - 8, 5.5, self.text(m.headline), dry_run=True, output="LINES")
        h = 5.5 * len(lines) + 6
        y = pdf.get_y()
        pdf.set_fill_color(*_hex(bg))
        pdf.rect(self.MARGIN, y, self.width, h, style="F")
        pdf.set_fill_color(*_hex(fg))
        pdf.rect(self.MARGIN, y, 2, h, style="F")
        pdf.set_xy(self.MARGIN + 5, y + 3)
        pdf.set_text_color(*_hex(fg))
        pdf.multi_cell(self.width - 8, 5.5, self.text(m.headline), new_x="LMARGIN", new_y="NEXT")
        pdf.set_y(y + h + 4)
        n = max(len(m.key_figures), 1)
        gap = 3.0
        bw = (self.width - gap * (n - 1)) / n
        y = pdf.get_y()
        for i, (label, value) in enumerate(m.key_figures):
            x = self.MARGIN + i * (bw + gap)
            pdf.set_fill_color(245, 247, 249)
            pdf.set_draw_color(217, 222, 227)
            pdf.rect(x, y, bw, 17, style="DF")
            pdf.set_xy(x + 3, y + 2.5)
            pdf.set_font(self.family, "B", 14)
            pdf.set_text_color(31, 78, 121)
            pdf.cell(bw - 6, 7, self.text(value))
            pdf.set_xy(x + 3, y + 10)
            pdf.set_font(self.family, "", 7)
            pdf.set_text_color(97, 110, 124)
            pdf.cell(bw - 6, 4, self.text(label.upper()))
        pdf.set_y(y + 21)

    def section(self, s: Section, charts: Mapping[str, RenderedChart]) -> None:
        """One section and its blocks."""
        self.heading(s.title, s.level)
        for block in s.blocks:
            if isinstance(block, Paragraph):
                if block.kind == "heading":
                    self.heading(block.text, 3)
                elif block.kind == "text":
                    self.para(block.text)
                    self.pdf.ln(1)
                else:
                    self.callout(block.text, block.kind)
            elif isinstance(block, Bullets):
                self.bullets(block.items)
            elif isinstance(block, Facts):
                self.facts(block.pairs)
            elif isinstance(block, Table):
                self.table(block)
            elif isinstance(block, Chart):
                self.chart(block, charts.get(block.chart_id))


def render_pdf(model: ReportModel, charts: Mapping[str, RenderedChart]) -> bytes:
    """The report as an A4 PDF."""
    try:
        import fpdf  # noqa: F401
    except ImportError:
        raise ReportError("the PDF report needs fpdf2: pip install fpdf2") from None
    doc = _Pdf(model)
    doc.cover()
    for s in model.sections:
        doc.section(s, charts)
    return bytes(doc.pdf.output())
