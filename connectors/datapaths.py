"""Where the dashboard may read and write files: the data folder, checked after resolving every link."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from fairwatch.metrics.errors import SourceError

# app.py, pages/, schema/ and .streamlit/config.toml: the checkout, or the installed package's folder.
APP_ROOT = Path(__file__).resolve().parents[1]
# Where data, snapshots, logs and the access config live: the checkout itself; for an installed package
# (site-packages is no place for data) the folder the command runs in.
REPO_ROOT = APP_ROOT if (APP_ROOT / "pyproject.toml").is_file() else Path.cwd()
DATA_DIR_ENV = "FAIRWATCH_DATA_DIR"
# What the Sources page offers and accepts; the reader for each lives in connectors/source.py.
DATA_SUFFIXES = (".duckdb", ".db", ".ddb", ".parquet", ".csv", ".tsv", ".json", ".jsonl", ".ndjson")
_SAFE_STEM = re.compile(r"[^A-Za-z0-9._-]+")


def max_upload_bytes() -> int:
    """The upload cap: [server] maxUploadSize (MB) of the app's .streamlit/config.toml, else Streamlit's 200."""
    import tomllib

    try:
        with open(APP_ROOT / ".streamlit" / "config.toml", "rb") as fh:
            mb = tomllib.load(fh).get("server", {}).get("maxUploadSize", 200)
    except (OSError, tomllib.TOMLDecodeError):
        mb = 200
    return int(mb) * 1024 * 1024


def data_dir() -> Path:
    """The allowed data folder: $FAIRWATCH_DATA_DIR, else <repo>/data (resolved, created if missing)."""
    raw = os.environ.get(DATA_DIR_ENV) or str(REPO_ROOT / "data")
    root = Path(raw).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def safe_data_path(user_path: str, root: Path | None = None, *, must_exist: bool = True) -> Path:
    """A path the user typed, resolved inside the data folder; anything that escapes it is refused."""
    root = (root or data_dir()).resolve()
    text = (user_path or "").strip()
    if not text:
        raise SourceError(f"no file given: type a file name inside the data folder {root}")
    if "\x00" in text:
        raise SourceError("the file name contains a NUL character; type a plain file name")
    candidate = Path(text).expanduser()
    if ".." in candidate.parts:
        raise SourceError(f"'..' is not allowed in {text!r}; give a path inside the data folder {root}")
    if not candidate.is_absolute():
        candidate = root / candidate
    # resolve() follows every symlink, so a link inside the folder pointing outside is caught here.
    resolved = candidate.resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise SourceError(f"{text!r} is outside the data folder {root}; copy the file there or set {DATA_DIR_ENV}")
    if must_exist and not resolved.exists():
        raise SourceError(f"file not found: {text!r} in the data folder {root}; check the name or upload the file")
    if must_exist and resolved.is_dir():
        raise SourceError(f"{text!r} is a folder; choose a file in it")
    return resolved


def list_data_files(root: Path | None = None, limit: int = 500) -> list[str]:
    """Readable files under the data folder, as paths relative to it (links that escape are left out)."""
    root = (root or data_dir()).resolve()
    found = []
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in DATA_SUFFIXES or not path.is_file():
            continue
        if not path.resolve().is_relative_to(root):
            continue
        found.append(path.relative_to(root).as_posix())
        if len(found) >= limit:
            break
    return found


def upload_name(original: str, content: bytes) -> str:
    """A safe, collision-free file name for an upload: a content hash plus a cleaned stem."""
    suffix = Path(original).suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise SourceError(f"cannot use {original!r}: upload a {', '.join(DATA_SUFFIXES)} file")
    stem = _SAFE_STEM.sub("_", Path(original).stem).strip("._")[:40] or "upload"
    digest = hashlib.sha256(content).hexdigest()[:12]
    return f"upload-{digest}-{stem}{suffix}"


def save_upload(original: str, content: bytes, root: Path | None = None) -> Path:
    """Write uploaded bytes into the data folder under a generated name (atomically); return the path."""
    root = (root or data_dir()).resolve()
    if not content:
        raise SourceError(f"the uploaded file {original!r} is empty; upload a file with rows")
    limit = max_upload_bytes()
    if len(content) > limit:
        raise SourceError(f"the uploaded file {original!r} is {len(content) / 2**20:,.0f} MB, more than the "
                          f"{limit // 2**20} MB upload limit; copy it into the data folder {root} instead")
    target = root / upload_name(original, content)
    if target.exists():
        return target  # same content already saved: the hash in the name says so
    tmp = target.with_name(target.name + ".part")
    tmp.write_bytes(content)
    os.replace(tmp, target)
    return target


def demo_path() -> Path:
    """The demo database: in the data folder if there, else the repo's data/demo.duckdb."""
    in_data = data_dir() / "demo.duckdb"
    return in_data if in_data.exists() else REPO_ROOT / "data" / "demo.duckdb"
