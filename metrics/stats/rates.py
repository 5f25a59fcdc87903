"""The confusion-count rates and the names of groupings and groups: the vocabulary every audit shares.

A leaf module (no other fairwatch import), so the spec's alert-rule check and the metric engine can both
use it without importing each other.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

# Each rate as (numerator cells, denominator cells) of the confusion counts.
RATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "base_rate": (("fn", "tp"), ("tn", "fp", "fn", "tp")),
    "selection_rate": (("fp", "tp"), ("tn", "fp", "fn", "tp")),
    "accuracy": (("tn", "tp"), ("tn", "fp", "fn", "tp")),
    "true_positive_rate": (("tp",), ("fn", "tp")),
    "false_negative_rate": (("fn",), ("fn", "tp")),
    "false_positive_rate": (("fp",), ("tn", "fp")),
    "true_negative_rate": (("tn",), ("tn", "fp")),
    "precision": (("tp",), ("fp", "tp")),
    "false_discovery_rate": (("fp",), ("fp", "tp")),
    "negative_predictive_value": (("tn",), ("tn", "fn")),
    "false_omission_rate": (("fn",), ("tn", "fn")),
}


def groupings(sensitive: Sequence[str]) -> list[tuple[str, ...]]:
    """Each sensitive feature alone, then every intersection of two or more of them."""
    return [c for k in range(1, len(sensitive) + 1) for c in itertools.combinations(sensitive, k)]


def grouping_name(cols: Sequence[str]) -> str:
    """Display name of a grouping: 'race' or 'race × sex'."""
    return " × ".join(cols)


def slice_label(slice_: Sequence[tuple[str, str]]) -> str:
    """Display name of a group: 'race=Black, sex=female'."""
    return ", ".join(f"{k}={v}" for k, v in slice_)
