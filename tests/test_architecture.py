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
    """The layer a module name belongs to: `fairwatch.metrics.audit.spec` is metrics, `duckdb.x` is duckdb."""
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


def _module_name(path: Path) -> str:
    """The dotted module name of a file of the package (`metrics/stats/groups.py` is fairwatch.metrics.stats.groups)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(["fairwatch", *parts])


def import_graph() -> dict[str, set[str]]:
    """Which package modules each module of metrics/ and connectors/ imports, anywhere in the file.

    Function-level and TYPE_CHECKING imports count: a cycle broken only by importing late is still a cycle
    in the design, and the next edit that moves the import to the top breaks the program.
    """
    files = {_module_name(p): p for pkg in ("metrics", "connectors") for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            deps |= {t for t in targets if t in files and t != name and not name.startswith(t + ".")}
        # A package's __init__ that only names its modules lazily imports nothing; skip the parent edge.
        graph[name] = deps
    return graph


def test_no_import_cycles():
    """No module of metrics/ or connectors/ reaches itself through its imports (Tarjan's strongly connected parts)."""
    graph = import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                cycles.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_statistics_never_draw():
    """Statistics over counts import no presentation module, Altair or the chart converter."""
    offenders = {}
    for path in sorted((ROOT / "metrics" / "stats").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        mods = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        mods |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        bad = {m for m in mods if m.split(".")[0] in ("altair", "vl_convert")
               or m.startswith("fairwatch.metrics.presentation")}
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"statistics import presentation: {offenders}"


def test_curated_interfaces_resolve():
    """Every name a metrics/ subpackage lists in __all__ loads from its module."""
    import importlib

    for init in sorted((ROOT / "metrics").glob("*/__init__.py")):
        package = importlib.import_module(f"fairwatch.metrics.{init.parent.name}")
        assert package.__all__, init
        for name in package.__all__:
            assert getattr(package, name) is not None, (init.parent.name, name)


def test_the_readme_layout_names_every_capability():
    """The README's layout section lists every metrics/ subpackage and every top-level folder of the code."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = text[text.index("## Layout"):]
    block = layout[layout.index("```") + 3:layout.index("```", layout.index("```") + 3)]
    for init in sorted((ROOT / "metrics").glob("*/__init__.py")):
        assert f"  {init.parent.name}/" in block, f"metrics/{init.parent.name}/ missing from the README's layout"
    for top in ("app.py", "pages/", "metrics/", "connectors/", "cli.py", "fairwatch/", "bench/", "tests/"):
        assert top in block, f"{top} missing from the README's layout"
