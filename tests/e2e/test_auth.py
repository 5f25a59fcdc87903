"""Sign-in and roles in a real browser against a real OIDC provider (oidc-provider-mock on loopback).

The app is started the way `make run` starts it (`fairwatch serve`), with a secrets.toml and
an access config written into a temp folder. Each person signs in through the provider's own form; the
tests check what each role sees in the menu, what each page URL gives them, that refusals reach the
access log, and the bad inputs: no role, sign-out, a tampered or forged session cookie, a provider that
cannot be reached.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fairwatch.metrics.privacy.roles import PAGES, ROLES, first_role, visible_pages
from tests.e2e.browser import free_port, launch, require_browser, wait_drawn

pytestmark = pytest.mark.e2e

sync_api = require_browser(sign_in=True)

from tests.e2e.oidc import (ROLE_OF, USERS, dead_url, loopback_only, oidc_provider, served_app,  # noqa: E402
                            write_auth_files)

SHOTS = Path(__file__).resolve().parent / "screenshots"
PAGE_LINK = '[data-testid="stSidebar"] [data-testid="stPageLink"]'
ERROR = '[data-testid="stAlertContentError"]'


def url_path(file: str) -> str:
    """The URL path Streamlit gives a page file ('' for app.py, 'Data_sources' for pages/1_Data_sources.py)."""
    return "" if file == "app.py" else Path(file).stem.split("_", 1)[1]


@pytest.fixture(scope="module")
def data_env(tmp_path_factory) -> dict[str, str]:
    """A 20k-row demo and its config, as the app's environment."""
    from tests.demo_data import demo_folder

    folder = tmp_path_factory.mktemp("auth-data")
    demo_folder(folder, rows=20_000)
    return {"FAIRWATCH_DATA_DIR": str(folder), "FAIRWATCH_CONFIG": str(folder / "fairwatch.toml")}


@pytest.fixture(scope="module")
def app(data_env, tmp_path_factory):
    """(base URL, access log path) of the app with sign-in through a running provider."""
    folder = tmp_path_factory.mktemp("auth-config")
    port = free_port()
    with oidc_provider() as provider:
        secrets_file, access_file = write_auth_files(folder, port, provider)
        with served_app(["--secrets", str(secrets_file), "--access", str(access_file)], data_env, port=port) as base:
            yield base, folder / "access-log.jsonl"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        chromium = launch(pw)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def sessions() -> dict:
    """Browser storage (the signed session cookies) of each person once signed in, to open more tabs as them."""
    return {}


def sign_in(browser, base: str, sub: str, sessions: dict | None = None):
    """A fresh browser context signed in as `sub` through the provider's form; returns its page on the Overview."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    loopback_only(context)
    page = context.new_page()
    page.goto(f"{base}/")
    page.get_by_role("button", name="Sign in").click(timeout=30_000)
    page.wait_for_url(re.compile(r".*/oauth2/authorize.*"), timeout=20_000)
    page.get_by_role("button", name=sub, exact=True).click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/?(\?.*)?$"), timeout=20_000)
    wait_drawn(page)
    if sessions is not None:
        sessions[sub] = context.storage_state()
    return page


def open_as(browser, base: str, sub: str, sessions: dict, path: str):
    """A page at `path` in a new context that carries `sub`'s session cookies (signing in first if needed)."""
    if sub not in sessions:
        sign_in(browser, base, sub, sessions).context.close()
    context = browser.new_context(viewport={"width": 1400, "height": 1600}, storage_state=sessions[sub])
    loopback_only(context)
    page = context.new_page()
    page.goto(f"{base}/{path}")
    wait_drawn(page)
    return page


def heading(page) -> str:
    return page.locator('[data-testid="stMain"] h1').first.inner_text()


def sidebar(page) -> str:
    bar = page.locator('[data-testid="stSidebar"]')
    return bar.inner_text() if bar.count() else ""


# One page each role may open beyond the viewer's, checked by URL (cheap pages: no audit-wide search).
OWN_PAGE = {"viewer": "Overview", "analyst": "Data sources", "auditor": "Access log"}


@pytest.mark.parametrize("sub", ["carol", "bob", "alice"])
def test_each_role_sees_its_pages_and_a_clear_refusal_for_the_rest(app, browser, sessions, sub):
    """Signed in through the provider: the menu lists exactly the role's pages, and every other page's URL is
    refused with a clear message and nothing of the page. All pages pass the same gate in run_page, so of the
    pages a role may open one is opened by URL here (every page draws in tests/e2e/test_browser.py)."""
    base, _ = app
    role, name = ROLE_OF[sub], USERS[sub]["name"]
    page = sign_in(browser, base, sub, sessions)
    assert heading(page) == "Overview" and name in sidebar(page) and role in sidebar(page)
    menu = [t.strip() for t in page.locator(PAGE_LINK).all_inner_texts()]
    assert menu == [p.title for p in visible_pages(role)]
    # Small cells: withheld from a viewer (the demo has groups under k = 10), said under the title; others see all.
    withheld = page.locator('[data-testid="stMain"]').inner_text().count("withheld: groups of fewer than")
    assert withheld == (1 if role == "viewer" else 0), (role, withheld)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"auth_{role}_overview.png"))
    allowed = visible_pages(role)
    for entry in [p for p in PAGES if p not in allowed or p.title == OWN_PAGE[role]]:
        page.goto(f"{base}/{url_path(entry.file)}")
        wait_drawn(page)
        assert page.locator('[data-testid="stException"]').count() == 0, entry.title
        assert name in sidebar(page) and role in sidebar(page), entry.title  # the name on every page
        assert heading(page) == entry.title, entry.title
        errors = " ".join(page.locator(ERROR).all_inner_texts())
        if entry in allowed:
            assert "Not permitted" not in errors, errors
            continue
        # The direct URL: a clear refusal, and nothing of the page.
        assert "Not permitted" in errors and f"needs the {first_role(entry.permission)} role" in errors, errors
        main = page.locator('[data-testid="stMain"]')
        assert main.locator('[data-testid="stMetric"], [data-testid="stVegaLiteChart"], [data-testid="stDataFrame"], '
                            '[data-testid="stTable"], [data-testid="stButton"], [data-testid="stTextInput"]').count() == 0, entry.title
        page.screenshot(path=str(SHOTS / f"auth_{role}_refused_{url_path(entry.file)}.png"))
    page.context.close()


def test_the_auditor_reads_refusals_in_the_access_log(app, browser, sessions):
    base, log_path = app
    viewer = open_as(browser, base, "carol", sessions, "Access_log")
    assert "Not permitted" in viewer.locator(ERROR).first.inner_text()
    viewer.context.close()
    records = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    denied = [r for r in records if r["action"] == "denied" and r["who"] == "carol@partner.net"]
    assert denied and denied[-1]["what"] == "page Access log" and denied[-1]["role"] == "viewer"
    auditor = open_as(browser, base, "alice", sessions, "Access_log")
    assert heading(auditor) == "Access log"
    text = auditor.locator('[data-testid="stMain"]').inner_text()
    assert "intact" in text and auditor.locator('[data-testid="stDataFrame"]').count() == 1
    auditor.screenshot(path=str(SHOTS / "auth_auditor_access_log.png"), full_page=True)
    auditor.context.close()


def test_a_user_without_a_role_is_told_to_ask_an_admin_and_sees_nothing(app, browser):
    base, _ = app
    page = sign_in(browser, base, "mallory")
    for path in ("", "Performance", "Access_log"):
        if path:
            page.goto(f"{base}/{path}")
            wait_drawn(page)
        assert heading(page) == "No access yet"
        assert "ask an admin" in page.locator('[data-testid="stAlertContentWarning"]').inner_text()
        assert page.locator(PAGE_LINK).count() == 0
        assert page.locator('[data-testid="stMetric"], [data-testid="stVegaLiteChart"]').count() == 0
        assert "Mallory Nobody" in sidebar(page)
    page.context.close()


def test_sign_out_ends_the_session(app, browser):
    base, _ = app
    page = sign_in(browser, base, "bob")
    page.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/oauth2/end_session.*"), timeout=20_000)  # the provider's own sign-out
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/?(\?.*)?$"), timeout=20_000)
    wait_drawn(page)
    assert heading(page) == "Sign in to fairwatch"
    assert not [c for c in page.context.cookies() if c["name"].startswith("_streamlit_user")]
    page.goto(f"{base}/Performance")
    wait_drawn(page)
    assert heading(page) == "Sign in to fairwatch"
    page.context.close()


def test_a_tampered_or_forged_session_cookie_is_signed_out(app, browser, sessions):
    from itsdangerous import URLSafeTimedSerializer

    base, _ = app
    page = open_as(browser, base, "carol", sessions, "")
    assert heading(page) == "Overview"
    context = page.context
    cookie = next(c for c in context.cookies() if c["name"] == "_streamlit_user")
    value = cookie["value"]
    middle = len(value) // 2
    tampered = value[:middle] + ("A" if value[middle] != "A" else "B") + value[middle + 1:]
    forged = URLSafeTimedSerializer("not-the-server-secret", salt="_streamlit_user").dumps(json.dumps(
        {**USERS["alice"], "sub": "alice", "is_logged_in": True, "origin": base, "provider": "default"}))
    for bad in (tampered, forged):
        context.clear_cookies()
        context.add_cookies([{**cookie, "value": bad}])
        page.goto(f"{base}/Access_log")
        wait_drawn(page)
        assert heading(page) == "Sign in to fairwatch"
        assert "Alice" not in sidebar(page) and "Carol" not in sidebar(page)
    context.close()


def test_an_unreachable_provider_is_a_clear_message_on_the_sign_in_page(data_env, browser, tmp_path):
    port = free_port()
    secrets_file, access_file = write_auth_files(tmp_path / "auth", port, dead_url())
    with served_app(["--secrets", str(secrets_file), "--access", str(access_file)], data_env, port=port) as base:
        context = browser.new_context()
        loopback_only(context)
        page = context.new_page()
        page.goto(f"{base}/")
        wait_drawn(page)
        assert heading(page) == "Sign in to fairwatch"
        message = page.locator(ERROR).inner_text()
        assert "cannot be reached" in message and "server_metadata_url" in message
        assert page.get_by_role("button", name="Sign in").count() == 0
        assert page.get_by_role("button", name="Try again").count() == 1
        page.screenshot(path=str(SHOTS / "auth_provider_unreachable.png"))
        context.close()


def test_roles_cover_the_people_of_these_tests():
    assert {ROLE_OF[s] for s in USERS} == {*ROLES, None}
