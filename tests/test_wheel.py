"""The installed package: a wheel holds one `fairwatch` namespace and everything the app and the CLI need.

Builds the wheel from this checkout, installs it (without dependencies: they come from the test
environment through a plain path entry, so this checkout's editable install is not seen) into a fresh
virtual environment, and uses it from a folder outside the checkout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.e2e.browser import free_port, stop_server, wait_healthy

pytestmark = pytest.mark.slow


def _run(args: list, cwd: Path, **kw) -> subprocess.CompletedProcess:
    """Run a command, failing the test with its output when it fails."""
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, f"{args} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict:
    """A fresh environment with the wheel installed, and a work folder outside the checkout."""
    base = tmp_path_factory.mktemp("wheel")
    dist = base / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", dist, ROOT],
         cwd=base)
    wheel = next(dist.glob("fairwatch-*.whl"))
    env_dir = base / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    _run([py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", wheel], cwd=base)
    site = Path(_run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=base).stdout.strip())
    # The dependencies, from this test environment, as a plain path entry: its .pth files (and so the
    # checkout's editable install) are not processed there.
    (site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    work = base / "work"
    work.mkdir()
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FAIRWATCH_DATA_DIR")}
    return {"wheel": wheel, "py": py, "bin": env_dir / "bin", "work": work, "env": clean_env}


def test_the_wheel_holds_one_namespace(installed):
    """Only `fairwatch` (and its metadata) at the wheel's top level, with the app, pages and schema inside."""
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert {n.split("/")[0] for n in names} == {"fairwatch", f"{installed['wheel'].name.split('-py')[0]}.dist-info"}
    for needed in ("fairwatch/app.py", "fairwatch/asgi.py", "fairwatch/cli.py", "fairwatch/schema/snapshot.schema.json",
                   "fairwatch/pages/components/sidebar.py", "fairwatch/metrics/audit/spec.py", "fairwatch/connectors/source.py",
                   "fairwatch/.streamlit/config.toml"):
        assert needed in names, needed


def test_no_top_level_modules_leak(installed):
    """`metrics`, `connectors`, `cli` and `pages` are not importable; `fairwatch.metrics` is, from site-packages."""
    code = ("import importlib.util, fairwatch.metrics.audit.spec as s; "
            "print([n for n in ('metrics', 'connectors', 'cli', 'pages') if importlib.util.find_spec(n)]); "
            "print(s.__file__)")
    out = _run([installed["py"], "-c", code], cwd=installed["work"], env=installed["env"]).stdout.splitlines()
    assert out[0] == "[]"
    assert "site-packages" in out[1] and str(ROOT) not in out[1]


def test_demo_audit_and_verify_from_the_wheel(installed):
    """`fairwatch demo`, `audit` (schema-checked snapshot) and `verify` run from the installed package."""
    work, fw = installed["work"], installed["bin"] / "fairwatch"
    _run([fw, "demo", "--out", "demo.duckdb", "--rows", "5000", "--config-out", "fairwatch.toml"], cwd=work,
         env=installed["env"])
    _run([fw, "audit", "--config", "fairwatch.toml", "--out", "audits/one"], cwd=work, env=installed["env"])
    snap = json.loads((work / "audits" / "one" / "snapshot.json").read_text(encoding="utf-8"))
    assert snap["groups"], "the snapshot has no groups"
    _run([fw, "verify", "audits/one"], cwd=work, env=installed["env"])


def test_serve_from_the_wheel_answers(installed):
    """`fairwatch serve` starts the dashboard from the installed package and answers its health check and page."""
    import urllib.request

    port = free_port()
    log = open(installed["work"] / "serve.log", "w")
    env = {**installed["env"], "FAIRWATCH_DATA_DIR": str(installed["work"] / "data")}
    proc = subprocess.Popen([str(installed["bin"] / "fairwatch"), "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=installed["work"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", timeout=90)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
            assert resp.status == 200 and b"<html" in resp.read().lower()
    finally:
        stop_server(proc, log)
    assert "Traceback" not in (installed["work"] / "serve.log").read_text(encoding="utf-8", errors="replace")
