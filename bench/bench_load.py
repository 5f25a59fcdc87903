"""Load test: many browser sessions at once against a real `streamlit run app.py` on 127.0.0.1.

    .venv/bin/python bench/bench_load.py [--sessions 20] [--rounds 2] [--rows 100000] [--seconds 120]

Each session is its own Chromium browser context (its own Streamlit session over its own WebSocket) and visits
the Overview, Performance and Representation pages `--rounds` times (half of them with ?model_version=v2), waiting
until each page is fully drawn. Prints sessions, page requests, errors (st.error, exceptions, timeouts, numbers
that differ from a lone session's) and p50/p95 page time. Bounded: --rounds pages each and a --seconds deadline.
Exit 1 when any error is seen.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import bench_parser, fmt_seconds, parse_args, print_table  # noqa: E402
from tests.e2e.browser import CHROMIUM, CHROMIUM_FLAGS, DRAWN_JS, running_app  # noqa: E402

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


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (nearest rank)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="visits of every page per session (default 2)")
    parser.add_argument("--rows", type=int, default=100_000, help="rows of the demo log served (default 100000)")
    parser.add_argument("--seconds", type=float, default=180.0, help="hard deadline for the whole run (default 180)")
    args = parse_args(parser, argv)
    if args.quick:
        args.sessions, args.rounds, args.rows = min(args.sessions, 5), 1, 20_000
    from connectors.demo import write_demo

    with tempfile.TemporaryDirectory(prefix="fw-load-") as folder:
        write_demo(Path(folder) / "demo.duckdb", rows=args.rows)
        with running_app({"FAIRWATCH_DATA_DIR": folder, "FAIRWATCH_CONFIG": ""}) as base:
            started = time.monotonic()
            alone, results = asyncio.run(run_load(base, args.sessions, args.rounds, args.seconds))
            wall = time.monotonic() - started
    times = [t for r in results for t in r.times]
    errors = [e for r in results for e in r.errors] + [e for r in alone.values() for e in r.errors]
    lone = [t for r in alone.values() for t in r.times]
    print_table(["sessions", "page requests", "errors", "p50 page", "p95 page", "lone p50", "wall"],
                [[args.sessions, len(times) + len(errors), len(errors), fmt_seconds(percentile(times, 50)),
                  fmt_seconds(percentile(times, 95)), fmt_seconds(percentile(lone, 50)), fmt_seconds(wall)]],
                title=f"load: {args.sessions} browser sessions x {args.rounds} rounds x {len(PAGES)} pages, "
                      f"{args.rows:,}-row demo")
    for e in errors[:10]:
        print("error:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
