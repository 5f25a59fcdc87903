"""Untrusted text stays text, in a real browser: a hostile log, every page, every role, and a crafted link.

The app is served as `make run` serves it, with sign-in through a real OIDC provider on loopback
(tests/e2e/oidc.py). The log's group values, feature values and one column name are Markdown images and
links, raw HTML, LaTeX, colour directives and icons (tests/hostile.py), all pointing at a host that does
not exist. A viewer (the least they may see), an analyst and an auditor (every page) sign in and open,
through the menu, every page they may open; then a viewer opens a `?config=` link carrying an image and a
link (tests/test_app_hostile.py walks the same pages in AppTest too). On every page: no request leaves for
another host, no element carries a URL from the data, nothing is typeset or executed, the hostile strings read as literal text where they
are named, and a viewer or analyst sees no server folder.
"""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest

from fairwatch.metrics.privacy.roles import PAGES, visible_pages
from fairwatch.metrics.presentation.text import WORD_JOINER
from tests.e2e.browser import ROOT, require_browser, wait_drawn
from tests.hostile import COLUMN, CONFIG_LINK, FEATURES, GROUPS, HOST, STRINGS, write_hostile_log

pytestmark = pytest.mark.e2e

require_browser(sign_in=True)  # skips the module without chromium, playwright or the sign-in mocks

from tests.e2e.oidc import ROLE_OF, oidc_provider, served_app, write_auth_files  # noqa: E402
from tests.e2e.test_auth import browser, sign_in  # noqa: E402,F401 (browser: the module's Chromium fixture)

MAIN, SIDEBAR = '[data-testid="stMain"]', '[data-testid="stSidebar"]'
# Every attribute through which an element can fetch or link a URL.
URL_ATTRIBUTES_JS = """(host) => {
  const found = [];
  for (const el of document.querySelectorAll('[src], [href], [srcset], [data], [poster], [action], [style]')) {
    for (const a of ['src', 'href', 'srcset', 'data', 'poster', 'action', 'style']) {
      const v = el.getAttribute(a);
      if (v && v.includes(host)) found.push(`<${el.tagName.toLowerCase()} ${a}="${v}">`);
    }
  }
  return found;
}"""
# What a page names in Markdown for every role (tables and charts draw the rest as text already).
NAMED = {"Overview": (COLUMN, *GROUPS)}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """(base URL, data folder) of the app over the hostile log, with sign-in through a running provider."""
    from tests.e2e.browser import free_port

    folder = tmp_path_factory.mktemp("hostile-data")
    config = write_hostile_log(folder)
    env = {"FAIRWATCH_DATA_DIR": str(folder), "FAIRWATCH_CONFIG": str(config),
           "FAIRWATCH_SNAPSHOT_DIR": str(folder / "audits")}
    port = free_port()
    with oidc_provider() as provider:
        secrets_file, access_file = write_auth_files(tmp_path_factory.mktemp("hostile-auth"), port, provider)
        with served_app(["--secrets", str(secrets_file), "--access", str(access_file)], env, port=port) as base:
            yield base, folder


def _watch(page, base: str, requests: list[str]) -> None:
    """Record every request the page makes to anything but the app itself (they are aborted by loopback_only)."""
    page.on("request", lambda r: None if r.url.startswith((base, "data:", "blob:", "about:")) else requests.append(r.url))


def _text(page, selector: str) -> str:
    """The visible text of a part of the page, without the invisible word joiners md_escape adds."""
    loc = page.locator(selector)
    return loc.first.inner_text().replace(WORD_JOINER, "") if loc.count() else ""


def _check_page(page, title: str, role: str, folder, requests: list[str], source_shown: bool = True) -> str:
    """Every promise on the page as drawn now; returns its main text."""
    where = f"{title} as {role}"
    assert page.locator('[data-testid="stException"]').count() == 0, f"{where}: a traceback is on the page"
    if source_shown:  # a page over the hostile log draws without a single error box
        errors = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
        assert errors == [], f"{where}: {errors}"
    assert page.evaluate(URL_ATTRIBUTES_JS, HOST) == [], f"{where}: an element carries a URL from the data"
    assert page.locator(".katex").count() == 0, f"{where}: text from the data was typeset as LaTeX"
    assert page.title() != "pwned", f"{where}: a script from the data ran"
    assert requests == [], f"{where}: requests left for other hosts: {requests}"
    main, bar = _text(page, MAIN), _text(page, SIDEBAR)
    for s in NAMED.get(title, ()):
        assert s in main, f"{where}: {s!r} is not shown as literal text"
    server_folder = str(folder)
    if role == "auditor":
        assert server_folder in bar, f"{where}: the auditor should see the source's folder"
    else:
        assert server_folder not in main + bar, f"{where}: a {role} sees the server folder"
        assert "hostile.parquet" in bar or not source_shown, f"{where}: the source's file name should stay visible"
    return main


@pytest.mark.parametrize("sub", ["carol", "bob", "alice"])
def test_every_page_as_each_role_shows_hostile_text_as_text(app, browser, sub):
    base, folder = app
    role = ROLE_OF[sub]
    started = time.monotonic()
    page = sign_in(browser, base, sub)
    requests: list[str] = []
    _watch(page, base, requests)
    files = [p.file for p in PAGES if (ROOT / p.file).is_file()]
    shown = ""
    # The Slices page first (analysts on), so the Overview's findings board is drawn from its cached search.
    order = sorted(visible_pages(role, files), key=lambda p: (p.title != "Slices", p.title != "Overview"))
    for p in order:
        # Through the menu, as a person would (one session; a full page load per page would double the time).
        page.locator(SIDEBAR).get_by_role("link", name=p.title, exact=True).click()
        page.wait_for_function(f"document.querySelector('{MAIN} h1')?.innerText.includes({p.title!r})")
        wait_drawn(page)
        shown += _check_page(page, p.title, role, folder, requests)
    # Feature values reach the page through findings (board, drill-down): for roles that can see them.
    if role != "viewer":
        assert any(f in shown for f in FEATURES), "no hostile feature value is named on any page"
    else:
        _crafted_link(page.context.new_page(), base, folder)
    page.context.close()
    print(f"{role}: {len(order)} pages in {time.monotonic() - started:.1f} s")


def _crafted_link(page, base: str, folder) -> None:
    """A `?config=` link with an image and a link, opened by a signed-in viewer in a new tab (a new session)."""
    requests: list[str] = []
    _watch(page, base, requests)
    page.goto(f"{base}/Performance?config={quote(CONFIG_LINK)}")
    wait_drawn(page)
    error = page.locator('[data-testid="stAlertContentError"]')
    assert error.count() >= 1, "the crafted link should be refused with an error"
    text = error.first.inner_text().replace(WORD_JOINER, "")
    assert CONFIG_LINK in text and str(folder) not in text
    _check_page(page, "Performance (crafted link)", "viewer", folder, requests, source_shown=False)


def test_the_hostile_strings_are_distinct_and_point_at_the_unresolvable_host():
    """The fixture itself: every attack names HOST, and the group values differ (each is its own group)."""
    assert len(set(STRINGS)) == len(STRINGS) and all(HOST in s for s in (*GROUPS, COLUMN, CONFIG_LINK))
