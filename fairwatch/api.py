"""The notebook API: one call audits a DataFrame, an Arrow table, a file or glob, or a DuckDB relation.

It runs the same code as `fairwatch audit` (spec parsing, the read-only engine, `run_audit`, the
snapshot export), so a number here, in `snapshot.json` and on the dashboard cannot disagree.

>>> import pandas as pd
>>> import fairwatch
>>> df = pd.DataFrame({"group": ["a"] * 300 + ["b"] * 300,
...                    "label": [1, 0] * 300,
...                    "pred": [1, 1, 1, 0, 1, 0, 1, 0, 1, 0] * 30 + [1, 1, 1, 1, 1, 1, 0, 0, 0, 0] * 30})
>>> result = fairwatch.audit(df, label="label", prediction="pred", sensitive=["group"])
>>> fpr = result.groups[result.groups["metric"] == "false_positive_rate"].round(2)
>>> fpr[["group", "value", "support", "ratio", "verdict"]].to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
[{'group': 'group=a', 'value': 0.2, 'support': 150, 'ratio': 1.0, 'verdict': 'reference'},
 {'group': 'group=b', 'value': 0.6, 'support': 150, 'ratio': 3.0, 'verdict': 'outside'}]
>>> result.to_dict()["data"]["rows"]
600
>>> try:
...     fairwatch.audit(df, label="outcome", prediction="pred", sensitive=["group"])
... except fairwatch.FairwatchError as exc:
...     print(exc)
the label column 'outcome' is not a column of the source; columns are: group, label, pred
"""

from __future__ import annotations

import copy
import html
import os
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from fairwatch.connectors.access import cli_author
from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.export import check_target, export_document, prepare_document
from fairwatch.connectors.fingerprint import DataFingerprint, fingerprint_source
from fairwatch.connectors.source import OpenSource, engine_message, open_frame, open_source
from fairwatch.metrics.errors import SourceError
from fairwatch.metrics.policy.overview import feature_verdicts, worst_disparities
from fairwatch.metrics.presentation.report_model import csv_tables
from fairwatch.metrics.audit.snapshot import AuditSnapshot
from fairwatch.metrics.audit.spec import AuditSpec, RowFilter, parse_spec
from fairwatch.metrics.presentation.views import worst_table

__all__ = ["Audit", "audit"]

# Keyword arguments of `audit` beyond the named ones go to these parts of a fairwatch.toml; the rest are
# [policy] keys (parse_spec refuses unknown ones with the list of known keys).
_COLUMN_EXTRAS = ("positive_label", "positive_prediction", "time", "model_version", "id")
_SOURCE_EXTRAS = ("table", "labels_path", "labels_table", "id_column")
_SECTION_EXTRAS = ("slices", "privacy", "alerts", "reference_shares")
_KINDS = "a pandas DataFrame, an Arrow table, a path or glob (str or pathlib.Path) or a DuckDB relation"


def _as_list(value: Any) -> Any:
    """Column names given as one name, a comma-separated string or any iterable (a pandas Index); other values
    pass through unchanged, so that parse_spec refuses them with its one-line message."""
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value) if isinstance(value, Iterable) else value


def _raw_spec(path: str, label: str, prediction: str | None, score: str | None, threshold: float | None,
              sensitive: str | Iterable[str], features: str | Iterable[str],
              reference: Mapping[str, Any] | None, extras: Mapping[str, Any]) -> dict[str, Any]:
    """The fairwatch.toml-shaped mapping of the call's arguments (parse_spec validates it)."""
    columns = {"label": label, "prediction": prediction, "score": score, "threshold": threshold,
               "sensitive": _as_list(sensitive), "features": _as_list(features)}
    source: dict[str, Any] = {"path": path}
    raw: dict[str, Any] = {"source": source, "reference": dict(reference or {}), "policy": {}}
    for key, value in extras.items():
        if key in _COLUMN_EXTRAS:
            columns[key] = value
        elif key in _SOURCE_EXTRAS:
            source[key] = value
        elif key in _SECTION_EXTRAS:
            raw[key] = value
        else:
            raw["policy"][key] = value
    raw["columns"] = {k: v for k, v in columns.items() if v is not None}
    return raw


def _frame_of(data: Any) -> tuple[Any, str] | None:
    """(an object DuckDB can register, its description) for in-memory data; None for a path."""
    if isinstance(data, (str, os.PathLike)):
        return None
    if isinstance(data, pd.DataFrame):
        return data, "pandas DataFrame"
    import duckdb
    import pyarrow as pa

    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return data, "Arrow table"
    if isinstance(data, duckdb.DuckDBPyRelation):
        try:
            # Materialised once: the relation belongs to the caller's connection, which the audit must not share.
            return data.to_arrow_table(), "DuckDB relation"
        except duckdb.Error as exc:
            raise SourceError(f"cannot read the DuckDB relation: {engine_message(exc)}") from None
    raise SourceError(f"cannot audit a {type(data).__name__}: pass {_KINDS}")


def _open(data: Any, raw: dict[str, Any]) -> tuple[AuditSpec, OpenSource]:
    """The parsed spec and the opened source, read-only, for any supported kind of data."""
    framed = _frame_of(data)
    if framed is None:
        spec = parse_spec(raw)
        return spec, open_source(spec.source)
    frame, description = framed
    if set(raw["source"]) - {"path"}:
        raise SourceError(f"{', '.join(sorted(set(raw['source']) - {'path'}))} apply to files and DuckDB "
                          f"files; a {description} already holds the rows (join the labels before auditing)")
    spec = parse_spec(raw)
    return spec, open_frame(frame, description)


def audit(data: Any, *, label: str, prediction: str | None = None, score: str | None = None,
          threshold: float | None = None, sensitive: str | Iterable[str], features: str | Iterable[str] = (),
          reference: Mapping[str, Any] | None = None, **policy: Any) -> Audit:
    """Audit predictions for fairness: per-group metrics, disparities, findings, as `fairwatch audit` computes them.

    `data` is a pandas DataFrame, an Arrow table, a path or glob of CSV/Parquet/JSON files (or a DuckDB
    file, with `table=`), or a DuckDB relation. Give the decision as `prediction`, or as `score` with a
    `threshold` (positive when score >= threshold). `reference` maps a sensitive feature to its reference
    group. Other keywords are [policy] keys (`min_support`, `ratio_low`, `ratio_high`, `fdr`, ...), column
    roles (`positive_label`, `time`, `model_version`, `id`), source keys for files (`table`, `labels_path`,
    `labels_table`, `id_column`) or whole sections (`slices`, `privacy`, `alerts`, `reference_shares`)
    as in fairwatch.toml. Bad input raises a one-line `FairwatchError`.
    """
    path = str(Path(data).expanduser()) if isinstance(data, (str, os.PathLike)) else "(in memory)"
    raw = _raw_spec(path, label, prediction, score, threshold, sensitive, features, reference, policy)
    spec, src = _open(data, raw)
    try:
        snapshot = run_audit(spec, RowFilter(), src)
        fingerprint = fingerprint_source(src, spec, snapshot.row_filter)
    finally:
        src.close()
    return Audit(snapshot=snapshot, fingerprint=fingerprint, author=cli_author())


@dataclass(frozen=True, eq=False)  # compared by identity: its tables are DataFrames
class Audit:
    """One audit: `to_dict()` is snapshot.json, `save(folder)` writes the snapshot folder, tables as DataFrames."""

    snapshot: AuditSnapshot
    fingerprint: DataFingerprint
    # Who made it (the user running Python), recorded as `fairwatch audit` records its author.
    author: Mapping[str, str] | None = None
    # Fixed once, so that to_dict() and the snapshot.json that save() writes are the same document.
    snapshot_id: str = field(default_factory=lambda: secrets.token_hex(4))
    exported_at: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @cached_property
    def _document(self) -> dict[str, Any]:
        """The exported document (suppressed, fingerprinted, validated against the schema), built once."""
        return prepare_document(self.snapshot.to_dict(), fingerprint=self.fingerprint, k=None,
                                snapshot_id=self.snapshot_id, exported_at=self.exported_at, author=self.author)[0]

    def to_dict(self) -> dict[str, Any]:
        """Exactly the document `save` writes as snapshot.json (a copy: changing it changes nothing here)."""
        return copy.deepcopy(self._document)

    @cached_property
    def _tables(self) -> dict[str, list[dict[str, Any]]]:
        """The document's tables as flat rows, as the snapshot folder's CSV files hold them."""
        return csv_tables(self._document)

    def _frame(self, name: str) -> pd.DataFrame:
        """One table of the document as a DataFrame (empty when the audit has none)."""
        return pd.DataFrame(self._tables.get(name, []))

    @property
    def groups(self) -> pd.DataFrame:
        """One row per group and metric: value, 95% interval, support, disparity to the reference, verdict."""
        return self._frame("groups")

    @property
    def findings(self) -> pd.DataFrame:
        """The slice search's findings, each with its need (model, better data, more data)."""
        return self._frame("findings")

    @property
    def representation(self) -> pd.DataFrame:
        """Counts and shares of each group with intervals (and reference shares when given)."""
        return self._frame("representation")

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the snapshot folder as `fairwatch audit --out FOLDER` does (never over an existing one)."""
        check_target(folder)
        return export_document(self.snapshot.to_dict(), folder, fingerprint=self.fingerprint, author=self.author,
                               snapshot_id=self.snapshot_id, exported_at=self.exported_at).path

    def __repr__(self) -> str:
        """A short text summary (rows, groups, findings)."""
        doc = self._document
        return (f"<fairwatch.Audit of {doc['data']['rows']:,} rows from {doc['data']['source']}: "
                f"{len(doc['groups'])} groups, {len(doc.get('findings') or [])} finding(s)>")

    def _repr_html_(self) -> str:
        """Jupyter's view: the verdict per sensitive feature and the largest gaps, as the Overview shows them."""
        snap = self.snapshot
        rows, features = snap.groups.rows, snap.spec.sensitive
        icons = {"meets": "✅", "fails": "❌", "cannot_judge": "❔"}
        parts = [f"<h4>fairwatch audit: {snap.data.rows:,} rows ({snap.data.labelled_rows:,} labelled) from "
                 f"{html.escape(snap.source_description)}</h4>", "<h5>Verdict per sensitive feature</h5><ul>"]
        for v in feature_verdicts(rows, features):
            icon = icons.get(v.status, "")
            reasons = "".join(f"<li>{html.escape(r)}</li>" for r in v.reasons)
            parts.append(f"<li>{icon} <b>{html.escape(v.feature)}</b>: {html.escape(v.label)} · {v.groups} groups"
                         f"<ul>{reasons}</ul></li>")
        parts.append("</ul><h5>Largest gaps</h5>")
        worst = worst_disparities(rows, features, limit=6)
        parts.append(worst_table(worst).to_html(index=False, escape=True) if worst else
                     "<p>No gap to show: every group is the reference or too small to compare.</p>")
        return "<div class='fairwatch-audit'>" + "".join(parts) + "</div>"
