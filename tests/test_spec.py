"""The audit spec: validation messages, defaults, and the TOML round trip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairwatch.connectors.config import load_spec, spec_to_toml, write_config
from fairwatch.metrics.errors import SpecError
from fairwatch.metrics.audit.spec import parse_spec

BASE = {"source": {"path": "x.csv"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["race", "sex"]}}


def with_(section: str, **values) -> dict:
    """BASE with some keys of one section replaced."""
    raw = {k: dict(v) for k, v in BASE.items()}
    raw.setdefault(section, {}).update(values)
    return raw


def test_defaults():
    """min_support 30, four-fifths band, fdr 0.05, depth 3."""
    spec = parse_spec(BASE)
    assert (spec.policy.min_support, spec.policy.ratio_low, spec.policy.ratio_high) == (30, 0.8, 1.25)
    assert spec.policy.fdr == 0.05 and spec.slices.max_depth == 3
    assert spec.reference_for("race") is None
    hash(spec)  # frozen and hashable: usable as a cache key


@pytest.mark.parametrize("raw, message", [
    ({"columns": BASE["columns"]}, "no source"),
    (with_("columns", label=None), "no label column"),
    (with_("columns", prediction=None), "no decision"),
    (with_("columns", threshold=0.5), "not both"),
    (with_("columns", sensitive=[]), "no sensitive features"),
    (with_("columns", sensitive=["race", "Race"]), "more than once"),
    (with_("columns", sensitive=["y"]), "both a feature and the label"),
    (with_("policy", min_support=0), "between 1"),
    (with_("policy", min_support=2.5), "whole number"),
    (with_("policy", fdr="high"), "must be a number"),
    (with_("reference", age="x"), "not a sensitive feature"),
    (with_("reference_shares", race={"a": 0.5, "b": 0.2}), "add up to 0.700"),
    (with_("reference_shares", race={"a": 1.5}), "between 0 and 1"),
    (with_("slices", error="recall"), "error must be one of"),
    (with_("slices", error="score_loss"), "needs a score column"),
    ({**BASE, "colums": {}}, "unknown key(s) colums"),
    (with_("source", labels_table="labels"), "no id column"),
])
def test_invalid_specs_say_what_to_fix(raw, message):
    """Each invalid spec raises SpecError with a one-line message naming the problem."""
    with pytest.raises(SpecError) as err:
        parse_spec(raw)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=12).filter(lambda s: s.strip())


@settings(max_examples=50, deadline=None)
@given(sensitive=st.lists(names, min_size=1, max_size=3, unique_by=str.lower), threshold=st.floats(0, 1),
       ref=names, share=st.floats(0, 1))
def test_toml_round_trip(tmp_path_factory, sensitive, threshold, ref, share):
    """Any spec written as fairwatch.toml reads back to the same spec (quotes, unicode, spaces)."""
    raw = {"source": {"path": 'data/o"dd path.csv'},
           "columns": {"label": "label_col", "score": "score_col", "threshold": threshold, "sensitive": sensitive},
           "reference": {sensitive[0]: ref},
           "reference_shares": {sensitive[0]: {ref: share, ref + "_other": 1 - share}}}
    spec = parse_spec(raw)
    path = tmp_path_factory.mktemp("cfg") / "fairwatch.toml"
    write_config(spec, path)
    assert load_spec(path) == spec, spec_to_toml(spec)
