"""A real OIDC provider for tests (oidc-provider-mock, in a thread on loopback) and the files that point the app at it.

One host name everywhere: 127.0.0.1 in redirect_uri, server_metadata_url and the browser's address
(mixing in `localhost` loses the sign-in state cookie between /auth/login and /oauth2callback).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.e2e.browser import ROOT, free_port, stop_server, wait_healthy

# The people of the tests: one per role, one the access config gives no role.
USERS: dict[str, dict[str, Any]] = {
    "alice": {"email": "alice@example.org", "email_verified": True, "name": "Alice Auditor",
              "groups": ["fairness-auditors"]},
    "bob": {"email": "bob@example.org", "email_verified": True, "name": "Bob Analyst", "groups": ["data-science"]},
    "carol": {"email": "carol@partner.net", "email_verified": True, "name": "Carol Viewer"},
    "mallory": {"email": "mallory@elsewhere.com", "email_verified": True, "name": "Mallory Nobody",
                "groups": ["visitors"]},
}
ROLE_OF = {"alice": "auditor", "bob": "analyst", "carol": "viewer", "mallory": None}
ACCESS_TOML = """\
# Roles by OIDC group, and one viewer by e-mail allow-list.
claim = "groups"

[roles.auditor]
claim_values = ["fairness-auditors"]

[roles.analyst]
claim_values = ["data-science"]

[roles.viewer]
emails = ["carol@partner.net"]

[log]
path = "access-log.jsonl"
"""


@contextmanager
def oidc_provider(users: Mapping[str, Mapping[str, Any]] = USERS) -> Iterator[str]:
    """A running OIDC provider with the users predefined (one click each on its sign-in form); yields its base URL."""
    from oidc_provider_mock import User, run_server_in_thread

    claims = [User(sub=sub, claims=dict(c)) for sub, c in users.items()]
    with run_server_in_thread(user_claims=claims) as server:
        yield f"http://127.0.0.1:{server.server_port}"


# The provider's pages link a stylesheet on a public CDN: a test browser must only ever talk to loopback.
NOT_LOOPBACK = re.compile(r"^(?!(http|ws)://127\.0\.0\.1[:/]|data:|blob:|about:)")


def loopback_only(context) -> None:
    """Abort every request of a Playwright browser context that is not to 127.0.0.1."""
    context.route(NOT_LOOPBACK, lambda route: route.abort())


def dead_url() -> str:
    """A loopback URL nothing listens on (an unreachable provider)."""
    return f"http://127.0.0.1:{free_port()}"


def write_auth_files(folder: Path, app_port: int, provider_url: str, access: str = ACCESS_TOML) -> tuple[Path, Path]:
    """secrets.toml with an [auth] section for the app on `app_port`, and the access config; returns both paths."""
    folder.mkdir(parents=True, exist_ok=True)
    secrets_file = folder / "secrets.toml"
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{app_port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "fairwatch-test"\n'
        'client_secret = "fairwatch-test-secret"\n'
        f'server_metadata_url = "{provider_url}/.well-known/openid-configuration"\n',
        encoding="utf-8")
    secrets_file.chmod(0o600)
    access_file = folder / "access.toml"
    access_file.write_text(access, encoding="utf-8")
    return secrets_file, access_file


def auth_section(app_port: int, provider_url: str) -> dict[str, str]:
    """The [auth] section as a dict (for AppTest's `secrets`)."""
    return {"redirect_uri": f"http://127.0.0.1:{app_port}/oauth2callback", "cookie_secret": secrets.token_hex(32),
            "client_id": "fairwatch-test", "client_secret": "fairwatch-test-secret",
            "server_metadata_url": f"{provider_url}/.well-known/openid-configuration"}


@contextmanager
def served_app(args: list[str], env: Mapping[str, str], port: int | None = None) -> Iterator[str]:
    """`fairwatch serve ARGS` in a subprocess (as `make run`), yielding its base URL; stopped afterwards."""
    port = port or free_port()
    cmd = [sys.executable, "-m", "fairwatch.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args]
    log = open(Path(tempfile.gettempdir()) / f"fairwatch-serve-{port}.log", "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                log.flush()
                tail = Path(log.name).read_text(encoding="utf-8", errors="replace")[-2000:]
                raise RuntimeError(f"fairwatch serve exited with {proc.returncode}: {tail}")
            try:
                wait_healthy(base, timeout=1.0)
                break
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise
        yield base
    finally:
        stop_server(proc, log)
