"""A corpus of bad inputs (issue 8): each is a small file or spec made here; the CLI exits 2 with ONE line saying
what is wrong (never a traceback, never 'internal error'); a few also go through the app's Data sources page."""

from __future__ import annotations

import gzip
import io
import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from streamlit.testing.v1 import AppTest

from fairwatch.cli import main
from fairwatch.connectors.datapaths import max_upload_bytes, safe_data_path, save_upload
from fairwatch.connectors.demo import write_demo
from fairwatch.connectors.source import open_source
from fairwatch.connectors.audit import run_audit
from fairwatch.metrics.errors import DataError, FairwatchError, SourceError
from fairwatch.metrics.audit.spec import RowFilter, parse_spec
from fairwatch.metrics.presentation.text import md_unescape

ROOT = Path(__file__).resolve().parents[1]
N = 60
_rng = np.random.default_rng(1)
OK = pd.DataFrame({"sex": _rng.choice(["f", "m"], N), "label": _rng.integers(0, 2, N), "pred": _rng.integers(0, 2, N),
                   "score": np.round(_rng.random(N), 3)})
OK_CSV = OK.to_csv(index=False)
BASE = ["--label", "label", "--prediction", "pred", "--sensitive", "sex"]
SCORED = ["--label", "label", "--score", "score", "--threshold", "0.5", "--sensitive", "sex"]
TIMED = OK.assign(ts=pd.date_range("2025-01-01", periods=N, freq="D").astype(str))


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue()


def _header_rows(header: str, frame: pd.DataFrame) -> str:
    return header + "\n" + "\n".join(f"{s},{s},{lab},{p}" for s, lab, p in zip(frame.sex, frame.label, frame.pred))


def _duckdb(path: Path, **tables: pd.DataFrame) -> None:
    db = duckdb.connect(str(path))
    for name, frame in tables.items():
        db.register("f", frame)
        db.execute(f"CREATE TABLE {name} AS SELECT * FROM f")
        db.unregister("f")
    db.close()


@dataclass(frozen=True)
class Case:
    """A bad input: the file to write (name and content), the CLI flags, the words the error must contain."""

    name: str
    file: str
    content: object  # str | bytes | DataFrame (as CSV) | callable(path) | None (nothing written)
    flags: tuple[str, ...]
    expected: str
    command: str = "audit"


def _write(tmp: Path, case: Case) -> Path:
    path = tmp / case.file
    c = case.content
    if isinstance(c, pd.DataFrame):
        c.to_csv(path, index=False)
    elif isinstance(c, bytes):
        path.write_bytes(c)
    elif isinstance(c, str):
        path.write_text(c)
    elif callable(c):
        c(path)
    return path


PQ = _parquet_bytes(OK)
CORPUS = [
    # malformed and truncated files
    Case("csv_truncated_last_row", "a.csv", OK_CSV + "f,1", BASE, "different number of fields"),
    # In the user's words, not DuckDB's ("Error when sniffing file"): which file, read as what, what to check.
    Case("csv_binary_garbage", "a.csv", bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8)), BASE,
         "could not read a.csv as CSV: its delimiter, quoting or header could not be detected"),
    Case("csv_ragged_extra_fields", "a.csv", OK_CSV + "f,1,0,0.3,extra,more\n", BASE, "is not a column of the source"),
    Case("csv_single_column", "a.csv", "just one column\n1\n2\n", BASE, "is not a column of the source"),
    Case("csv_gz_not_gzip", "a.csv.gz", "not gzip at all", BASE, "not a GZIP stream"),
    Case("parquet_truncated", "a.parquet", PQ[: len(PQ) // 2], BASE, "cannot read the source"),
    Case("parquet_text_inside", "a.parquet", "this is not parquet", BASE, "cannot read the source"),
    Case("parquet_zero_rows", "a.parquet", lambda p: OK.iloc[:0].to_parquet(p), BASE, "has no rows"),
    Case("json_array_truncated", "a.json", '[{"sex":"f","label":1,"pred":0},', BASE, "truncated"),
    Case("json_cut_mid_object", "a.json", '[{"sex":"f","label":1,"pred":0},{"sex":"m","lab', BASE, "truncated"),
    Case("json_scalar", "a.json", "42", BASE, "is not a column of the source"),
    Case("json_empty_array", "a.json", "[]", BASE, "is not a column of the source"),
    Case("ndjson_bad_line", "a.ndjson", OK.to_json(orient="records", lines=True) + "{not json\n", BASE, "Malformed JSON"),
    Case("duckdb_not_a_database", "a.duckdb", "SQLite format 3 not really", BASE, "not a valid DuckDB database"),
    Case("duckdb_two_tables_none_named", "a.duckdb", lambda p: _duckdb(p, a=OK, b=OK), BASE, "name one with --table"),
    Case("duckdb_table_missing", "a.duckdb", lambda p: _duckdb(p, a=OK), (*BASE, "--table", "nope"), "no table nope"),
    Case("table_flag_on_csv", "a.csv", OK, (*BASE, "--table", "x"), "only for DuckDB database files"),
    Case("unknown_file_type", "a.xlsx", "hello", BASE, "unknown file type .xlsx"),
    Case("folder_without_data", "d", lambda p: p.mkdir(), BASE, "holds no CSV, Parquet or JSON"),
    Case("glob_matches_nothing", "nomatch*.parquet", None, BASE, "no file matches"),
    Case("nul_in_path", "x\x00.csv", None, BASE, "file not found"),
    # encodings
    Case("latin1_csv", "a.csv", OK_CSV.replace("f,", "fé,").encode("latin-1"), BASE, "not UTF-8 encoded"),
    Case("utf16_bom_csv", "a.csv", OK_CSV.encode("utf-16"), BASE, "not UTF-8 encoded"),
    # values outside what an audit can use
    Case("label_mixed_types", "a.csv", OK.assign(label=[0, 1, "yes"] * 20), BASE, "label has 3 distinct values"),
    Case("pred_mixed_types", "a.csv", OK.assign(pred=[0, 1, "maybe"] * 20), BASE, "pred has 3 distinct values"),
    Case("label_outside_0_1", "a.csv", OK.assign(label=[0, 1, -1] * 20), BASE, "('-1', '0', '1')"),
    Case("pred_outside_0_1", "a.csv", OK.assign(pred=[0, 1, 2] * 20), BASE, "('0', '1', '2')"),
    Case("label_three_booleans", "a.csv", OK.assign(label=["true", "false", "unknown"] * 20), BASE, "3 distinct values"),
    Case("label_null_only_float", "a.csv", OK.assign(label=[np.nan] * N), BASE, "rows are unlabelled"),
    Case("pred_null_only", "a.csv", OK.assign(pred=[None] * N), BASE, "no rows count toward"),
    Case("score_null_only", "a.csv", OK.assign(score=[None] * N), SCORED, "not a number"),
    Case("score_text_and_inf", "a.csv", OK.assign(score=["0.2", "high", "0.9"] * 20), SCORED, "not a number"),
    # column names
    Case("case_colliding_csv", "a.csv", _header_rows("Sex,sex,label,pred", OK), BASE, "differ only in case"),
    Case("case_colliding_json", "a.json",
         json.dumps([{"Sex": s, "sex": s, "label": int(lab), "pred": int(p)} for s, lab, p in zip(OK.sex, OK.label, OK.pred)]),
         BASE, "differ only in case"),
    Case("case_colliding_parquet", "a.parquet",
         lambda p: pq.write_table(pa.table([pa.array(OK.sex), pa.array(OK.sex), pa.array(OK.label), pa.array(OK.pred)],
                                           names=["SEX", "sex", "label", "pred"]), p), BASE, "differ only in case"),
    Case("sql_in_missing_sensitive_name", "a.csv", OK,
         ("--label", "label", "--prediction", "pred", "--sensitive", 'sex"; DROP TABLE src; --'), "is not a column"),
    Case("newline_in_missing_label_name", "a.csv", OK, ("--label", "lab\nel", "--prediction", "pred", "--sensitive", "sex"),
         "is not a column"),
    Case("comment_in_missing_prediction", "a.csv", OK,
         ("--label", "label", "--prediction", "pred /* x */ --", "--sensitive", "sex"), "is not a column"),
    Case("sensitive_is_the_label", "a.csv", OK, ("--label", "label", "--prediction", "pred", "--sensitive", "label"),
         "both a feature and the label"),
    Case("label_is_the_prediction", "a.csv", OK, ("--label", "label", "--prediction", "label", "--sensitive", "sex"),
         "the same column"),
    # cardinality and spec values
    Case("float_as_sensitive", "a.csv", pd.DataFrame({"x": np.random.default_rng(2).random(3000), "label": [0, 1] * 1500,
                                                       "pred": [1, 0] * 1500}),
         ("--label", "label", "--prediction", "pred", "--sensitive", "x"), "more than max_groups"),
    Case("threshold_nan", "a.csv", OK, (*SCORED[:5], "nan", *SCORED[6:]), "must be a number"),
    Case("threshold_infinite", "a.csv", OK, (*SCORED[:5], "inf", *SCORED[6:]), "must be a number"),
    Case("fdr_above_range", "a.csv", OK, (*BASE, "--fdr", "2"), "fdr must be between"),
    Case("min_support_negative", "a.csv", OK, (*BASE, "--min-support", "-5"), "min_support must be between"),
    Case("max_depth_zero", "a.csv", OK, (*BASE, "--max-depth", "0"), "max_depth must be between"),
    # labels joined from elsewhere
    Case("labels_repeated_ids", "a.csv", lambda p: (OK.assign(id=range(N)).to_csv(p, index=False),
                                                    pd.DataFrame({"id": [1, 1, 2], "y": [0, 1, 0]}).to_csv(
                                                        p.with_name("labels.csv"), index=False)),
         ("--labels", "{dir}/labels.csv", "--id", "id", "--label", "y", "--prediction", "pred", "--sensitive", "sex"),
         "repeated id value"),
    Case("labels_without_id", "a.csv", lambda p: (OK.assign(id=range(N)).to_csv(p, index=False),
                                                  pd.DataFrame({"ident": [1], "y": [0]}).to_csv(
                                                      p.with_name("labels.csv"), index=False)),
         ("--labels", "{dir}/labels.csv", "--id", "id", "--label", "y", "--prediction", "pred", "--sensitive", "sex"),
         "id column (labels)"),
    # time: zero rows in the window, garbage times
    Case("time_window_without_rows", "a.csv", TIMED, (*BASE, "--time", "ts", "--now", "1990-01-01",
                                                      "--rule", "psi of sex > 0.2"), "no rows in the chosen time window",
         command="check"),
    Case("time_column_garbage", "a.csv", TIMED.assign(ts=["not a date"] * N),
         (*BASE, "--time", "ts", "--rule", "psi of sex > 0.2"), "not dates or times", command="check"),
    Case("now_garbage", "a.csv", TIMED, (*BASE, "--time", "ts", "--now", "yesterday-ish", "--rule", "psi of sex > 0.2"),
         "is not a date or time", command="check"),
]


def one_line_error(code: int, out: str, err: str) -> str:
    """The single stderr line of a refused input (asserting the promise)."""
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fairwatch: error: "), err
    assert "internal error" not in err and "Traceback" not in err and "this is a bug" not in err, err
    return lines[0]


def test_the_corpus_is_large_and_named_uniquely():
    assert len(CORPUS) >= 40 and len({c.name for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, case):
    path = _write(tmp_path, case)
    flags = [f.replace("{dir}", str(tmp_path)) for f in case.flags]
    args = [case.command, str(path), *flags] + (["--out", str(tmp_path / "out")] if case.command == "audit" else [])
    code = main(args)
    captured = capsys.readouterr()
    line = one_line_error(code, captured.out, captured.err)
    assert case.expected in line, line
    assert not (tmp_path / "out").exists()


def test_names_full_of_sql_newlines_and_quotes_are_just_names(tmp_path, capsys):
    """Not bad input: such a column exists and audits normally, with the right counts."""
    name = "a;b -- c /* d */ 'e'\n\"f\"; DROP TABLE src"
    OK.rename(columns={"sex": name}).to_parquet(tmp_path / "a.parquet")
    code = main(["audit", str(tmp_path / "a.parquet"), "--label", "label", "--prediction", "pred", "--sensitive", name,
                 "--min-support", "1", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "out" / "snapshot.json").read_text())
    got = {g["slice"][name]: g["n"] for g in doc["groups"] if list(g["slice"]) == [name]}
    assert got == OK["sex"].value_counts().to_dict()


def test_repeated_header_names_stay_addressable(tmp_path, capsys):
    """The same name twice (real data such as COMPAS has it) is read as name and name_1: nothing silently lost."""
    frame = OK.assign(sex2=np.where(OK.sex == "f", "x", "y"))
    text = "sex,sex,label,pred\n" + "\n".join(f"{a},{b},{c},{d}" for a, b, c, d in
                                               zip(frame.sex, frame.sex2, frame.label, frame.pred))
    (tmp_path / "a.csv").write_text(text)
    code = main(["audit", str(tmp_path / "a.csv"), "--label", "label", "--prediction", "pred",
                 "--sensitive", "sex,sex_1", "--min-support", "1", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    doc = json.loads((tmp_path / "out" / "snapshot.json").read_text())
    assert {"sex_1": "x"} in [g["slice"] for g in doc["groups"]]


def test_unterminated_quote_drops_no_row(tmp_path, capsys):
    """A stray quote is read as part of a value, and every row is counted (no silent drop)."""
    (tmp_path / "a.csv").write_text(OK_CSV + '"f,1,0,0.5\nm,0,1,0.2\n')
    assert main(["audit", str(tmp_path / "a.csv"), *BASE, "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "snapshot.json").read_text())["data"]["rows"] == N + 2


def test_null_only_sensitive_column_is_refused(tmp_path, capsys):
    """A sensitive column NULL in every row would audit as one group with nothing to compare: refused."""
    OK.assign(sex=[None] * N).to_csv(tmp_path / "a.csv", index=False)
    code = main(["audit", str(tmp_path / "a.csv"), *BASE, "--out", str(tmp_path / "out")])
    assert "sensitive column sex is empty" in one_line_error(code, *capsys.readouterr())


# --- zero rows after a filter (the app's sidebar filters; the CLI audit has none) -------------------------------

def _timed_spec(tmp_path: Path, frame: pd.DataFrame):
    frame.assign(version=["v1", "v2"] * (N // 2)).to_csv(tmp_path / "t.csv", index=False)
    return parse_spec({"source": {"path": str(tmp_path / "t.csv")},
                       "columns": {"label": "label", "prediction": "pred", "sensitive": ["sex"], "time": "ts",
                                   "model_version": "version"}})


@pytest.mark.parametrize("row_filter, expected", [
    (RowFilter(model_version="v9"), "no rows"),
    (RowFilter(time_from="1990-01-01", time_to="1990-02-01"), "no rows in the chosen time window"),
])
def test_filters_without_rows_are_one_line_data_errors(tmp_path, row_filter, expected):
    spec = _timed_spec(tmp_path, TIMED)
    with pytest.raises(DataError, match=expected):
        run_audit(spec, row_filter)


def test_time_filter_on_garbage_times_is_a_data_error(tmp_path):
    spec = _timed_spec(tmp_path, TIMED.assign(ts=["garbage", "2025-01-02"] * (N // 2)))
    with pytest.raises(DataError, match="not dates or times"):
        run_audit(spec, RowFilter(time_from="2025-01-01"))


# --- the 2 GB upload and paths outside the data folder ---------------------------------------------------------

class _Claimed(bytes):
    """Bytes that claim a size (so a 2 GB upload is checked without writing 2 GB)."""

    def __new__(cls, size: int):
        obj = super().__new__(cls, b"sex,label,pred\n")
        obj.size = size
        return obj

    def __len__(self) -> int:
        return self.size


def test_upload_cap_is_configured_below_2_gb():
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    mb = config["server"]["maxUploadSize"]
    assert 0 < mb < 2048 and max_upload_bytes() == mb * 2**20


def test_a_2_gb_upload_is_refused_by_the_save_helper(tmp_path):
    with pytest.raises(SourceError, match="upload limit"):
        save_upload("big.csv", _Claimed(2 * 2**30), tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert save_upload("small.csv", OK_CSV.encode(), tmp_path).exists()


@pytest.fixture()
def data_folder(tmp_path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "outside.csv").write_text(OK_CSV)
    (root / "link.csv").symlink_to(tmp_path / "outside.csv")
    (root / "linkdir").symlink_to(tmp_path)
    return root


@pytest.mark.parametrize("typed, expected", [
    ("../outside.csv", "'..' is not allowed"),
    ("sub/../../outside.csv", "'..' is not allowed"),
    ("/etc/passwd", "outside the data folder"),
    ("{tmp}/outside.csv", "outside the data folder"),
    ("link.csv", "outside the data folder"),
    ("linkdir/outside.csv", "outside the data folder"),
    ("~/x.csv", "outside the data folder"),
    ("a\x00.csv", "NUL character"),
    ("   ", "no file given"),
])
def test_paths_outside_the_data_folder_are_refused(data_folder, typed, expected):
    with pytest.raises(SourceError, match=expected) as info:
        safe_data_path(typed.replace("{tmp}", str(data_folder.parent)), data_folder)
    assert "\n" not in str(info.value)


# --- the same inputs through the app ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def app_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fw-bad-app")
    write_demo(root / "demo.duckdb", rows=20_000)
    (root / "latin1.csv").write_bytes(OK_CSV.replace("f,", "fé,").encode("latin-1"))
    (root / "truncated.json").write_text('[{"sex":"f","label":1,"pred":0},')
    (root / "cased.csv").write_text(_header_rows("Sex,sex,label,pred", OK))
    (root.parent / "secret.csv").write_text(OK_CSV)
    (root / "escape.csv").symlink_to(root.parent / "secret.csv")
    return root


@pytest.mark.parametrize("typed, expected", [
    ("latin1.csv", "not UTF-8 encoded"),
    ("truncated.json", "truncated"),
    ("cased.csv", "differ only in case"),
    ("escape.csv", "outside the data folder"),
    ("/etc/passwd", "outside the data folder"),
])
def test_data_sources_page_shows_one_error_and_other_pages_work(app_data, monkeypatch, typed, expected):
    monkeypatch.setenv("FAIRWATCH_DATA_DIR", str(app_data))
    monkeypatch.delenv("FAIRWATCH_CONFIG", raising=False)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    at.switch_page("pages/1_Data_sources.py").run()
    at.radio(key="fw.src.kind").set_value("A file in the data folder").run()
    at.text_input(key="fw.src.typed").input(typed).run()
    assert not at.exception
    errors = [md_unescape(e.value) for e in at.error]
    assert any(expected in e for e in errors), errors
    assert all("\n" not in e and "Traceback" not in e and "Something went wrong" not in e for e in errors), errors
    for page in ("pages/3_Performance.py", "app.py"):
        at.switch_page(page).run()
        assert not at.exception and not at.error, [e.value for e in at.error]
