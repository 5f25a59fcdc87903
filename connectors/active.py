"""The spec the dashboard starts with: $FAIRWATCH_CONFIG if set, else the demo next to the repo."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from connectors.config import load_spec, write_config
from connectors.datapaths import REPO_ROOT, data_dir, demo_path, safe_data_path
from connectors.demo import DEMO_CONFIG
from metrics.errors import SourceError
from metrics.spec import AuditSpec, parse_spec

CONFIG_ENV = "FAIRWATCH_CONFIG"
# The server's log line once its background warm-up has computed the default view (asgi.py; the bench waits for it).
WARM_MARK = "fairwatch: default view computed"


def absolute_source(spec: AuditSpec, base: Path) -> AuditSpec:
    """The spec with relative source paths read against `base` (the CLI reads them against its cwd)."""
    def fix(path: str | None) -> str | None:
        if path is None or os.path.isabs(os.path.expanduser(path)):
            return path
        return str((base / path).resolve())

    src = spec.source
    return spec.with_source(replace(src, path=fix(src.path) or src.path, labels_path=fix(src.labels_path)))


def demo_spec() -> AuditSpec:
    """The demo's spec pointing at the demo file; a clear error when it has not been generated."""
    path = demo_path()
    if not path.is_file():
        raise SourceError(f"the demo data {path} is missing: run `make run` or `fairwatch demo --out {path}`")
    spec = parse_spec(DEMO_CONFIG)
    return spec.with_source(replace(spec.source, path=str(path)))


def default_spec() -> AuditSpec:
    """The active spec at start-up: $FAIRWATCH_CONFIG (relative paths from the repo root), else the demo."""
    config = os.environ.get(CONFIG_ENV)
    if config:
        spec = load_spec(config)
        return absolute_source(spec, REPO_ROOT)
    return demo_spec()


def saved_config_spec(name: str) -> AuditSpec:
    """A fairwatch.toml saved in the data folder (the `config` of a shared link)."""
    path = safe_data_path(name)
    return absolute_source(load_spec(path), REPO_ROOT)


def save_spec(spec: AuditSpec, name: str) -> Path:
    """Write the spec as a fairwatch.toml inside the data folder; return where."""
    if not name.strip().endswith(".toml"):
        raise SourceError(f"the config name {name!r} must end in .toml, e.g. fairwatch.toml")
    path = safe_data_path(name, must_exist=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_config(spec, path)


__all__ = ["CONFIG_ENV", "absolute_source", "data_dir", "default_spec", "demo_spec", "save_spec",
           "saved_config_spec"]
