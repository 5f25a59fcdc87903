"""The Slices and Data quality pages in a real browser: they draw without an exception box, a click on a slice
opens its drill-down with the planted slice's need, example rows appear and are logged. Screenshots go to
tests/e2e/screenshots/."""

from __future__ import annotations

import json

import pytest

from tests.e2e.browser import wait_drawn
from tests.e2e.test_browser import SHOTS, app_url, page  # noqa: F401 - the app over the demo; skips without chromium

pytestmark = pytest.mark.e2e
ERRORS = '[data-testid="stAlertContentError"]'
PLANTED = "region=south, channel=broker"


@pytest.fixture(scope="module", autouse=True)
def access_log(tmp_path_factory):
    """A temporary access log, set before the app starts (autouse fixtures come first in their scope)."""
    path = tmp_path_factory.mktemp("e2e-access") / "access-log.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAIRWATCH_ACCESS_LOG", str(path))
        yield path


def _open(tab, url: str) -> int:
    """Go to a page, wait until it is drawn (the slice search included), check it shows no exception."""
    tab.set_viewport_size({"width": 1400, "height": 4000})
    tab.goto(url)
    charts, _ = wait_drawn(tab, timeout_ms=120_000)
    assert tab.locator('[data-testid="stException"]').count() == 0
    assert tab.locator(ERRORS).count() == 0
    return charts


def _choose(tab, label: str, text: str) -> None:
    """Pick the option of a selectbox whose text contains `text`, as a user does: open it, type, choose."""
    box = tab.locator('[data-testid="stSelectbox"]').filter(has_text=label)
    box.click()
    tab.keyboard.type(text)
    tab.get_by_role("option").filter(has_text=text).first.click()


def test_slices_page_and_a_drill_down_into_the_planted_slice(app_url, page, access_log):
    SHOTS.mkdir(parents=True, exist_ok=True)
    assert _open(page, f"{app_url}/Slices") >= 3  # metrics vs the rest, quality signals, other features
    assert page.get_by_text("Findings, ranked").count() == 1
    page.screenshot(path=str(SHOTS / "slices.png"), full_page=True)
    _choose(page, "Slice (rank by SliceLine score", PLANTED)
    page.get_by_text("Needs: Better data.").wait_for(timeout=60_000)
    wait_drawn(page, timeout_ms=60_000)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator("h4").filter(has_text=PLANTED).count() == 1
    page.screenshot(path=str(SHOTS / "slices_drilldown.png"), full_page=True)
    page.get_by_text("Show example rows").click()
    page.get_by_text("Rows 1–25 of 2,809").wait_for(timeout=30_000)
    wait_drawn(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    page.screenshot(path=str(SHOTS / "slices_example_rows.png"), full_page=True)
    records = [json.loads(line) for line in access_log.read_text(encoding="utf-8").splitlines()]
    assert [(r["action"], r["what"]) for r in records] == [("example_rows", f"slice {PLANTED}")]


def test_data_quality_page_draws_groups_and_findings(app_url, page):
    assert _open(page, f"{app_url}/Data_quality") == 1
    assert page.get_by_text("suspected label error: labelled negative with score").count() == 1
    page.screenshot(path=str(SHOTS / "data_quality.png"), full_page=True)
    _choose(page, "Show", "The findings of the slice search")
    page.get_by_text(PLANTED).first.wait_for(timeout=30_000)
    wait_drawn(page)
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator(ERRORS).count() == 0
    page.screenshot(path=str(SHOTS / "data_quality_findings.png"), full_page=True)
