"""The alert-rule language: rules such as "false_negative_rate ratio < 0.8 for any race group", parsed.

Apart from evaluating them (metrics.monitoring.alerts), so that the spec can check its `[alerts] rules`
when it is read without importing the metric engine, which itself reads specs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.stats.rates import RATES, groupings


class Features(Protocol):
    """What a rule is parsed against: the audit's sensitive features (an AuditSpec has them)."""

    sensitive: tuple[str, ...]


ALIASES = {"fnr": "false_negative_rate", "fpr": "false_positive_rate", "tpr": "true_positive_rate",
           "tnr": "true_negative_rate", "ppv": "precision", "npv": "negative_predictive_value"}
# The metrics of the other tasks, named here so that reading a spec does not load their engines
# (tests check these equal metrics.stats.regression.METRICS and multiclass.PER_CLASS).
REGRESSION_METRICS = ("mean_prediction", "mean_label", "mean_error", "mean_absolute_error", "mean_squared_error",
                      "root_mean_squared_error", "r2_score", "mean_overprediction", "mean_underprediction")
REGRESSION_ALIASES = {"mae": "mean_absolute_error", "rmse": "root_mean_squared_error", "mse": "mean_squared_error",
                      "r2": "r2_score"}
MULTICLASS_METRICS = ("accuracy", "balanced_accuracy")
PER_CLASS = ("selection_rate", "true_positive_rate", "false_positive_rate", "precision")
# Metrics whose value is not a share of rows: a value or difference rule may name any number.
NOT_PROPORTIONS = frozenset(REGRESSION_METRICS) - {"r2_score"}
OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
STATS = ("value", "ratio", "difference")
_TOKEN = re.compile(r"""\s*(?:(?P<quoted>"[^"]*"|'[^']*')|(?P<op><=|>=|<|>|=|&|×)|(?P<word>[^\s<>=&×"']+)|(?P<bad>\S))""")


@dataclass(frozen=True)
class Rule:
    """One parsed rule; `groupings` is the for-any scope, `slice` a single named group."""

    text: str
    kind: str
    op: str = ">"
    threshold: float = 0.0
    metric: str | None = None
    stat: str = "value"
    groupings: tuple[tuple[str, ...], ...] = ()
    slice: tuple[tuple[str, str], ...] = ()


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class _Token:
    """A token with its 0-based character position in the rule text."""

    kind: str
    text: str
    pos: int


class _Parser:
    """Recursive-descent parser over the tokens of one rule."""

    def __init__(self, text: str, spec: Features) -> None:
        """Tokenize the rule text (an unterminated quote or stray character is an error)."""
        self.text, self.spec, self.tokens, self.i = text, spec, [], 0
        for m in _TOKEN.finditer(text):
            kind = m.lastgroup
            value = m.group(kind)
            pos = m.start(kind)
            if kind == "bad":
                self.fail(_Token("bad", value, pos), "unterminated quote" if value in "\"'" else "unexpected character",
                          "close the quote" if value in "\"'" else "quote values that hold it")
            if kind == "quoted":
                kind, value = "value", value[1:-1]
            self.tokens.append(_Token(kind, value, pos))

    def fail(self, tok: _Token | None, problem: str, fix: str) -> None:
        """Raise a one-line SpecError pointing at the token."""
        where = f"at {tok.text!r} (character {tok.pos + 1})" if tok else "at the end"
        raise SpecError(f"alert rule {self.text!r}: {problem} {where}; {fix}")

    def peek(self) -> _Token | None:
        """The next token, or None at the end."""
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, problem: str, fix: str) -> _Token:
        """Consume the next token, or fail at the end."""
        tok = self.peek()
        if tok is None:
            self.fail(None, problem, fix)
        self.i += 1
        return tok

    def keyword(self, *words: str) -> _Token:
        """Consume one of the keywords."""
        tok = self.take(f"expected {' or '.join(words)}", f"write {words[0]!r} here")
        if tok.kind != "word" or tok.text.lower() not in words:
            self.fail(tok, f"expected {' or '.join(repr(w) for w in words)}", "see the rule forms in the docs")
        return tok

    def at_keyword(self, *words: str) -> bool:
        """Whether the next token is one of the keywords."""
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.text.lower() in words

    def end(self) -> None:
        """Fail if anything is left."""
        tok = self.peek()
        if tok is not None:
            self.fail(tok, "unexpected text", "the rule ends after its threshold and scope")

    def feature(self) -> str:
        """A sensitive feature name, spelt as in the spec (matched case-insensitively)."""
        tok = self.take("expected a sensitive feature", f"name one of {', '.join(self.spec.sensitive)}")
        for name in self.spec.sensitive:
            if tok.kind in ("word", "value") and tok.text.lower() == name.lower():
                return name
        self.fail(tok, "unknown sensitive feature", f"name one of {', '.join(self.spec.sensitive)}")

    def grouping(self) -> tuple[str, ...]:
        """A feature or an intersection `a & b`, in the spec's order."""
        start = self.peek()
        names = [self.feature()]
        while self.peek() is not None and self.peek().text in ("&", "×"):
            self.i += 1
            names.append(self.feature())
        if len(set(names)) < len(names):
            self.fail(start, "a feature is named twice", "name each feature once")
        return tuple(n for n in self.spec.sensitive if n in names)

    def slice(self) -> tuple[tuple[str, str], ...]:
        """`feature=value [& feature=value ...]`, in the spec's order."""
        start = self.peek()
        pairs = {}
        while True:
            name = self.feature()
            eq = self.take("expected '='", "write feature=value")
            if eq.text != "=":
                self.fail(eq, "expected '='", "write feature=value")
            value = self.take("expected a group value", "write feature=value (quote values with spaces)")
            if value.kind not in ("word", "value"):
                self.fail(value, "expected a group value", "quote values that hold <, >, = or &")
            if name in pairs:
                self.fail(start, f"feature {name} is named twice", "name each feature once")
            pairs[name] = value.text
            if self.peek() is None or self.peek().text not in ("&", "×"):
                break
            self.i += 1
        return tuple((n, pairs[n]) for n in self.spec.sensitive if n in pairs)

    def comparison(self, low: float | None, high: float | None, ops: Sequence[str] = tuple(OPS)) -> tuple[str, float]:
        """`<op> <number>` with the number in [low, high]."""
        op = self.take("expected a comparison", f"write one of {' '.join(ops)} and a number")
        if op.text not in ops:
            self.fail(op, "expected a comparison", f"write one of {' '.join(ops)}")
        tok = self.take("expected a number", "write the threshold, e.g. 0.8")
        try:
            number = float(tok.text)
        except ValueError:
            number = float("nan")
        if tok.kind != "word" or not np.isfinite(number):
            self.fail(tok, "expected a number", "write the threshold, e.g. 0.8")
        if (low is not None and number < low) or (high is not None and number > high):
            self.fail(tok, f"threshold out of range [{low}, {high}]", "choose a threshold in that range")
        return op.text, number

    def parse(self) -> Rule:
        """The rule."""
        first = self.take("empty rule", "write a rule such as 'false_negative_rate ratio < 0.8 for any sex group'")
        word = first.text.lower()
        if first.kind == "word" and word == "any":
            self.keyword("new")
            self.keyword("finding", "findings")
            self.end()
            return Rule(text=self.text, kind="new_finding")
        if first.kind == "word" and word == "share":
            self.keyword("of")
            slice_ = self.slice()
            op, threshold = self.comparison(0.0, 1.0)
            self.end()
            return Rule(text=self.text, kind="share", op=op, threshold=threshold, slice=slice_)
        if first.kind == "word" and word == "psi":
            self.keyword("of")
            grouping = self.grouping()
            op, threshold = self.comparison(0.0, None, (">", ">="))
            self.end()
            return Rule(text=self.text, kind="psi", op=op, threshold=threshold, groupings=(grouping,))
        task = getattr(self.spec, "task", "binary")
        metric, stat = task_metric(first.text, task), "value"
        if metric is None and first.kind == "word":
            # `mae_ratio > 1.25` reads as `mae ratio > 1.25`.
            stem, _, suffix = first.text.rpartition("_")
            metric, stat = (task_metric(stem, task), suffix.lower()) if suffix.lower() in STATS else (None, stat)
        if first.kind != "word" or metric is None:
            what = "unknown metric" if task == "binary" else f"unknown metric for a {task} audit"
            self.fail(first, what, f"use one of {known_metrics(task)}, "
                      "or start with share of / psi of / any new finding")
        if stat == "value" and self.at_keyword(*STATS):
            stat = self.take("", "").text.lower()
        unbounded = metric in NOT_PROPORTIONS
        bounds = {"value": (None, None) if unbounded else (0.0, 1.0), "ratio": (0.0, None),
                  "difference": (None, None) if unbounded else (-1.0, 1.0)}[stat]
        op, threshold = self.comparison(*bounds)
        scope: tuple[tuple[str, ...], ...] = tuple(groupings(self.spec.sensitive))
        slice_: tuple[tuple[str, str], ...] = ()
        if self.peek() is not None:
            self.keyword("for")
            if self.at_keyword("any"):
                self.i += 1
                if not self.at_keyword("group", "groups"):
                    scope = (self.grouping(),)
                self.keyword("group", "groups")
            else:
                slice_ = self.slice()
                scope = (tuple(n for n, _ in slice_),)
        self.end()
        return Rule(text=self.text, kind="metric", op=op, threshold=threshold, metric=metric, stat=stat,
                    groupings=scope, slice=slice_)


def task_metric(word: str, task: str) -> str | None:
    """The metric a rule's word names for the task (aliases resolved), or None when the task has no such metric."""
    if task == "regression":
        word = word.lower()
        metric = REGRESSION_ALIASES.get(word, word)
        return metric if metric in REGRESSION_METRICS else None
    if task == "multiclass":
        if word.lower() in MULTICLASS_METRICS:
            return word.lower()
        # Per class: `true_positive_rate@high` (or tpr@high); whether the class exists is known at evaluation.
        name, at, cls = word.partition("@")
        name = ALIASES.get(name.lower(), name.lower())
        return f"{name}@{cls}" if at and cls and name in PER_CLASS else None
    word = word.lower()
    metric = ALIASES.get(word, word)
    return metric if metric in RATES else None


def known_metrics(task: str) -> str:
    """The metrics a rule may name for the task, in words."""
    if task == "regression":
        return f"{', '.join(REGRESSION_METRICS)} (or mae, rmse, mse, r2)"
    if task == "multiclass":
        return f"{', '.join(MULTICLASS_METRICS)}, or per class {', '.join(p + '@<class>' for p in PER_CLASS)}"
    return f"{', '.join(RATES)} (or fnr, fpr, tpr, tnr, ppv, npv)"


def parse_rule(text: str, spec: Features) -> Rule:
    """Parse one rule against the spec's sensitive features; a one-line SpecError points at a bad token."""
    if not isinstance(text, str):
        raise SpecError(f"an alert rule must be text, got {type(text).__name__}")
    return _Parser(" ".join(text.split()), spec).parse()


def parse_rules(texts: Sequence[str], spec: Features) -> tuple[Rule, ...]:
    """Parse a list of rules; at least one is needed."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts:
        raise SpecError("no alert rules: give at least one, e.g. --rule 'psi of age_band > 0.2'")
    return tuple(parse_rule(t, spec) for t in texts)


# --------------------------------------------------------------------------- period
