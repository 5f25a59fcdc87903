"""The layering rules: metrics/ is pure, connectors/ never draws, pages never query."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "metrics": {"streamlit", "duckdb", "connectors", "pages", "cli", "psycopg", "pyspark"},
    "connectors": {"streamlit", "pages", "cli"},
    # The notebook API is a peer of cli.py: it runs audits, it never draws.
    "fairwatch": {"streamlit", "pages", "cli"},
}


def _layer(module: str) -> str:
    """The layer a module name belongs to: `fairwatch.metrics.spec` is metrics, `duckdb.x` is duckdb."""
    parts = module.split(".")
    return parts[1] if parts[0] == "fairwatch" and len(parts) > 1 else parts[0]


def imported_modules(path: Path) -> set[str]:
    """Layers (or top-level packages) of every module a file imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {_layer(a.name) for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "fairwatch":
                names |= {_layer(f"fairwatch.{a.name}") for a in node.names}
            else:
                names.add(_layer(node.module))
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layer_imports(package):
    """metrics/ imports no engine or UI; connectors/ imports no UI."""
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_modules(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"layering broken: {offenders}"


def test_pages_hold_no_sql():
    """Pages arrange and draw; SQL lives in connectors/."""
    for path in [ROOT / "app.py", *sorted((ROOT / "pages").rglob("*.py"))]:
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        assert "import duckdb" not in text and "SELECT " not in text, path
