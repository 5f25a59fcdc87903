"""Run the app as `make run` does and drive it with Debian's chromium (shared by the e2e test and the bench)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# The last flag: Chromium 156 builds its omnibox popup as a WebUI page ("WebUI Top Renderer") for every new tab,
# headless too, where nobody sees it; a Chrome trace of a new dashboard tab (issue 18) showed it busy for 1-3 s of
# CPU beside the page's own renderer, on the same 2 cores. Off, every tab costs only its page.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-features=WebUIOmniboxFullPopup,WebUIOmniboxAimPopup"]
PAGES = {"Overview": "", "Data sources": "Data_sources", "Representation": "Representation",
         "Performance": "Performance"}


def require_browser(sign_in: bool = False):
    """playwright's sync API, or skip the calling test module with the reason (no chromium, no playwright; with
    `sign_in`, no OIDC provider mock or Authlib)."""
    import pytest

    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's chromium is not at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
    sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed")
    if sign_in:
        pytest.importorskip("oidc_provider_mock", reason="oidc-provider-mock is not installed (pip install -e '.[test]')")
        pytest.importorskip("authlib", reason="Authlib is not installed (pip install -e '.[auth]')")
    return sync_api


@contextmanager
def browser_tab(width: int = 1400, height: int = 3000):
    """A tab of a fresh Chromium (closed afterwards)."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = launch(pw)
        yield browser.new_page(viewport={"width": width, "height": height})
        browser.close()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, timeout: float = 60.0) -> None:
    """Block until /_stcore/health answers ok (the server is ready for a browser)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"the app at {base} did not become healthy within {timeout:.0f} s")


@contextmanager
def running_app(env: dict[str, str], port: int | None = None, root: Path | None = None):
    """The dashboard in a subprocess, started as `make run` starts it (`fairwatch serve`'s checks and
    command line), yielding its base URL; stopped afterwards. `root`: another checkout's tree (a bench's
    earlier revision) served with this interpreter, its own code first on the path."""
    from fairwatch.connectors.serve import ServeOptions, prepare

    port = port or free_port()
    options = ServeOptions(host="127.0.0.1", port=port, **({"app": str(root / "asgi.py")} if root else {}))
    cmd, full_env, _ = prepare(options, environ={**os.environ, **env})
    if root:
        full_env["PYTHONPATH"] = str(root)
    # The server's own output (warnings, logged tracebacks) goes to a temp file, named in errors.
    log = open(Path(tempfile.gettempdir()) / f"fairwatch-server-{port}.log", "w")
    proc = subprocess.Popen(cmd, cwd=root or ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base)
        yield base
    finally:
        stop_server(proc, log)


def stop_server(proc: subprocess.Popen, log) -> None:
    """Stop a server started by a test (killed if it does not stop in 10 s) and close its log."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def launch(playwright):
    """Debian's chromium with the flags that work here (no `playwright install`)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)


# Drawn = the script run has finished (Streamlit's own flag on stApp), nothing is a loading skeleton,
# and every chart element has painted its canvas. Charts load their library lazily after the run ends,
# so the state must also hold steady across a short pause (see wait_drawn).
DRAWN_JS = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return -1;
  if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]')) return -1;
  const charts = document.querySelectorAll('[data-testid="stVegaLiteChart"]');
  for (const c of charts) { if (!c.querySelector('canvas, svg')) return -1; }
  if (!document.querySelector('[data-testid="stMain"] h1')) return -1;
  return charts.length;
}"""


def wait_drawn(page, timeout_ms: int = 60_000, settle_ms: int = 400) -> tuple[int, float]:
    """Wait until the page is fully drawn and stays so for `settle_ms`.

    Returns the number of charts and the monotonic time the final drawn state was first seen
    (the settle pause is not part of the page's time).
    """
    deadline = time.monotonic() + timeout_ms / 1000
    last, first_seen = None, 0.0
    while time.monotonic() < deadline:
        page.wait_for_function(f"({DRAWN_JS})() >= 0", timeout=max(1, int((deadline - time.monotonic()) * 1000)),
                               polling=50)
        seen = time.monotonic()
        count = page.evaluate(DRAWN_JS)
        if count >= 0 and count == last:
            return count, first_seen
        last, first_seen = count, seen
        page.wait_for_timeout(settle_ms)
    raise TimeoutError("the page was not fully drawn in time")
