"""The real app in a real browser: every page draws, no exception box, charts paint, links keep the view.

Screenshots go to tests/e2e/screenshots/ (git-ignored); the test prints where.
"""

from __future__ import annotations

import os
import re
import urllib.request

import pytest

from tests.e2e.browser import PAGES, ROOT, browser_tab, require_browser, running_app, wait_drawn

pytestmark = pytest.mark.e2e
SHOTS = ROOT / "tests" / "e2e" / "screenshots"
MIN_CHARTS = {"Overview": 1, "Data sources": 0, "Representation": 2, "Performance": 3}

sync_api = require_browser()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app started as `make run` starts it, on a free port, over a 100k-row demo."""
    from tests.demo_data import demo_folder

    folder = tmp_path_factory.mktemp("e2e-data")
    demo_folder(folder, rows=100_000)
    # Exports and downloads are written to the access log: a temp one, not the repo's logs/.
    env = {"FAIRWATCH_DATA_DIR": str(folder), "FAIRWATCH_CONFIG": str(folder / "fairwatch.toml"),
           # A module that reads the log sets its own path first (tests/e2e/test_browser_slices.py).
           "FAIRWATCH_ACCESS_LOG": os.environ.get("FAIRWATCH_ACCESS_LOG")
           or str(tmp_path_factory.mktemp("e2e-log") / "access-log.jsonl")}
    with running_app(env) as base:
        yield base


@pytest.fixture(scope="module")
def page(app_url):
    with browser_tab(1400, 3000) as tab:
        yield tab


def _decisions(tab) -> str:
    return tab.locator('[data-testid="stMetric"]').filter(has_text="Decisions audited") \
        .locator('[data-testid="stMetricValue"]').inner_text()


def test_every_page_draws_without_exceptions(app_url, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {SHOTS}")
    for name, path in PAGES.items():
        page.goto(f"{app_url}/{path}")
        charts, _ = wait_drawn(page)
        assert page.locator('[data-testid="stException"]').count() == 0, name
        assert page.locator('[data-testid="stAlertContentError"]').count() == 0, name
        assert charts >= MIN_CHARTS[name], (name, charts)
        page.screenshot(path=str(SHOTS / f"{name.lower().replace(' ', '_')}.png"), full_page=True)


def test_a_link_with_a_model_version_opens_that_view_and_keeps_it_across_pages(app_url, page):
    page.goto(f"{app_url}/")
    wait_drawn(page)
    everything = _decisions(page)
    page.goto(f"{app_url}/?model_version=v2")
    wait_drawn(page)
    assert _decisions(page) != everything
    # The menu is the access gate's own (.streamlit/config.toml turns Streamlit's off): links of the role's pages.
    page.locator('[data-testid="stSidebar"] [data-testid="stPageLink"]').filter(has_text="Performance").click()
    page.wait_for_url(re.compile(r".*/Performance.*"))
    wait_drawn(page)
    page.wait_for_url(re.compile(r".*model_version=v2.*"), timeout=10_000)
    assert "model version v2" in page.locator('[data-testid="stSidebar"]').inner_text()
    page.screenshot(path=str(SHOTS / "performance_v2.png"), full_page=True)


def test_a_bad_typed_path_is_an_error_line_not_a_traceback(app_url, page):
    page.goto(f"{app_url}/Data_sources")
    wait_drawn(page)
    page.get_by_text("A file in the data folder").click()
    wait_drawn(page)
    box = page.get_by_label(re.compile("or type a path"))
    box.fill("../../etc/passwd")
    box.press("Enter")
    page.wait_for_selector('[data-testid="stAlertContentError"]', timeout=20_000)
    assert "not allowed" in page.locator('[data-testid="stAlertContentError"]').first.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0


def _get(url: str, gzip: bool) -> tuple[bytes, str | None]:
    """The raw body and Content-Encoding of one GET, asking for gzip or not."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read(), response.headers.get("Content-Encoding")


def test_static_javascript_is_gzipped_when_asked(app_url):
    """As `make run` serves it, the main bundle travels gzip-compressed to a browser that accepts it (the
    page weight target), and plain to one that does not."""
    index, _ = _get(app_url + "/", gzip=False)
    bundle = re.search(rb"static/js/index\.[\w-]+\.js", index)
    assert bundle, "no main bundle linked from the page"
    packed, encoding = _get(f"{app_url}/{bundle.group().decode()}", gzip=True)
    plain, plain_encoding = _get(f"{app_url}/{bundle.group().decode()}", gzip=False)
    assert encoding == "gzip" and plain_encoding is None
    assert len(packed) < len(plain) / 2
