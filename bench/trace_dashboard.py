"""Where a new dashboard tab's time goes: a Chrome trace and the WebSocket timeline, the Overview beside the floor.

    .venv/bin/python bench/trace_dashboard.py [--rows 1000000] [--out bench/out/trace]

Serves the Overview (as bench_dashboard.py does) and the floor page (bench_dashboard.REQUIRED_APP), opens each once
to fill the browser's cache, then one traced new tab of each, and prints per page:
- the WebSocket timeline from Streamlit's own messages (decoded ForwardMsg/BackMsg): the rerun request, the new
  session, the first and last delta, script_finished; how many messages and bytes (the server's share);
- page marks in the browser (ms after navigation): script state, first heading, first metric, the chart painted;
- main-thread busy time per Chrome process (the page's renderer, the browser, others) and the page renderer's
  CPU-profile self time by script file (what the browser spends its time on).
The traces (Chrome's JSON, open in DevTools' Performance panel) are written to --out. A diagnosis, not a bench:
one tab each, so compare shares and orders of magnitude, not tenths of seconds.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import bench_dashboard as bench  # noqa: E402
from tests.e2e.browser import launch, running_app, wait_drawn  # noqa: E402

# Page marks: the first animation frame at which each state is seen (performance.now(), ms after navigation).
MARKS_JS = """(() => {
  const marks = window.__fwMarks = {};
  const mark = (n) => { if (!(n in marks)) marks[n] = Math.round(performance.now()); };
  const tick = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    if (app) mark('script ' + app.getAttribute('data-test-script-state'));
    if (document.querySelector('[data-testid="stMain"] h1')) mark('title');
    if (document.querySelector('[data-testid="stMetric"]')) mark('first metric');
    if (document.querySelector('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'))
      mark('first chart painted');
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();"""


def ws_timeline(frames: list[tuple[str, float, dict]], t0: float) -> list[tuple[float, str, str, int]]:
    """Binary WebSocket frames decoded as Streamlit messages: (ms after navigation, direction, type, bytes)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    out = []
    for way, ts, resp in frames:
        if resp.get("opcode") != 2:
            continue
        raw = base64.b64decode(resp["payloadData"])
        msg = ForwardMsg() if way == "in" else BackMsg()
        msg.ParseFromString(raw)
        kind = msg.WhichOneof("type") or "?"
        if kind == "delta":
            part = msg.delta.WhichOneof("type")
            kind = f"delta {msg.delta.new_element.WhichOneof('type') if part == 'new_element' else part}"
        out.append(((ts - t0) * 1000, way, kind, len(raw)))
    return out


def traced_tab(browser, context, base: str, path: Path) -> dict:
    """One new tab traced: its seconds to drawn, page marks and WebSocket messages; the trace written to `path`."""
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    frames: list = []
    nav: dict = {}
    cdp.on("Network.requestWillBeSent", lambda e: nav.setdefault("t0", e["timestamp"]) if e.get("type") == "Document"
           else None)
    cdp.on("Network.webSocketFrameReceived", lambda e: frames.append(("in", e["timestamp"], e["response"])))
    cdp.on("Network.webSocketFrameSent", lambda e: frames.append(("out", e["timestamp"], e["response"])))
    browser.start_tracing(page=page, path=str(path))
    start = time.monotonic()
    page.goto(base)
    _, drawn = wait_drawn(page, timeout_ms=180_000)
    browser.stop_tracing()
    marks = page.evaluate("window.__fwMarks")
    page.close()
    return {"seconds": drawn - start, "marks": marks, "ws": ws_timeline(frames, nav["t0"])}


def busy_by_process(events: list[dict]) -> dict[str, float]:
    """Milliseconds of top-level tasks per Chrome process (by its name in the trace)."""
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("name") == "process_name"}
    busy: collections.Counter = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e.get("name") == "RunTask":
            busy[names.get(e["pid"], str(e["pid"]))] += e.get("dur", 0) / 1000
    return dict(busy)


def self_time_by_script(events: list[dict]) -> collections.Counter:
    """The page renderer's CPU-profile samples: milliseconds of self time by script file (or V8's own categories)."""
    names = {e["pid"]: e["args"]["name"] for e in events if e.get("name") == "process_name"}
    chunks: dict = collections.defaultdict(list)
    for e in events:
        if e.get("name") == "ProfileChunk" and names.get(e["pid"]) == "Renderer":
            chunks[(e["pid"], e["id"])].append(e)
    if not chunks:
        return collections.Counter()
    frames, spent = {}, collections.Counter()
    for e in max(chunks.values(), key=len):  # the page's renderer (the one with most samples)
        profile = e["args"]["data"].get("cpuProfile", {})
        frames.update({n["id"]: n["callFrame"] for n in profile.get("nodes", [])})
        for node, delta in zip(profile.get("samples", []), e["args"]["data"].get("timeDeltas", [])):
            frame = frames.get(node, {})
            spent[frame.get("url", "").rsplit("/", 1)[-1] or frame.get("functionName", "?")] += delta / 1000
    return spent


def show(label: str, tab: dict, path: Path) -> None:
    """Print one traced tab."""
    events = json.loads(path.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    ws = tab["ws"]
    incoming = [m for m in ws if m[1] == "in"]
    print(f"\n== {label}: {tab['seconds']:.2f} s to drawn (trace: {path})")
    print("  WebSocket (ms after navigation): " + ", ".join(f"{k} {t:.0f}" for t, way, k, _ in ws
                                                        if not k.startswith("delta")))
    deltas = [m for m in incoming if m[2].startswith("delta")]
    if deltas:
        print(f"  {len(incoming)} messages in, {sum(m[3] for m in incoming):,} bytes; deltas from {deltas[0][0]:.0f} "
              f"to {deltas[-1][0]:.0f} ms; elements: "
              + ", ".join(f"{k[6:]} {n}" for k, n in collections.Counter(m[2] for m in deltas).most_common()))
    print("  page marks (ms): " + ", ".join(f"{k} {v}" for k, v in sorted(tab["marks"].items(), key=lambda kv: kv[1])))
    print("  main-thread busy by process (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in busy_by_process(events).items()))
    spent = self_time_by_script(events)
    print("  page renderer, self time by script (ms): " + ", ".join(f"{k} {v:.0f}" for k, v in spent.most_common(12)))


def main(argv: list[str] | None = None) -> int:
    """Trace one new tab of the Overview and of the floor page."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the demo log (the page is the same)")
    parser.add_argument("--out", type=Path, default=bench.OUT / "trace")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    config = bench.ensure_data(args.rows)
    env = {"FAIRWATCH_CONFIG": str(config), "FAIRWATCH_DATA_DIR": str(bench.OUT)}
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, running_app(env) as app, bench.serving_floor(bench.REQUIRED_APP) as floor:
        bench.wait_warm(app)
        browser = launch(pw)
        context = browser.new_context(viewport={"width": 1400, "height": 1200})
        context.add_init_script(MARKS_JS)
        tabs = {}
        for label, base in (("Overview", app), ("floor", floor)):
            bench.new_tab(context, base)  # the browser's cache filled, as a returning user's
            tabs[label] = traced_tab(browser, context, base, args.out / f"new-tab-{label.lower()}.json")
        browser.close()
    for label, tab in tabs.items():
        show(label, tab, args.out / f"new-tab-{label.lower()}.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
