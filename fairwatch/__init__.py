"""fairwatch from Python: `fairwatch.audit(data, label=..., prediction=..., sensitive=[...])` returns an `Audit`.

Importing this package is cheap: the engine, fairlearn and pandas load on first use of a name below
(`fairwatch.audit`, `fairwatch.Audit`, `fairwatch.FairwatchError`), not here.

Installed from a wheel, everything lives in this package (`fairwatch.metrics`, `fairwatch.connectors`,
`fairwatch.cli`, the dashboard's `app.py` and `pages/`). In the project's checkout those folders stay at the
top level (app.py, pages/, metrics/, connectors/ are the layout Streamlit and the team work with), so this
package's search path also takes the folder above it: `fairwatch.metrics` is then `metrics/`.
"""

from __future__ import annotations

from pathlib import Path as _Path
from typing import TYPE_CHECKING, Any

_HERE = _Path(__file__).resolve().parent
if not (_HERE / "metrics").is_dir() and (_HERE.parent / "metrics" / "__init__.py").is_file():
    __path__.append(str(_HERE.parent))  # noqa: F821 - the checkout: metrics/, connectors/, cli.py beside this folder

if TYPE_CHECKING:  # the real names for type checkers; at run time they load on first use (see __getattr__)
    from fairwatch.api import Audit, audit
    from fairwatch.metrics.errors import FairwatchError

__all__ = ["Audit", "FairwatchError", "audit"]


def __getattr__(name: str) -> Any:
    """`audit`, `Audit` and `FairwatchError`, imported on first use so `import fairwatch` stays light."""
    if name in ("audit", "Audit"):
        from fairwatch import api

        return getattr(api, name)
    if name == "FairwatchError":
        from fairwatch.metrics.errors import FairwatchError

        return FairwatchError
    raise AttributeError(f"module 'fairwatch' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names, for tab completion in notebooks."""
    return sorted([*globals(), *__all__])
