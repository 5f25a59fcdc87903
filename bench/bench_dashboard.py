"""Dashboard benchmark: a 10M-row log in the real browser, from opening the Overview to a fully drawn page.

    .venv/bin/python bench/bench_dashboard.py [--rows 10000000] [--port 8765] [--tabs 5] [--before REV]

Measures, with Debian's chromium driving the app started as `make run` starts it (`fairwatch serve`:
asgi.py, gzip on, the pages' code imported while the server starts):
- cold: a fresh server process, first visit to the Overview once the server has started (asgi.py
  computes the default view's audits in the background from the start; the bench waits for its log
  line and reports how long it took), from a fresh browser profile and again from a returning one
  (a restarted server: Streamlit's own files come from the browser's cache);
- new tab: a returning browser opens the Overview in a new tab (a new session, which also boots Streamlit's
  frontend): the median of `--tabs`, interleaved round by round with the floors' new tabs (and the
  `--before` revision's), so that every server's figure is taken under the same load; with each, the seconds
  the page's main thread was busy (Chrome's TaskDuration: on this machine the new tab is the browser drawing);
- cached: coming back to the Overview from another page of the same session (median of 3: the
  audit comes from st.cache_data);
- sidebar change: choosing model version v2 (a new audit), then back to all versions (cached);
- page weight: bytes over HTTP (encoded, as transferred) plus WebSocket frames, for the cold visit;
- floors, in the same run: the same times for Streamlit pages with no data work behind them, one with a
  single metric and one with what the issue asks of the Overview (the shared sidebar, four headline
  numbers, an altair chart with intervals, a table), served as the app is (st.App behind gzip).
`--before REV` also serves a git revision of this checkout (its tree extracted once into bench/out/rev-<sha>,
run with this interpreter) beside this one, and reports its first visit and new tabs in the same run.
"Fully drawn" = Streamlit's script-state flag says not running, no skeleton or spinner is left, and
every chart has painted (tests/e2e/browser.py). Prints a table and PASS/FAIL; exits 1 on any FAIL.
Issue 18's targets are against the floor of the same run: the cold first visit within 1 s of the
floor page's cold visit, a new tab within 0.3 s of the floor page's new tab (medians).
Standalone: it generates bench/out/demo-10m.duckdb when missing (about a minute).
"""

from __future__ import annotations

import argparse
import base64
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fairwatch.connectors.config import write_config  # noqa: E402
from fairwatch.connectors.demo import DEMO_CONFIG, write_demo  # noqa: E402
from fairwatch.metrics.audit.spec import SourceSpec, parse_spec  # noqa: E402
from tests.e2e.browser import launch, running_app, wait_drawn  # noqa: E402

import common  # noqa: E402

OUT = ROOT / "bench" / "out"
TARGETS = {"cold": 5.0, "cached": 1.0, "weight_mb": 5.0}
# Issue 18: against Streamlit's own floor measured in the same run (the page with no data).
OVER_FLOOR = {"cold": 1.0, "new_tab": 0.3}


def wait_warm(base: str, timeout: float = 900.0) -> float:
    """Wait until the server's background warm-up has computed the default view; the seconds it took, as its log
    line says (see asgi.py), so that servers warming up side by side each report their own."""
    from fairwatch.connectors.active import WARM_MARK

    log = Path(tempfile.gettempdir()) / f"fairwatch-server-{base.rsplit(':', 1)[1]}.log"
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        found = re.search(re.escape(WARM_MARK) + r" in ([\d.]+) s", log.read_text(errors="replace")) \
            if log.exists() else None
        if found:
            return float(found.group(1))
        time.sleep(0.2)
    raise TimeoutError(f"the server did not compute its default view within {timeout:.0f} s (see {log})")


@dataclass
class Traffic:
    """Bytes seen by the browser: HTTP bodies as transferred, WebSocket frames both ways."""

    http: int = 0
    ws: int = 0
    requests: int = 0
    frames: int = 0
    by_type: dict = field(default_factory=dict)
    urls: list = field(default_factory=list)

    def attach(self, cdp) -> None:
        """Count through the Chrome DevTools Protocol's Network events."""
        types: dict[str, str] = {}
        cdp.send("Network.enable")

        def response(e):
            types[e["requestId"]] = e.get("type", "Other")
            self.urls.append(e["response"]["url"])

        def finished(e):
            self.http += int(e.get("encodedDataLength", 0))
            self.requests += 1
            kind = types.get(e["requestId"], "Other")
            self.by_type[kind] = self.by_type.get(kind, 0) + int(e.get("encodedDataLength", 0))

        def frame(e):
            payload = e["response"]["payloadData"]
            # Binary frames (opcode 2, Streamlit's protobuf) arrive base64-encoded.
            size = len(base64.b64decode(payload)) if e["response"].get("opcode") == 2 else len(payload.encode())
            self.ws += size
            self.frames += 1

        cdp.on("Network.responseReceived", response)
        cdp.on("Network.loadingFinished", finished)
        cdp.on("Network.webSocketFrameReceived", frame)
        cdp.on("Network.webSocketFrameSent", frame)

    @property
    def total_mb(self) -> float:
        return (self.http + self.ws) / 1e6


def ensure_data(rows: int) -> Path:
    """The benchmark log and its fairwatch.toml (generated once, kept in bench/out/)."""
    OUT.mkdir(parents=True, exist_ok=True)
    db = OUT / ("demo-10m.duckdb" if rows == 10_000_000 else f"demo-{rows}.duckdb")
    if not db.exists():
        print(f"generating {rows:,} rows into {db} …", flush=True)
        write_demo(db, rows=rows)
    spec = parse_spec(DEMO_CONFIG)
    spec = spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(db)}))
    return write_config(spec, OUT / f"{db.stem}.fairwatch.toml")


def _decisions(page) -> str:
    """The 'Decisions audited' number on the Overview."""
    return page.locator('[data-testid="stMetric"]').filter(has_text="Decisions audited") \
        .locator('[data-testid="stMetricValue"]').inner_text()


def open_overview(context, base: str, traffic: Traffic | None = None) -> tuple[float, object]:
    """Seconds from navigation to the fully drawn Overview in a new tab (a new Streamlit session)."""
    page = context.new_page()
    if traffic is not None:
        traffic.attach(context.new_cdp_session(page))
    start = time.monotonic()
    page.goto(base)
    _, drawn = wait_drawn(page, timeout_ms=180_000)
    return drawn - start, page


def choose_version(page, option: str) -> float:
    """Seconds from picking a model version in the sidebar to the redrawn Overview."""
    before = _decisions(page)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    start = time.monotonic()
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_function(
        """(before) => { const m = [...document.querySelectorAll('[data-testid="stMetric"]')]
             .find(e => e.innerText.includes('Decisions audited'));
             return m && !m.innerText.includes(before); }""", arg=before, timeout=180_000, polling=50)
    _, drawn = wait_drawn(page, timeout_ms=180_000)
    return drawn - start


def revisit_overview(page) -> float:
    """Seconds from clicking Overview in the sidebar (coming from another page) to the fully drawn Overview.

    The same session: the audit comes from the cache and Streamlit's frontend is already running,
    so this is the app's own cost of showing a cached page.
    """
    sidebar = page.locator('[data-testid="stSidebar"]')
    sidebar.get_by_role("link", name="Performance").first.click()
    page.wait_for_function("() => location.pathname.endsWith('/Performance')", timeout=180_000, polling=50)
    wait_drawn(page, timeout_ms=180_000)
    start = time.monotonic()
    sidebar.get_by_role("link", name="Overview").first.click()
    page.wait_for_function("() => !location.pathname.endsWith('/Performance')", timeout=180_000, polling=50)
    page.locator('[data-testid="stMetric"]').filter(has_text="Decisions audited").wait_for(timeout=180_000)
    _, drawn = wait_drawn(page, timeout_ms=180_000)
    return drawn - start


FLOOR_APP = 'import streamlit as st\nst.title("Overview")\nst.metric("Decisions audited", "1")\n'
# What the issue asks of every page and of the Overview, with no data work behind it: the shared sidebar
# (source, model version, time window, sensitive features), the headline numbers, one altair chart of gaps
# with intervals and one table. Streamlit's cost of drawing these is a floor no page of this app can beat.
REQUIRED_APP = """import datetime as dt
import altair as alt
import pandas as pd
import streamlit as st
st.set_page_config(page_title="Overview", layout="wide")
bar = st.sidebar
bar.caption("**Source:** demo")
bar.selectbox("Model version", ["all versions", "v1", "v2"])
bar.date_input("Time window", (dt.date(2025, 1, 1), dt.date(2025, 12, 31)))
bar.multiselect("Sensitive features to show", ["sex", "age_band", "race"], default=["sex", "age_band", "race"])
st.title("Overview")
for col, name in zip(st.columns(4), ["Decisions audited", "With a known outcome", "Outcome not known yet", "Label coverage"]):
    col.metric(name, "1,000", help="what it counts", delta="+1.0 pts")
gaps = pd.DataFrame({"group": list("abcdef"), "ratio": [0.6, 0.7, 0.8, 1.2, 1.3, 1.4]})
gaps["lo"], gaps["hi"] = gaps["ratio"] - 0.1, gaps["ratio"] + 0.1
base = alt.Chart(gaps).encode(y="group:N")
st.altair_chart(base.mark_rule().encode(x="lo:Q", x2="hi:Q") + base.mark_point().encode(x="ratio:Q", tooltip=["group", "ratio"]),
                width="stretch")
st.dataframe(gaps, hide_index=True)
"""

# The same page with its chart built once per process and drawn from the stored Vega-Lite spec, as the app draws its
# charts (loaders.chart_spec): REQUIRED_APP builds and validates its altair chart on every run, server time that a
# trace of its new tab showed beside the browser's (bench/trace_dashboard.py). Reported beside it, for information.
REQUIRED_APP_KEPT = REQUIRED_APP.replace("""st.altair_chart(base.mark_rule().encode(x="lo:Q", x2="hi:Q") + base.mark_point().encode(x="ratio:Q", tooltip=["group", "ratio"]),
                width="stretch")""", """@st.cache_resource
def spec():
    from streamlit.elements.vega_charts import _convert_altair_to_vega_lite_spec
    return _convert_altair_to_vega_lite_spec(base.mark_rule().encode(x="lo:Q", x2="hi:Q")
                                             + base.mark_point().encode(x="ratio:Q", tooltip=["group", "ratio"]))
st.vega_lite_chart(spec=spec(), width="stretch")""")

# The floor's server also imports its page's libraries while it starts, as asgi.py does for the app's pages; without
# this the floor's cold visit paid for importing pandas and altair, which the app's does not (the cold "over the
# floor" came out negative).
FLOOR_ASGI = """from contextlib import asynccontextmanager
import streamlit as st
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
@asynccontextmanager
async def imports(_app):
    import altair, pandas  # noqa: F401
    yield
app = st.App("floor.py", lifespan=imports,
             middleware=[Middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)])
"""


@contextmanager
def serving_floor(script_text: str):
    """A Streamlit server of one page with no data work (Streamlit's own floor), served as asgi.py serves the app
    (st.App behind the same gzip), so only the page differs; yields its base URL."""
    from tests.e2e.browser import free_port, wait_healthy

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "floor.py").write_text(script_text, encoding="utf-8")
        served = Path(folder) / "floor_asgi.py"
        served.write_text(FLOOR_ASGI, encoding="utf-8")
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(served), "--server.port", str(port),
                                 "--server.headless", "true"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{port}")
            yield f"http://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def new_tab(context, base: str) -> tuple[float, float]:
    """A new tab of a returning browser (a new Streamlit session): seconds from navigation to the fully drawn page,
    and the seconds its renderer's main thread was busy meanwhile (Chrome's Performance.getMetrics TaskDuration)."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Performance.enable")
    start = time.monotonic()
    page.goto(base)
    _, drawn = wait_drawn(page, timeout_ms=180_000)
    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    page.close()
    return drawn - start, metrics["TaskDuration"]


def interleaved_tabs(context, bases: dict[str, str], rounds: int) -> dict[str, list[tuple[float, float]]]:
    """`rounds` new tabs on every server, interleaved (each round opens each once, starting one further along), so
    that all servers' figures are taken under the same load; one visit each first fills the browser's cache."""
    labels = list(bases)
    for label in labels:
        new_tab(context, bases[label])
    tabs: dict[str, list[tuple[float, float]]] = {label: [] for label in labels}
    for r in range(rounds):
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            tabs[label].append(new_tab(context, bases[label]))
    return tabs


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--tabs", type=int, default=5, help="new tabs per server, interleaved (median; default 5)")
    parser.add_argument("--before", metavar="REV", help="also serve this git revision's dashboard (e.g. 82d6b37) and "
                        "measure its first visit and new tabs in the same run, interleaved with this checkout's")
    args = parser.parse_args(argv)
    config = ensure_data(args.rows)
    env = {"FAIRWATCH_CONFIG": str(config), "FAIRWATCH_DATA_DIR": str(OUT)}
    roots = {"now": None} | ({f"before ({args.before})": common.revision_tree(args.before, "--before")} if args.before else {})
    from playwright.sync_api import sync_playwright

    traffic = Traffic()
    viewport = {"viewport": {"width": 1400, "height": 1200}}
    with sync_playwright() as pw:
        browser = launch(pw)
        with ExitStack() as servers:
            apps = {label: servers.enter_context(running_app(env, args.port if label == "now" else None, root))
                    for label, root in roots.items()}
            # A visitor who comes once the server has started (and warmed up): every server's first session.
            warm_after = {label: wait_warm(base) for label, base in apps.items()}
            floors = {"floor": servers.enter_context(serving_floor(REQUIRED_APP)),
                      "floor, its chart kept": servers.enter_context(serving_floor(REQUIRED_APP_KEPT)),
                      "floor, one metric": servers.enter_context(serving_floor(FLOOR_APP))}
            cold = {}
            for label, base in {**apps, "floor": floors["floor"]}.items():  # each from a fresh browser profile
                context = browser.new_context(**viewport)
                cold[label], first = open_overview(context, base, traffic if label == "now" else None)
                context.close()
            # One browser profile, as a returning user has: each new tab is a new session with warm caches.
            context = browser.new_context(**viewport)
            tabs = interleaved_tabs(context, {**apps, **floors}, args.tabs)
            _, page = open_overview(context, apps["now"])
            revisits = sorted(revisit_overview(page) for _ in range(3))
            change_new = choose_version(page, "v2")
            change_cached = choose_version(page, "all versions")
            page.close()
        # The server restarted (nothing computed), the browser returning: Streamlit's files come from its cache.
        with running_app(env, args.port) as base:
            wait_warm(base)
            cold_server, page = open_overview(context, base)
            page.close()
        browser.close()
    return report(args, config, cold, tabs, revisits, change_new, change_cached, cold_server, warm_after, traffic)


def _median(tabs: list[tuple[float, float]], i: int = 0) -> float:
    """The median of one field of the tabs' figures (0: seconds to drawn, 1: main-thread busy seconds)."""
    return statistics.median(t[i] for t in tabs)


def report(args, config, cold, tabs, revisits, change_new, change_cached, cold_server, warm_after, traffic) -> int:
    """Print the table and PASS/FAIL; 1 when a target of this checkout is missed."""
    revisit = revisits[1]
    floor_tab = _median(tabs["floor"])
    results = [
        ("Overview, cold (fresh server, first visit)", cold["now"], f"< {TARGETS['cold']:.0f} s",
         "PASS" if cold["now"] < TARGETS["cold"] else "FAIL"),
        ("  floor: the issue's sidebar, 4 metrics, a chart, a table (no data), cold", cold["floor"], "—", "info"),
        ("Overview, cold server, returning browser (its files cached)", cold_server, f"< {TARGETS['cold']:.0f} s",
         "PASS" if cold_server < TARGETS["cold"] else "FAIL"),
        ("Overview, cached (back from another page)", revisit, f"< {TARGETS['cached']:.0f} s",
         "PASS" if revisit < TARGETS["cached"] else "FAIL"),
        # A new tab also boots Streamlit's frontend (its JavaScript, the WebSocket, the session): issue 18 replaced
        # issue 4's absolute 1 s for it by "within 0.3 s of the floor's new tab" (below), since the floor page
        # itself takes longer than 1 s on this machine.
        (f"Overview, cached (new tab: a new session; median of {args.tabs})", _median(tabs["now"]),
         "vs floor", "info"),
        ("  floor: a one-metric Streamlit page, new tab", _median(tabs["floor, one metric"]), "—", "info"),
        ("  floor: the issue's sidebar, 4 metrics, a chart, a table, new tab", floor_tab, "—", "info"),
        ("  floor: the same, its chart spec built once (as the app's), new tab", _median(tabs["floor, its chart kept"]),
         "—", "info"),
        ("Sidebar change to v2 (new audit)", change_new, "—", "info"),
        ("Sidebar change back to all (cached)", change_cached, f"< {TARGETS['cached']:.0f} s",
         "PASS" if change_cached < TARGETS["cached"] else "FAIL"),
    ]
    for label in (label for label in cold if label.startswith("before")):
        results += [(f"{label}: Overview, cold (fresh server, first visit)", cold[label], "—", "info"),
                    (f"{label}: Overview, new tab (median of {args.tabs})", _median(tabs[label]), "—", "info")]
    over_cold, over_tab = cold["now"] - cold["floor"], _median(tabs["now"]) - floor_tab
    results += [
        ("Overview, first visit after a server start, over the floor (cold)", over_cold,
         f"< {OVER_FLOOR['cold']:g} s", "PASS" if over_cold < OVER_FLOOR["cold"] else "FAIL"),
        ("Overview, new tab, over the floor (new tab; medians)", over_tab,
         f"< {OVER_FLOOR['new_tab']:g} s", "PASS" if over_tab < OVER_FLOOR["new_tab"] else "FAIL"),
    ]
    for label in (label for label in cold if label.startswith("before")):
        results += [(f"{label}: over the floor, cold", cold[label] - cold["floor"], "—", "info"),
                    (f"{label}: over the floor, new tab (medians)", _median(tabs[label]) - floor_tab, "—", "info")]
    results += [(f"  the server's background warm-up of the default view ({label}; its log line)", seconds, "—",
                 "info") for label, seconds in warm_after.items()]
    weight = traffic.total_mb
    print(f"\nfairwatch dashboard benchmark: {args.rows:,} rows ({config})")
    print(f"{'measure':<70} {'value':>10}  {'target':>8}  result   (back from another page: median of "
          f"{', '.join(f'{r:.2f}' for r in revisits)} s)")
    for name, seconds, target, verdict in results:
        print(f"{name:<70} {seconds:>8.2f} s  {target:>8}  {verdict}")
    ok = weight < TARGETS["weight_mb"]
    print(f"{'Page weight, cold visit (HTTP + WebSocket)':<70} {weight:>7.2f} MB  {'< 5 MB':>8}  "
          f"{'PASS' if ok else 'FAIL'}")
    print(f"  HTTP {traffic.http / 1e6:.2f} MB in {traffic.requests} responses "
          f"({', '.join(f'{k} {v / 1e6:.2f} MB' for k, v in sorted(traffic.by_type.items(), key=lambda kv: -kv[1]))}); "
          f"WebSocket {traffic.ws / 1e6:.2f} MB in {traffic.frames} frames")
    print("  static files arrive gzip-compressed (asgi.py); `streamlit run app.py` alone sends them uncompressed")
    print(f"New tabs, interleaved ({args.tabs} rounds): seconds to drawn, and the page's main-thread busy seconds")
    for label, figures in tabs.items():
        print(f"  {label:<30} median {_median(figures):.2f} s, busy {_median(figures, 1):.2f} s   "
              f"({', '.join(f'{t:.2f}' for t, _ in figures)})")
    failed = [r for r in results if r[3] == "FAIL"] + ([] if ok else ["weight"])
    print("PASS" if not failed else f"FAIL ({len(failed)} target(s) missed)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
