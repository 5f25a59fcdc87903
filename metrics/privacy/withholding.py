"""An audit document as every export withholds it: JSON-safe, secrets redacted, small cells suppressed."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fairwatch.metrics.privacy.redaction import redact_document
from fairwatch.metrics.privacy.suppression import SuppressionSummary, suppress_document


def jsonable(value: Any) -> Any:
    """A JSON-safe copy: NaN/inf and NA become None, numpy scalars Python numbers, tuples lists."""
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item"):
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if str(value) in ("<NA>", "NaT"):
        return None
    return str(value)


def suppress_below(doc: Mapping[str, Any], k: int | None) -> int:
    """The k given, else the audit spec's privacy.suppress_below (default 10)."""
    return k if k is not None else int(((doc.get("spec") or {}).get("privacy") or {}).get("suppress_below", 10))


def withhold(doc: Mapping[str, Any], k: int | None) -> tuple[dict[str, Any], SuppressionSummary]:
    """The document JSON-safe, its secrets redacted and its cells below k withheld (with what was withheld).

    What the export writes (before its fingerprint and export blocks) and what the report worker draws
    charts ahead from: the same document gives the same tables, so the same charts.
    """
    base = jsonable(doc)
    return suppress_document(redact_document(base), suppress_below(base, k))
