"""Issue 6 acceptance: the exported report.html opens in a real browser with no network and shows every chart.

A demo audit is exported; its report.html is opened from disk in Debian's chromium in an offline
context where every request that is not the file itself is aborted and recorded. Each chart the
report declares (the report model built from snapshot.json) must be on the page as a drawn SVG
with marks and a size, and nothing may have tried to leave the page (requests, CSP violations,
script errors). A screenshot goes to tests/e2e/screenshots/report_offline.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.browser import ROOT, launch, require_browser

pytestmark = pytest.mark.e2e
SHOTS = ROOT / "tests" / "e2e" / "screenshots"

sync_api = require_browser()

# Runs before the page's own content: records every Content-Security-Policy violation (a blocked fetch
# never reaches the network, so request events alone would miss it).
RECORD_CSP = """window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.blockedURI + ' ' + e.violatedDirective));"""

# Per chart container: its id, how many drawn SVG/canvas elements it holds, the marks inside the SVG and
# its rendered size.
CHARTS_JS = """() => [...document.querySelectorAll('figure[data-chart]')].map(f => {
  const drawn = f.querySelector('.chart svg, .chart canvas');
  const box = drawn ? drawn.getBoundingClientRect() : {width: 0, height: 0};
  return {id: f.dataset.chart, drawn: f.querySelectorAll('.chart > svg, .chart > canvas').length,
          marks: drawn ? drawn.querySelectorAll('path, rect, line, circle, text').length : 0,
          width: box.width, height: box.height};
})"""


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, list[str]]:
    """A demo audit's report.html and the chart ids its report model declares."""
    from fairwatch.connectors.audit import run_audit
    from fairwatch.connectors.demo import DEMO_CONFIG, write_demo
    from fairwatch.connectors.export import REPORT_HTML, export_snapshot, load_snapshot
    from fairwatch.connectors.source import open_source
    from fairwatch.metrics.presentation.report_model import build_report
    from fairwatch.metrics.audit.spec import RowFilter, SourceSpec, parse_spec

    root = tmp_path_factory.mktemp("report-offline")
    write_demo(root / "demo.duckdb", rows=20_000)
    spec = parse_spec(DEMO_CONFIG)
    spec = spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(root / "demo.duckdb")}))
    src = open_source(spec.source)
    try:
        result = export_snapshot(run_audit(spec, RowFilter(), src), root / "history" / "audit", src=src)
    finally:
        src.close()
    declared = [c.chart_id for c in build_report(load_snapshot(result.path)).charts()]
    return result.path / REPORT_HTML, declared


def open_offline(html: Path) -> dict:
    """Open a file in an offline chromium context; what was requested, blocked, violated and drawn."""
    requested, blocked, errors = [], [], []
    with sync_api.sync_playwright() as pw:
        browser = launch(pw)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1100, "height": 900})

            def only_the_file(route) -> None:
                """Let the report itself load; abort (and record) anything else."""
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    blocked.append(route.request.url)
                    route.abort()

            context.route("**/*", only_the_file)
            context.add_init_script(RECORD_CSP)
            page = context.new_page()
            page.on("request", lambda r: requested.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(html.as_uri(), wait_until="load")
            page.wait_for_timeout(500)  # anything lazy (a script fetching a library) would start by now
            charts = page.evaluate(CHARTS_JS)
            violations = page.evaluate("window.__violations")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "report_offline.png"), full_page=True)
            page.emulate_media(media="print")
            printed = page.evaluate(CHARTS_JS)
        finally:
            browser.close()
    return {"requested": requested, "blocked": blocked, "errors": errors, "violations": violations,
            "charts": charts, "printed": printed}


def test_report_shows_every_chart_offline(report):
    html, declared = report
    assert len(declared) >= 3, declared  # the demo's report has charts to draw
    seen = open_offline(html)
    charts = seen["charts"]
    assert [c["id"] for c in charts] == declared
    for chart in charts:
        assert chart["drawn"] == 1, chart
        assert chart["marks"] >= 10 and chart["width"] > 100 and chart["height"] > 50, chart
    # Nothing left the page and nothing tried to.
    assert seen["blocked"] == [] and seen["violations"] == [] and seen["errors"] == [], seen
    assert seen["requested"] == [html.as_uri()], seen["requested"]
    # Printed (the @media print rules), every chart still has its size.
    assert all(c["drawn"] == 1 and c["width"] > 100 and c["height"] > 50 for c in seen["printed"]), seen["printed"]
