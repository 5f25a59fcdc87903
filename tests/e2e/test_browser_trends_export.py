"""The Trends and Audit export pages in a real browser: they draw without an exception box, a bad rule is an
error line, a snapshot is written, verified and downloadable. Screenshots go to tests/e2e/screenshots/."""

from __future__ import annotations

import re

import pytest

from tests.e2e.browser import wait_drawn
from tests.e2e.test_browser import SHOTS, app_url, page  # noqa: F401 - the app over the demo; skips without chromium

pytestmark = pytest.mark.e2e
ERRORS = '[data-testid="stAlertContentError"]'


@pytest.fixture(scope="module", autouse=True)
def history(tmp_path_factory):
    """A temporary snapshot history, set before the app starts (autouse fixtures come first in their scope)."""
    folder = tmp_path_factory.mktemp("e2e-snapshots")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRWATCH_SNAPSHOT_DIR", str(folder))
        yield folder


def _open(tab, url: str) -> int:
    """Go to a page, wait until it is drawn, and check it shows no exception; the number of charts."""
    tab.set_viewport_size({"width": 1400, "height": 7000})  # the whole page in one screenshot
    tab.goto(url)
    charts, _ = wait_drawn(tab)
    assert tab.locator('[data-testid="stException"]').count() == 0
    return charts


def test_trends_page_draws_and_a_bad_rule_is_an_error_line(app_url, page):
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert _open(page, f"{app_url}/Trends") == 5
    assert page.locator(ERRORS).count() == 0
    page.screenshot(path=str(SHOTS / "trends.png"), full_page=True)
    box = page.locator('input[aria-label="Try a rule"]')
    box.fill("fnr ratio >> 1.25")
    box.press("Enter")
    page.wait_for_selector(ERRORS, timeout=30_000)
    assert "expected a number" in page.locator(ERRORS).first.inner_text()
    assert page.locator('[data-testid="stException"]').count() == 0


def test_export_page_writes_verifies_and_downloads_a_snapshot(app_url, page, history):
    _open(page, f"{app_url}/Audit_export")
    page.locator('input[aria-label="Author"]').fill("Alice Auditor")
    page.locator('textarea[aria-label="Note"]').fill("browser test")
    page.get_by_role("button", name="Create snapshot").click()
    page.wait_for_selector('[data-testid="stAlertContentSuccess"]', timeout=60_000)
    wait_drawn(page)
    assert page.locator(ERRORS).count() == 0
    assert len([p for p in history.iterdir() if not p.name.startswith(".")]) == 1
    assert page.get_by_text(re.compile(r"Intact: 1 snapshot")).count() == 1
    page.screenshot(path=str(SHOTS / "audit_export.png"), full_page=True)
    with page.expect_download() as download:
        page.get_by_role("button", name="HTML").click()
    assert download.value.suggested_filename.endswith("_report.html")
    assert "Fairness audit report" in open(download.value.path(), encoding="utf-8").read()
