"""The same audit on DuckDB, a real PostgreSQL server and Spark in local mode gives identical numbers."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from connectors.audit import run_audit
from connectors.engines import check_select_only, postgres_base, transpile
from connectors.monitor import run_trends
from connectors.source import open_source
from metrics.errors import SourceError, SpecError
from metrics.spec import parse_spec
from tests.engine_servers import free_port, load_postgres, spark_available, start_postgres

COLUMNS = {"label": "y", "prediction": "p", "score": "score", "sensitive": ["sex", "race"], "time": "ts"}


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    """A prediction log with NULL groups, a quote in a value, and a year of timestamps."""
    rng = np.random.default_rng(11)
    n = 6000
    return pd.DataFrame({
        "sex": rng.choice(np.array(["f", "m", None], dtype=object), n, p=[0.48, 0.48, 0.04]),
        "race": rng.choice(np.array(["a", "b", "O'Neil \"x\"", "c"], dtype=object), n),
        "y": rng.integers(0, 2, n),
        "p": rng.integers(0, 2, n),
        "score": np.round(rng.random(n), 3),
        "ts": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h"),
    })


@pytest.fixture(scope="module")
def duckdb_spec(log, tmp_path_factory):
    """The log as Parquet on the default engine."""
    path = tmp_path_factory.mktemp("engines") / "log.parquet"
    log.to_parquet(path)
    return parse_spec({"source": {"path": str(path)}, "columns": COLUMNS})


@pytest.fixture(scope="module")
def postgres_url(log):
    """A private PostgreSQL holding the log as table `log`."""
    gen = start_postgres()
    url = next(gen)
    load_postgres(url, "log", log)
    yield url
    next(gen, None)


def group_values(spec) -> pd.Series:
    """Every metric value and support of every group, keyed for comparison."""
    rows = run_audit(spec).groups.rows.set_index(["group", "metric"])
    return pd.concat([rows["value"], rows["support"].astype(float)], keys=["value", "support"])


def window_values(spec) -> pd.Series:
    """Every windowed metric value, keyed for comparison."""
    table = run_trends(spec, grain="month")
    keys = [c for c in table.rows.columns if c in ("window", "group", "metric")]
    return table.rows.set_index(keys)["value"].sort_index()


def assert_same(a: pd.Series, b: pd.Series) -> None:
    """Same keys, same numbers (NaN where the other has NaN)."""
    assert list(a.index) == list(b.index) or set(a.index) == set(b.index)
    b = b.reindex(a.index)
    both_nan = a.isna() & b.isna()
    assert ((a - b).abs()[~both_nan] <= 1e-12).all(), (a - b).abs().max()
    assert (a.isna() == b.isna()).all()


def test_postgres_gives_identical_groups_and_windows(duckdb_spec, postgres_url):
    """Groups, intersections and time windows on PostgreSQL equal DuckDB's to 1e-12."""
    pg = parse_spec({"source": {"path": postgres_url, "table": "log"}, "columns": COLUMNS})
    assert_same(group_values(duckdb_spec), group_values(pg))
    assert_same(window_values(duckdb_spec), window_values(pg))


def test_postgres_query_source(duckdb_spec, postgres_url, log):
    """A SELECT as the source works and is read-only."""
    pg = parse_spec({"source": {"path": postgres_url, "query": "SELECT * FROM log WHERE ts < '2025-07-01'"},
                     "columns": COLUMNS})
    snap = run_audit(pg)
    assert snap.data.rows == int((log.ts < "2025-07-01").sum())


@pytest.mark.slow
def test_spark_gives_identical_groups_and_windows(duckdb_spec):
    """Spark SQL in local mode reading the same Parquet gives the same numbers."""
    reason = spark_available()
    if reason:
        pytest.skip(reason)
    spark = parse_spec({"source": {"path": duckdb_spec.source.path, "engine": "spark", "master": "local[1]"},
                        "columns": COLUMNS})
    assert_same(group_values(duckdb_spec), group_values(spark))
    assert_same(window_values(duckdb_spec), window_values(spark))


def test_unreachable_server_is_a_clear_message_with_timeout():
    """A closed port fails fast with a one-line message that never shows the password."""
    url = f"postgresql://auditor:s3cret-pw@127.0.0.1:{free_port()}/db"
    spec = parse_spec({"source": {"path": url, "table": "log"}, "columns": COLUMNS})
    started = time.monotonic()
    with pytest.raises(SourceError) as err:
        open_source(spec.source)
    assert time.monotonic() - started < 30  # bounded by the connect timeout, not hanging
    message = str(err.value)
    assert "cannot reach PostgreSQL" in message and "s3cret-pw" not in message and "***" in message
    assert "s3cret-pw" not in spec.source.describe()


def test_missing_table(postgres_url):
    """A table that does not exist is named in a one-line error."""
    spec = parse_spec({"source": {"path": postgres_url, "table": "nope"}, "columns": COLUMNS})
    with pytest.raises(SourceError, match="nope"):
        open_source(spec.source)


@pytest.mark.parametrize("query", [
    "DELETE FROM log",
    "DROP TABLE log",
    "SELECT 1; DROP TABLE log",
    "INSERT INTO log SELECT * FROM log",
    "CREATE TABLE x AS SELECT 1",
    "SELECT * INTO x FROM log",
    "UPDATE log SET y = 1",
])
def test_non_select_queries_are_refused(query):
    """Only a single SELECT may be a source: fairwatch never writes."""
    with pytest.raises(SpecError):
        check_select_only(query, "postgres")


def test_transpile_rewrites_duckdb_only_constructs():
    """GROUP BY ALL, approx_count_distinct and isnan become what PostgreSQL and Spark understand."""
    sql = ("SELECT COALESCE(CAST(\"a\" AS VARCHAR), '(missing)') AS g0, count(*)::BIGINT AS n, "
           "approx_count_distinct(b) AS d FROM src WHERE NOT isnan(s) AND x = $v GROUP BY ALL")
    pg = transpile(sql, "postgres", postgres_base("log", None))
    assert "GROUP BY 1" in pg and "ALL" not in pg.split("GROUP BY")[1]
    assert "COUNT(DISTINCT" in pg and "'NaN'" in pg and "%(v)s" in pg
    assert pg.startswith('WITH src AS (SELECT * FROM "log")')
    spark = transpile(sql, "spark", "SELECT * FROM src_base")
    assert ":v" in spark and "GROUP BY 1" in spark and "`a`" in spark


def test_table_names_are_quoted_not_spliced():
    """A table name with quotes or SQL stays one quoted identifier."""
    base = postgres_base('public.lo"g; DROP TABLE x', None)
    assert base == 'SELECT * FROM "public"."lo""g; DROP TABLE x"'
    with pytest.raises(SpecError):
        postgres_base("a.b.c.d", None)
