"""Every query path on every column type the profile accepts, with a prediction or a score + threshold, labels inline
or in a separate table: each audit succeeds and its groups and slices equal fairlearn/pandas on the raw rows.

Issue 15: a score with a threshold plus any numeric feature crashed the slice search (the bin edges'
parameters were passed to a query that did not use them). One example would not have caught it; this
matrix runs the audit, the drill-down, the data plan and labelling queue, trends, the version
comparison and the threshold explorer for each combination.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import date, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import accuracy_score

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.drilldown import drill_down, fetch_example_rows
from fairwatch.connectors.monitor import run_trends, run_version_comparison
from fairwatch.connectors.quality_counts import parse_range
from fairwatch.connectors.queue import attach_plan, build_queue
from fairwatch.connectors.source import open_source
from fairwatch.connectors.threshold_counts import fetch_threshold_counts
from fairwatch.metrics.audit.spec import parse_spec
from tests.conftest import ROOT

N = 1500
THRESHOLD = 0.4
TEXTS = ["O'Neil", 'say "hi"', "back\\slash", "plain", "semi;colon", "$1 -- DROP"]
KINDS = ("integer", "float_nan", "boolean", "date", "text_quotes")
ORACLE = {"selection_rate": selection_rate, "true_positive_rate": true_positive_rate,
          "false_positive_rate": false_positive_rate, "accuracy": accuracy_score}


def _feature(kind: str, rng: np.random.Generator) -> tuple[pa.Array, list]:
    """The feature column of a kind as Arrow (the file's type) and as Python values (the oracle's)."""
    if kind == "integer":  # many values: the slice search cuts it into quantile bins (the crash's path)
        values = [int(v) for v in rng.integers(0, 40, N)]
        return pa.array(values, pa.int64()), values
    if kind == "float_nan":  # NaN and NULL both, which the engine must treat alike
        raw = np.round(rng.normal(50, 10, N), 2)
        values = [None if r < 0.05 else math.nan if r < 0.1 else float(v) for v, r in zip(raw, rng.random(N))]
        return pa.array(values, pa.float64(), from_pandas=False), values
    if kind == "boolean":
        values = [None if r < 0.05 else bool(r < 0.4) for r in rng.random(N)]
        return pa.array(values, pa.bool_()), values
    if kind == "date":
        values = [date(2025, 1, 1) + timedelta(days=int(d)) for d in rng.integers(0, 12, N)]
        return pa.array(values, pa.date32()), values
    values = [None if r < 0.05 else TEXTS[int(r * 100) % len(TEXTS)] for r in rng.random(N)]
    return pa.array(values, pa.string()), values


def _frames(kind: str, seed: int = 0) -> tuple[pa.Table, pd.DataFrame]:
    """A prediction log with the feature `f` (Arrow, as written) and the same rows for the oracle (pandas)."""
    rng = np.random.default_rng(seed)
    f_arrow, f_values = _feature(kind, rng)
    grp = rng.choice(np.array(["a", "b", "O'Neil"], dtype=object), N, p=[0.5, 0.3, 0.2])
    y = (rng.random(N) < 0.35 + 0.2 * (grp == "b")).astype("int64")
    score = np.round(np.clip(0.3 * y + rng.random(N) * 0.7, 0, 1), 3)
    pred = (rng.random(N) < 0.4).astype("int64")
    labelled = rng.random(N) < 0.85  # the rest are pending labels: the data plan's pool
    ts = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 90 * 24, N), unit="h")
    table = pa.table({
        "rid": pa.array(np.arange(N), pa.int64()), "ts": pa.array(ts.to_numpy(), pa.timestamp("us")),
        "mv": pa.array(rng.choice(["v1", "v2"], N)), "grp": pa.array(grp.tolist(), pa.string()),
        "f": f_arrow, "score": pa.array(score), "pred": pa.array(pred),
        "y": pa.array([int(v) if ok else None for v, ok in zip(y, labelled)], pa.int64()),
    })
    raw = pd.DataFrame({"rid": np.arange(N), "grp": grp, "f": pd.Series(f_values, dtype=object),
                        "score": score, "pred": pred, "y": np.where(labelled, y, -1)})
    return table, raw


def _write(tmp_path, kind: str, labels: str) -> tuple[dict, pd.DataFrame]:
    """The source files for one case and the [source] section that reads them."""
    table, raw = _frames(kind)
    if labels == "inline":
        pq.write_table(table, tmp_path / "log.parquet")
        return {"path": str(tmp_path / "log.parquet")}, raw
    labelled = table.filter(pa.compute.is_valid(table["y"]))
    pq.write_table(table.drop_columns(["y"]), tmp_path / "log.parquet")
    # Labels arrive in their own file, shuffled, joined on the id.
    order = np.random.default_rng(1).permutation(labelled.num_rows)
    pq.write_table(labelled.select(["rid", "y"]).take(pa.array(order)), tmp_path / "labels.parquet")
    return {"path": str(tmp_path / "log.parquet"), "labels_path": str(tmp_path / "labels.parquet"),
            "id_column": "rid"}, raw


def _spec(source: dict, decision: str):
    """The spec of a case: grp sensitive, f a slicing feature, time and model version, every slice counted."""
    columns = {"label": "y", "sensitive": ["grp"], "features": ["f"], "time": "ts", "model_version": "mv", "id": "rid"}
    columns |= {"prediction": "pred"} if decision == "prediction" else {"score": "score", "threshold": THRESHOLD}
    return parse_spec({"source": source, "columns": columns, "policy": {"min_support": 1},
                       "slices": {"max_depth": 2}, "privacy": {"suppress_below": 0}})


def _decided(raw: pd.DataFrame, decision: str) -> pd.DataFrame:
    """The raw rows with the decision the spec implies, and whether each row is labelled."""
    pred = raw["pred"] if decision == "prediction" else (raw["score"] >= THRESHOLD).astype("int64")
    return raw.assign(decision=pred.to_numpy(), labelled=(raw["y"] >= 0).to_numpy())


def _as_text(value, kind: str) -> str:
    """A raw value as the audit names it: '(missing)' for NULL/NaN, true/false, ISO dates, text as is."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "(missing)"
    if kind == "boolean":
        return "true" if value else "false"
    return value.isoformat() if kind == "date" else str(value)


def _in_slice(raw: pd.DataFrame, value: str, kind: str) -> np.ndarray:
    """Rows of the raw log whose feature value is the slice's (a range label for a binned number)."""
    bounds = parse_range(value)
    if bounds is not None and kind in ("integer", "float_nan"):
        low, _, high, closed = bounds
        x = pd.to_numeric(raw["f"], errors="coerce").to_numpy(float)
        return (x >= low) & ((x <= high) if closed else (x < high))
    return np.array([_as_text(v, kind) == value for v in raw["f"]])


def _check_groups(snap, rows: pd.DataFrame) -> None:
    """Every group's metrics and counts equal fairlearn/sklearn on the raw labelled rows."""
    got = snap.groups.rows.set_index(["group", "metric"])
    lab = rows[rows["labelled"]]
    mf = MetricFrame(metrics=ORACLE, y_true=lab["y"].to_numpy(), y_pred=lab["decision"].to_numpy(),
                     sensitive_features=lab["grp"].to_numpy())
    assert sorted(g for g in got.index.get_level_values(0).unique()) == sorted(f"grp={g}" for g in mf.by_group.index)
    for g, expected in mf.by_group.iterrows():
        for metric in ORACLE:
            assert got.loc[(f"grp={g}", metric), "value"] == pytest.approx(expected[metric], abs=1e-12), (g, metric)
        assert got.loc[(f"grp={g}", "accuracy"), "labelled_n"] == int((lab["grp"] == g).sum())
        assert got.loc[(f"grp={g}", "accuracy"), "n"] == int((rows["grp"] == g).sum())
    assert snap.data.rows == len(rows) and snap.data.labelled_rows == int(rows["labelled"].sum())


def _check_feature_slices(snap, rows: pd.DataFrame, kind: str) -> None:
    """Each one-predicate slice on the feature holds the raw rows with that value, with their errors."""
    table = snap.slices.rows
    single = table[[len(s) == 1 and s[0][0] == "f" for s in table["slice"]]]
    assert len(single) >= 2, "the feature was not searched"
    total = 0
    for s, n_rows, n, errors in zip(single["slice"], single["rows"], single["n"], single["errors"]):
        mask = _in_slice(rows, s[0][1], kind)
        decided = mask & rows["labelled"].to_numpy()
        assert n_rows == mask.sum(), s
        assert n == decided.sum(), s
        assert errors == int((rows["y"].to_numpy() != rows["decision"].to_numpy())[decided].sum()), s
        total += n_rows
    assert total == len(rows)  # the values (bins, '(missing)') cover every row once


def _other_paths(src, spec, snap) -> None:
    """Drill-down, example rows, data plan and queue, trends, version comparison, threshold explorer: all run."""
    slice_ = next(s for s in snap.slices.rows["slice"] if len(s) == 1 and s[0][0] == "f")
    analysis = drill_down(src, spec, snap, slice_)
    assert analysis is not None
    example = fetch_example_rows(src, spec, slice_)
    assert len(example) > 0 and "f" in example.columns
    planned = attach_plan(snap, 40, src)
    queue = build_queue(planned, planned.data_plan, src)
    assert set(queue.rows["reason"]) <= {"sample", "near_threshold", "label_error"}
    trends = run_trends(spec, src=src)
    assert trends is not None
    assert run_version_comparison(spec, "v1", "v2", src=src) is not None
    if spec.score is not None:
        assert int(fetch_threshold_counts(src, spec).counts["n"].sum()) == int(snap.data.labelled_rows)


@pytest.mark.parametrize("labels", ["inline", "separate"])
@pytest.mark.parametrize("decision", ["prediction", "score_threshold"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_query_path_on_every_column_type(tmp_path, kind, decision, labels):
    """The audit succeeds, its groups equal fairlearn and its feature slices equal pandas; every other path runs."""
    source, raw = _write(tmp_path, kind, labels)
    spec = _spec(source, decision)
    rows = _decided(raw, decision)
    src = open_source(spec.source)
    try:
        snap = run_audit(spec, src=src)
        _check_groups(snap, rows)
        _check_feature_slices(snap, rows, kind)
        _other_paths(src, spec, snap)
    finally:
        src.close()


def test_cli_audit_with_score_threshold_numeric_features_and_a_labels_table(tmp_path):
    """The reported crash as a real command: score + threshold, numeric features, labels in their own table."""
    table, raw = _frames("float_nan", seed=3)
    con = duckdb.connect(str(tmp_path / "log.duckdb"))
    con.register("t", table)
    con.execute("CREATE TABLE predictions AS SELECT * EXCLUDE (y) FROM t")
    con.execute("CREATE TABLE labels AS SELECT rid, y FROM t WHERE y IS NOT NULL")
    con.close()
    out = tmp_path / "audit"
    done = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), "audit", str(tmp_path / "log.duckdb"), "--table", "predictions",
         "--labels-table", "labels", "--id", "rid", "--label", "y", "--score", "score", "--threshold", str(THRESHOLD),
         "--sensitive", "grp", "--features", "f,rid", "--min-support", "1", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    snap = json.loads((out / "snapshot.json").read_text())
    rows = _decided(raw, "score_threshold")
    lab = rows[rows["labelled"]]
    assert snap["data"]["rows"] == N and snap["data"]["labelled_rows"] == len(lab)
    fpr = MetricFrame(metrics=false_positive_rate, y_true=lab["y"], y_pred=lab["decision"],
                      sensitive_features=lab["grp"]).by_group
    got = {e["slice"]["grp"]: e["metrics"]["false_positive_rate"]["value"] for e in snap["groups"]
           if e["grouping"] == "grp"}
    assert set(got) == set(fpr.index)
    for g, value in fpr.items():
        assert got[g] == pytest.approx(value, abs=1e-12)
