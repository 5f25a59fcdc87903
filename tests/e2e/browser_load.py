"""Many browser sessions at once against a served app: what each saw, for the concurrency test.

Each session is its own Chromium browser context (its own Streamlit session over its own WebSocket) and
visits pages, waiting until each is fully drawn; it records the numbers and headings it saw and any error
box. bench/bench_load.py measures load at the protocol level instead (no browsers sharing the server's cores).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from tests.e2e.browser import CHROMIUM, CHROMIUM_FLAGS, DRAWN_JS

PAGES = ("", "Performance", "Representation")
ERROR_SELECTOR = '[data-testid="stException"], [data-testid="stAlertContentError"]'


@dataclass
class SessionResult:
    """What one session saw: the numbers per page (metric values), its page times and its errors."""

    version: str | None
    seen: dict = field(default_factory=dict)
    times: list = field(default_factory=list)
    errors: list = field(default_factory=list)


async def _drawn(page, timeout_ms: int) -> None:
    """Fully drawn (see tests/e2e/browser.py) and still so after a short pause."""
    while True:
        await page.wait_for_function(f"({DRAWN_JS})() >= 0", timeout=timeout_ms, polling=50)
        before = await page.evaluate(DRAWN_JS)
        await page.wait_for_timeout(300)
        if before >= 0 and await page.evaluate(DRAWN_JS) == before:
            return


async def run_session(browser, base: str, version: str | None, rounds: int, deadline: float,
                      timeout_ms: int = 90_000, pages: tuple[str, ...] = PAGES) -> SessionResult:
    """One user: a fresh browser context visiting every page `rounds` times."""
    result = SessionResult(version)
    context = await browser.new_context()
    try:
        page = await context.new_page()
        query = f"?model_version={version}" if version else ""
        for _ in range(rounds):
            for name in pages:
                if time.monotonic() > deadline:
                    return result
                started = time.monotonic()
                try:
                    await page.goto(f"{base}/{name}{query}", timeout=timeout_ms, wait_until="commit")
                    await _drawn(page, timeout_ms)
                except Exception as exc:  # noqa: BLE001 - a timeout or a crash is an error to count
                    result.errors.append(f"{name or 'Overview'}: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                    continue
                result.times.append(time.monotonic() - started)
                errors = await page.locator(ERROR_SELECTOR).all_inner_texts()
                result.errors += [f"{name or 'Overview'}: {e.strip()}" for e in errors]
                metrics = await page.locator('[data-testid="stMetricValue"]').all_inner_texts()
                headings = await page.locator('[data-testid="stMain"] h3').all_inner_texts()
                result.seen.setdefault(name, (metrics, headings))
                if result.seen[name] != (metrics, headings):
                    result.errors.append(f"{name or 'Overview'}: numbers changed between rounds")
    finally:
        await context.close()
    return result


async def run_load(base: str, sessions: int, rounds: int, seconds: float,
                   pages: tuple[str, ...] = PAGES) -> tuple[dict, list[SessionResult]]:
    """A lone session per version first (the reference), then `sessions` at once."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            deadline = time.monotonic() + seconds
            alone = {v: await run_session(browser, base, v, 1, deadline, pages=pages) for v in (None, "v2")}
            versions = [None if i % 2 == 0 else "v2" for i in range(sessions)]
            results = await asyncio.gather(*(run_session(browser, base, v, rounds, deadline, pages=pages)
                                             for v in versions))
        finally:
            await browser.close()
    for r in results:
        ref = alone[r.version].seen
        r.errors += [f"{k or 'Overview'}: numbers differ from a lone session" for k, v in r.seen.items()
                     if k in ref and v != ref[k]]
    return alone, list(results)
