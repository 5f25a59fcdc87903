"""The grouped quality counts (issue 18) against the per-row query they replace: every count identical."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairwatch.connectors import quality_counts as qc
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.audit.spec import parse_spec

ERRORS = ["misclassification", "false_negative", "false_positive", "score_loss"]
SLICES = [(("s", "a"),), (("g", "(missing)"),), (("f", "q"),), (("n", "[0, 2)"),), (("n", "(missing)"),),
          (("s", "b"), ("f", "p")), (("g", "x"), ("n", "[2, inf)")), (("f", "(missing)"), ("s", "(missing)")),
          (("n", "nan"),), (("g", "nope"),), (("s", "a"), ("g", "x"), ("f", "p"), ("n", "[1, 3)"))]

_row = st.tuples(
    st.sampled_from([0.0, 1.0, None]),                                     # label
    st.sampled_from([0, 1, None]),                                         # prediction
    # Scores on a grid of eighths: a sum of score losses is exact in any order (DuckDB's parallel sum of
    # other doubles can move the last bit from one run to the next, main's per-row query too).
    st.one_of(st.none(), st.just(float("nan")), st.integers(0, 8).map(lambda k: k / 8)),  # score
    st.sampled_from(["a", "b", None]), st.sampled_from(["x", "y", None]), st.sampled_from(["p", "q", None]),
    st.one_of(st.none(), st.just(float("nan")), st.integers(0, 3).map(float)),
)


@st.composite
def frames(draw) -> pd.DataFrame:
    """Rows with repeats (conflicting duplicates), NULLs and NaNs in the float columns."""
    protos = draw(st.lists(_row, min_size=1, max_size=5))
    rows = [(*draw(st.tuples(st.sampled_from([0.0, 1.0, None]), st.sampled_from([0, 1, None]))), *protos[i][2:])
            for i in draw(st.lists(st.integers(0, len(protos) - 1), max_size=30))]
    rows += draw(st.lists(_row, max_size=20))
    df = pd.DataFrame(rows, columns=["y", "p", "sc", "s", "g", "f", "n"])
    return df.astype({"y": float, "sc": float, "n": float, "p": "Int64", "s": object, "g": object, "f": object})


def _counts(df: pd.DataFrame, spec, slices, per_row: bool, prediction: str | None):
    """The quality counts by the per-row query (main's) or by the grouped blocks."""
    src = open_frame(df)
    old, qc._PER_ROW = qc._PER_ROW, per_row
    try:
        return qc.fetch_quality_counts(src, spec, slices, "1", positive_prediction=prediction)
    finally:
        qc._PER_ROW = old
        src.con.close()


def _assert_same(a, b) -> None:
    """Identical results: every count and sum to the bit (NaN where the other has NaN)."""
    pd.testing.assert_frame_equal(a.signals, b.signals, check_exact=True)
    pd.testing.assert_frame_equal(a.slices, b.slices, check_exact=True)
    assert (a.total_rows, a.labelled_rows, a.positive_label, a.label_error_rule, a.notes) == (
        b.total_rows, b.labelled_rows, b.positive_label, b.label_error_rule, b.notes)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(df=frames(), slices=st.lists(st.sampled_from(SLICES), max_size=5, unique=True), with_score=st.booleans(),
       error=st.sampled_from(ERRORS), prediction=st.sampled_from(["1", None]))
def test_blocks_equal_the_per_row_query(df, slices, with_score, error, prediction):
    """Every signal's counts, unflagged sums and cells, the thresholds and notes: the same as counting per row."""
    if error == "score_loss" and not with_score:
        with_score = True
    cols = {"label": "y", "positive_label": "1", "prediction": "p", "sensitive": ["s", "g"], "features": ["f", "n"]}
    if with_score:
        cols["score"] = "sc"
    spec = parse_spec({"source": {"path": "frame"}, "columns": cols, "slices": {"error": error}})
    _assert_same(_counts(df, spec, slices, False, prediction), _counts(df, spec, slices, True, prediction))


@pytest.mark.parametrize("slices", [[], [(("s", "a"), ("g", "x"), ("f", "p"), ("n", "[1, 3)"))]])
def test_one_pass_when_the_slices_read_every_column(slices):
    """No score and slices over every column: one GROUP BY counts the conflicts too, with the same numbers."""
    df = pd.DataFrame({"y": [1.0, 0.0, 1.0, None, 0.0, 1.0], "p": [1, 1, 0, 1, None, 0],
                       "s": ["a", "a", "a", "b", None, None], "g": ["x"] * 6, "f": ["p", "p", "p", "q", None, None],
                       "n": [1.0, 1.0, 1.0, np.nan, np.nan, np.nan]})
    df = df.astype({"p": "Int64"})
    spec = parse_spec({"source": {"path": "frame"}, "columns": {
        "label": "y", "positive_label": "1", "prediction": "p", "sensitive": ["s", "g", "f", "n"]}})
    new, old = _counts(df, spec, slices, False, "1"), _counts(df, spec, slices, True, "1")
    _assert_same(new, old)
    assert new.signals.loc[new.signals["signal"] == "conflicting_duplicates", "total_x"].iloc[0] == 5


def _random_frame(seed: int, exact: bool, n: int = 400) -> pd.DataFrame:
    """Seeded random rows: few distinct values (duplicates, many conflicting), NULL and NaN in every float column.

    `exact`: scores on a grid of eighths, so that a sum of score losses is exact in any order.
    """
    rng = np.random.default_rng(seed)
    grid = [0.125, 0.375, 0.5, 0.875, np.nan] if exact else [0.1, 0.3, 0.55, 0.8, np.nan]
    score = rng.choice(grid, n) if seed % 2 else np.floor(rng.random(n) * 64) / 64 if exact else rng.random(n)
    score[rng.random(n) < 0.05] = np.nan
    df = pd.DataFrame({"y": rng.choice([0.0, 1.0, np.nan], n, p=[0.45, 0.45, 0.1]),
                       "p": pd.array(rng.choice([0, 1, 2], n), dtype="Int64"), "sc": score,
                       "s": rng.choice(["a", "b", None], n).astype(object), "g": rng.choice(["x", "y", None], n),
                       "f": rng.choice(["p", "q", None], n), "n": rng.choice([0.0, 1.0, 2.0, np.nan], n)})
    df.loc[df["p"] == 2, "p"] = pd.NA
    return df.astype({"s": object, "g": object, "f": object})


@pytest.mark.parametrize("error", ERRORS)
@pytest.mark.parametrize("with_score", [True, False])
@pytest.mark.parametrize("prediction", ["1", None])
@pytest.mark.parametrize("seed", [1, 2])
def test_blocks_equal_the_per_row_query_on_random_rows(error, with_score, prediction, seed):
    """The same on a few hundred seeded random rows, where every signal flags rows in every slice."""
    if error == "score_loss" and not with_score:
        pytest.skip("the score loss needs a score")
    cols = {"label": "y", "positive_label": "1", "prediction": "p", "sensitive": ["s", "g"], "features": ["f", "n"]}
    if with_score:
        cols["score"] = "sc"
    spec = parse_spec({"source": {"path": "frame"}, "columns": cols, "slices": {"error": error}})
    df = _random_frame(seed, exact=error == "score_loss")
    new, old = _counts(df, spec, SLICES, False, prediction), _counts(df, spec, SLICES, True, prediction)
    _assert_same(new, old)
    if with_score:
        assert new.label_error_rule is not None
    if prediction is not None:
        assert (new.signals["clean_n"] > 0).any() and (new.signals["clean_tp"] > 0).any()
