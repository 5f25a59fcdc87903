"""The shared cell scan (issue 18): the slice search and the quality counts read from it give the row scans' numbers."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairwatch.connectors import cell_scan, quality_counts
from fairwatch.connectors.cell_scan import SharedCells
from fairwatch.connectors.quality_counts import fetch_quality_counts
from fairwatch.connectors.slice_counts import fetch_slice_counts
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.audit.spec import parse_spec
from fairwatch.metrics.errors import DataError

ERRORS = ["misclassification", "false_negative", "false_positive"]
SLICES = [(("s", "a"),), (("g", "(missing)"),), (("z", "0.0"),), (("z", "nan"),), (("i", "(missing)"),),
          (("s", "b"), ("b", "True")), (("g", "x"), ("i", "2")), (("z", "(missing)"), ("s", "(missing)")),
          (("s", "a"), ("g", "x"), ("z", "1.0"), ("i", "1"), ("b", "False"))]

_row = st.tuples(
    st.sampled_from([0.0, 1.0, None]),                                           # label
    st.sampled_from([0, 1, None]),                                               # prediction
    st.sampled_from([None, float("nan"), 0.2, 0.7]),                             # score
    st.sampled_from(["a", "b", None]),
    st.sampled_from(["x", "y", None, "(missing)"]),                              # the word, and NULL
    st.sampled_from([None, float("nan"), 0.0, -0.0, 1.0]),                       # equal zeros, NaN: one value each
    st.sampled_from([1, 2, None]),
    st.sampled_from([True, False, None]),
)


@st.composite
def frames(draw) -> pd.DataFrame:
    """Rows with repeats (conflicting duplicates), NULLs, NaN, -0.0 and a text '(missing)'."""
    protos = draw(st.lists(_row, min_size=1, max_size=5))
    rows = [(*draw(st.tuples(st.sampled_from([0.0, 1.0, None]), st.sampled_from([0, 1, None]))), *protos[i][2:])
            for i in draw(st.lists(st.integers(0, len(protos) - 1), max_size=30))]
    rows += draw(st.lists(_row, min_size=1, max_size=30))
    df = pd.DataFrame(rows, columns=["y", "p", "sc", "s", "g", "z", "i", "b"])
    return df.astype({"y": float, "sc": float, "z": float, "p": "Int64", "i": "Int64", "b": "boolean",
                      "s": object, "g": object})


def _spec(error: str, from_score: bool, features: list[str]):
    """A binary spec over the frame's columns; the decision from the score when asked."""
    cols = {"label": "y", "positive_label": "1", "sensitive": ["s", "g"], "features": features}
    cols.update({"score": "sc", "threshold": 0.5} if from_score else {"prediction": "p"})
    return parse_spec({"source": {"path": "frame"}, "columns": cols, "slices": {"error": error, "max_depth": 3},
                       "policy": {"min_support": 1}})


def _both(df: pd.DataFrame, spec, slices, cells: bool):
    """The slice counts and the quality counts, through a cell scan or over the rows; and whether a scan was made."""
    src = open_frame(df)
    try:
        shared = SharedCells(src) if cells else None
        try:
            found = fetch_slice_counts(src, spec, "1", "1", cells=shared)
            quality = fetch_quality_counts(src, spec, slices, "1", positive_prediction="1", cells=shared)
            return found, quality, shared is not None and shared.scan is not None
        finally:
            if shared is not None:
                shared.close()
                assert not [t for (t,) in src.con.execute("SHOW TABLES").fetchall() if t.startswith("fw_cells_")]
    finally:
        src.con.close()


def _assert_same(a, b) -> None:
    """Identical slice counts and quality counts, to the bit."""
    (sa, qa), (sb, qb) = a, b
    pd.testing.assert_frame_equal(sa.frame, sb.frame, check_exact=True)
    for field in ("features", "total_rows", "total_labelled", "total_n", "total_errors", "total_errors_sq", "bin_edges",
                  "notes", "max_depth"):
        assert getattr(sa, field) == getattr(sb, field), field
    pd.testing.assert_frame_equal(qa.signals, qb.signals, check_exact=True)
    pd.testing.assert_frame_equal(qa.slices, qb.slices, check_exact=True)
    assert (qa.total_rows, qa.labelled_rows, qa.positive_label, qa.label_error_rule, qa.notes) == (
        qb.total_rows, qb.labelled_rows, qb.positive_label, qb.label_error_rule, qb.notes)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(df=frames(), slices=st.lists(st.sampled_from(SLICES), max_size=4, unique=True), error=st.sampled_from(ERRORS),
       from_score=st.booleans(), features=st.sampled_from([["z", "i", "b"], ["z"], ["i", "b"]]))
def test_the_scan_gives_the_row_scans_numbers(df, slices, error, from_score, features):
    """Every slice's counts and every quality count: the same from the cell scan as from the rows."""
    spec = _spec(error, from_score, features)
    slices = [s for s in slices if all(c in ("s", "g", *features) for c, _ in s)]
    try:
        rows = _both(df, spec, slices, False)
    except DataError as exc:  # e.g. no labelled row with a decision: the same one line with the scan
        with pytest.raises(DataError) as got:
            _both(df, spec, slices, True)
        assert str(got.value) == str(exc)
        return
    scanned = _both(df, spec, slices, True)
    assert scanned[2], "the scan was not made"
    _assert_same(rows[:2], scanned[:2])


def test_the_word_missing_beside_nulls_searches_the_rows():
    """A text '(missing)' and NULLs are one slice value: the search counts the rows, the quality still the cells."""
    df = pd.DataFrame({"y": [1.0, 0.0, 1.0, 0.0] * 3, "p": [1, 1, 0, 0] * 3, "sc": [0.5] * 12,
                       "s": ["a", "b"] * 6, "g": ["(missing)", None, "x", "x"] * 3, "z": [1.0] * 12,
                       "i": [1] * 12, "b": [True] * 12}).astype({"p": "Int64"})
    spec = _spec("misclassification", False, ["i"])
    slices = [(("g", "(missing)"),)]
    rows, scanned = _both(df, spec, slices, False), _both(df, spec, slices, True)
    _assert_same(rows[:2], scanned[:2])
    assert ("(missing)" in set(rows[0].frame["g"].dropna()))


@pytest.mark.parametrize("sensitive", [["s", "g"], ["z", "i"], ["b", "g"], ["i"]])
def test_sensitive_groups_from_the_scan_are_the_rows_groups(sensitive, monkeypatch):
    """The quality counts' sensitive groups, read from the scan's dictionaries (text, integers, booleans) or, for a
    float (-0.0 and 0.0 are one value there, two texts in the rows), from the rows: the rows' groups either way."""
    df = pd.DataFrame({"y": [1.0, 0.0, 1.0, 0.0, None] * 4, "p": [1, 1, 0, 0, 1] * 4, "sc": [0.5] * 20,
                       "s": ["a", "b", None, "a", "b"] * 4, "g": ["(missing)", None, "x", "x", "y"] * 4,
                       "z": [0.0, -0.0, float("nan"), None, 1.0] * 4, "i": [1, None, 2, 2, 1] * 4,
                       "b": [True, None, False, True, True] * 4}).astype({"p": "Int64", "i": "Int64", "b": "boolean"})
    spec = parse_spec({"source": {"path": "frame"}, "columns": {"label": "y", "positive_label": "1", "prediction": "p",
                       "sensitive": sensitive, "features": ["s", "g", "z", "i", "b"]},
                       "slices": {"error": "misclassification", "max_depth": 2}, "policy": {"min_support": 1}})
    asked = []
    real = quality_counts._scanned_groups
    monkeypatch.setattr(quality_counts, "_scanned_groups", lambda *a: asked.append(real(*a)) or asked[-1])
    rows, scanned = _both(df, spec, [], False), _both(df, spec, [], True)
    assert scanned[2], "the scan was not made"
    _assert_same(rows[:2], scanned[:2])
    assert (asked[-1] is None) == ("z" in sensitive)  # the float asks the rows; the others are read from the scan


def test_a_key_too_large_for_a_bigint_counts_the_rows(monkeypatch):
    """When the packed key would overflow, no scan is made and the counts come from the rows."""
    monkeypatch.setattr(cell_scan, "_KEY_LIMIT", 4)
    df = pd.DataFrame({"y": [1.0, 0.0] * 5, "p": [1, 0, 0, 1, 1] * 2, "sc": [0.5] * 10, "s": ["a", "b"] * 5,
                       "g": ["x"] * 10, "z": [0.0] * 10, "i": [1] * 10, "b": [True] * 10}).astype({"p": "Int64"})
    spec = _spec("misclassification", False, ["i"])
    rows, scanned = _both(df, spec, [], False), _both(df, spec, [], True)
    assert not scanned[2]
    _assert_same(rows[:2], scanned[:2])


@pytest.mark.parametrize("error", ["score_loss"])
def test_the_score_loss_keeps_the_row_scans(error):
    """A score loss is a double per row: no cell scan is made for it."""
    df = pd.DataFrame({"y": [1.0, 0.0] * 5, "p": [1, 0, 0, 1, 1] * 2, "sc": [0.25, 0.75] * 5, "s": ["a", "b"] * 5,
                       "g": ["x"] * 10, "z": [0.0] * 10, "i": [1] * 10, "b": [True] * 10}).astype({"p": "Int64"})
    cols = {"label": "y", "positive_label": "1", "prediction": "p", "score": "sc", "sensitive": ["s", "g"],
            "features": ["i"]}
    spec = parse_spec({"source": {"path": "frame"}, "columns": cols, "slices": {"error": error}})
    assert not _both(df, spec, [], True)[2]
