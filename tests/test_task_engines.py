"""Regression and multiclass audits give the same numbers on DuckDB, a real PostgreSQL server and Spark (issue 19)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.monitor import run_drift, run_trends, run_version_comparison
from fairwatch.metrics.audit.spec import parse_spec
from tests.engine_servers import postgres_with_nans, spark_available

TASKS = {"regression": {"label": "y", "prediction": "p"}, "multiclass": {"label": "yc", "prediction": "pc"}}


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    """Numbers with NaN and inf, classes with a class never seen as a label, NULL groups and a quote in a value."""
    rng = np.random.default_rng(19)
    n = 3000
    y = np.round(rng.normal(50, 10, n), 3)
    frame = pd.DataFrame({
        "id": np.arange(n),
        "sex": rng.choice(np.array(["f", "m", None], dtype=object), n, p=[0.48, 0.48, 0.04]),
        "race": rng.choice(np.array(["a", "b", "O'Neil"], dtype=object), n),
        "y": np.where(rng.random(n) < 0.03, np.nan, y),
        "p": np.round(y + rng.normal(0, 3, n), 3),
        "yc": rng.choice(["low", "mid", "high"], n),
        "region": rng.choice(np.array(["n", "s", None], dtype=object), n, p=[0.5, 0.45, 0.05]),
    })
    frame["pc"] = np.where(rng.random(n) < 0.7, frame["yc"], rng.choice(["low", "mid", "high", "other"], n))
    # A decision time over ~10 weeks and a model version, for the windowed counts (monitoring).
    frame["t"] = (pd.Timestamp("2025-03-01") + pd.to_timedelta(rng.integers(0, 70 * 86400, n), unit="s")
                  ).astype("datetime64[us]")
    frame["v"] = np.where(frame["t"] < pd.Timestamp("2025-04-10"), "v1", "v2")
    frame.loc[frame.index % 97 == 0, "p"] = np.inf
    return frame


def nan_ids(log: pd.DataFrame) -> list[int]:
    """Rows whose prediction is a stored NaN (not NULL): counted as non-finite on every engine."""
    return log["id"].iloc[5::150].tolist()


@pytest.fixture(scope="module")
def parquet(log, tmp_path_factory) -> str:
    """The log as Parquet, with real NaN predictions (pandas would write NULL)."""
    path = tmp_path_factory.mktemp("task-engines") / "log.parquet"
    table = pa.Table.from_pandas(log, preserve_index=False)
    p = log["p"].to_numpy(copy=True)
    p[log["id"].isin(nan_ids(log)).to_numpy()] = np.nan
    table = table.set_column(table.schema.get_field_index("p"), "p", pa.array(p))
    y = log["y"].to_numpy()
    table = table.set_column(table.schema.get_field_index("y"), "y", pa.array(y, mask=np.isnan(y)))
    pq.write_table(table, path)
    return str(path)


@pytest.fixture(scope="module")
def postgres_url(log):
    """A private PostgreSQL holding the log as table `log`, with the same NaN predictions."""
    yield from postgres_with_nans(log, "p", nan_ids(log))


def spec_for(task: str, source: dict):
    """The task's spec over a source."""
    return parse_spec({"source": source, "columns": {**TASKS[task], "sensitive": ["sex", "race"], "task": task,
                                                     "features": ["region"]},
                       "policy": {"min_support": 20}})


def assert_same(a, b) -> None:
    """Same rows, data summary and every value of the group table (1e-9 relative), and the same task tables."""
    da, db = a.to_dict(), b.to_dict()
    assert {k: v for k, v in da["data"].items() if k != "source"} == {k: v for k, v in db["data"].items() if k != "source"}
    ra = a.groups.rows.set_index(["group", "metric"]).sort_index()
    rb = b.groups.rows.set_index(["group", "metric"]).sort_index()
    assert ra.index.equals(rb.index)
    for col in ("value", "ci_low", "ci_high", "ratio", "difference", "p_value", "q_value"):
        np.testing.assert_allclose(ra[col].to_numpy(float), rb[col].to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=col)
    assert (ra["verdict"] == rb["verdict"]).all()
    for key in ("confusion_matrices", "distributions", "classes"):
        assert da.get(key) == db.get(key), key
    assert_same_search(a, b)


def assert_same_search(a, b) -> None:
    """The slice search, the data-quality counts, the findings and the group needs are the same (issue 19)."""
    sa, sb = (s.slices.rows.set_index("group").sort_index() for s in (a, b))
    assert sa.index.equals(sb.index) and len(sa)
    assert (sa["n"] == sb["n"]).all() and (sa["verdict"] == sb["verdict"]).all()
    for col in ("errors", "errors_sq", "rate", "p_value", "q_value"):
        np.testing.assert_allclose(sa[col].to_numpy(float), sb[col].to_numpy(float), rtol=1e-9, atol=1e-12, err_msg=col)
    qa, qb = (s.quality.rows.set_index(["group", "signal", "column"], drop=False).sort_index() for s in (a, b))
    assert qa.index.equals(qb.index)
    for col in ("x", "n", "complement_x", "complement_n", "clean_n", "clean_errors", "total_clean_n",
                "total_clean_errors"):
        np.testing.assert_allclose(qa[col].to_numpy(float), qb[col].to_numpy(float), rtol=1e-9, atol=1e-9, err_msg=col)
    assert [f.to_dict() for f in a.findings] == [f.to_dict() for f in b.findings]
    na, nb = (s.group_needs[["group", "metric", "need", "additional_rows"]].astype(str) for s in (a, b))
    assert na.equals(nb)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_postgres_gives_duckdbs_numbers(task, parquet, postgres_url):
    """A regression or multiclass audit on PostgreSQL equals the one on DuckDB."""
    assert_same(run_audit(spec_for(task, {"path": parquet})),
                run_audit(spec_for(task, {"path": postgres_url, "table": "log"})))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_spark_gives_duckdbs_numbers(task, parquet):
    """A regression or multiclass audit on Spark (local mode) equals the one on DuckDB."""
    reason = spark_available()
    if reason:
        pytest.skip(reason)
    assert_same(run_audit(spec_for(task, {"path": parquet})),
                run_audit(spec_for(task, {"path": parquet, "engine": "spark", "master": "local[1]"})))


def monitoring_of(task: str, source: dict) -> dict[str, pd.DataFrame]:
    """Weekly trends, coverage, the version comparison and drift of the task on one engine."""
    spec = parse_spec({"source": source, "columns": {**TASKS[task], "sensitive": ["sex", "race"], "task": task,
                                                     "time": "t", "model_version": "v"},
                       "policy": {"min_support": 20}})
    trends = run_trends(spec, "week")
    versions = run_version_comparison(spec, "v1", "v2")
    drift = run_drift(spec, "week")
    key = ["window", "group", "metric"]
    return {"trends": trends.rows.set_index(key)[["value", "ci_low", "ci_high", "support", "n", "ratio"]].sort_index(),
            "coverage": trends.coverage.set_index("window"),
            "versions": versions.rows.set_index(["group", "metric"])[
                ["value_a", "value_b", "diff_ci_low", "diff_ci_high", "p_value", "q_value"]].sort_index(),
            "drift": drift.tests.set_index(["window", "grouping"])[["psi", "statistic", "n"]].sort_index()}


def assert_same_monitoring(a: dict, b: dict) -> None:
    """Every windowed and per-version number equal to 1e-9 relative."""
    for name in a:
        assert a[name].index.equals(b[name].index), name
        np.testing.assert_allclose(a[name].to_numpy(float), b[name].to_numpy(float), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_postgres_gives_duckdbs_windows_and_versions(task, parquet, postgres_url):
    """Trends per week, coverage, versions and drift of a task on PostgreSQL equal DuckDB's."""
    assert_same_monitoring(monitoring_of(task, {"path": parquet}),
                           monitoring_of(task, {"path": postgres_url, "table": "log"}))


@pytest.mark.parametrize("task", sorted(TASKS))
def test_spark_gives_duckdbs_windows_and_versions(task, parquet):
    """Trends per week, coverage, versions and drift of a task on Spark equal DuckDB's."""
    reason = spark_available()
    if reason:
        pytest.skip(reason)
    assert_same_monitoring(monitoring_of(task, {"path": parquet}),
                           monitoring_of(task, {"path": parquet, "engine": "spark", "master": "local[1]"}))
