"""Property test: the engine's slice counts equal a pandas groupby over the raw rows."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fairwatch.connectors.slice_counts import bin_labels, fetch_slice_counts
from fairwatch.connectors.source import open_frame
from fairwatch.metrics.errors import DataError
from fairwatch.metrics.audit.spec import ERROR_SIGNALS, parse_spec

MISSING = "(missing)"
# Numbers are halves so that Python's and DuckDB's spellings of an unbinned value agree.
# Names and values with quotes, spaces and SQL-looking text: identifiers are quoted, values bound.
NAMES = ['sex', 'it\'s', 'a"b', 'c d', 'x;--', 'K0']
VALUES = ["a", "b", "o'k", 'say "hi"', "", " ", "(other)", None]
# One vocabulary per example for the label and the decision: (values, how each maps to 1/0).
VOCABS = {
    "bool": ([True, False], "true", "boolean"),
    "int": ([1, 0], "1", "Int64"),
    "float": ([1.0, 0.0], "1", "Float64"),
    "text": (["Yes", "no"], "Yes", "string"),
}


def _column(values: list, dtype: str) -> pd.Series:
    """A nullable pandas column (None as NULL in DuckDB)."""
    return pd.Series(pd.array(values, dtype=dtype))


@st.composite
def raw_data(draw):
    """Random raw rows: 1-3 text features, maybe a numeric one, a label, a decision and a score."""
    n_rows = draw(st.integers(1, 60))
    n_text = draw(st.integers(1, 3))
    names = draw(st.permutations(NAMES))[:n_text]
    frame = pd.DataFrame({
        name: pd.Series([draw(st.sampled_from(VALUES[: draw(st.integers(2, len(VALUES)))])) for _ in range(n_rows)],
                        dtype=object)
        for name in names
    })
    numeric = draw(st.booleans())
    if numeric:
        nums = draw(st.lists(st.one_of(st.none(), st.integers(-10, 80).map(lambda k: k / 2)),
                             min_size=n_rows, max_size=n_rows))
        frame["amount"] = _column(nums, "Float64")
    label_vocab = draw(st.sampled_from(sorted(VOCABS)))
    pred_vocab = draw(st.sampled_from(sorted(VOCABS)))
    lv, lpos, ldt = VOCABS[label_vocab]
    pv, ppos, pdt = VOCABS[pred_vocab]
    labels = draw(st.lists(st.sampled_from([lv[0], lv[1], None]), min_size=n_rows, max_size=n_rows))
    preds = draw(st.lists(st.sampled_from([pv[0], pv[1], None]), min_size=n_rows, max_size=n_rows))
    scores = draw(st.lists(st.one_of(st.none(), st.floats(0, 1)), min_size=n_rows, max_size=n_rows))
    frame["outcome"] = _column(labels, ldt)
    frame["decision"] = _column(preds, pdt)
    frame["score"] = _column(scores, "Float64")
    truth = pd.DataFrame({
        "y": [None if v is None else int(v == lv[0]) for v in labels],
        "yhat": [None if v is None else int(v == pv[0]) for v in preds],
        "score": scores,
    })
    features = list(names) + (["amount"] if numeric else [])
    return frame, truth, features, lpos, ppos


def _expected(frame: pd.DataFrame, truth: pd.DataFrame, features: list[str], error: str, bins: dict) -> dict:
    """Counts per slice from the raw rows with pandas: {slice: (rows, labelled, n, errors)}."""
    keys = pd.DataFrame(index=frame.index)
    for f in features:
        if f in bins:
            lo, edges, hi = bins[f]
            labels = bin_labels(lo, edges, hi)
            x = frame[f].astype("float64").to_numpy()
            idx = np.searchsorted(np.asarray(edges, dtype=float), x, side="right")
            keys[f] = [MISSING if np.isnan(v) else labels[i] for v, i in zip(x, idx)]
        else:
            # An unbinned number is a category spelled as DuckDB casts it ('2.5', '3.0').
            keys[f] = [MISSING if pd.isna(v) else (str(float(v)) if f == "amount" else v) for v in frame[f]]
    y, yhat, score = truth["y"], truth["yhat"], truth["score"]
    labelled = y.notna()
    if error == "score_loss":
        den = labelled & score.notna()
        err = (score.astype(float) - y.astype(float)) ** 2
    else:
        both = labelled & yhat.notna()
        den = {"misclassification": both, "false_negative": both & (y == 1),
               "false_positive": both & (y == 0)}[error]
        err = {"misclassification": y != yhat, "false_negative": yhat == 0,
               "false_positive": yhat == 1}[error].astype(float)
    data = keys.assign(rows=1, labelled=labelled.astype(int), n=den.astype(int),
                       errors=np.where(den, err.fillna(0), 0.0))
    out = {}
    for d in range(1, len(features) + 1):
        for combo in itertools.combinations(features, d):
            sums = data.groupby(list(combo), dropna=False)[["rows", "labelled", "n", "errors"]].sum()
            for idx, row in sums.iterrows():
                idx = idx if isinstance(idx, tuple) else (idx,)
                if row["n"] >= 1:
                    out[tuple(zip(combo, idx))] = (int(row["rows"]), int(row["labelled"]), int(row["n"]),
                                                   float(row["errors"]))
    return out


@pytest.mark.parametrize("error", ERROR_SIGNALS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=raw_data())
def test_counts_equal_pandas_groupby(data, error):
    """Every slice up to full depth: rows, labelled, n and errors equal a groupby on the raw rows."""
    frame, truth, features, lpos, ppos = data
    spec = parse_spec({
        "source": {"path": "frame"},
        "columns": {"label": "outcome", "prediction": "decision", "score": "score",
                    "sensitive": features[:1], "features": features[1:]},
        "policy": {"min_support": 1},
        "slices": {"error": error, "max_depth": len(features), "bins": 3},
    })
    src = open_frame(frame)
    bins_seen: dict = {}
    expected_total = _expected(frame, truth, features[:1], error, {})  # depth-1 totals
    total_n = sum(v[2] for k, v in expected_total.items())
    if total_n == 0:
        with pytest.raises(DataError, match="no rows count toward"):
            fetch_slice_counts(src, spec, lpos, ppos)
        return
    counts = fetch_slice_counts(src, spec, lpos, ppos)
    x = frame["amount"].astype("float64").dropna() if "amount" in features else None
    for name, edges in counts.bin_edges:
        bins_seen[name] = (float(x.min()), edges, float(x.max()))
    expected = _expected(frame, truth, features, error, bins_seen)
    got = {}
    for row in counts.frame.to_dict("records"):
        key = tuple((f, row[f]) for f in features if row[f] is not None)
        got[key] = (row["rows"], row["labelled"], row["n"], float(row["errors"]))
    assert set(got) == set(expected)
    for key, want in expected.items():
        assert got[key][:3] == want[:3], key
        assert got[key][3] == pytest.approx(want[3], abs=1e-9), key
    assert counts.total_rows == len(frame)
    assert counts.total_n == total_n
