"""The notebook API (`fairwatch.audit`): real data against ProPublica, every kind of input, the saved snapshot,
the README's example, and one-line errors for bad input."""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import fairwatch
import fairwatch.api
from fairwatch.api import Audit
from fairwatch.metrics.errors import FairwatchError, SourceError, SpecError

ROOT = Path(__file__).resolve().parents[1]
COMPAS = "compas/compas-scores-two-years.csv"


def small_log(n: int = 500, seed: int = 3) -> pd.DataFrame:
    """A prediction log with two sensitive features, a score and a planted false positive gap for race=b."""
    rng = np.random.default_rng(seed)
    race = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    label = rng.integers(0, 2, n)
    flip = rng.random(n) < np.where(race == "b", 0.45, 0.15)
    return pd.DataFrame({"race": race, "sex": rng.choice(["f", "m"], n), "label": label,
                         "pred": np.where(flip, 1 - label, label), "score": np.round(rng.random(n), 2)})


ARGS = {"label": "label", "prediction": "pred", "sensitive": ["race", "sex"]}


def test_compas_reproduces_propublica_false_positive_rates(shared_data):
    """COMPAS, decile score >= 5: FPR 805/1795 for African-American and 349/1488 for Caucasian defendants."""
    df = pd.read_csv(shared_data / COMPAS)
    doc = fairwatch.audit(df, label="two_year_recid", score="decile_score", threshold=5, sensitive=["race"]).to_dict()
    by_group = {g["slice"]["race"]: g["metrics"]["false_positive_rate"] for g in doc["groups"]}
    aa, white = by_group["African-American"], by_group["Caucasian"]
    assert aa["support"] == 1795 and aa["value"] == pytest.approx(805 / 1795, abs=1e-12)
    assert white["support"] == 1488 and white["value"] == pytest.approx(349 / 1488, abs=1e-12)
    # The oracle on the raw rows, not on our own counts.
    raw_fp = df[(df["two_year_recid"] == 0) & (df["decile_score"] >= 5)].groupby("race").size()
    assert raw_fp["African-American"] == 805 and raw_fp["Caucasian"] == 349


def test_to_dict_is_the_saved_snapshot(tmp_path):
    """to_dict() equals the snapshot.json that save() writes, and save() writes the folder the CLI writes."""
    result = fairwatch.audit(small_log(), **ARGS)
    folder = result.save(tmp_path / "audit")
    saved = json.loads((folder / "snapshot.json").read_text(encoding="utf-8"))
    assert result.to_dict() == saved
    assert {"snapshot.json", "manifest.json", "report.html", "report.pdf", "groups.csv"} <= {
        p.name for p in folder.iterdir()}
    assert saved["export"]["author"]["signed_in"] == "cli" and saved["fingerprint"]["rows"] == 500
    # A copy: changing it changes neither the audit nor the next copy.
    doc = result.to_dict()
    doc["groups"].clear()
    assert result.to_dict() == saved
    from fairwatch.connectors.export import verify

    assert verify(folder).intact
    with pytest.raises(FairwatchError, match="never overwritten"):
        result.save(folder)


def test_tables_are_dataframes_of_the_document():
    """groups, findings and representation are DataFrames holding the document's numbers."""
    result = fairwatch.audit(small_log(), **ARGS)
    doc, groups = result.to_dict(), result.groups
    assert isinstance(groups, pd.DataFrame) and isinstance(result.representation, pd.DataFrame)
    assert isinstance(result.findings, pd.DataFrame)
    assert len(groups) == sum(len(g["metrics"]) for g in doc["groups"])
    b = groups[(groups["group"] == "race=b") & (groups["metric"] == "false_positive_rate")].iloc[0]
    entry = next(g for g in doc["groups"] if g["slice"] == {"race": "b"})
    assert b["value"] == entry["metrics"]["false_positive_rate"]["value"]
    assert b["verdict"] == entry["disparities"]["false_positive_rate"]["verdict"]
    assert set(result.representation["slice.race"].dropna()) == {"a", "b", "c"}
    assert len(result.findings) == len(doc["findings"]) and len(result.findings) >= 1


def _groups_of(data, **extra) -> pd.DataFrame:
    """The group table of an audit, without the columns that name the source."""
    return fairwatch.audit(data, **ARGS, **extra).groups


def test_every_kind_of_input_gives_the_same_groups(tmp_path):
    """A DataFrame, an Arrow table, a CSV path, a Path to Parquet, a glob and a DuckDB relation agree."""
    df = small_log()
    df.to_csv(tmp_path / "log.csv", index=False)
    df.to_parquet(tmp_path / "log.parquet")
    (tmp_path / "parts").mkdir()
    df.iloc[:200].to_parquet(tmp_path / "parts" / "a.parquet")
    df.iloc[200:].to_parquet(tmp_path / "parts" / "b.parquet")
    con = duckdb.connect()
    con.register("log", df)
    expected = _groups_of(df)
    assert len(expected) > 50
    for data in (pa.Table.from_pandas(df), str(tmp_path / "log.csv"), tmp_path / "log.parquet",
                 str(tmp_path / "parts" / "*.parquet"), con.sql("SELECT * FROM log")):
        pd.testing.assert_frame_equal(_groups_of(data), expected, check_exact=True, obj=type(data).__name__)


def test_bad_inputs_are_one_line_errors(tmp_path):
    """Unknown columns, data of the wrong type, unknown keywords and missing files: one-line FairwatchErrors."""
    df = small_log()
    cases = [
        (lambda: fairwatch.audit(df, label="label", prediction="pred", sensitive=["gender"]), SpecError,
         "sensitive feature 'gender' is not a column"),
        (lambda: fairwatch.audit(df, label="label", prediction="nope", sensitive="race"), SpecError,
         "prediction column 'nope' is not a column"),
        (lambda: fairwatch.audit(42, **ARGS), SourceError, "cannot audit a int: pass a pandas DataFrame"),
        (lambda: fairwatch.audit(df.to_dict("records"), **ARGS), SourceError, "cannot audit a list"),
        (lambda: fairwatch.audit(df, **ARGS, min_suport=5), SpecError, r"unknown key\(s\) min_suport in \[policy\]"),
        (lambda: fairwatch.audit(df, label="label", sensitive="race"), SpecError, "no decision"),
        (lambda: fairwatch.audit(df, **ARGS, labels_path="labels.csv", id_column="id"), SourceError,
         "already holds the rows"),
        (lambda: fairwatch.audit(tmp_path / "missing.csv", **ARGS), SourceError, "file not found"),
        (lambda: fairwatch.audit(df, **ARGS, fdr=2), SpecError, r"\[policy\] fdr must be between"),
        (lambda: fairwatch.audit(df, label="label", prediction="pred", sensitive=5), SpecError,
         r"\[columns\] sensitive must be a list of column names"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    closed = duckdb.connect()
    rel = closed.sql("SELECT 1 AS label")
    closed.close()
    with pytest.raises(SourceError, match="cannot read the DuckDB relation") as info:
        fairwatch.audit(rel, **ARGS)
    assert "\n" not in str(info.value)


def test_repr_html_shows_verdicts_and_gaps_escaped():
    """Jupyter's view names each feature's verdict and the largest gap, with data values HTML-escaped."""
    df = small_log()
    df["race"] = df["race"].map({"a": "a", "b": "<b>x</b>", "c": "c"})
    result = fairwatch.audit(df, **ARGS)
    page = result._repr_html_()
    assert "Verdict per sensitive feature" in page and "Largest gaps" in page
    assert "fails policy" in page  # the planted gap
    assert "&lt;b&gt;x&lt;/b&gt;" in page and "<b>x</b>" not in page
    assert re.search(r"<td>race=&lt;b&gt;x&lt;/b&gt;</td>", page)
    assert "500 rows" in repr(result)


def test_import_is_light():
    """`import fairwatch` loads neither pandas nor DuckDB nor fairlearn: the engine starts on the first audit."""
    code = "import sys, fairwatch; print(sorted(m for m in ('pandas', 'duckdb', 'fairlearn') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    assert callable(fairwatch.audit) and fairwatch.Audit is Audit and fairwatch.FairwatchError is FairwatchError
    with pytest.raises(AttributeError):
        fairwatch.no_such_name  # noqa: B018


def test_module_doctests_pass():
    """The examples in fairwatch/api.py run as written."""
    result = doctest.testmod(fairwatch.api, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0


def test_readme_example_runs():
    """The README's Python example is a doctest: it runs as written and prints what it says."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From Python (notebooks)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert blocks, "the README's 'From Python' section has no python example"
    test = doctest.DocTestParser().get_doctest(blocks[0], {}, "README.md", str(ROOT / "README.md"), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert test.examples and runner.summarize(verbose=False).failed == 0
