"""Bench: the windowed aggregation (monitoring over time) against a bare GROUP BY, and the metric step.

GitHub issue 5. On a synthetic Parquet log (default 10M rows over 365 days of 2025: ts, model_version
'v1'/'v2' switching on 2025-07-01, 3 sensitive features with 2, 6 and 6 values, 0/1 label with the
last ten weeks progressively unlabelled, 0/1 prediction), generated once with DuckDB into
bench/out/cache (git-ignored), it prints the median of --repeat runs, interleaved, in one process:

- bare GROUP BY s1, s2, s3, y_true, y_pred (the floor: what any count-based audit must pay);
- bare windowed GROUP BY with date_trunc('week', ts) and with time_bucket (the same windows; which is faster);
- `fetch_window_counts`: everything the monitor pays in the engine (time-column check, cardinality
  guard, the one aggregation by week × s1 × s2 × s3 × label × prediction), and the same with the
  model version as one more key (what the version comparison reads);
- the metric step on those counts: `trend_table` (vectorised over windows) against calling the
  audit's `compute_group_table` once per window (run once: it is the slow alternative), and
  `drift_table`, the version comparison and `run_check` end to end.

PASS/FAIL: `fetch_window_counts` under 2 s at the largest size. Informational: exits 0 either way.

    python bench/bench_trends.py               # 10M rows, 3 repeats
    python bench/bench_trends.py --quick       # 200k rows, one repeat
"""

from __future__ import annotations

import time

import common
from common import fmt_ratio, fmt_seconds, pass_fail

TARGET_SECONDS = 2.0
_U = "((hash(i, {k}) % 1000000)::DOUBLE / 1000000.0)"
# Deterministic (hash of the row number), so every run and thread count writes the same rows.
TRENDS_SQL = f"""
SELECT ts, CASE WHEN ts < TIMESTAMP '2025-07-01' THEN 'v1' ELSE 'v2' END AS model_version, s1, s2, s3,
    CASE WHEN {_U.format(k=7)} < greatest(0.0, least(1.0, (epoch(ts) - epoch(TIMESTAMP '2025-10-22')) / (70 * 86400.0)))
         THEN NULL ELSE y_true END AS y_true,
    y_pred
FROM (
    SELECT TIMESTAMP '2025-01-01' + to_microseconds((hash(i, 6) % (365 * 86400000000))::BIGINT) AS ts,
        CASE WHEN {_U.format(k=1)} < 0.48 THEN 'female' ELSE 'male' END AS s1,
        ['a', 'b', 'c', 'd', 'e', 'f'][(hash(i, 2) % 6)::INTEGER + 1] AS s2,
        (hash(i, 3) % 6)::TINYINT AS s3,
        ({_U.format(k=4)} < 0.35)::INTEGER AS y_true,
        ({_U.format(k=5)} < 0.30)::INTEGER AS y_pred,
        i
    FROM range({{n}}) AS t(i)
)
"""
SPEC = {"columns": {"label": "y_true", "prediction": "y_pred", "sensitive": ["s1", "s2", "s3"], "time": "ts",
                    "model_version": "model_version"}}


def interleaved(fns: dict, repeat: int) -> dict[str, common.Timing]:
    """Time each function `repeat` times, round-robin, so load changes hit all of them alike."""
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            runs[name].append(time.perf_counter() - started)
    return {name: common.Timing(tuple(r)) for name, r in runs.items()}


def main(argv: list[str] | None = None) -> int:
    """Generate the data, time the engine and metric steps, print the table."""
    parser = common.bench_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10M", help="rows of synthetic data (default 10M)")
    args = common.parse_args(parser, argv)
    n = 200_000 if args.quick else common.parse_count(args.rows)
    repeat = 1 if args.quick else args.repeat

    from fairwatch.connectors.counts import run_query
    from fairwatch.connectors.monitor import run_check
    from fairwatch.connectors.source import open_source
    from fairwatch.connectors.window_counts import fetch_window_counts
    from fairwatch.metrics.stats.drift import drift_table
    from fairwatch.metrics.stats.groups import compute_group_table
    from fairwatch.metrics.audit.spec import SourceSpec, parse_spec
    from fairwatch.metrics.monitoring.trends import VERSION, WINDOW, trend_table, window_outcomes
    from fairwatch.metrics.monitoring.versions import compare_versions

    print(common.machine_summary())
    path = common.ensure_parquet("trends", TRENDS_SQL, n)
    spec = parse_spec({**SPEC, "source": {"path": str(path)}})
    src = open_source(SourceSpec(path=str(path)))
    bare = "SELECT s1, s2, s3, y_true, y_pred, count(*) FROM src GROUP BY ALL"
    trunc = "SELECT date_trunc('week', ts) AS w, s1, s2, s3, y_true, y_pred, count(*) FROM src GROUP BY ALL"
    bucket = "SELECT time_bucket(INTERVAL '1 week', ts) AS w, s1, s2, s3, y_true, y_pred, count(*) FROM src GROUP BY ALL"
    engine = interleaved({
        "bare GROUP BY (5 keys)": lambda: run_query(src, bare),
        "bare + date_trunc('week')": lambda: run_query(src, trunc),
        "bare + time_bucket(1 week)": lambda: run_query(src, bucket),
        "fetch_window_counts (week)": lambda: fetch_window_counts(src, spec),
        "fetch_window_counts (week, by version)": lambda: fetch_window_counts(src, spec, by_version=True),
    }, repeat)
    counts = fetch_window_counts(src, spec, by_version=True)
    cells = counts.cells.drop(columns=[VERSION])
    windows = sorted(cells[WINDOW].unique())

    def per_window() -> None:
        """The alternative to trend_table: the audit's own group table, once per window."""
        outcomes = window_outcomes(cells, spec)
        for w in windows:
            lab = outcomes.labelled[outcomes.labelled[WINDOW] == w].drop(columns=[WINDOW])
            pop = outcomes.population[outcomes.population[WINDOW] == w].drop(columns=[WINDOW])
            compute_group_table(lab, pop, None, spec)

    def versions() -> None:
        """v1 against v2 from the same counts."""
        out = window_outcomes(counts.cells, spec, keys=(VERSION,))
        compare_versions(out.labelled, out.population, spec, "v1", "v2")

    population = cells.groupby([WINDOW, *spec.sensitive], as_index=False)["n"].sum()
    metric = interleaved({
        "trend_table (vectorised, all windows)": lambda: trend_table(counts.cells, spec, counts.grain),
        "drift_table (all windows)": lambda: drift_table(population, spec),
        "compare_versions v1 vs v2": versions,
        "run_check (3 rules, end to end)": lambda: run_check(
            spec, ["false_negative_rate ratio < 0.8 for any s2 group", "psi of s3 > 0.1", "share of s2=f < 0.01"],
            src=src),
    }, repeat)
    metric |= interleaved({"compute_group_table per window": per_window}, 1)
    src.con.close()

    base = engine["bare GROUP BY (5 keys)"].median
    rows = [(name, str(t), fmt_ratio(t.median / base)) for name, t in engine.items()]
    common.print_table(["engine step", f"median of {repeat}", "vs bare"], rows,
                       title=f"{n:,} rows, {len(windows)} weekly windows, {len(counts.cells):,} count cells")
    common.print_table(["metric step (on the counts)", "time"], [(k, str(v)) for k, v in metric.items()])
    fetch = engine["fetch_window_counts (week)"].median
    ok = fetch < TARGET_SECONDS if n >= 10_000_000 else None
    print(f"\ntarget: fetch_window_counts < {TARGET_SECONDS:.0f} s at 10M rows: {fmt_seconds(fetch)} {pass_fail(ok)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
