"""Curated, lazily loaded interfaces for the metrics/ subpackages (PEP 562).

Each subpackage names its public interface once, as {module: names}; a name loads its module on first
use, so importing one module of a capability does not import the others (a command imports only what it
needs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module
from typing import Any


def lazy_interface(package: str, modules: Mapping[str, Sequence[str]]
                   ) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """(__all__, __getattr__, __dir__) for a package whose public names live in its modules."""
    exports = {name: module for module, given in modules.items() for name in given}
    if len(exports) != sum(len(given) for given in modules.values()):
        raise ValueError(f"{package}: a public name is listed under two modules")
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        """Load a public name from its module on first use."""
        if name in exports:
            return getattr(import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        """The public names, for completion in notebooks."""
        return names

    return names, __getattr__, __dir__
