"""The same audit on DuckDB, a real PostgreSQL server and Spark in local mode gives identical numbers."""

from __future__ import annotations

import math
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.drilldown import drill_down, fetch_example_rows, fetch_slice_cells
from fairwatch.connectors.engines import check_select_only, postgres_base, transpile
from fairwatch.connectors.monitor import run_trends
from fairwatch.connectors.slice_counts import fetch_slice_counts
from fairwatch.connectors.source import open_source
from fairwatch.metrics.errors import DataError, SourceError, SpecError
from fairwatch.metrics.discovery.quality import CELL_COLUMNS
from fairwatch.metrics.audit.spec import parse_spec
from tests.engine_servers import free_port, load_postgres, postgres_with_nans, spark_available

COLUMNS = {"label": "y", "prediction": "p", "score": "score", "sensitive": ["sex", "race"],
           "features": ["age", "income"], "time": "ts"}
# Enough support for slices of depth 3 over 6,000 rows, few enough to keep the tests quick.
POLICY = {"min_support": 40}
NAN_ROWS = 120
CONFLICTS = 40


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    """A prediction log with NULL groups, a quote in a value, a year of timestamps, numbers to bin,
    missing scores and incomes, and rows repeated with the opposite label (conflicting duplicates)."""
    rng = np.random.default_rng(11)
    n = 6000
    frame = pd.DataFrame({
        "sex": rng.choice(np.array(["f", "m", None], dtype=object), n, p=[0.48, 0.48, 0.04]),
        "race": rng.choice(np.array(["a", "b", "O'Neil \"x\"", "c"], dtype=object), n),
        "age": rng.integers(18, 90, n).astype(np.int8),  # TINYINT in Parquet: still a number on every engine
        "income": np.where(rng.random(n) < 0.04, np.nan, np.round(rng.lognormal(10, 1, n), 2)),
        "y": rng.integers(0, 2, n),
        "p": rng.integers(0, 2, n),
        "score": np.where(rng.random(n) < 0.03, np.nan, np.round(rng.random(n), 3)),
        "ts": pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 365 * 24, n), unit="h"),
    })
    repeated = frame.iloc[:CONFLICTS].assign(y=lambda d: 1 - d["y"])
    frame = pd.concat([frame, repeated], ignore_index=True)
    frame.insert(0, "id", np.arange(len(frame)))
    return frame


def nan_ids(log: pd.DataFrame) -> list[int]:
    """Rows whose present income is stored as NaN rather than a number (a missing value too)."""
    return log.loc[log["income"].notna(), "id"].iloc[::50].head(NAN_ROWS).tolist()


@pytest.fixture(scope="module")
def duckdb_spec(log, tmp_path_factory):
    """The log as Parquet on the default engine; missing incomes are NULL and, in some rows, NaN."""
    path = tmp_path_factory.mktemp("engines") / "log.parquet"
    table = pa.Table.from_pandas(log, preserve_index=False)
    income = log["income"].to_numpy(copy=True)
    income[log["id"].isin(nan_ids(log)).to_numpy()] = np.nan
    # A plain NaN, not a NULL: pandas would write both as NULL.
    table = table.set_column(table.schema.get_field_index("income"), "income",
                             pa.array(income, mask=log["income"].isna().to_numpy()))
    pq.write_table(table, path)
    return parse_spec({"source": {"path": str(path)}, "columns": COLUMNS, "policy": POLICY})


@pytest.fixture(scope="module")
def postgres_url(log):
    """A private PostgreSQL holding the log as table `log` (with the same NaN incomes as the Parquet)."""
    yield from postgres_with_nans(log, "income", nan_ids(log))


@pytest.fixture(scope="module")
def postgres_spec(postgres_url):
    """The log on PostgreSQL."""
    return parse_spec({"source": {"path": postgres_url, "table": "log"}, "columns": COLUMNS, "policy": POLICY})


@pytest.fixture(scope="module")
def spark_spec(duckdb_spec):
    """The same Parquet read by Spark in local mode (skipped where Spark cannot run)."""
    reason = spark_available()
    if reason:
        pytest.skip(reason)
    return parse_spec({"source": {"path": duckdb_spec.source.path, "engine": "spark", "master": "local[1]"},
                       "columns": COLUMNS, "policy": POLICY})


@pytest.fixture(scope="module")
def duckdb_audit(duckdb_spec):
    """The full audit (groups, slices, data quality) on DuckDB, run once for the module."""
    return run_audit(duckdb_spec)


@pytest.fixture(scope="module")
def postgres_audit(postgres_spec):
    """The full audit on PostgreSQL."""
    return run_audit(postgres_spec)


@pytest.fixture(scope="module")
def spark_audit(spark_spec):
    """The full audit on Spark."""
    return run_audit(spark_spec)


def group_values(snap) -> pd.Series:
    """Every metric value and support of every group, keyed for comparison."""
    rows = snap.groups.rows.set_index(["group", "metric"])
    return pd.concat([rows["value"], rows["support"].astype(float)], keys=["value", "support"])


def window_values(spec) -> pd.Series:
    """Every windowed metric value, keyed for comparison."""
    table = run_trends(spec, grain="month")
    keys = [c for c in table.rows.columns if c in ("window", "group", "metric")]
    return table.rows.set_index(keys)["value"].sort_index()


def _keyed(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Rows indexed by their keys as text (slices are tuples of pairs), in key order."""
    index = pd.MultiIndex.from_arrays([rows[k].map(repr) for k in keys], names=keys)
    return rows.set_index(index).drop(columns=keys).sort_index()


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame, keys: list[str]) -> None:
    """The same keys; numbers equal to 1e-12 (NaN where the other has NaN); everything else equal."""
    a, b = _keyed(a, keys), _keyed(b, keys)
    assert list(a.index) == list(b.index), set(a.index) ^ set(b.index)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if pd.api.types.is_numeric_dtype(a[col]) and not pd.api.types.is_bool_dtype(a[col]):
            assert_same(a[col].astype(float), b[col].astype(float))
        else:
            assert a[col].map(repr).tolist() == b[col].map(repr).tolist(), col


def assert_same_slices_and_quality(one, other) -> None:
    """Every found slice (predicates, counts, rates, tests, score) and every quality signal agree."""
    s1, s2 = one.slices, other.slices
    for name in ("error", "evaluated", "tested", "findings", "total_n", "max_depth", "notes"):
        assert getattr(s1, name) == getattr(s2, name), name
    assert abs(s1.total_errors - s2.total_errors) <= 1e-12 and abs(s1.overall_rate - s2.overall_rate) <= 1e-12
    assert s1.evaluated > 100
    # The count of findings is exactly the slices significantly worse than the rest (BH q below the default FDR).
    rows = s1.rows
    worse = (rows["q_value"] < 0.05) & (rows["n"] >= POLICY["min_support"]) & (rows["difference"] > 0)
    assert s1.findings == int(rows["finding"].sum()) == int(worse.sum())
    # Binned numbers are in the slices: their range labels (the quantile edges) must agree too.
    assert any(pair[0] == "income" and pair[1].startswith("[") for s in s1.rows["slice"] for pair in s)
    assert_same_rows(s1.rows, s2.rows, ["slice"])
    q1, q2 = one.quality, other.quality
    assert q1.notes == q2.notes
    r1, r2 = q1.label_error_rule, q2.label_error_rule
    assert (r1.positives, r1.negatives) == (r2.positives, r2.negatives)
    assert abs(r1.t1 - r2.t1) <= 1e-12 and abs(r1.t0 - r2.t0) <= 1e-12
    assert_same_rows(q1.slices, q2.slices, ["slice"])
    assert_same_rows(q1.rows, q2.rows, ["slice", "signal", "column"])
    # The data was built so that every signal has something to count.
    totals = q1.rows.groupby("signal")["x"].sum()
    assert (totals[["missing_values", "conflicting_duplicates", "label_errors"]] > 0).all(), totals
    # Each signal's unflagged confusion cells were counted (compared above with the other columns), and the
    # sensitive groups' needs built on them agree, with their evidence of the gap without the flagged rows.
    assert (q1.rows.loc[q1.rows["signal"] == "missing_values", CELL_COLUMNS].sum() > 0).all()
    keys = ["group", "metric", "verdict", "need", "additional_rows", "message"]
    assert one.group_needs[keys].astype(str).equals(other.group_needs[keys].astype(str))
    assert ([e["quality"].get("without_flagged") for e in one.group_needs["evidence"]]
            == [e["quality"].get("without_flagged") for e in other.group_needs["evidence"]])


def assert_same(a: pd.Series, b: pd.Series) -> None:
    """Same keys, same numbers (NaN where the other has NaN)."""
    assert list(a.index) == list(b.index) or set(a.index) == set(b.index)
    b = b.reindex(a.index)
    both_nan = a.isna() & b.isna()
    assert ((a - b).abs()[~both_nan] <= 1e-12).all(), (a - b).abs().max()
    assert (a.isna() == b.isna()).all()


def test_postgres_gives_identical_groups_and_windows(duckdb_spec, postgres_spec, duckdb_audit, postgres_audit):
    """Groups, intersections and time windows on PostgreSQL equal DuckDB's to 1e-12."""
    assert_same(group_values(duckdb_audit), group_values(postgres_audit))
    assert_same(window_values(duckdb_spec), window_values(postgres_spec))


def test_postgres_gives_identical_slices_and_quality(duckdb_audit, postgres_audit):
    """The slice search and the data-quality signals run in PostgreSQL and equal DuckDB's to 1e-12."""
    assert postgres_audit.slices is not None and postgres_audit.quality is not None
    assert_same_slices_and_quality(duckdb_audit, postgres_audit)


@pytest.mark.parametrize("error", ["false_negative", "score_loss"])
def test_postgres_slice_counts_for_other_error_signals(duckdb_spec, postgres_spec, error):
    """Every error signal's slice counts agree; score losses (float sums) to 1e-12 relative."""
    counts = []
    for spec in (duckdb_spec, postgres_spec):
        spec = parse_spec(spec.to_dict() | {"slices": {"error": error}})
        src = open_source(spec.source)
        try:
            counts.append(fetch_slice_counts(src, spec, "1", "1"))
        finally:
            src.close()
    a, b = (c.frame.set_index(list(c.features)) for c in counts)
    assert list(a.index) == list(b.index) and len(a) > 100
    assert (a[["rows", "labelled", "n"]] == b[["rows", "labelled", "n"]]).all().all()
    for col in ("errors", "errors_sq"):
        assert np.allclose(a[col], b[col], rtol=1e-12, atol=0), (a[col] - b[col]).abs().max()
    assert counts[0].bin_edges == counts[1].bin_edges and counts[0].total_n == counts[1].total_n


def test_postgres_refuses_a_many_valued_feature_as_duckdb_does(duckdb_spec, postgres_spec):
    """An id-like text feature is refused with the same one-line DataError on both engines."""
    messages = []
    for spec in (duckdb_spec, postgres_spec):
        spec = parse_spec(spec.to_dict() | {"columns": spec.to_dict()["columns"] | {"features": ["ts"]}})
        src = open_source(spec.source)
        try:
            with pytest.raises(DataError, match="max_groups") as err:
                fetch_slice_counts(src, spec, "1", "1")
            messages.append(str(err.value))
        finally:
            src.close()
    assert all("\n" not in m for m in messages)


def test_postgres_probe_sees_new_rows_after_its_ttl(postgres_url, log):
    """The dashboard's change detector on PostgreSQL: rows and newest time, asked again only after the TTL."""
    import psycopg

    from fairwatch.connectors import freshness

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE fresh AS SELECT * FROM log")
    source = parse_spec({"source": {"path": postgres_url, "table": "fresh"}, "columns": COLUMNS}).source
    first = freshness.remote_probe(source, "ts")
    assert first.split("|")[0] == str(len(log)) and first.split("|")[1].startswith(str(log["ts"].max().date()))
    now = [0.0]
    ask = lambda: freshness.cached_probe(source, "ts", ttl=30, clock=lambda: now[0])  # noqa: E731
    assert ask() == first
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("INSERT INTO fresh SELECT * FROM log LIMIT 5")
    assert ask() == first  # within the TTL: no query
    now[0] += 31
    assert ask().split("|")[0] == str(len(log) + 5)
    unreachable = parse_spec({"source": {"path": f"postgresql://nobody@127.0.0.1:{free_port()}/x", "table": "t"},
                              "columns": COLUMNS}).source
    assert freshness.remote_probe(unreachable, "ts") == "unreachable"


def test_postgres_query_source(duckdb_spec, postgres_url, log):
    """A SELECT as the source works and is read-only."""
    pg = parse_spec({"source": {"path": postgres_url, "query": "SELECT * FROM log WHERE ts < '2025-07-01'"},
                     "columns": COLUMNS, "policy": POLICY})
    snap = run_audit(pg)
    assert snap.data.rows == int((log.ts < "2025-07-01").sum())


@pytest.mark.slow
def test_spark_gives_identical_groups_and_windows(duckdb_spec, spark_spec, duckdb_audit, spark_audit):
    """Spark SQL in local mode reading the same Parquet gives the same numbers."""
    assert_same(group_values(duckdb_audit), group_values(spark_audit))
    assert_same(window_values(duckdb_spec), window_values(spark_spec))


@pytest.mark.slow
def test_spark_probe_counts_the_rows(spark_spec, log):
    """The dashboard's change detector on Spark: the row count and newest time of the source."""
    from fairwatch.connectors.freshness import remote_probe

    rows, newest = remote_probe(spark_spec.source, "ts").split("|")
    assert rows == str(len(log)) and newest.startswith(str(log["ts"].max().date()))


@pytest.mark.slow
def test_spark_gives_identical_slices_and_quality(duckdb_audit, spark_audit):
    """The slice search and the data-quality signals run in Spark and equal DuckDB's to 1e-12."""
    assert spark_audit.slices is not None and spark_audit.quality is not None
    assert_same_slices_and_quality(duckdb_audit, spark_audit)


def drill(spec, snapshot, slice_):
    """The drill-down of one slice on a spec's engine, with its first page of example rows."""
    src = open_source(spec.source)
    try:
        return drill_down(src, spec, snapshot, slice_), fetch_example_rows(src, spec, slice_)
    finally:
        src.close()


def binned_finding(snapshot):
    """The first found slice that names a binned number (its range label must mean the same rows everywhere)."""
    return next(s for s in snapshot.slices.rows["slice"] if any(f == "income" and v.startswith("[") for f, v in s))


@pytest.mark.parametrize("engine", ["postgres", "spark"])
def test_drill_down_on_every_engine_equals_duckdb(request, engine, duckdb_spec, duckdb_audit):
    """A slice's drill-down (counts, test, need, confusion, other features' values in the search's bins) and its
    example rows come out the same on PostgreSQL and Spark as on DuckDB."""
    spec, audit = request.getfixturevalue(f"{engine}_spec"), request.getfixturevalue(f"{engine}_audit")
    slice_ = binned_finding(duckdb_audit)
    (ours, our_rows), (theirs, their_rows) = drill(duckdb_spec, duckdb_audit, slice_), drill(spec, audit, slice_)
    assert (ours.rows, ours.rest_rows, ours.need, ours.additional_rows) == \
        (theirs.rows, theirs.rest_rows, theirs.need, theirs.additional_rows)
    for key, value in ours.error.items():
        other = theirs.error[key]
        assert (value == other or abs(value - other) <= 1e-12 or (value != value and other != other)), key
    assert_same_rows(ours.confusion, theirs.confusion, ["rows"])  # tn, fp, fn, tp per side
    # Every other feature's values, numbers in the search's range labels, inside and outside the slice.
    assert_same_rows(ours.values, theirs.values, ["feature", "value", "in_slice"])
    assert any(v.startswith("[") for v in ours.values.loc[ours.values["feature"] == "age", "value"])
    # The page of rows: the same rows (ties in time may order them differently within the page).
    assert len(our_rows) == len(their_rows) > 0
    assert sorted(our_rows["id"].tolist()) == sorted(their_rows["id"].tolist())


@pytest.fixture(scope="module")
def graded_specs(log, tmp_path_factory, postgres_url):
    """The log with a float-coded sensitive feature (grade 1.0, 2.0, 2.5 or missing) as Parquet and in PostgreSQL."""
    grade = np.random.default_rng(5).choice([1.0, 2.0, 2.5, np.nan], len(log), p=[0.45, 0.35, 0.15, 0.05])
    frame = log.assign(grade=grade)
    path = tmp_path_factory.mktemp("graded") / "graded.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    load_postgres(postgres_url, "graded", frame)
    columns = COLUMNS | {"sensitive": ["grade", "sex"]}
    return {"duckdb": {"path": str(path)}, "postgres": {"path": postgres_url, "table": "graded"},
            "spark": {"path": str(path), "engine": "spark", "master": "local[1]"}}, columns


@pytest.mark.parametrize("engine", ["postgres", "spark"])
def test_float_coded_groups_have_the_same_names_on_every_engine(engine, graded_specs):
    """A float column used as groups (1.0, 2.0, 2.5) gives the same group names and numbers on every engine
    (PostgreSQL writes a whole float as '1', DuckDB and Spark as '1.0'), and a slice naming one selects the same
    rows."""
    if engine == "spark" and spark_available():
        pytest.skip(spark_available())
    sources, columns = graded_specs
    specs = [parse_spec({"source": sources[e], "columns": columns, "policy": POLICY}) for e in ("duckdb", engine)]
    audits = [run_audit(spec, search_slices=False) for spec in specs]
    names = [set(a.groups.rows.loc[a.groups.rows["grouping"] == "grade", "group"]) for a in audits]
    assert names[0] == names[1] == {"grade=1.0", "grade=2.0", "grade=2.5", "grade=(missing)"}, names
    assert_same(group_values(audits[0]), group_values(audits[1]))
    inside = []
    for spec in specs:
        src = open_source(spec.source)
        try:
            cells = fetch_slice_cells(src, spec, (("grade", "1.0"), ("sex", "f")))
        finally:
            src.close()
        inside.append(int(cells.loc[cells["in_slice"], "n"].sum()))
    assert inside[0] == inside[1] > 0


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.one_of(st.integers(-10**6, 10**6).map(float), st.floats(allow_nan=True, width=64),
                                 st.none()), min_size=1, max_size=30))
def test_float_text_on_duckdb_is_duckdb_s_own_cast(values):
    """Property: the engine-neutral text of a float is exactly DuckDB's own CAST (so no DuckDB group name changes),
    whole values below 1e15 are '<integer>.0' (what PostgreSQL is brought to), and NaN is 'nan'."""
    import duckdb

    from fairwatch.connectors.counts import text_expr

    con = duckdb.connect()
    con.execute("CREATE TABLE t (i INTEGER, x DOUBLE)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    got = con.execute(f"SELECT {text_expr('x', 'DOUBLE')}, CAST(x AS VARCHAR), x FROM t ORDER BY i").fetchall()
    for ours, theirs, x in got:
        if x is not None and math.isnan(x):
            assert ours == "nan"  # DuckDB 2.0 itself writes a negative NaN as '-na' and a NUL byte
            continue
        assert (ours == theirs or (x == 0 and ours == "0.0")), (x, ours, theirs)  # -0.0 is written 0.0
        if x is not None and math.isfinite(x) and abs(x) < 1e15 and x == math.floor(x):
            assert ours == f"{int(x)}.0"


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


def test_transpile_rewrites_slice_and_quality_constructs():
    """count_if, list_filter lambdas, quantile lists and isnan's NULL become each engine's equivalent."""
    sql = ("SELECT count_if(x IS NULL OR isnan(x)) AS m, quantile_disc(CAST(x AS DOUBLE), [2.5e-01, 7.5e-01]) AS q, "
           "unnest(list_filter([CASE WHEN NOT isnan(x) THEN 0 END, -1], lambda v: v IS NOT NULL)) AS k FROM src")
    pg = transpile(sql, "postgres", postgres_base("log", None))
    # count(*) FILTER is 0 over no rows (SUM(CASE ...) would be NULL); isnan inside it is rewritten too.
    assert "COUNT(*) FILTER(WHERE x IS NULL OR x = CAST('NaN' AS DOUBLE PRECISION))" in pg
    assert "PERCENTILE_DISC(ARRAY[2.5e-01, 7.5e-01]) WITHIN GROUP (ORDER BY" in pg
    assert "ARRAY_REMOVE(ARRAY[" in pg and "UNNEST(" in pg and "ISNAN" not in pg.upper().replace("'NAN'", "")
    spark = transpile(sql, "spark", "SELECT * FROM src_base")
    # One exact percentile_disc per fraction (never percentile_approx), and isnan(NULL) stays NULL.
    assert spark.count("PERCENTILE_DISC(") == 2 and "APPROX" not in spark and "WITHIN GROUP (ORDER BY" in spark
    assert "IF(x IS NULL, NULL, ISNAN(x))" in spark and "EXPLODE(FILTER(ARRAY(" in spark


def test_table_names_are_quoted_not_spliced():
    """A table name with quotes or SQL stays one quoted identifier."""
    base = postgres_base('public.lo"g; DROP TABLE x', None)
    assert base == 'SELECT * FROM "public"."lo""g; DROP TABLE x"'
    with pytest.raises(SpecError):
        postgres_base("a.b.c.d", None)


@pytest.mark.parametrize("engine", ["postgres", "spark"])
def test_whatif_on_every_engine_equals_duckdb(request, engine, duckdb_spec):
    """The what-if reads the audit's own bucket counts, so PostgreSQL and Spark give DuckDB's thresholds and rates."""
    from fairwatch.connectors.whatif import run_whatif

    spec = request.getfixturevalue(f"{engine}_spec")
    results = [run_whatif(s, ["race"], "equalized_odds", grain="month") for s in (duckdb_spec, spec)]
    a, b = (r.policy() for r in results)
    assert a["groups"] == b["groups"] and a["fingerprint"] == b["fingerprint"]
    assert a["fit_range"] == b["fit_range"] and a["evaluation_range"] == b["evaluation_range"]
    for one, other in ((results[0].fitted, results[1].fitted), (results[0].later, results[1].later)):
        assert_same_rows(one.rates, other.rates, ["group", "metric"])
        assert_same_rows(one.changes, other.changes, ["group"])


@pytest.mark.parametrize("engine", ["postgres", "spark"])
def test_whatif_from_score_threshold_with_a_tolerance_equals_duckdb(request, engine, duckdb_spec):
    """Today's decision from score >= threshold (decided per row in SQL) and equalized odds with a tolerance agree too."""
    from dataclasses import replace

    from fairwatch.connectors.whatif import run_whatif
    from fairwatch.metrics.policy.whatif import Tolerance

    spec = request.getfixturevalue(f"{engine}_spec")
    specs = [replace(s, prediction=None, positive_prediction=None, threshold=0.5) for s in (duckdb_spec, spec)]
    results = [run_whatif(s, ["race"], "equalized_odds", tolerance=Tolerance("difference", 0.05), grain="month")
               for s in specs]
    a, b = (r.policy() for r in results)
    assert a["groups"] == b["groups"] and a["fingerprint"] == b["fingerprint"]
    for one, other in ((results[0].fitted, results[1].fitted), (results[0].later, results[1].later)):
        assert_same_rows(one.rates, other.rates, ["group", "metric"])
        assert_same_rows(one.changes, other.changes, ["group"])
