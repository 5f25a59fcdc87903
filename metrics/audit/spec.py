"""The audit spec: one frozen, hashable description of what to audit and by which policy.

It is built from a plain mapping (the shape of `fairwatch.toml`, also what the CLI flags and the
Sources page produce) by `parse_spec`, which validates everything that can be checked without the
data. Checks against the data (do the columns exist, are the labels binary) live in `connectors/`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.monitoring.alert_rules import parse_rules
from fairwatch.metrics.privacy.redaction import redact_secrets

ERROR_SIGNALS = ("misclassification", "false_negative", "false_positive", "score_loss")
# The slice search's error signal per task (the first is the default): regression searches a mean loss,
# multiclass misclassification or one class's false negatives ([slices] class).
TASK_ERRORS = {"binary": ERROR_SIGNALS, "regression": ("absolute_error", "squared_error"),
               "multiclass": ("misclassification", "false_negative")}
# Error signals that are a loss per row (a mean with t intervals and Welch tests), not a 0/1 event.
MEAN_LOSSES = frozenset({"score_loss", "absolute_error", "squared_error"})
# What the model outputs: a yes/no decision, a number, or one class of several.
TASKS = ("binary", "regression", "multiclass")
TASK_LABELS = {"binary": "a yes/no decision (binary)", "regression": "a number (regression)",
               "multiclass": "one of several classes (multiclass)"}

_SECTIONS = {"source", "columns", "reference", "reference_shares", "policy", "slices", "privacy", "alerts"}
_SOURCE_KEYS = {"path", "table", "labels_path", "labels_table", "id_column", "query", "engine", "master"}
ENGINES = ("duckdb", "postgres", "spark")
_COLUMN_KEYS = {
    "label", "positive_label", "prediction", "positive_prediction", "score", "threshold",
    "sensitive", "features", "time", "model_version", "id", "task",
}
_POLICY_KEYS = {"min_support", "ratio_low", "ratio_high", "fdr", "max_groups", "score_decimals", "min_difference"}
_SLICE_KEYS = {"max_depth", "error", "alpha", "bins", "top_k", "class"}
_PRIVACY_KEYS = {"hide_columns", "hidden_columns", "show_columns", "suppress_below"}
_ALERT_KEYS = {"rules", "grain", "last_days", "baseline"}


@dataclass(frozen=True)
class SourceSpec:
    """Where the rows live: a file, glob or folder, or a DuckDB file with a table; labels optional."""

    path: str
    table: str | None = None
    labels_path: str | None = None
    labels_table: str | None = None
    id_column: str | None = None
    # PostgreSQL: a read-only SELECT instead of a table. Spark: engine = "spark" and its master URL.
    query: str | None = None
    engine: str = "duckdb"
    master: str = "local[2]"

    def describe(self) -> str:
        """A human description of the source, without secrets."""
        where = redact_secrets(self.path) + (f" table {self.table}" if self.table else "")
        if self.query:
            where += " query " + " ".join(self.query.split())[:200]
        if self.engine == "spark":
            where = f"spark ({self.master}) " + where
        if self.labels_table or self.labels_path:
            labels = self.labels_table or self.labels_path
            where += f", labels from {labels} joined on {self.id_column}"
        return where


@dataclass(frozen=True)
class Policy:
    """Tolerances the verdicts are judged against."""

    min_support: int = 30
    ratio_low: float = 0.8
    ratio_high: float = 1.25
    fdr: float = 0.05
    # More distinct values than this in one sensitive feature is almost surely an id or free text.
    max_groups: int = 1000
    # Scores are bucketed to this many decimals for AUC/Brier/ECE; exact when scores have no more.
    score_decimals: int = 3
    # A slice finding's error must also exceed the rest's by at least this much (absolute; 0: the band alone).
    min_difference: float = 0.0


@dataclass(frozen=True)
class SliceSettings:
    """Settings of the slice search."""

    max_depth: int = 3
    error: str = "misclassification"
    alpha: float = 0.95
    bins: int = 5
    top_k: int = 50
    # Multiclass `false_negative`: the class whose false negatives are searched ([slices] class).
    error_class: str | None = None


@dataclass(frozen=True)
class AlertSettings:
    """Alert rules for `fairwatch check` and how the checked period and drift baseline are chosen."""

    rules: tuple[str, ...] = ()
    # day, week or month; None chooses from the time span (<= 60 days: day, <= 400: week, else month).
    grain: str | None = None
    # Check the last N whole days instead of the latest window.
    last_days: int | None = None
    # Drift baseline: the window holding this date; None is the first window.
    baseline: str | None = None


@dataclass(frozen=True)
class RowFilter:
    """Which rows of the source an audit looks at: a model version and a time window (inclusive)."""

    model_version: str | None = None
    time_from: str | None = None
    time_to: str | None = None

    def describe(self) -> str:
        """A short description for titles and snapshots."""
        parts = []
        if self.model_version is not None:
            parts.append(f"model version {self.model_version}")
        if self.time_from or self.time_to:
            parts.append(f"time {self.time_from or '…'} to {self.time_to or '…'}")
        return ", ".join(parts) or "all rows"


@dataclass(frozen=True)
class AuditSpec:
    """Everything an audit needs: the source, the column roles, references and the policy."""

    source: SourceSpec
    label: str
    sensitive: tuple[str, ...]
    # The label value that counts as positive; several (a tuple) when the analyst maps a label with more
    # than two values (e.g. readmitted '<30' and '>30' positive, 'NO' negative): the rest are negative.
    positive_label: str | tuple[str, ...] | None = None
    prediction: str | None = None
    positive_prediction: str | None = None
    score: str | None = None
    threshold: float | None = None
    features: tuple[str, ...] = ()
    time: str | None = None
    model_version: str | None = None
    id: str | None = None
    reference: tuple[tuple[str, str], ...] = ()
    reference_shares: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = ()
    policy: Policy = field(default_factory=Policy)
    slices: SliceSettings = field(default_factory=SliceSettings)
    hidden_columns: tuple[str, ...] = ()  # [privacy] hide_columns: never in example rows or queues
    # [privacy] show_columns: columns that look like personal data (metrics/privacy/personal.py) shown anyway.
    shown_columns: tuple[str, ...] = ()
    suppress_below: int = 10
    alerts: AlertSettings = field(default_factory=AlertSettings)
    # binary, regression or multiclass ([columns] task, --task); binary keeps every earlier behaviour.
    task: str = "binary"

    def reference_for(self, feature: str) -> str | None:
        """The named reference group of a sensitive feature, or None for 'the largest group'."""
        return dict(self.reference).get(feature)

    def shares_for(self, feature: str) -> dict[str, float]:
        """Reference population shares of a feature's groups (empty when none were given)."""
        return dict(dict(self.reference_shares).get(feature, ()))

    def to_dict(self) -> dict[str, Any]:
        """The spec in the `fairwatch.toml` shape (round-trips through `parse_spec`)."""
        columns: dict[str, Any] = {
            "label": self.label,
            "sensitive": list(self.sensitive),
            "features": list(self.features),
        }
        for key in ("positive_label", "prediction", "positive_prediction", "score", "threshold",
                    "time", "model_version", "id"):
            value = getattr(self, key)
            if value is not None:
                columns[key] = list(value) if isinstance(value, tuple) else value
        if self.task != "binary":  # binary specs round-trip to exactly the dict they always had
            columns["task"] = self.task
        return {
            "source": {k: v for k, v in asdict(self.source).items()
                       if v is not None and not (k == "engine" and v == "duckdb")
                       and not (k == "master" and self.source.engine != "spark")},
            "columns": columns,
            "reference": dict(self.reference),
            "reference_shares": {f: dict(s) for f, s in self.reference_shares},
            "policy": asdict(self.policy),
            "slices": _slices_dict(self.slices),
            "privacy": {"hidden_columns": list(self.hidden_columns), "suppress_below": self.suppress_below}
            | ({"show_columns": list(self.shown_columns)} if self.shown_columns else {}),
            "alerts": {"rules": list(self.alerts.rules)} | {
                k: v for k, v in asdict(self.alerts).items() if k != "rules" and v is not None},
        }

    def with_source(self, source: SourceSpec) -> AuditSpec:
        """The same spec over another source."""
        return replace(self, source=source)


def _slices_dict(slices: SliceSettings) -> dict[str, Any]:
    """[slices] as written in fairwatch.toml: `class` only when set (binary specs keep their old keys)."""
    out = {k: v for k, v in asdict(slices).items() if k != "error_class"}
    return out | ({"class": slices.error_class} if slices.error_class is not None else {})


def _unknown(section: str, given: Mapping[str, Any], known: set[str]) -> None:
    """Refuse keys we do not know: a typo must not silently change an audit."""
    extra = sorted(set(given) - known)
    if extra:
        raise SpecError(
            f"unknown key(s) {', '.join(extra)} in [{section}]; known keys: {', '.join(sorted(known))}"
        )


def _opt_str(section: str, mapping: Mapping[str, Any], key: str) -> str | None:
    """An optional non-empty string value."""
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise SpecError(f"[{section}] {key} must be a string, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise SpecError(f"[{section}] {key} is empty; give a value or leave the key out")
    return text


def _label_value(mapping: Mapping[str, Any], key: str) -> str | None:
    """A positive label given as string, number or boolean, kept as text (compared as text)."""
    value = mapping.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _positive_labels(mapping: Mapping[str, Any]) -> str | tuple[str, ...] | None:
    """[columns] positive_label: one value, or a non-empty list of distinct values (a one-item list is one value)."""
    value = mapping.get("positive_label")
    if not isinstance(value, (list, tuple)):
        text = _label_value(mapping, "positive_label")
        if text is not None and not text.strip():
            raise SpecError("[columns] positive_label is empty; give the label value that counts as positive")
        return text
    values = [_label_value({"v": v}, "v") for v in value]
    if not values or any(v is None or not v.strip() or isinstance(raw, (list, tuple, dict))
                         for v, raw in zip(values, value)):
        raise SpecError("[columns] positive_label must be a value or a non-empty list of values, e.g. [\"<30\", \">30\"]")
    if len(set(values)) < len(values):
        raise SpecError(f"[columns] positive_label names a value twice: {', '.join(values)}")
    return values[0] if len(values) == 1 else tuple(values)


def _str_list(section: str, mapping: Mapping[str, Any], key: str) -> tuple[str, ...]:
    """A list of column names, given as a list or a comma-separated string."""
    value = mapping.get(key, ())
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise SpecError(f"[{section}] {key} must be a list of column names")
    lowered = [v.lower() for v in value]
    dupes = sorted({v for v in value if lowered.count(v.lower()) > 1})
    if dupes:
        raise SpecError(f"[{section}] {key} names {', '.join(dupes)} more than once")
    return tuple(value)


def _number(section: str, mapping: Mapping[str, Any], key: str, default: float, *,
            integer: bool = False, low: float | None = None, high: float | None = None) -> Any:
    """A number within bounds, with a message naming the key and the allowed range."""
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SpecError(f"[{section}] {key} must be a number, got {value!r}")
    if integer and float(value) != int(value):
        raise SpecError(f"[{section}] {key} must be a whole number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SpecError(f"[{section}] {key} must be between {low} and {high}, got {value!r}")
    return int(value) if integer else float(value)


def _section(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """A table of the config, empty when absent."""
    value = raw.get(name, {})
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SpecError(f"[{name}] must be a table of keys, got {type(value).__name__}")
    return value


def _engine_of(path: str) -> str:
    """The engine a source path implies: postgresql:// URLs run on PostgreSQL, the rest on DuckDB."""
    return "postgres" if path.split("://", 1)[0].lower() in ("postgresql", "postgres") and "://" in path else "duckdb"


def parse_spec(raw: Mapping[str, Any]) -> AuditSpec:
    """Validate a `fairwatch.toml`-shaped mapping and return the frozen spec."""
    _unknown("top level", raw, _SECTIONS)
    src = _section(raw, "source")
    _unknown("source", src, _SOURCE_KEYS)
    cols = _section(raw, "columns")
    _unknown("columns", cols, _COLUMN_KEYS)
    pol = _section(raw, "policy")
    _unknown("policy", pol, _POLICY_KEYS)
    sl = _section(raw, "slices")
    _unknown("slices", sl, _SLICE_KEYS)
    priv = _section(raw, "privacy")
    _unknown("privacy", priv, _PRIVACY_KEYS)
    al = _section(raw, "alerts")
    _unknown("alerts", al, _ALERT_KEYS)

    path = _opt_str("source", src, "path")
    if path is None:
        raise SpecError("no source: give a file, glob, folder or DuckDB file as [source] path (or the SOURCE argument)")
    source = SourceSpec(
        path=path,
        table=_opt_str("source", src, "table"),
        labels_path=_opt_str("source", src, "labels_path"),
        labels_table=_opt_str("source", src, "labels_table"),
        id_column=_opt_str("source", src, "id_column") or _opt_str("columns", cols, "id"),
        query=_opt_str("source", src, "query"),
        engine=_opt_str("source", src, "engine") or _engine_of(path),
        master=_opt_str("source", src, "master") or "local[2]",
    )
    if source.engine not in ENGINES:
        raise SpecError(f"[source] engine must be one of {', '.join(ENGINES)}, got {source.engine!r}")
    if source.query and source.engine != "postgres":
        raise SpecError("[source] query is for PostgreSQL sources; for files use path, for DuckDB files table")
    if source.query and source.table:
        raise SpecError("give either [source] table or query, not both")
    if (source.labels_path or source.labels_table) and not source.id_column:
        raise SpecError("labels come from a separate table but no id column joins them: set [source] id_column")
    if source.labels_path and source.labels_table:
        raise SpecError("give either [source] labels_path or labels_table, not both")

    label = _opt_str("columns", cols, "label")
    if label is None:
        raise SpecError("no label column: set [columns] label (or {field})", field="label")
    task = _opt_str("columns", cols, "task") or "binary"
    if task not in TASKS:
        raise SpecError(f"[columns] task must be one of {', '.join(TASKS)}, got {task!r} (--task)")
    prediction = _opt_str("columns", cols, "prediction")
    score = _opt_str("columns", cols, "score")
    threshold = cols.get("threshold")
    if threshold is not None:
        threshold = _number("columns", cols, "threshold", 0.5)
    if task != "binary":
        if prediction is None:
            raise SpecError(f"a {task} audit compares the label with the model's output: give the prediction column "
                            f"(--prediction COL)")
        for key in ("score", "threshold", "positive_label", "positive_prediction"):
            if cols.get(key) is not None:
                raise SpecError(f"[columns] {key} is for binary audits; a {task} audit reads the label and the "
                                f"prediction only: leave {key} out or use {{task=binary}}")
    if prediction is None and (score is None or threshold is None):
        raise SpecError("no decision: give a prediction column or a score column and a threshold ({field})",
                        field="decision")
    if prediction is not None and threshold is not None:
        raise SpecError("give either a prediction column or a threshold on the score, not both")

    for role, col in (("prediction", prediction), ("score", score)):
        if col is not None and col.lower() == label.lower():
            raise SpecError(f"the label and the {role} are the same column {col}; the {role} must be the model's output")
    sensitive = _str_list("columns", cols, "sensitive")
    if not sensitive:
        raise SpecError("no sensitive features: list at least one column in [columns] sensitive ({field})",
                        field="sensitive")
    features = tuple(f for f in _str_list("columns", cols, "features") if f not in sensitive)
    roles = {"label": label, "prediction": prediction, "score": score}
    for feat in sensitive + features:
        for role, col in roles.items():
            if col is not None and feat.lower() == col.lower():
                raise SpecError(f"column {feat} is both a feature and the {role}; a slice cannot be defined by the outcome")

    reference = _section(raw, "reference")
    for feat in reference:
        if feat not in sensitive:
            raise SpecError(f"[reference] names {feat}, which is not a sensitive feature ({', '.join(sensitive)})")
    ref_pairs = tuple((str(k), _label_value(reference, k) or "") for k in reference)

    shares_raw = _section(raw, "reference_shares")
    share_items = []
    for feat, shares in shares_raw.items():
        if feat not in sensitive:
            raise SpecError(f"[reference_shares] names {feat}, which is not a sensitive feature")
        if not isinstance(shares, Mapping) or not shares:
            raise SpecError(f"[reference_shares.{feat}] must map group values to population shares")
        pairs = []
        for group, share in shares.items():
            if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
                raise SpecError(f"[reference_shares.{feat}] share of {group} must be a number between 0 and 1, got {share!r}")
            pairs.append((str(group), float(share)))
        total = sum(s for _, s in pairs)
        if abs(total - 1) > 0.02:
            raise SpecError(f"[reference_shares.{feat}] shares add up to {total:.3f}; they must add up to 1")
        share_items.append((feat, tuple(pairs)))

    policy = Policy(
        min_support=_number("policy", pol, "min_support", 30, integer=True, low=1, high=10**9),
        ratio_low=_number("policy", pol, "ratio_low", 0.8, low=0.0, high=1.0),
        ratio_high=_number("policy", pol, "ratio_high", 1.25, low=1.0, high=1e6),
        fdr=_number("policy", pol, "fdr", 0.05, low=1e-6, high=0.5),
        max_groups=_number("policy", pol, "max_groups", 1000, integer=True, low=2, high=100_000),
        score_decimals=_number("policy", pol, "score_decimals", 3, integer=True, low=1, high=6),
        min_difference=_number("policy", pol, "min_difference", 0.0, low=0.0, high=1e6),
    )
    allowed = TASK_ERRORS.get(task, ERROR_SIGNALS)
    slices = SliceSettings(
        max_depth=_number("slices", sl, "max_depth", 3, integer=True, low=1, high=6),
        error=str(sl.get("error", allowed[0])),
        alpha=_number("slices", sl, "alpha", 0.95, low=0.0, high=1.0),
        bins=_number("slices", sl, "bins", 5, integer=True, low=2, high=50),
        top_k=_number("slices", sl, "top_k", 50, integer=True, low=1, high=10_000),
        error_class=_label_value(sl, "class"),
    )
    _check_task_error(task, slices)
    if task == "binary" and slices.error not in ERROR_SIGNALS:
        raise SpecError(f"[slices] error must be one of {', '.join(ERROR_SIGNALS)}, got {slices.error!r}")
    if slices.error == "score_loss" and score is None:
        raise SpecError("[slices] error = score_loss needs a score column ([columns] score)")

    spec = AuditSpec(
        source=source,
        label=label,
        positive_label=_positive_labels(cols),
        prediction=prediction,
        positive_prediction=_label_value(cols, "positive_prediction"),
        score=score,
        threshold=threshold,
        sensitive=sensitive,
        features=features,
        time=_opt_str("columns", cols, "time"),
        model_version=_opt_str("columns", cols, "model_version"),
        id=_opt_str("columns", cols, "id") or source.id_column,
        reference=ref_pairs,
        reference_shares=tuple(share_items),
        policy=policy,
        slices=slices,
        hidden_columns=_hide_list(priv),
        shown_columns=_str_list("privacy", priv, "show_columns"),
        suppress_below=_number("privacy", priv, "suppress_below", 10, integer=True, low=0, high=10**6),
        alerts=_alert_settings(al),
        task=task,
    )
    both = sorted({h for h in spec.hidden_columns if h.lower() in {c.lower() for c in spec.shown_columns}})
    if both:
        raise SpecError(f"[privacy] lists {', '.join(both)} in both hide_columns and show_columns; keep each in one")
    if spec.alerts.rules:
        if spec.time is None:
            raise SpecError("[alerts] rules are checked per time window: set [columns] time (or {field})", field="time")
        parse_rules(spec.alerts.rules, spec)
    return spec


def _check_task_error(task: str, slices: SliceSettings) -> None:
    """[slices] error and class fit the task: each task has its own error signals; class only for multiclass false_negative."""
    allowed = TASK_ERRORS.get(task, ERROR_SIGNALS)
    if task != "binary" and slices.error not in allowed:
        owners = [t for t, errs in TASK_ERRORS.items() if slices.error in errs]
        hint = f" ({slices.error} is for {' and '.join(owners)} audits)" if owners else ""
        raise SpecError(f"[slices] error = {slices.error!r} does not fit a {task} audit{hint}; choose one of "
                        f"{', '.join(allowed)} (--error)")
    wants_class = task == "multiclass" and slices.error == "false_negative"
    if wants_class and (slices.error_class is None or not slices.error_class.strip()):
        raise SpecError("[slices] error = false_negative in a multiclass audit needs the class whose false negatives "
                        "to search: set [slices] class = \"<class>\" (--error-class)")
    if slices.error_class is not None and not wants_class:
        raise SpecError(f"[slices] class names the class of a multiclass false_negative search; a {task} audit with "
                        f"error = {slices.error} has no class: leave it out")


def _hide_list(priv: Mapping[str, Any]) -> tuple[str, ...]:
    """[privacy] hide_columns, with its older name hidden_columns: columns never shown as rows (both: every one named)."""
    names = [*_str_list("privacy", priv, "hidden_columns"), *_str_list("privacy", priv, "hide_columns")]
    return tuple(dict.fromkeys(names))


def _alert_settings(al: Mapping[str, Any]) -> AlertSettings:
    """The [alerts] section: rule texts (checked against the spec by parse_spec), grain, last_days, baseline."""
    rules = al.get("rules", [])
    rules = [rules] if isinstance(rules, str) else rules
    if not isinstance(rules, (list, tuple)) or not all(isinstance(r, str) and r.strip() for r in rules):
        raise SpecError("[alerts] rules must be a list of rule texts, e.g. rules = [\"psi of age_band > 0.2\"]")
    grain = _opt_str("alerts", al, "grain")
    if grain is not None and grain not in ("day", "week", "month"):
        raise SpecError(f"[alerts] grain must be day, week or month, got {grain!r}")
    last_days = None
    if al.get("last_days") is not None:
        last_days = _number("alerts", al, "last_days", 7, integer=True, low=1, high=36_600)
    return AlertSettings(rules=tuple(rules), grain=grain, last_days=last_days,
                         baseline=_opt_str("alerts", al, "baseline"))
