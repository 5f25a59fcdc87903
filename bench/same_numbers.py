"""Do two snapshots carry the same numbers? Compares every block but timings and export details, byte for byte.

    .venv/bin/python bench/same_numbers.py OLD NEW      # snapshot folders, zips or snapshot.json files

Issue 18 changes how the audit runs, never what it finds: run the same audit with the old and the
new code (e.g. `/work/main/.venv/bin/fairwatch audit --config demo.toml --out old` and this
checkout's `fairwatch audit ... --out new`) and this prints, per block, "same" or the first
differing path. `groups`, `findings` and `data_quality` must be the same (exit 1 otherwise); the
other blocks are reported too. Ignored: `created_at`, `duration_seconds`, `tool`, `export` and the
fingerprint's `source` (they say when and by what the audit ran).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MUST_MATCH = ("groups", "findings", "data_quality")
IGNORED = ("created_at", "duration_seconds", "tool", "export")


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    """The first path where two JSON values differ (None when they are identical, as JSON text)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}/{key} (only in {'new' if key in b else 'old'})"
            found = first_difference(a[key], b[key], f"{path}/{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} (length {len(a)} vs {len(b)})"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    same = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    return None if same else f"{path}: {a!r} vs {b!r}"


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, str | None]:
    """Per top-level block, the first difference (None = same)."""
    out = {}
    for key in sorted((set(old) | set(new)) - set(IGNORED)):
        a, b = old.get(key), new.get(key)
        if key == "fingerprint" and isinstance(a, dict) and isinstance(b, dict):
            a, b = ({k: v for k, v in d.items() if k != "source"} for d in (a, b))
        out[key] = first_difference(a, b, key)
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the comparison; exit 1 when groups, findings or data_quality differ."""
    from connectors.export import load_snapshot

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    result = compare(load_snapshot(args[0]), load_snapshot(args[1]))
    for key, diff in result.items():
        print(f"{key:22s} {'same' if diff is None else 'DIFFERS at ' + diff[:200]}")
    bad = [k for k in MUST_MATCH if result.get(k) is not None]
    print("FAIL: " + ", ".join(bad) + " differ" if bad else "OK: groups, findings and data_quality are identical")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
