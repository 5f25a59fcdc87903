"""`fairwatch audit`: the snapshot it writes, real data, and one-line errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame, false_negative_rate, false_positive_rate, selection_rate

from fairwatch.cli import main

COMPAS = "compas/compas-scores-two-years.csv"


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process and capture its output."""
    code = main(["audit", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def small_log(path: Path, n: int = 400, seed: int = 0, **overrides) -> Path:
    """A small CSV prediction log with two sensitive features."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "sex": rng.choice(["f", "m"], n),
        "race": rng.choice(["a", "b", "c"], n),
        "label": rng.integers(0, 2, n),
        "pred": rng.integers(0, 2, n),
        "score": np.round(rng.random(n), 3),
    })
    for key, value in overrides.items():
        df[key] = value
    df.to_csv(path, index=False)
    return path


def test_snapshot_has_the_documented_shape(tmp_path, capsys):
    """snapshot.json carries schema_version, spec, data counts, groups with metrics and disparities."""
    src = small_log(tmp_path / "log.csv")
    code, out, err = run_cli([str(src), "--label", "label", "--prediction", "pred", "--sensitive", "sex,race",
                              "--out", str(tmp_path / "audit")], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "audit" / "snapshot.json").read_text())
    assert doc["schema_version"] == 1
    assert doc["data"]["rows"] == 400 and doc["data"]["unlabelled_rows"] == 0
    assert doc["spec"]["columns"]["sensitive"] == ["sex", "race"]
    slices = [g["slice"] for g in doc["groups"]]
    assert {"sex": "f"} in slices and {"race": "a"} in slices and {"sex": "f", "race": "a"} in slices
    g = doc["groups"][0]
    fpr = g["metrics"]["false_positive_rate"]
    assert set(fpr) == {"value", "ci_low", "ci_high", "support", "masked"}
    assert fpr["ci_low"] <= fpr["value"] <= fpr["ci_high"]
    assert set(g["disparities"]["false_positive_rate"]) >= {"reference", "ratio", "difference", "q_value", "verdict"}
    assert all("share" in r and "n" in r for r in doc["representation"])
    assert "wrote" in out


def test_compas_equals_fairlearn_on_raw_rows(shared_data, tmp_path, capsys):
    """COMPAS by race, sex and age category, score >= 5: numbers equal fairlearn on the raw rows."""
    csv = shared_data / COMPAS
    code, _, err = run_cli([str(csv), "--score", "decile_score", "--threshold", "5", "--label", "two_year_recid",
                            "--sensitive", "race,sex,age_cat", "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "a" / "snapshot.json").read_text())
    raw = pd.read_csv(csv)
    y_true, y_pred = raw["two_year_recid"], (raw["decile_score"] >= 5).astype(int)
    checked = 0
    for features in (["race"], ["sex"], ["age_cat"], ["race", "sex"], ["race", "sex", "age_cat"]):
        mf = MetricFrame(metrics={"fpr": false_positive_rate, "fnr": false_negative_rate, "sr": selection_rate},
                         y_true=y_true, y_pred=y_pred, sensitive_features=raw[features])
        for entry in doc["groups"]:
            if set(entry["slice"]) != set(features):
                continue
            key = tuple(entry["slice"][f] for f in features)
            expected = mf.by_group.loc[key if len(key) > 1 else key[0]]
            for ours, theirs in (("false_positive_rate", "fpr"), ("false_negative_rate", "fnr"), ("selection_rate", "sr")):
                m = entry["metrics"][ours]
                if m.get("suppressed"):
                    # Withheld by the export's small-cell suppression ([privacy] suppress_below): nothing to compare.
                    assert m["value"] is None and m["support"] is None
                elif m["masked"]:
                    assert m["value"] is None and m["support"] < 30
                else:
                    assert m["value"] == pytest.approx(expected[theirs], abs=1e-12)
                    checked += 1
    assert checked > 50
    aa = next(g for g in doc["groups"] if g["slice"] == {"race": "African-American"})
    # ProPublica's published FPR for Black defendants (score_text != Low).
    assert aa["n"] == 3696 and round(aa["metrics"]["false_positive_rate"]["value"], 4) == 0.4485
    assert aa["metrics"]["false_positive_rate"]["support"] == 1795


@pytest.mark.parametrize("fmt", ["parquet", "json", "ndjson", "glob", "hive", "duckdb"])
def test_every_source_kind_gives_the_same_numbers(tmp_path, capsys, fmt):
    """CSV, Parquet, JSON, NDJSON, a glob, a hive-partitioned folder and a DuckDB table agree."""
    rng = np.random.default_rng(5)
    n = 600
    df = pd.DataFrame({"sex": rng.choice(["f", "m"], n), "label": rng.integers(0, 2, n), "pred": rng.integers(0, 2, n)})
    df.to_csv(tmp_path / "base.csv", index=False)
    args = ["--label", "label", "--prediction", "pred", "--sensitive", "sex"]
    assert run_cli([str(tmp_path / "base.csv"), *args, "--out", str(tmp_path / "base")], capsys)[0] == 0
    con = duckdb.connect()
    con.register("df", df)
    if fmt == "parquet":
        df.to_parquet(tmp_path / "x.parquet")
        source = [str(tmp_path / "x.parquet")]
    elif fmt == "json":
        df.to_json(tmp_path / "x.json", orient="records")
        source = [str(tmp_path / "x.json")]
    elif fmt == "ndjson":
        df.to_json(tmp_path / "x.ndjson", orient="records", lines=True)
        source = [str(tmp_path / "x.ndjson")]
    elif fmt == "glob":
        (tmp_path / "parts").mkdir()
        df.iloc[:300].to_parquet(tmp_path / "parts" / "a.parquet")
        df.iloc[300:].to_parquet(tmp_path / "parts" / "b.parquet")
        source = [str(tmp_path / "parts" / "*.parquet")]
    elif fmt == "hive":
        con.execute(f"COPY df TO '{tmp_path / 'hive'}' (FORMAT parquet, PARTITION_BY (sex))")
        source = [str(tmp_path / "hive")]
    else:
        db = duckdb.connect(str(tmp_path / "x.duckdb"))
        db.register("df", df)
        db.execute("CREATE TABLE log AS SELECT * FROM df")
        db.close()
        source = [str(tmp_path / "x.duckdb"), "--table", "log"]
    code, _, err = run_cli([*source, *args, "--out", str(tmp_path / "other")], capsys)
    assert code == 0, err
    base = json.loads((tmp_path / "base" / "snapshot.json").read_text())
    other = json.loads((tmp_path / "other" / "snapshot.json").read_text())
    assert base["groups"] == other["groups"]


def test_delayed_labels_are_joined_and_unlabelled_rows_counted(tmp_path, capsys):
    """Predictions joined to a labels table: rows without a label yet are counted, not dropped."""
    preds = pd.DataFrame({"id": range(100), "g": ["a", "b"] * 50, "pred": [1, 0, 0, 1] * 25})
    labels = pd.DataFrame({"id": range(70), "y": [1, 0, 1, 1, 0, 0, 1] * 10})
    db = duckdb.connect(str(tmp_path / "log.duckdb"))
    for name, frame in (("preds", preds), ("labels", labels)):
        db.register("f", frame)
        db.execute(f"CREATE TABLE {name} AS SELECT * FROM f")
        db.unregister("f")
    db.close()
    code, _, err = run_cli([str(tmp_path / "log.duckdb"), "--table", "preds", "--labels-table", "labels",
                            "--id", "id", "--label", "y", "--prediction", "pred", "--sensitive", "g",
                            "--min-support", "1", "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "a" / "snapshot.json").read_text())
    assert doc["data"]["rows"] == 100 and doc["data"]["unlabelled_rows"] == 30
    a = next(g for g in doc["groups"] if g["slice"] == {"g": "a"})
    assert a["n"] == 50 and a["labelled_n"] == 35


def bad(tmp_path: Path, name: str, frame: pd.DataFrame | None = None, text: str | None = None) -> Path:
    """Write a bad input file."""
    path = tmp_path / name
    if frame is not None:
        frame.to_csv(path, index=False)
    else:
        path.write_text(text or "")
    return path


BASE = ["--label", "label", "--prediction", "pred", "--sensitive", "sex"]


@pytest.mark.parametrize("case, extra, expected", [
    ("missing_column", ["--sensitive", "nope"], "'nope' is not a column of the source"),
    ("non_binary_label", [], "has 3 distinct values"),
    ("empty_file", [], "is empty (0 bytes)"),
    ("header_only", [], "has no rows"),
    ("all_unlabelled", [], "rows are unlabelled"),
    ("huge_cardinality", ["--sensitive", "user_id"], "distinct values, more than max_groups"),
    ("quoted_name", ["--sensitive", 'se"x; DROP TABLE src;--'], None),
    ("missing_file", [], "file not found"),
    ("string_labels_no_positive", [], "say which value is positive with --positive-label"),
    ("positive_not_present", ["--positive-label", "maybe"], "is not a value of label"),
    ("no_decision", ["--prediction", ""], "is empty"),
    ("score_not_numeric", ["--label", "label", "--sensitive", "pred", "--score", "sex", "--threshold", "0.5"],
     "not a number"),
    ("bad_flag_value", ["--min-support", "many"], "invalid int value"),
    ("bad_reference", ["--reference", "race=x"], "not a sensitive feature"),
    ("absent_reference", ["--reference", "sex=x"], "does not occur in the data"),
])
def test_bad_input_gives_one_line_error(tmp_path, capsys, case, extra, expected):
    """Each bad input exits 2 with one line on stderr that says what is wrong; nothing is written."""
    n = 60
    rng = np.random.default_rng(1)
    ok = pd.DataFrame({"sex": rng.choice(["f", "m"], n), "label": rng.integers(0, 2, n), "pred": rng.integers(0, 2, n)})
    path = {
        "missing_column": lambda: bad(tmp_path, "a.csv", ok),
        "non_binary_label": lambda: bad(tmp_path, "a.csv", ok.assign(label=[0, 1, 2] * 20)),
        "empty_file": lambda: bad(tmp_path, "a.csv", text=""),
        "header_only": lambda: bad(tmp_path, "a.csv", text="sex,label,pred\n"),
        "all_unlabelled": lambda: bad(tmp_path, "a.csv", ok.assign(label=[None] * n)),
        "huge_cardinality": lambda: bad(tmp_path, "a.csv", pd.DataFrame({
            "user_id": [f"u{i}" for i in range(10_000)], "label": [0, 1] * 5000, "pred": [1, 1] * 5000})),
        "quoted_name": lambda: bad(tmp_path, "a.csv", ok.rename(columns={"sex": 'se"x; DROP TABLE src;--'})),
        "missing_file": lambda: tmp_path / "nope.csv",
        "string_labels_no_positive": lambda: bad(tmp_path, "a.csv", ok.assign(label=["good", "bad"] * 30)),
        "positive_not_present": lambda: bad(tmp_path, "a.csv", ok),
        "no_decision": lambda: bad(tmp_path, "a.csv", ok),
        "score_not_numeric": lambda: bad(tmp_path, "a.csv", ok),
        "bad_flag_value": lambda: bad(tmp_path, "a.csv", ok),
        "bad_reference": lambda: bad(tmp_path, "a.csv", ok),
        "absent_reference": lambda: bad(tmp_path, "a.csv", ok),
    }[case]()
    # A case that names its own --label replaces the base flags instead of adding to them.
    flags = extra if "--label" in extra else [*BASE, *extra]
    args = [str(path), *flags, "--out", str(tmp_path / "out")]
    code, out, err = run_cli(args, capsys)
    if expected is None:
        # A column name full of quotes and SQL is just a name: quoted, it audits normally.
        assert code == 0, err
        doc = json.loads((tmp_path / "out" / "snapshot.json").read_text())
        assert {'se"x; DROP TABLE src;--': "f"} in [g["slice"] for g in doc["groups"]]
        return
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fairwatch: error: "), err
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "snapshot.json").exists()


def test_existing_snapshot_is_never_overwritten(tmp_path, capsys):
    """A second audit into the same folder is refused and the first one stays as it was."""
    src = small_log(tmp_path / "log.csv")
    args = [str(src), "--label", "label", "--prediction", "pred", "--sensitive", "sex", "--out", str(tmp_path / "a")]
    assert run_cli(args, capsys)[0] == 0
    before = (tmp_path / "a" / "snapshot.json").read_bytes()
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "never overwritten" in err
    assert (tmp_path / "a" / "snapshot.json").read_bytes() == before


def test_config_file_and_flags(tmp_path, capsys):
    """A fairwatch.toml drives the audit; a flag overrides it."""
    src = small_log(tmp_path / "log.csv")
    (tmp_path / "fairwatch.toml").write_text(
        f'[source]\npath = "{src}"\n[columns]\nlabel = "label"\nprediction = "pred"\nsensitive = ["sex"]\n'
        '[reference]\nsex = "m"\n[policy]\nmin_support = 5\n')
    code, _, err = run_cli(["--config", str(tmp_path / "fairwatch.toml"), "--sensitive", "sex,race",
                            "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    doc = json.loads((tmp_path / "a" / "snapshot.json").read_text())
    assert doc["spec"]["policy"]["min_support"] == 5
    f = next(g for g in doc["groups"] if g["slice"] == {"sex": "f"})
    assert f["disparities"]["selection_rate"]["reference"] == {"sex": "m"}
    assert any(set(g["slice"]) == {"sex", "race"} for g in doc["groups"])


def test_bad_config_file(tmp_path, capsys):
    """Broken TOML and unknown keys are one-line errors."""
    (tmp_path / "bad.toml").write_text("[source\npath=")
    code, _, err = run_cli(["--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and "not valid TOML" in err
    (tmp_path / "typo.toml").write_text('[columns]\nlabell = "x"\n')
    code, _, err = run_cli(["--config", str(tmp_path / "typo.toml"), "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and "unknown key(s) labell" in err


def test_the_snapshot_records_who_created_it_in_the_document_manifest_and_report(tmp_path, capsys):
    """--author names the creator; without it, the user running the command. The manifest's digest covers it."""
    import socket

    from fairwatch.connectors.access import local_user_name
    from fairwatch.connectors.export import verify

    src = small_log(tmp_path / "log.csv")
    flags = [str(src), "--label", "label", "--prediction", "pred", "--sensitive", "sex,race"]
    code, out, err = run_cli([*flags, "--out", str(tmp_path / "named"), "--author", "  Dana   Auditor "], capsys)
    assert code == 0, err
    assert "by Dana Auditor" in out
    doc = json.loads((tmp_path / "named" / "snapshot.json").read_text())
    manifest = json.loads((tmp_path / "named" / "manifest.json").read_text())
    user = local_user_name()
    expected = {"name": "Dana Auditor", "id": f"{user}@{socket.gethostname()}", "role": "", "signed_in": "cli"}
    assert doc["export"]["author"] == expected and manifest["author"] == expected
    assert "Dana Auditor" in (tmp_path / "named" / "report.html").read_text(encoding="utf-8")

    code, _, err = run_cli([*flags, "--out", str(tmp_path / "default")], capsys)
    assert code == 0, err
    author = json.loads((tmp_path / "default" / "snapshot.json").read_text())["export"]["author"]
    assert (author["name"], author["signed_in"]) == (user, "cli")

    # Who made it is part of what the hashes prove.
    text = (tmp_path / "named" / "manifest.json").read_text()
    (tmp_path / "named" / "manifest.json").write_text(text.replace("Dana Auditor", "Mallory"))
    assert not verify(tmp_path / "named").intact


def test_an_author_without_a_name_is_refused_before_the_audit(tmp_path, capsys):
    src = small_log(tmp_path / "log.csv")
    code, _, err = run_cli([str(src), "--label", "label", "--prediction", "pred", "--sensitive", "sex",
                            "--out", str(tmp_path / "a"), "--author", "   "], capsys)
    assert code == 2 and err.count("\n") == 1 and "the author needs a name" in err
    assert not (tmp_path / "a").exists()


def planned_log(path: Path) -> Path:
    """A log whose group b has too few labelled rows to judge (20 of its 200; the rest await labels)."""
    rng = np.random.default_rng(3)
    n_a, n_b = 2000, 200
    label = np.r_[rng.integers(0, 2, n_a).astype(float), rng.integers(0, 2, 20), np.full(n_b - 20, np.nan)]
    df = pd.DataFrame({"id": range(n_a + n_b), "g": ["a"] * n_a + ["b"] * n_b, "label": label,
                       "pred": rng.integers(0, 2, n_a + n_b)})
    df.to_csv(path, index=False)
    return path


def test_plan_budget_attaches_the_data_plan_to_the_snapshot(tmp_path, capsys):
    """--plan-budget N puts the plan for N labelled rows into snapshot.json; without it there is no plan."""
    src = planned_log(tmp_path / "log.csv")
    flags = [str(src), "--id", "id", "--label", "label", "--prediction", "pred", "--sensitive", "g",
             "--reference", "g=a"]
    code, out, err = run_cli([*flags, "--plan-budget", "100", "--out", str(tmp_path / "a")], capsys)
    assert code == 0, err
    plan = json.loads((tmp_path / "a" / "snapshot.json").read_text())["data_plan"]
    # b's 180 unlabelled rows hold the whole budget (its item's numbers are withheld as small cells: k = 10).
    assert (plan["budget"], plan["allocated"], plan["unspent"]) == (100, 100, 0)
    assert [i["group"] for i in plan["items"]] == ["g=b"] and plan["items"][0]["origin"] == "group"
    assert "data plan: 100 of 100 labelled rows over 1 open question(s)" in out
    assert run_cli([*flags, "--out", str(tmp_path / "b")], capsys)[0] == 0
    assert "data_plan" not in json.loads((tmp_path / "b" / "snapshot.json").read_text())


@pytest.mark.parametrize("budget", ["-5", "ten", "2.5"])
def test_a_bad_plan_budget_is_one_line_and_exit_2(tmp_path, capsys, budget):
    """A negative or non-integer budget is refused before the audit: one line, exit 2, nothing written."""
    src = small_log(tmp_path / "log.csv")
    code, _, err = run_cli([str(src), "--label", "label", "--prediction", "pred", "--sensitive", "sex",
                            f"--plan-budget={budget}", "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fairwatch: error: argument --plan-budget: must be a whole number")
    assert not (tmp_path / "out").exists()


def test_engine_limits_reach_duckdb_and_leave_the_numbers_alone(tmp_path, capsys, monkeypatch):
    """--memory-limit and --threads are DuckDB's settings of the audit's source (default 500MB); same numbers."""
    import fairwatch.connectors.source as source_mod

    seen = []
    real = source_mod.open_source

    def spy(spec, **kw):
        """Record the engine settings, then open the source with them and read them back from DuckDB."""
        src = real(spec, **kw)
        seen.append(src.con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone())
        return src

    monkeypatch.setattr(source_mod, "open_source", spy)
    log = small_log(tmp_path / "log.csv", n=3000)
    flags = [str(log), "--label", "label", "--prediction", "pred", "--sensitive", "sex,race", "--features", "score"]
    assert run_cli([*flags, "--out", str(tmp_path / "default")], capsys)[0] == 0
    code, _, err = run_cli([*flags, "--memory-limit", "64MB", "--threads", "1", "--out", str(tmp_path / "small")], capsys)
    assert code == 0, err
    assert seen[0][0] in ("476.8 MiB", "500.0 MB") and seen[1] == ("61.0 MiB", 1), seen
    docs = [json.loads((tmp_path / name / "snapshot.json").read_text()) for name in ("default", "small")]
    for block in ("groups", "findings", "data_quality", "slices"):
        assert docs[0].get(block) == docs[1].get(block), block


@pytest.mark.parametrize("flag, value, message", [
    ("--memory-limit", "12", "must be a size with a unit"),
    ("--memory-limit", "lots", "must be a size with a unit"),
    ("--memory-limit", "-1GB", "must be a size with a unit"),
    ("--threads", "0", "must be a whole number of threads"),
    ("--threads", "two", "must be a whole number of threads"),
])
def test_bad_engine_limits_are_one_line_and_exit_2(tmp_path, capsys, flag, value, message):
    """A memory limit without a unit or a thread count below 1 is refused before the audit: one line, exit 2."""
    src = small_log(tmp_path / "log.csv")
    code, _, err = run_cli([str(src), "--label", "label", "--prediction", "pred", "--sensitive", "sex",
                            f"{flag}={value}", "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"argument {flag}: {message}" in lines[0]
    assert not (tmp_path / "out").exists()


def test_usage_errors_and_no_finding_read_once(tmp_path, capsys):
    """Walked with the diabetes file: an unknown option said 'see fairwatch fairwatch --help', and an audit without
    findings printed 'no finding: No finding: ...'."""
    log = small_log(tmp_path / "log.csv")
    code, out, err = run_cli([str(log), "--label", "label", "--prediction", "pred", "--sensitive", "sex,race",
                              "--slice-error", "x", "--out", str(tmp_path / "a")], capsys)
    assert code == 2 and "unrecognized arguments: --slice-error x (see fairwatch --help)" in err
    assert "fairwatch fairwatch" not in err and len(err.strip().splitlines()) == 1
    code, out, _ = run_cli([str(log), "--label", "label", "--prediction", "pred", "--sensitive", "sex,race",
                            "--out", str(tmp_path / "b")], capsys)  # random predictions: nothing to find
    assert code == 0 and out.count("No finding") + out.count("no finding") == 1, out
