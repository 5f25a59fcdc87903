"""Read and write `fairwatch.toml`, and merge CLI flags over it."""

from __future__ import annotations

import json
import os
import tempfile
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.audit.spec import AuditSpec, parse_spec


def read_config(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a TOML config file, with a clear error for a missing or broken file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"config file not found: {path}")
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"config file {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SpecError(f"config file {path} is not UTF-8 text") from None


def merge_config(base: Mapping[str, Any], overrides: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Overlay flag values (section -> key -> value, None meaning 'not given') on a config."""
    merged = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for section, values in overrides.items():
        for key, value in values.items():
            if value is not None:
                merged.setdefault(section, {})[key] = value
    return merged


def load_spec(path: str | Path | None = None, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> AuditSpec:
    """The validated spec from a config file and/or flags (flags win)."""
    raw = read_config(path) if path else {}
    return parse_spec(merge_config(raw, overrides or {}))


def _toml_value(value: Any) -> str:
    """One TOML value (strings, numbers, booleans, lists of those)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value), ensure_ascii=False)


def _toml_key(key: str) -> str:
    """A TOML key, quoted when it is not a bare key."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml_value(key)


def spec_to_toml(spec: AuditSpec) -> str:
    """The spec as `fairwatch.toml` text that `load_spec` reads back to the same spec."""
    data = spec.to_dict()
    lines: list[str] = []
    for section in ("source", "columns", "reference", "policy", "slices", "privacy", "alerts"):
        lines.append(f"[{section}]")
        lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data[section].items() if v is not None]
        lines.append("")
    for feat, shares in data["reference_shares"].items():
        lines.append(f"[reference_shares.{_toml_key(feat)}]")
        lines += [f"{_toml_key(g)} = {_toml_value(s)}" for g, s in shares.items()]
        lines.append("")
    return "\n".join(lines)


def write_config(spec: AuditSpec, path: str | Path) -> Path:
    """Write the spec as TOML atomically (temporary name, then rename)."""
    p = Path(path)
    # A unique temporary name: two sessions saving the same config at once must not share (and tear) one file.
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(spec_to_toml(spec))
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return p
