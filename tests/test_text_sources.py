"""Text sources (CSV, JSON) are parsed once when they open, up to TEXT_PARSED_ONCE_BYTES: the same numbers and the
same one-line errors as reading the file on every query (which larger files still do)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairwatch.cli import main
from fairwatch.connectors import source
from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.fingerprint import fingerprint_source
from fairwatch.metrics.audit.spec import RowFilter, parse_spec

DEEP = 30_000  # beyond DuckDB's 20,480-row sniffing sample: the bad row is met only when every row is read


def _log(n: int = 4000, seed: int = 2) -> pd.DataFrame:
    """A prediction log with a score, a numeric feature, NULLs and a group that errs more."""
    rng = np.random.default_rng(seed)
    race = rng.choice(["a", "b", "c", None], n, p=[0.5, 0.3, 0.15, 0.05])
    label = rng.integers(0, 2, n)
    flip = rng.random(n) < np.where(race == "c", 0.3, 0.1)
    return pd.DataFrame({"race": race, "sex": rng.choice(["f", "m"], n), "age": rng.integers(18, 90, n),
                         "label": label, "pred": np.where(flip, 1 - label, label),
                         "score": np.round(rng.random(n), 3)})


def _spec(path: Path):
    return parse_spec({"source": {"path": str(path)},
                       "columns": {"label": "label", "prediction": "pred", "score": "score",
                                   "sensitive": ["race", "sex"], "features": ["age"]}})


def _audit(path: Path) -> tuple[dict, dict, list[str]]:
    """The snapshot (without when it ran), the fingerprint and the tables of the source's database."""
    src = source.open_source(_spec(path).source)
    try:
        doc = run_audit(_spec(path), RowFilter(), src).to_dict()
        fp = fingerprint_source(src, _spec(path), RowFilter()).to_dict()
        tables = [r[0] for r in src.con.execute("SHOW TABLES").fetchall()]
    finally:
        src.close()
    for key in ("created_at", "duration_seconds"):
        doc.pop(key, None)
    return doc, fp, tables


@pytest.mark.parametrize("kind", ["csv", "json", "csv.gz"])
def test_a_text_file_parsed_once_gives_the_numbers_of_reading_it_every_time(tmp_path, monkeypatch, kind):
    path = tmp_path / f"log.{kind}"
    frame = _log()
    if kind == "json":
        frame.to_json(path, orient="records")
    else:
        frame.to_csv(path, index=False)
    once, once_fp, tables = _audit(path)
    assert "src_rows" in tables, "the file was not parsed into a table"
    monkeypatch.setattr(source, "TEXT_PARSED_ONCE_BYTES", 0)
    every, every_fp, tables = _audit(path)
    assert "src_rows" not in tables
    assert once == every
    assert once_fp == every_fp


def test_labels_in_a_text_file_are_parsed_once_too(tmp_path):
    frame = _log().assign(id=range(4000))
    frame.drop(columns=["label"]).to_csv(tmp_path / "log.csv", index=False)
    frame[["id", "label"]].iloc[::2].to_csv(tmp_path / "labels.csv", index=False)
    spec = parse_spec({"source": {"path": str(tmp_path / "log.csv"), "labels_path": str(tmp_path / "labels.csv"),
                                  "id_column": "id"},
                       "columns": {"label": "label", "prediction": "pred", "sensitive": ["race"]}})
    src = source.open_source(spec.source)
    try:
        assert {"src_rows", "labels_rows"} <= {r[0] for r in src.con.execute("SHOW TABLES").fetchall()}
        snap = run_audit(spec, RowFilter(), src)
    finally:
        src.close()
    assert snap.data.rows == 4000 and snap.data.unlabelled_rows == 2000


def _deep_ragged(path: Path) -> None:
    rows = ["sex,label,pred,age"] + [f"{random.choice('fm')},1,0,30" for _ in range(DEEP)] + ["f,1,1,40,EXTRA,MORE"]
    path.write_text("\n".join(rows) + "\n")


def _deep_type(path: Path) -> None:
    rows = ["sex,label,pred,age"] + [f"{random.choice('fm')},1,0,{18 + i % 70}" for i in range(DEEP)] + ["f,1,1,unknown"]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("once", [True, False], ids=["parsed once", "read every time"])
@pytest.mark.parametrize("write, expected", [
    (_deep_ragged, f"could not read the CSV file: line {DEEP + 2}: a row that does not fit the others"),
    (_deep_type, f"could not read the CSV file: line {DEEP + 2}: column age holds 'unknown' where the rows before it "
                 f"read as BIGINT; fix that value, or export the column as text"),
], ids=["ragged row", "a value of another type"])
def test_a_bad_row_past_the_sniffed_rows_is_one_line_naming_it(tmp_path, capsys, monkeypatch, write, expected, once):
    random.seed(3)
    path = tmp_path / "log.csv"
    write(path)
    if not once:
        monkeypatch.setattr(source, "TEXT_PARSED_ONCE_BYTES", 0)
    code = main(["audit", str(path), "--label", "label", "--prediction", "pred", "--sensitive", "sex",
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"fairwatch: error: {expected}"
    assert not (tmp_path / "out").exists()
