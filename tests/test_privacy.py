"""Personal data (issue 15): columns that look like direct identifiers stay out of example rows and labelling
queues unless the analyst shows them; [privacy] hide_columns/show_columns are checked against the source."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from fairwatch.cli import main
from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.drilldown import fetch_example_rows, visible_columns
from fairwatch.connectors.source import open_frame, open_source
from fairwatch.metrics.errors import DataError, SpecError
from fairwatch.metrics.privacy.personal import personal_data_kind, shown_columns
from fairwatch.metrics.audit.spec import parse_spec


@pytest.mark.parametrize("name, examples, kind", [
    ("name", None, "name"), ("first", None, "name"), ("Last_Name", None, "name"), ("customerName", None, "name"),
    ("dob", None, "birth"), ("date_of_birth", None, "birth"), ("birth_date", None, "birth"),
    ("email", None, "email"), ("contact", ["a.b@example.org", "x@y.com"], "email"),
    ("phone", None, "phone"), ("Phone", ["+1 555-123-4567"], "phone"),
    ("Phone", ["none", "yes, registered under the customers name"], None),  # German credit: a yes/no attribute
    ("c_case_number", None, "document"), ("ssn", None, "document"), ("passport_number", None, "document"),
    ("age", None, None), ("race", None, None), ("region", None, None), ("last_login_days", None, None),
    ("screening_date", None, None), ("decile_score", None, None),
])
def test_what_looks_like_personal_data(name, examples, kind):
    assert personal_data_kind(name, examples) == kind


def test_shown_columns_hide_wins_show_adds_personal_data_back_case_insensitively():
    names = ["id", "name", "DOB", "race", "score"]
    assert shown_columns(names, [], []) == ["id", "race", "score"]
    assert shown_columns(names, ["RACE"], ["dob"]) == ["id", "DOB", "score"]
    assert shown_columns(names, ["name"], ["name"]) == ["id", "race", "score"]


def _raw(**privacy) -> dict:
    """A spec mapping with the given [privacy] keys."""
    return {"source": {"path": "x.csv"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["sex"]},
            "privacy": privacy}


def test_spec_reads_hide_and_show_columns_and_the_older_name():
    spec = parse_spec(_raw(hide_columns=["ssn"], hidden_columns=["notes"], show_columns="dob, email"))
    assert spec.hidden_columns == ("notes", "ssn") and spec.shown_columns == ("dob", "email")
    assert parse_spec(spec.to_dict()) == spec  # round trip through the toml shape


@pytest.mark.parametrize("privacy, message", [
    ({"hide_columns": 3}, r"\[privacy\] hide_columns must be a list of column names"),
    ({"show_columns": ["dob", ""]}, r"\[privacy\] show_columns must be a list of column names"),
    ({"hide_columns": ["dob"], "show_columns": ["DOB"]}, "in both hide_columns and show_columns"),
    ({"show_column": ["dob"]}, r"unknown key\(s\) show_column in \[privacy\]"),
])
def test_bad_privacy_settings_are_one_line_errors(privacy, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(_raw(**privacy))


def _frame(n: int = 300) -> pd.DataFrame:
    """A small log with personal columns next to the audited ones."""
    rng = np.random.default_rng(0)
    return pd.DataFrame({"rid": np.arange(n), "first": rng.choice(["ann", "bob", "cy"], n),
                         "dob": pd.date_range("1970-01-01", periods=n, freq="D"), "sex": rng.choice(["f", "m"], n),
                         "region": rng.choice(list("nsew"), n), "y": rng.integers(0, 2, n), "p": rng.integers(0, 2, n)})


def _spec(**privacy):
    """The audit spec over `_frame`."""
    return parse_spec({"source": {"path": "(frame)"}, "columns": {"label": "y", "prediction": "p", "sensitive": ["sex"],
                                                                  "features": ["region"], "id": "rid"},
                       "policy": {"min_support": 5}, "privacy": privacy})


@pytest.mark.parametrize("key", ["hide_columns", "show_columns"])
def test_a_privacy_column_the_source_lacks_stops_the_audit(key):
    with pytest.raises(DataError, match=rf"\[privacy\] {key} names secrte, which the source does not have"):
        run_audit(_spec(**{key: ["secrte"]}), src=open_frame(_frame()))


def test_example_rows_leave_personal_data_out_unless_shown():
    src = open_frame(_frame())
    assert visible_columns(src, _spec()) == ["rid", "sex", "region", "y", "p"]
    rows = fetch_example_rows(src, _spec(show_columns=["dob"], hide_columns=["region"]), (("sex", "f"),))
    assert list(rows.columns) == ["rid", "dob", "sex", "y", "p"]


def test_compas_example_rows_show_no_names_or_birth_dates(shared_data):
    src = open_source(parse_spec({"source": {"path": str(shared_data / "compas" / "compas-scores-two-years.csv")},
                                  "columns": {"label": "two_year_recid", "score": "decile_score", "threshold": 5,
                                              "sensitive": ["race"]}}).source)
    try:
        spec = parse_spec({"source": {"path": "(compas)"}, "columns": {"label": "two_year_recid", "score": "decile_score",
                                                                       "threshold": 5, "sensitive": ["race"]}})
        rows = fetch_example_rows(src, spec, (("race", "Asian"),))
    finally:
        src.close()
    assert len(rows) > 0 and "race" in rows.columns and "decile_score" in rows.columns
    assert not {"name", "first", "last", "dob", "c_case_number", "r_case_number"} & set(rows.columns)


def _queue_header(tmp_path, capsys, *flags) -> list[str]:
    """The columns of the labelling queue `fairwatch plan` writes for a log whose feature is a first name."""
    frame = _frame()
    frame["y"] = frame["y"].astype("float").where(np.arange(len(frame)) % 4 != 0)  # pending labels: a pool to plan
    frame.to_csv(tmp_path / "log.csv", index=False)
    out = tmp_path / ("plan" + "".join(flags).replace("-", ""))
    code = main(["plan", str(tmp_path / "log.csv"), "--label", "y", "--prediction", "p", "--sensitive", "sex",
                 "--features", "first,region", "--id", "rid", "--min-support", "5", "--budget", "20",
                 "--out", str(out), *flags])
    assert code == 0, capsys.readouterr().err
    with open(out / "label_queue.csv", newline="", encoding="utf-8-sig") as fh:
        return next(csv.reader(fh))


def test_the_cli_queue_leaves_personal_data_out_unless_shown_and_honours_hide_columns(tmp_path, capsys):
    header = _queue_header(tmp_path, capsys)
    assert "first" not in header and {"rid", "sex", "region"} <= set(header)
    header = _queue_header(tmp_path, capsys, "--show-columns", "first", "--hide-columns", "region")
    assert "first" in header and "region" not in header


def test_the_cli_refuses_a_misspelt_hide_column(tmp_path, capsys):
    _frame().to_csv(tmp_path / "log.csv", index=False)
    code = main(["audit", str(tmp_path / "log.csv"), "--label", "y", "--prediction", "p", "--sensitive", "sex",
                 "--hide-columns", "frist", "--out", str(tmp_path / "audit")])
    err = capsys.readouterr().err
    assert code == 2 and "[privacy] hide_columns names frist" in err and len(err.strip().splitlines()) == 1
