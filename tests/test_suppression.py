"""Small-cell suppression: no count or rate of a group below k survives, nor can one be recovered by subtraction."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.audit.spec import RowFilter, parse_spec
from fairwatch.metrics.privacy.suppression import hidden_groups, iter_tables, slice_key, slice_text, suppress_document


def audit_doc(n: int = 1500, tiny: int = 4, seed: int = 3) -> dict:
    """An audit document over sex x race where race 'd' has only `tiny` rows."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "sex": rng.choice(["f", "m"], n),
        "race": rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]),
        "label": rng.integers(0, 2, n),
        "pred": rng.integers(0, 2, n),
    })
    df.loc[: tiny - 1, "race"] = "d"
    spec = parse_spec({"source": {"path": "frame"},
                       "columns": {"label": "label", "prediction": "pred", "sensitive": ["sex", "race"]},
                       "policy": {"min_support": 5}})
    return run_audit(spec, RowFilter(), open_frame(df)).to_dict()


@pytest.fixture(scope="module")
def doc() -> dict:
    """One audit document shared by the tests (they never change it)."""
    return audit_doc()


def group(slice_: dict, n: int) -> dict:
    """A minimal group entry."""
    return {"grouping": " × ".join(slice_), "slice": slice_, "n": n, "metrics": {}, "disparities": {}}


def test_primary_and_complementary_on_a_line():
    """One small race: it is hidden, and so is the next smallest race, so the total cannot reveal it."""
    groups = [group({"race": "a"}, 500), group({"race": "b"}, 300), group({"race": "c"}, 40), group({"race": "d"}, 4)]
    primary, complementary = hidden_groups(groups, 10)
    assert primary == {slice_key({"race": "d"})}
    assert complementary == {slice_key({"race": "c"})}


def test_two_small_cells_that_add_up_below_k_pull_in_a_third():
    """Hidden cells of 3 and 4 rows still reveal that together they are 7 < k: a third is hidden."""
    groups = [group({"r": "a"}, 500), group({"r": "b"}, 60), group({"r": "c"}, 3), group({"r": "d"}, 4)]
    primary, complementary = hidden_groups(groups, 10)
    assert len(primary) == 2 and complementary == {slice_key({"r": "b"})}


def test_intersection_cell_cannot_be_recovered_from_its_parent():
    """race=d x sex=f has 3 rows: with race=d shown, race=d x sex=m must be hidden too (d - d,m = d,f)."""
    groups = [group({"race": "d"}, 40), group({"race": "e"}, 500), group({"sex": "f"}, 270), group({"sex": "m"}, 270),
              group({"race": "d", "sex": "f"}, 3), group({"race": "d", "sex": "m"}, 37),
              group({"race": "e", "sex": "f"}, 267), group({"race": "e", "sex": "m"}, 233)]
    primary, complementary = hidden_groups(groups, 10)
    assert primary == {slice_key({"race": "d", "sex": "f"})}
    # Along sex within race=d the only sibling is (d, m); along race within sex=f it is (e, f); then (e, m) is
    # alone in its line (sex=m), so the whole 2 x 2 table is withheld: the textbook result.
    assert complementary == {slice_key({"race": "d", "sex": "m"}), slice_key({"race": "e", "sex": "f"}),
                             slice_key({"race": "e", "sex": "m"})}


def lines_are_safe(doc: dict, k: int) -> None:
    """In every line (a parent's children along one feature) with a shown parent: 0, or >= 2 hidden holding >= k."""
    sizes = {slice_key(g["slice"]): g for g in doc["groups"]}
    raw = {slice_key(g["slice"]): g["n"] for g in audit_doc()["groups"]}
    lines: dict = {}
    for key in sizes:
        for i, (feature, _) in enumerate(key):
            lines.setdefault((key[:i] + key[i + 1:], feature), []).append(key)
    for (parent, _), children in lines.items():
        if parent and sizes[parent]["suppressed"]:
            continue
        shut = [c for c in children if sizes[c]["suppressed"]]
        assert not shut or (len(shut) >= 2 and sum(raw[c] for c in shut) >= k), (parent, shut)


def test_no_small_count_or_rate_survives_anywhere(doc):
    """Every group below k has no number left; every metric with support below k is withheld; lines are safe."""
    out, summary = suppress_document(doc, 10)
    assert summary.primary_groups >= 1 and summary.complementary_groups >= 1
    assert out["suppression"]["k"] == 10 and out["suppression"]["cells_suppressed"] == summary.cells_suppressed
    raw = {slice_key(g["slice"]): g for g in doc["groups"]}
    for g in out["groups"]:
        before = raw[slice_key(g["slice"])]
        if before["n"] < 10:
            assert g["suppressed"] and g["suppression"] == "primary"
            assert g["n"] is None and g["labelled_n"] is None and g["share"] is None
        for metric, cell in g["metrics"].items():
            if g["suppressed"] or (before["metrics"][metric]["support"] or 0) < 10:
                assert cell["suppressed"] and all(cell[f] is None for f in ("value", "ci_low", "ci_high", "support"))
            else:
                assert "suppressed" not in cell and cell["support"] >= 10
        for d in g["disparities"].values():
            if d.get("suppressed"):
                assert d["verdict"] == "suppressed" and d["ratio"] is None and d["q_value"] is None
    lines_are_safe(out, 10)
    hidden = {slice_key(g["slice"]) for g in out["groups"] if g["suppressed"]}
    for r in out["representation"]:
        assert r["suppressed"] == (slice_key(r["slice"]) in hidden)
        if r["suppressed"]:
            assert r["n"] is None and r["share"] is None and r["ci_low"] is None
    # No group's count below k appears as any record's n in any table.
    for name, records in iter_tables(out):
        for rec in records:
            n = rec.get("n")
            assert n is None or n >= 10, (name, rec)


def test_derived_numbers_are_withheld_with_their_inputs(doc):
    """A between-groups gap whose smallest or largest group is withheld, and a disparity to a withheld metric, go too."""
    out, _ = suppress_document(doc, 10)
    hidden_labels = {slice_text(g["slice"]) for g in out["groups"] if g["suppressed"]}
    for r in out["between_groups"]:
        if r["suppressed"]:
            assert r["difference"] is None and r["ratio"] is None and r["min_group"] is None
        else:
            assert r["min_group"] not in hidden_labels and r["max_group"] not in hidden_labels
    # k above the reference group's size: every disparity against it is withheld.
    big = max(g["n"] for g in doc["groups"] if len(g["slice"]) == 1)
    out, _ = suppress_document(doc, big + 1)
    assert all(d["verdict"] == "suppressed" for g in out["groups"] for d in g["disparities"].values())
    assert all(t["suppressed"] and t.get("p_value") is None for t in out.get("representation_tests", []))


def test_input_untouched_and_k_zero_is_a_no_op(doc):
    """Suppression returns a copy; k = 0 withholds nothing and says so."""
    before = copy.deepcopy(doc)
    out, summary = suppress_document(doc, 0)
    assert doc == before
    assert summary.cells_suppressed == 0 and summary.groups_suppressed == 0
    assert "No small-cell suppression" in out["suppression"]["rule"]
    assert [g["n"] for g in out["groups"]] == [g["n"] for g in doc["groups"]]


def test_new_sections_are_suppressed_generically(doc):
    """A table the module does not know (findings, data_quality.signals) hides records about small groups."""
    extended = dict(doc)
    extended["findings"] = [
        {"id": "f1", "slice": {"race": "d"}, "metric": "accuracy", "value": 0.5, "n": 4},
        {"id": "f2", "slice": {"race": "a", "channel": "web"}, "metric": "accuracy", "value": 0.7, "count": 3,
         "detail": {"p_value": 0.01, "note": "x"}},
        {"id": "f3", "slice": {"race": "a"}, "metric": "accuracy", "value": 0.6, "n": 800},
    ]
    extended["data_quality"] = {"signals": [{"slice": {"sex": "f"}, "missing_share": 0.1, "n": 700},
                                            {"slice": {"channel": "x"}, "missing_share": 0.9, "n": 2}]}
    extended["trends"] = [{"metric": "accuracy", "slice": {"sex": "f"}, "points": [
        {"period": "2026-01", "n": 400, "value": 0.7}, {"period": "2026-02", "n": 6, "value": 0.5}]}]
    out, summary = suppress_document(extended, 10)
    points = out["trends"][0]["points"]
    assert points[0] == {"period": "2026-01", "n": 400, "value": 0.7, "suppressed": False}
    assert points[1] == {"period": "2026-02", "n": None, "value": None, "suppressed": True}
    f1, f2, f3 = out["findings"]
    assert f1["suppressed"] and f1["value"] is None and f1["n"] is None and f1["id"] == "f1"
    assert f2["suppressed"] and f2["detail"] == {"p_value": None, "note": "x"} and f2["slice"] == {"race": "a", "channel": "web"}
    assert not f3["suppressed"] and f3["value"] == 0.6
    signals = out["data_quality"]["signals"]
    assert not signals[0]["suppressed"] and signals[1]["suppressed"] and signals[1]["missing_share"] is None
    names = [name for name, _ in iter_tables(out)]
    assert {"findings", "data_quality.signals", "trends"} <= set(names)
    json.dumps(out, allow_nan=False)
