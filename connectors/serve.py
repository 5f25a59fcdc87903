"""Start the dashboard (`make run`, `fairwatch serve`), refusing to expose it beyond this machine without sign-in.

Without an `[auth]` section in the secrets, anyone who can reach the port sees everything, so the
launcher binds only to loopback addresses unless `--allow-unauthenticated-remote` is given. With
`[auth]`, the section and the access config are checked before Streamlit starts, so a typo is a
one-line error here instead of a broken sign-in page later. The app repeats the address check on
every page (for a plain `streamlit run --server.address 0.0.0.0`).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.access import ACCESS_CONFIG_ENV, auth_settings, authlib_missing, load_access_config
from connectors.datapaths import REPO_ROOT
from metrics.errors import FairwatchError, ServeError

ALLOW_FLAG = "--allow-unauthenticated-remote"
ALLOW_ENV = "FAIRWATCH_ALLOW_UNAUTHENTICATED_REMOTE"
APP = REPO_ROOT / "asgi.py"  # app.py behind gzip (asgi.py says why)
EXIT_INPUT = 2
# Settings for a shared deployment, on the command line so that they hold wherever the command is run from
# (Streamlit reads .streamlit/config.toml from the working directory, which repeats them). README, "Deployment".
SHARED_SETTINGS: dict[str, str] = {
    "server.enableXsrfProtection": "true",  # uploads and other POSTs need the session's XSRF token
    "server.enableCORS": "true",  # CORS protection on: no other origin may call the server
    "server.enableStaticServing": "false",  # nothing under ./static is served
    "client.showErrorDetails": "none",  # an uncaught exception never sends its message or traceback
    "client.showErrorLinks": "false",  # and never links out to a search engine from an error
    "browser.gatherUsageStats": "false",  # the browser sends no usage statistics to Streamlit's servers
}


@dataclass(frozen=True)
class ServeOptions:
    """How to start the dashboard."""

    host: str = "127.0.0.1"
    port: int = 8501
    secrets: tuple[str, ...] = ()  # secrets files; empty means Streamlit's own places
    access: str | None = None  # the access config; None means $FAIRWATCH_ACCESS_CONFIG or .streamlit/access.toml
    allow_unauthenticated_remote: bool = False
    app: str = str(APP)


def default_secrets_files(app: str | os.PathLike = APP) -> list[Path]:
    """The files Streamlit reads secrets from when none are given, in its order (later ones win)."""
    files = [Path.home() / ".streamlit" / "secrets.toml", Path.cwd() / ".streamlit" / "secrets.toml",
             Path(app).resolve().parent / ".streamlit" / "secrets.toml"]
    return list(dict.fromkeys(files))


def read_auth_section(files: Sequence[str | os.PathLike]) -> dict[str, Any] | None:
    """The `[auth]` section the app will see (merged over the files as Streamlit does), or None without one."""
    merged: dict[str, Any] | None = None
    for f in files:
        path = Path(f).expanduser()
        if not path.is_file():
            continue
        try:
            with path.open("rb") as fh:
                auth = tomllib.load(fh).get("auth")
        except tomllib.TOMLDecodeError as exc:
            raise ServeError(f"secrets file {path} is not valid TOML ({exc}); fix the line it names") from None
        except OSError as exc:
            raise ServeError(f"cannot read the secrets file {path} ({exc.strerror or exc}); check its "
                             f"permissions") from None
        if isinstance(auth, Mapping):
            merged = {**(merged or {}), **auth}
    return merged


def host_is_loopback(host: str) -> bool:
    """True when every address the host name stands for is a loopback address ('' and 0.0.0.0 mean all)."""
    text = host.strip().strip("[]")
    if not text:
        return False
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(text, None)
    except (socket.gaierror, UnicodeError) as exc:
        raise ServeError(f"cannot resolve the address {host!r} ({exc}); give an IP address such as 127.0.0.1") from None
    return bool(infos) and all(ipaddress.ip_address(i[4][0].split("%")[0]).is_loopback for i in infos)


def check_bind(host: str, auth_on: bool, allow_remote: bool) -> str | None:
    """Refuse a non-loopback address without sign-in unless allowed; a warning to print when allowed."""
    if auth_on or host_is_loopback(host):
        return None
    shown = host or "all addresses"
    if not allow_remote:
        raise ServeError(f"refusing to serve on {shown} without sign-in: anyone who can reach it would see all the "
                         f"data. Configure [auth] in .streamlit/secrets.toml (see README, 'Sign-in and roles'), "
                         f"serve on 127.0.0.1, or pass {ALLOW_FLAG} if everyone on this network may see everything")
    return (f"warning: serving on {shown} without sign-in ({ALLOW_FLAG}): anyone who can reach this port sees "
            f"all the data")


def streamlit_command(opts: ServeOptions) -> list[str]:
    """The `streamlit run` command line for the options."""
    # A served dashboard, not an editing loop: no file watcher, and no full garbage collection after
    # every page run. py-spy on 20 sessions at once (bench/bench_load.py): Streamlit's gc.collect(2)
    # after each run was a fifth of the server's busy time and re-scanning the loaded modules for the
    # watcher a twelfth; Python's own generational collector still runs. `streamlit run app.py` keeps both.
    cmd = [sys.executable, "-m", "streamlit", "run", str(opts.app), "--server.address", opts.host,
           "--server.port", str(opts.port), "--server.headless", "true", "--client.showSidebarNavigation", "false",
           "--server.fileWatcherType", "none", "--runner.postScriptGC", "false"]
    for key, value in SHARED_SETTINGS.items():
        cmd += [f"--{key}", value]
    for f in opts.secrets:
        cmd += ["--secrets.files", str(Path(f).expanduser().resolve())]
    return cmd


def prepare(opts: ServeOptions,
            environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str], list[str]]:
    """Check everything before starting: (command, environment, notes to print); a ServeError when refused."""
    if not 0 < opts.port < 65536:
        raise ServeError(f"--port {opts.port} is not a TCP port; use 1-65535 (default 8501)")
    env = dict(os.environ if environ is None else environ)
    env.pop(ALLOW_ENV, None)  # only the flag opens remote access without sign-in
    if opts.access is not None:
        env[ACCESS_CONFIG_ENV] = str(Path(opts.access).expanduser().resolve())
    files = [Path(f) for f in opts.secrets] or default_secrets_files(opts.app)
    missing = [str(f) for f in opts.secrets if not Path(f).expanduser().is_file()]
    if missing:
        raise ServeError(f"secrets file not found: {missing[0]}; give the path of your secrets.toml")
    auth = read_auth_section(files)
    notes: list[str] = []
    if auth is not None:
        settings = auth_settings(auth)
        fix = authlib_missing()
        if fix:
            raise ServeError(fix)
        access = load_access_config(env.get(ACCESS_CONFIG_ENV) or None)
        notes.append(f"sign-in: {settings.provider} provider at {settings.server_metadata_url}; "
                     f"roles from {access.source or 'nowhere'}; access log {access.log_path}")
        if access.rules.empty:
            notes.append("warning: no roles are configured, so signed-in users will see nothing; add [roles.*] "
                         "tables to the access config")
        if not host_is_loopback(opts.host) and settings.redirect_uri.startswith("http://"):
            notes.append("warning: sign-in over plain http beyond this machine exposes session cookies; serve "
                         "behind HTTPS and use an https:// redirect_uri")
    else:
        warning = check_bind(opts.host, False, opts.allow_unauthenticated_remote)
        if warning:
            env[ALLOW_ENV] = "1"
            notes.append(warning)
        else:
            notes.append("local mode: no sign-in configured; only this machine can reach the dashboard")
    return streamlit_command(opts), env, notes


def serve(opts: ServeOptions) -> int:
    """Check, then replace this process with Streamlit (so signals and the exit code are Streamlit's)."""
    cmd, env, notes = prepare(opts)
    for note in notes:
        print(f"fairwatch: {note}", file=sys.stderr)
    print(f"fairwatch: open http://{opts.host}:{opts.port} in your browser (Ctrl-C stops it)", file=sys.stderr)
    sys.stderr.flush()
    sys.stdout.flush()
    if hasattr(os, "execve"):
        os.execve(cmd[0], cmd, env)
    import subprocess  # pragma: no cover - platforms without exec

    return subprocess.call(cmd, env=env)  # pragma: no cover


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `fairwatch serve` (and `python -m connectors.serve`)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    parser.add_argument("--secrets", action="append", metavar="FILE",
                        help="secrets.toml with the [auth] section (default: Streamlit's .streamlit/secrets.toml)")
    parser.add_argument("--access", metavar="FILE",
                        help=f"access config with the roles (default ${ACCESS_CONFIG_ENV} or .streamlit/access.toml)")
    parser.add_argument(ALLOW_FLAG, action="store_true",
                        help="serve beyond this machine without sign-in: everyone who can reach the port sees "
                             "everything")


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    """ServeOptions from parsed flags."""
    return ServeOptions(host=args.host, port=args.port, secrets=tuple(args.secrets or ()), access=args.access,
                        allow_unauthenticated_remote=args.allow_unauthenticated_remote)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m connectors.serve`: one line on stderr and exit 2 when refused."""
    parser = argparse.ArgumentParser(prog="fairwatch serve", description="Start the fairwatch dashboard.")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return serve(options_from_args(args))
    except FairwatchError as exc:
        print(f"fairwatch: error: {exc}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
