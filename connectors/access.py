"""Access I/O: the access config (roles, allow-lists), the sign-in settings, the provider check, the access log.

The access log is JSON Lines, append-only and hash-chained: each record holds the SHA-256 of the line
before it (`prev`) and a running number (`seq`), so an edited, removed or reordered record breaks the
chain that `verify_access_log` checks. Appends take an exclusive lock on the file, write one line and
fsync it before returning, so a caller that shows example rows only after `record_access` returned
never shows them unlogged. Like the snapshot chain, this cannot prove that the newest records were not
cut off: the Access log page shows the newest hash so that an auditor can note it elsewhere.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib.util
import ipaddress
import json
import os
import re
import socket
import threading
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from fairwatch.connectors.datapaths import REPO_ROOT, data_dir
from fairwatch.metrics.errors import AccessConfigError, AccessLogError
from fairwatch.metrics.privacy.roles import AccessRules, parse_rules

try:
    import fcntl
except ImportError:  # Windows: appends are serialised within one process only
    fcntl = None  # type: ignore[assignment]

ACCESS_CONFIG_ENV = "FAIRWATCH_ACCESS_CONFIG"
ACCESS_LOG_ENV = "FAIRWATCH_ACCESS_LOG"
DEFAULT_ACCESS_CONFIG = REPO_ROOT / ".streamlit" / "access.toml"
DEFAULT_ACCESS_LOG = REPO_ROOT / "logs" / "access-log.jsonl"
SECRETS_HINT = ".streamlit/secrets.toml"
GENESIS = "0" * 64
MIN_COOKIE_SECRET = 32
_ACTION = re.compile(r"[a-z][a-z0-9_]{0,39}")
_RECORD_KEYS = ("seq", "time", "who", "name", "role", "action", "what", "detail", "prev")
_append_lock = threading.Lock()


# ----------------------------------------------------------------------------- the access config


@dataclass(frozen=True)
class AccessConfig:
    """The role rules and where the access log goes; `source` is the file read (None when there is none)."""

    rules: AccessRules
    log_path: Path
    source: Path | None = None


def access_config_path() -> Path:
    """Where the access config is: $FAIRWATCH_ACCESS_CONFIG, else .streamlit/access.toml beside app.py."""
    raw = os.environ.get(ACCESS_CONFIG_ENV)
    return Path(raw).expanduser() if raw else DEFAULT_ACCESS_CONFIG


def file_stamp(path: Path) -> tuple[float, int]:
    """(mtime, size) of a file, (0, -1) when absent: a cache key that changes when the file does."""
    try:
        st = path.stat()
    except OSError:
        return 0.0, -1
    return st.st_mtime, st.st_size


def _log_path(raw: Mapping[str, Any], base: Path) -> Path:
    """The access log path: $FAIRWATCH_ACCESS_LOG, else [log] path (relative to the config), else the default."""
    env = os.environ.get(ACCESS_LOG_ENV)
    log = raw.get("log", {})
    if not isinstance(log, Mapping) or set(log) - {"path"}:
        raise AccessConfigError("[log] takes one key: path = \"logs/access-log.jsonl\"")
    text = env or log.get("path")
    if text is not None and (not isinstance(text, str) or not text.strip()):
        raise AccessConfigError("[log] path must be a file path, e.g. path = \"logs/access-log.jsonl\"")
    path = Path(text).expanduser() if text else DEFAULT_ACCESS_LOG
    path = path if path.is_absolute() else base / path
    resolved = path.resolve()
    if resolved.is_relative_to(data_dir()):
        raise AccessConfigError(f"the access log {resolved} is inside the data folder, where the Data sources page "
                                f"could open it: set [log] path (or {ACCESS_LOG_ENV}) to a folder outside it")
    return resolved


def load_access_config(path: str | os.PathLike | None = None) -> AccessConfig:
    """The access config from a TOML file; no file means no role rules (signed-in users then see nothing)."""
    p = Path(path).expanduser() if path is not None else access_config_path()
    if not p.exists():
        if path is not None or os.environ.get(ACCESS_CONFIG_ENV):
            raise AccessConfigError(f"access config not found: {p}; create it (see README, 'Sign-in and roles') "
                                    f"or unset {ACCESS_CONFIG_ENV}")
        return AccessConfig(rules=AccessRules(), log_path=_log_path({}, REPO_ROOT), source=None)
    try:
        with p.open("rb") as fh:
            raw = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise AccessConfigError(f"access config {p} is not valid TOML ({exc}); fix the line it names") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessConfigError(f"cannot read the access config {p} ({exc}); check its permissions") from None
    try:
        rules = parse_rules(raw)
        log_path = _log_path(raw, p.parent)
    except AccessConfigError as exc:
        raise AccessConfigError(f"access config {p}: {exc}") from None
    return AccessConfig(rules=rules, log_path=log_path, source=p.resolve())


def local_user_name() -> str:
    """The server's own user, the one person of local mode."""
    try:
        return getpass.getuser() or "local"
    except (KeyError, OSError):
        return "local"


def cli_author() -> dict[str, str]:
    """The author block of a snapshot made by `fairwatch audit`: the user and host that ran it."""
    user = local_user_name()
    return {"name": user, "id": f"{user}@{socket.gethostname()}", "role": "", "signed_in": "cli"}


def authlib_missing() -> str | None:
    """A one-line fix when Authlib (needed by Streamlit's st.login) is not installed, else None."""
    if importlib.util.find_spec("authlib") is None:
        return "sign-in needs Authlib, which is not installed: pip install -e '.[auth]' (or pip install 'Authlib>=1.9')"
    return None


# ----------------------------------------------------------------------------- sign-in settings


@dataclass(frozen=True)
class AuthSettings:
    """The parts of Streamlit's `[auth]` section that fairwatch checks before offering sign-in."""

    provider: str  # "default" for a flat [auth] section, else the name of its one [auth.NAME] table
    server_metadata_url: str
    redirect_uri: str
    client_id: str


_PROVIDER_KEYS = ("client_id", "client_secret", "server_metadata_url")


def _host_of(url: str) -> str:
    """The host name of a URL, lower-cased ('' when there is none)."""
    try:
        return (urlparse(url).hostname or "").lower()
    except ValueError:
        return ""


def is_loopback_name(host: str) -> bool:
    """True for 'localhost' and loopback IP literals (no name lookup)."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_settings(auth: Mapping[str, Any]) -> AuthSettings:
    """Check an `[auth]` section the way sign-in will use it; one-line errors that name the key to fix."""
    where = f"[auth] in {SECRETS_HINT}"
    for key in ("redirect_uri", "cookie_secret"):
        if not isinstance(auth.get(key), str) or not auth[key].strip():
            raise AccessConfigError(f"{where} has no {key}; add it (see README, 'Sign-in and roles')")
    if len(auth["cookie_secret"]) < MIN_COOKIE_SECRET:
        raise AccessConfigError(f"{where}: cookie_secret is too short to sign sessions safely; use at least "
                                f"{MIN_COOKIE_SECRET} random characters, e.g. python -c \"import secrets; "
                                f"print(secrets.token_hex(32))\"")
    redirect = auth["redirect_uri"].strip()
    if not redirect.endswith("/oauth2callback") or urlparse(redirect).scheme not in ("http", "https"):
        raise AccessConfigError(f"{where}: redirect_uri must be this app's address ending in /oauth2callback, "
                                f"e.g. http://127.0.0.1:8501/oauth2callback")
    named = {k: v for k, v in auth.items() if isinstance(v, Mapping) and k != "client_kwargs"}
    if any(k in auth for k in _PROVIDER_KEYS):
        provider, section = "default", auth
    elif len(named) == 1:
        provider, section = next(iter(named.items()))
    else:
        raise AccessConfigError(f"{where} must hold client_id, client_secret and server_metadata_url (or exactly "
                                f"one [auth.NAME] table with them); found {len(named)} provider tables")
    missing = [k for k in _PROVIDER_KEYS if not isinstance(section.get(k), str) or not section[k].strip()]
    if missing:
        table = "[auth]" if provider == "default" else f"[auth.{provider}]"
        raise AccessConfigError(f"{table} in {SECRETS_HINT} is missing {', '.join(missing)}; add them from your "
                                f"sign-in provider's settings")
    metadata = section["server_metadata_url"].strip()
    if urlparse(metadata).scheme not in ("http", "https"):
        raise AccessConfigError(f"{where}: server_metadata_url must be an http(s) URL ending in "
                                f"/.well-known/openid-configuration")
    a, b = _host_of(redirect), _host_of(metadata)
    if a != b and is_loopback_name(a) and is_loopback_name(b):
        raise AccessConfigError(f"{where}: redirect_uri uses {a} but server_metadata_url uses {b}; use the same "
                                f"host name in both (and in the browser), or the sign-in cookie is lost")
    return AuthSettings(provider=provider, server_metadata_url=metadata, redirect_uri=redirect,
                        client_id=section["client_id"])


@dataclass(frozen=True)
class ProviderStatus:
    """Whether the sign-in provider answers its metadata URL, with a message for the sign-in page."""

    ok: bool
    message: str


def check_provider(metadata_url: str, timeout: float = 3.0) -> ProviderStatus:
    """Fetch the provider's OIDC metadata (short timeout): reachable and usable, or why not."""
    host = urlparse(metadata_url).netloc or metadata_url
    fix = (f"try again in a minute; if it persists, ask an admin to check the provider and server_metadata_url "
           f"in {SECRETS_HINT}")
    try:
        req = urllib.request.Request(metadata_url, headers={"Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - the admin's configured URL
            body = resp.read(1 << 20)
    except urllib.error.HTTPError as exc:
        return ProviderStatus(False, f"The sign-in provider at {host} answered HTTP {exc.code}: {fix}.")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return ProviderStatus(False, f"The sign-in provider at {host} cannot be reached ({reason}): {fix}.")
    try:
        meta = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ProviderStatus(False, f"The sign-in provider at {host} did not answer with OIDC metadata (not JSON): "
                                     f"{fix}.")
    missing = [k for k in ("authorization_endpoint", "token_endpoint") if not isinstance(meta, dict) or k not in meta]
    if missing:
        return ProviderStatus(False, f"The sign-in provider at {host} sent metadata without {', '.join(missing)}: "
                                     f"{fix}.")
    return ProviderStatus(True, f"The sign-in provider at {host} is reachable.")


# ----------------------------------------------------------------------------- the access log


@dataclass(frozen=True)
class AccessRecord:
    """One line of the access log."""

    seq: int
    time: str
    who: str
    name: str
    role: str
    action: str
    what: str
    detail: dict[str, Any] = field(default_factory=dict)
    prev: str = GENESIS
    line_sha256: str = ""


@dataclass(frozen=True)
class LogCheck:
    """The outcome of checking the access log's chain."""

    path: str
    records: int
    last_sha256: str
    problems: tuple[str, ...] = ()

    @property
    def intact(self) -> bool:
        """True when every line parses and links to the one before it."""
        return not self.problems


def _sha(line: bytes) -> str:
    """SHA-256 of one log line without its newline."""
    return hashlib.sha256(line.rstrip(b"\n")).hexdigest()


def _jsonable(value: Any) -> Any:
    """Detail values as JSON: strings, numbers, booleans, None, lists and dicts of those; anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _tail(fd: int, size: int, window: int = 1 << 16) -> tuple[bytes, int | None]:
    """(last line, seq of the last readable record) of the file, read backwards from its end."""
    pos, buf, last = size, b"", None
    while pos > 0:
        step = min(window, pos)
        pos -= step
        buf = os.pread(fd, step, pos) + buf
        pieces = (buf[:-1] if buf.endswith(b"\n") else buf).split(b"\n")
        if last is None and (len(pieces) > 1 or pos == 0):
            last = pieces[-1]
        for line in reversed(pieces if pos == 0 else pieces[1:]):  # the first piece may be cut off
            try:
                seq = json.loads(line).get("seq")
            except (ValueError, AttributeError):
                continue
            if isinstance(seq, int):
                return last if last is not None else line, seq
        if len(buf) >= 16 * window:
            break
    return last or b"", None


@contextmanager
def _locked(fd: int) -> Iterator[None]:
    """An exclusive lock on the open log file, across threads and processes."""
    with _append_lock:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)




def record_access(path: str | os.PathLike, *, who: str, name: str, role: str | None, action: str, what: str,
                  detail: Mapping[str, Any] | None = None, now: datetime | None = None) -> AccessRecord:
    """Append one record (who, when, what) to the access log, synced to disk before returning."""
    if not _ACTION.fullmatch(action):
        raise ValueError(f"access log action {action!r} must be a short lower_case word")
    log = Path(path)
    when = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).isoformat(timespec="milliseconds")
    try:
        log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        created = not log.exists()
        fd = os.open(log, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise AccessLogError(f"cannot open the access log {log} ({exc.strerror or exc}); make its folder writable "
                             f"by the server, or set [log] path in the access config") from None
    try:
        with _locked(fd):
            size = os.fstat(fd).st_size
            last, last_seq = _tail(fd, size) if size else (b"", None)
            torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
            record = {"seq": (last_seq or 0) + 1, "time": when, "who": str(who), "name": str(name),
                      "role": role or "", "action": action, "what": str(what)[:500],
                      "detail": _jsonable(dict(detail or {})), "prev": _sha(last) if size else GENESIS}
            line = json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
            os.write(fd, (b"\n" if torn else b"") + line + b"\n")
            os.fsync(fd)
    except OSError as exc:
        raise AccessLogError(f"cannot write the access log {log} ({exc.strerror or exc}); check the disk space "
                             f"and permissions of {log.parent}") from None
    finally:
        os.close(fd)
    if created:
        # Imported here: connectors.export pulls in the audit and report stack, which `fairwatch serve` never needs.
        from fairwatch.connectors.export import fsync_dir

        fsync_dir(log.parent)
    return AccessRecord(**{k: record[k] for k in _RECORD_KEYS}, line_sha256=_sha(line))


def _lines(path: Path) -> list[bytes]:
    """The log's lines (without newlines); an empty list when there is no log yet."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise AccessLogError(f"cannot read the access log {path} ({exc.strerror or exc}); check its "
                             f"permissions") from None
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n") if data else []


def _parse(line: bytes) -> AccessRecord | None:
    """One record, or None when the line is not a complete record."""
    try:
        raw = json.loads(line)
        return AccessRecord(**{k: raw[k] for k in _RECORD_KEYS}, line_sha256=_sha(line))
    except (ValueError, KeyError, TypeError):
        return None


def read_access_log(path: str | os.PathLike, limit: int | None = None) -> tuple[AccessRecord, ...]:
    """The readable records, newest first (at most `limit`)."""
    out: list[AccessRecord] = []
    for line in reversed(_lines(Path(path))):
        rec = _parse(line)
        if rec is not None:
            out.append(rec)
            if limit is not None and len(out) >= limit:
                break
    return tuple(out)


def verify_access_log(path: str | os.PathLike) -> LogCheck:
    """Check every line parses, links to the line before it and numbers on from it."""
    lines = _lines(Path(path))
    problems: list[str] = []
    prev_hash, prev_seq = GENESIS, 0
    for number, line in enumerate(lines, start=1):
        rec = _parse(line)
        if rec is None:
            problems.append(f"line {number}: not a complete record (damaged or cut off)")
        else:
            if rec.prev != prev_hash:
                problems.append(f"line {number}: does not link to the line before it (a line was edited, removed "
                                f"or inserted)")
            if rec.seq != prev_seq + 1:
                problems.append(f"line {number}: number {rec.seq} follows {prev_seq}")
            prev_seq = rec.seq
        prev_hash = _sha(line)
    return LogCheck(path=str(path), records=len(lines), last_sha256=prev_hash if lines else GENESIS,
                    problems=tuple(problems))
