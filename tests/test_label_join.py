"""Delayed labels joined to predictions: the once-joined, zipped labels equal a plain join, row for row."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from fairwatch.connectors.source import open_source
from fairwatch.metrics.errors import SourceError
from fairwatch.metrics.audit.spec import SourceSpec


def _write_db(path, predictions: pd.DataFrame, labels: pd.DataFrame, view: bool = False) -> None:
    """A DuckDB file with a predictions table (or view) and a labels table."""
    con = duckdb.connect(str(path))
    con.register("p", predictions)
    con.register("l", labels)
    con.execute("CREATE TABLE preds AS SELECT * FROM p")
    con.execute("CREATE TABLE labels AS SELECT * FROM l")
    if view:
        con.execute("CREATE VIEW predictions AS SELECT * FROM preds WHERE TRUE")
    else:
        con.execute("ALTER TABLE preds RENAME TO predictions")
    con.close()


def _frames(seed: int, n: int = 5000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions in shuffled id order, some ids NULL; labels for a shuffled subset, plus orphan labels."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n).astype("float64")
    ids[rng.random(n) < 0.02] = np.nan
    preds = pd.DataFrame({"rid": pd.array(ids, dtype="Int64"), "sex": rng.choice(["f", "m"], n),
                          "pred": rng.integers(0, 2, n)})
    labelled = rng.permutation(n)[: int(n * 0.8)]
    labels = pd.DataFrame({"rid": np.concatenate([labelled, [n + 1, n + 2]]),
                           "y": rng.integers(0, 2, len(labelled) + 2)})
    return preds, labels


def _oracle(preds: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """pandas' left join, the rows sorted the same way as the result under test."""
    out = preds.merge(labels, on="rid", how="left")
    return out.sort_values(["rid", "sex", "pred"], na_position="last").reset_index(drop=True)


@pytest.mark.parametrize("view", [False, True], ids=["table: zipped", "view: plain join"])
@pytest.mark.parametrize("seed", [0, 1])
def test_joined_rows_equal_pandas_merge(tmp_path, seed, view):
    """Every prediction keeps its own label (or none), whichever way the join is done."""
    preds, labels = _frames(seed)
    _write_db(tmp_path / "log.duckdb", preds, labels, view=view)
    src = open_source(SourceSpec(path=str(tmp_path / "log.duckdb"), table="predictions", labels_table="labels",
                                 id_column="rid"))
    sql = src.con.execute("SELECT sql FROM duckdb_views() WHERE view_name = 'src'").fetchall()[0][0]
    assert ("POSITIONAL JOIN" in sql) is (not view)
    got = src.cursor().execute("SELECT rid, sex, pred, y FROM src").df()
    got = got.sort_values(["rid", "sex", "pred"], na_position="last").reset_index(drop=True)
    want = _oracle(preds, labels)[["rid", "sex", "pred", "y"]]
    assert len(got) == len(preds)
    assert got["y"].isna().sum() == want["y"].isna().sum()
    assert (got["sex"].astype(str) == want["sex"].astype(str)).all()
    numeric = ["rid", "pred", "y"]
    pd.testing.assert_frame_equal(got[numeric].astype("float64"), want[numeric].astype("float64"))
    src.close()


@pytest.mark.parametrize("view", [False, True])
def test_a_prediction_with_two_labels_is_refused(tmp_path, view):
    """Two labels for one prediction would count it twice: a one-line error naming the id column."""
    preds, labels = _frames(3, n=200)
    labels = pd.concat([labels, labels.iloc[:1]])
    _write_db(tmp_path / "log.duckdb", preds, labels, view=view)
    with pytest.raises(SourceError, match="repeated rid value"):
        open_source(SourceSpec(path=str(tmp_path / "log.duckdb"), table="predictions", labels_table="labels",
                               id_column="rid"))
