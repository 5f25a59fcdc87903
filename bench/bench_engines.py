"""Bench: the same audit on DuckDB, PostgreSQL and Spark (10M rows), and 100M rows on DuckDB in 2 GB.

GitHub issue 7. Prints, per engine, the time of the full audit (median of --repeat), the bytes of
query results that came back to Python (the aggregates: the sum of the result frames' deep memory
size), and whether the numbers equal DuckDB's; then a 100M-row Parquet audited on DuckDB under a
memory limit, with the child's peak resident memory. PostgreSQL is a throwaway server this bench
starts (Debian's binaries; the table is loaded once with COPY and kept in bench/out); Spark runs in
local mode. An engine that is not installed is reported as skipped.

    python bench/bench_engines.py                 # 10M rows, 100M on DuckDB
    python bench/bench_engines.py --quick         # 200k rows, 2M on DuckDB
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import common
from common import fmt_bytes, fmt_seconds, pass_fail

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEMORY_LIMIT = "2GB"  # the whole process's budget
# DuckDB's share of it: its memory_limit bounds the engine's buffers only; the interpreter, the imported
# libraries (about 220 MB) and the result frames live beside it.
ENGINE_LIMIT = "1.5GB"
COLUMNS = {"label": "y_true", "prediction": "y_pred", "score": "score", "sensitive": ["s1", "s2", "s3"]}


def measured_audit(spec) -> tuple[float, int, object]:
    """Run one audit, counting the bytes of every query result that reaches Python.

    Every module of connectors/ that runs queries does so through counts.run_query (imported by
    name) or, for the slice search's DuckDB script, slice_counts._run_script: each is wrapped
    where it is looked up.
    """
    import fairwatch.connectors.counts as counts
    import fairwatch.connectors.slice_counts as slice_counts
    from fairwatch.connectors.audit import run_audit

    moved = [0]

    def counted(fn, duckdb_only: bool = False):
        def wrapper(src, *args, **kwargs):
            frame = fn(src, *args, **kwargs)
            if not duckdb_only or src.runner is None:  # elsewhere the script runs through run_query
                moved[0] += int(frame.memory_usage(deep=True).sum())
            return frame
        return wrapper

    originals = [(m, "run_query", counts.run_query) for m in list(sys.modules.values())
                 if getattr(m, "__name__", "").startswith("connectors.") and getattr(m, "run_query", None)
                 is counts.run_query]
    originals.append((slice_counts, "_run_script", slice_counts._run_script))
    for module, name, fn in originals:
        setattr(module, name, counted(fn, duckdb_only=name == "_run_script"))
    try:
        started = time.perf_counter()
        snap = run_audit(spec)
        return time.perf_counter() - started, moved[0], snap
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)


def values(snap):
    """Every metric value of every group, and every searched slice's n, rate, q-value and score."""
    import pandas as pd

    groups = snap.groups.rows.set_index(["group", "metric"])["value"]
    if snap.slices is None:
        return groups
    rows = snap.slices.rows
    keys = [" & ".join(f"{f}={v}" for f, v in s) for s in rows["slice"]]
    slices = pd.concat([pd.Series(rows[c].astype(float).to_numpy(), index=pd.MultiIndex.from_arrays(
        [keys, [f"slice {c}"] * len(rows)])) for c in ("n", "rate", "q_value", "score")])
    return pd.concat([groups, slices])


def same(a, b) -> bool:
    """Equal to 1e-12, NaN where the other is NaN."""
    b = b.reindex(a.index)
    return bool(((a - b).abs().fillna(0) <= 1e-12).all() and (a.isna() == b.isna()).all())


def run_engine(name: str, spec, repeat: int, baseline) -> list:
    """Time an engine's audit; the first run also warms its session (Spark's JVM start is excluded)."""
    seconds, moved, snap = measured_audit(spec)
    times = [seconds] if name == "duckdb" else []
    for _ in range(repeat - len(times)):
        seconds, moved, snap = measured_audit(spec)
        times.append(seconds)
    equal = "reference" if baseline is None else ("yes" if same(baseline, values(snap)) else "NO")
    return [name, fmt_seconds(common.median(times)), fmt_bytes(moved), equal], values(snap)


def postgres_spec(parquet: Path, rows: int):
    """Start the throwaway server, load the table once, return (spec, stopper)."""
    import duckdb
    import psycopg

    from fairwatch.metrics.audit.spec import parse_spec
    from tests.engine_servers import start_postgres

    gen = start_postgres()
    url = next(gen)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS log (s1 text, s2 text, s3 bigint, y_true bigint, y_pred bigint, "
                     "score double precision)")
        have = conn.execute("SELECT count(*) FROM log").fetchall()[0][0]
        if have != rows:
            conn.execute("TRUNCATE log")
            started = time.perf_counter()
            con = duckdb.connect()
            reader = con.execute(f"SELECT s1, s2, s3, y_true, y_pred, score FROM read_parquet('{parquet}')")
            with conn.cursor().copy("COPY log FROM STDIN") as copy:
                while batch := reader.fetchmany(100_000):
                    for row in batch:
                        copy.write_row(row)
            conn.execute("ANALYZE log")
            print(f"  loaded {rows:,} rows into PostgreSQL in {time.perf_counter() - started:.0f} s")
    return parse_spec({"source": {"path": url, "table": "log"}, "columns": COLUMNS}), gen


def big_duckdb(rows: int) -> list:
    """The 100M-row audit in a child process under the memory limit."""
    path = common.synthetic_predictions(rows)
    child = common.run_child(["-c", f"""
import sys, time; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'bench')!r})
import common
from fairwatch.connectors.audit import run_audit
from fairwatch.connectors.source import open_source
from fairwatch.metrics.audit.spec import parse_spec
spec = parse_spec({{"source": {{"path": {str(path)!r}}}, "columns": {COLUMNS!r}}})
src = open_source(spec.source, memory_limit={ENGINE_LIMIT!r})
started = time.perf_counter()
snap = run_audit(spec, src=src)
common.child_report({{"seconds": time.perf_counter() - started, "rows": snap.data.rows}})
"""], timeout=1800)
    peak = child.result["peak_rss"]
    return [f"{child.result['rows']:,}", fmt_seconds(child.result["seconds"]), fmt_bytes(peak),
            f"{MEMORY_LIMIT} (DuckDB {ENGINE_LIMIT})", pass_fail(peak < 2 * 1024**3)]


def main() -> None:
    """Print the engine comparison and the out-of-core figure."""
    from fairwatch.metrics.audit.spec import parse_spec
    from tests.engine_servers import spark_available

    parser = common.bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", type=common.parse_count, default=None, help="rows for the engine comparison")
    parser.add_argument("--big", type=common.parse_count, default=None, help="rows for the out-of-core DuckDB run")
    parser.add_argument("--only-big", action="store_true", help="only the out-of-core DuckDB run")
    args = common.parse_args(parser)
    rows = args.rows or (200_000 if args.quick else 10_000_000)
    big = args.big or (2_000_000 if args.quick else 100_000_000)
    repeat = 1 if args.quick else args.repeat
    print(common.machine_summary())
    if args.only_big:
        common.print_table(["rows", "audit", "peak RSS", "memory limit", "under the limit"], [big_duckdb(big)],
                           title="Out of core: DuckDB over Parquet with a memory limit")
        return
    parquet = common.synthetic_predictions(rows)
    duck = parse_spec({"source": {"path": str(parquet)}, "columns": COLUMNS})
    table, base = [], None
    row, base = run_engine("duckdb", duck, repeat, None)
    table.append(row)
    try:
        pg, stopper = postgres_spec(parquet, rows)
        try:
            table.append(run_engine("postgresql", pg, repeat, base)[0])
        finally:
            next(stopper, None)
    except BaseException as exc:  # noqa: BLE001 - pytest.skip raises a BaseException subclass
        table.append(["postgresql", "skipped", "-", str(exc).splitlines()[0][:60]])
    reason = spark_available()
    if reason is None:
        spark = parse_spec({"source": {"path": str(parquet), "engine": "spark", "master": "local[2]"},
                            "columns": COLUMNS})
        table.append(run_engine("spark (local[2])", spark, repeat, base)[0])
    else:
        table.append(["spark", "skipped", "-", reason])
    common.print_table(["engine", "audit (median)", "bytes back to Python", "same numbers as DuckDB (groups and slices)"], table,
                       title=f"The same audit on each engine, {rows:,} rows (3 sensitive features, intersections)")
    common.print_table(["rows", "audit", "peak RSS", "memory limit", "under the limit"], [big_duckdb(big)],
                       title="Out of core: DuckDB over Parquet with a memory limit")


if __name__ == "__main__":
    main()
