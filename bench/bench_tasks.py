"""Bench: regression and 5-class multiclass audits (issue 19) as whole processes, next to a bare GROUP BY.

For each size (default 10M synthetic rows; 3 sensitive features with 2, 6 and 6 values, all 7
groupings) and each task it prints, each measured in a fresh process (median of --repeat):

- `audit`: the whole process of `run_audit` (interpreter start, imports, every query, every group,
  metric, interval and disparity; regression also its bucket scan for histograms and KS gaps);
- `cli`: the whole `fairwatch audit --out` command, which also writes snapshot.json, the CSVs and
  the HTML/PDF reports;
- `bare`: a bare DuckDB GROUP BY over the same file and keys, in a fresh process too (regression:
  `count(*), sum(p - y)` per group; multiclass: `count(*)` per group, label and prediction);
- PASS/FAIL against the binary audit's targets (issue 14's table, bench_audit.py): the audit's
  own time < 2 s, audit / bare < 3x, peak memory < 1 GB. Informational: exits 0 either way.

Also printed: the bare GROUP BY run on the audit's own opened source (fairwatch's read-only file
reader, `audit/bare via reader`), and the CPU seconds of the audit and of the bare query (all
threads; steadier than wall time on a shared machine). Both sides run with DuckDB's defaults
(threads = cores, preserve_insertion_order = true, memory_limit 80% of RAM; checked with
current_setting): the audit's only difference is the reader, which reads through Python (about
+10-20% CPU for the bare query). `--revision LABEL=REV` times a git revision's audit interleaved in
the same run (before/after with the same libraries and load).

`--split` adds where a regression audit's time goes, as CPU seconds of all threads, each query on
one open source in one fresh process: the bare GROUP BY, a pass that only reads label and
prediction (min/max over the usable rows: what any extra pass costs at least), the sums query and
the bucket query. Measured on 10M rows (issue 19, load ~9): bare 0.29, read-only pass 0.28, sums
0.55 (was 0.76-0.81: one sign key per cell instead of a CASE per value and a FILTER per count),
buckets 0.62-0.68 (was 0.78: the clamp and cast on the result rows); the audit's Python work is
about 0.12. Each query pays for its aggregation more than for its reading, so the histograms cost
the same in a scan of their own or in the sums scan: measured at 10M rows, a joint (prediction,
error) bucket key 0.9-1.0 (164k groups), the sums grouped by prediction bucket too 0.73 (plus a
min/max pass for the edges), three aggregations fanned out from one scan 1.03, the buckets of a
10% system sample 0.31, GROUPING SETS in the sums 3.9; integer cell codes instead of the text keys
(list_position) cost more than they save. So an exact per-group histogram costs about one bare
scan at 10M rows however it is scheduled, and the audit with them stays above 3x the bare query
(see README, "Regression and multiclass models").

    python bench/bench_tasks.py                 # 10M rows, 3 repeats
    python bench/bench_tasks.py --quick         # 100k rows, one repeat
    python bench/bench_tasks.py --split         # also: CPU seconds per query of the regression audit
    python bench/bench_tasks.py --revision main=82d6b37 --no-cli   # before/after in one run
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import fmt_bytes, fmt_ratio, fmt_seconds, pass_fail

TARGET_SECONDS = 2.0
TARGET_RATIO = 3.0
TARGET_PEAK_BYTES = 1e9
_U = "((hash(i, {k}) % 1000000)::DOUBLE / 1000000.0)"
# Groups like the binary bench's; a label around 100 with noise, a prediction off by a group-dependent
# amount; five classes with 70% right and a group-dependent confusion.
_KEYS = f"""CASE WHEN {_U.format(k=1)} < 0.48 THEN 'female' ELSE 'male' END AS s1,
    CASE WHEN {_U.format(k=2)} < 0.55 THEN 'a' WHEN {_U.format(k=2)} < 0.70 THEN 'b' WHEN {_U.format(k=2)} < 0.82 THEN 'c'
         WHEN {_U.format(k=2)} < 0.92 THEN 'd' WHEN {_U.format(k=2)} < 0.96 THEN 'e' ELSE 'f' END AS s2,
    (hash(i, 3) % 6)::TINYINT AS s3"""
REGRESSION_SQL = f"""SELECT *, y + (u - 0.5) * 20 + CASE WHEN s2 = 'b' THEN 3 ELSE 0 END AS p FROM (
    SELECT {_KEYS}, 100 + ({_U.format(k=4)} - 0.5) * 40 AS y, {_U.format(k=5)} AS u FROM range({{n}}) t(i))"""
MULTICLASS_SQL = f"""SELECT s1, s2, s3, 'c' || y::VARCHAR AS y,
    'c' || (CASE WHEN u < 0.7 OR (s2 = 'b' AND u < 0.75) THEN y ELSE (y + 1 + (hash(i, 6) % 4)) % 5 END)::VARCHAR AS p
    FROM (SELECT i, {_KEYS}, (hash(i, 4) % 5)::INTEGER AS y, {_U.format(k=5)} AS u FROM range({{n}}) t(i))"""
BARE_SQL = {
    "regression": "SELECT s1, s2, s3, count(*), sum(p - y) FROM read_parquet('{path}') GROUP BY ALL",
    "multiclass": "SELECT s1, s2, s3, y, p, count(*) FROM read_parquet('{path}') GROUP BY ALL",
}


def spec_dict(path: str, task: str) -> dict:
    """The spec the bench audits with (default policy)."""
    return {"source": {"path": path}, "columns": {"label": "y", "prediction": "p", "sensitive": ["s1", "s2", "s3"],
                                                  "task": task}}


def _cpu() -> float:
    """User + system CPU seconds of this process so far (every DuckDB thread included)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def child_audit(a: dict) -> None:
    """run_audit in this fresh process: its own time, the process's time since start, peak memory."""
    if a.get("tree"):  # a revision's code (--revision), with this venv's libraries
        sys.path.insert(0, a["tree"])
    from fairwatch.metrics.audit.spec import parse_spec
    from fairwatch.connectors.audit import run_audit

    started, cpu = time.perf_counter(), _cpu()
    snap = run_audit(parse_spec(spec_dict(a["path"], a["task"])), search_slices=False)
    common.child_report({"audit": time.perf_counter() - started, "cpu": _cpu() - cpu, "rows": snap.data.rows,
                         "groups": int(snap.groups.rows["slice"].nunique()), "metric_rows": len(snap.groups.rows),
                         "peak": common.peak_rss_bytes()})


def child_bare(a: dict) -> None:
    """The bare GROUP BY in this fresh process: on a plain connection, or (`reader`) on the audit's opened source."""
    import duckdb

    started, cpu = time.perf_counter(), _cpu()
    if a.get("reader"):
        from fairwatch.connectors.counts import run_query
        from fairwatch.connectors.source import open_source
        from fairwatch.metrics.audit.spec import parse_spec

        started, cpu = time.perf_counter(), _cpu()
        src = open_source(parse_spec(spec_dict(a["path"], a["task"])).source)
        run_query(src, BARE_SQL[a["task"]].replace("read_parquet('{path}')", "src"))
        src.close()
    else:
        con = duckdb.connect()
        con.execute(BARE_SQL[a["task"]].format(path=a["path"])).fetchall()
    common.child_report({"bare": time.perf_counter() - started, "cpu": _cpu() - cpu, "peak": common.peak_rss_bytes()})


def child_split(a: dict) -> None:
    """CPU seconds (all threads, best of 2) of the regression audit's queries and of a bare and a read-only pass."""
    from fairwatch.connectors.counts import run_query
    from fairwatch.connectors.source import opened
    from fairwatch.connectors.task_counts import fetch_regression_buckets, fetch_regression_counts
    from fairwatch.metrics.audit.spec import parse_spec
    from fairwatch.metrics.stats.regression import bucket_edges

    spec = parse_spec(spec_dict(a["path"], "regression"))
    out = {}
    with opened(spec, None) as src:
        edges = bucket_edges(fetch_regression_counts(src, spec))
        steps = {
            "bare": lambda: run_query(src, "SELECT s1, s2, s3, count(*), sum(p - y) FROM src GROUP BY ALL"),
            "read": lambda: run_query(src, "SELECT min(p), max(p), min(p - y), max(p - y) FROM src "
                                           "WHERE y IS NOT NULL AND p IS NOT NULL AND y - y = 0 AND p - p = 0"),
            "sums": lambda: fetch_regression_counts(src, spec),
            "buckets": lambda: fetch_regression_buckets(src, spec, edges),
        }
        for name, step in steps.items():
            best = float("inf")
            for _ in range(2):
                started = _cpu()
                step()
                best = min(best, _cpu() - started)
            out[name] = best
    common.child_report(out)


CHILDREN = {"audit": child_audit, "bare": child_bare, "split": child_split}


def _run(kind: str, **kw) -> common.ChildResult:
    """One measurement in a fresh process."""
    return common.run_child([str(Path(__file__).resolve()), "--child", kind, "--child-args", json.dumps(kw)])


def _cli(path: str, task: str) -> float:
    """Wall time of the whole `fairwatch audit --out` command (a fresh process, writing every file)."""
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        subprocess.run([common.project_python(), str(common.ROOT / "cli.py"), "audit", path, "--label", "y",
                        "--prediction", "p", "--sensitive", "s1,s2,s3", "--task", task, "--out", str(Path(tmp) / "out")],
                       cwd=common.ROOT, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - started


def main() -> None:
    """Measure each size and task; print the table and the verdicts."""
    parser = common.bench_parser(__doc__)
    parser.add_argument("--sizes", default="10M")
    parser.add_argument("--split", action="store_true", help="also: CPU seconds per query of the regression audit")
    parser.add_argument("--revision", action="append", default=[], metavar="LABEL=REV",
                        help="also time the audit of a git revision of this checkout, interleaved (repeatable)")
    parser.add_argument("--no-cli", action="store_true", help="skip the `fairwatch audit --out` column")
    common.add_child_flags(parser, CHILDREN)
    args = common.parse_args(parser)
    if common.ran_child(args, CHILDREN):
        return
    sizes = common.sizes_of(args)
    repeat = args.repeat
    codes = [("this", "")]
    for item in args.revision:
        label, _, rev = item.partition("=")
        codes.append((label, str(common.revision_tree(rev or label, "--revision"))))
    rows = []
    for n in sizes:
        for task, sql in (("regression", REGRESSION_SQL), ("multiclass", MULTICLASS_SQL)):
            path = str(common.ensure_parquet(f"tasks_{task}", sql, n))
            audits = {label: [] for label, _ in codes}
            cpus = {label: [] for label, _ in codes}
            walls, bares, bare_cpus, readers, clis, peaks = [], [], [], [], [], []
            for _ in range(repeat):  # interleaved, so drifting load hits every measurement alike
                for label, tree in codes:
                    a = _run("audit", path=path, task=task, tree=tree)
                    audits[label].append(a.result["audit"])
                    cpus[label].append(a.result.get("cpu", float("nan")))
                    if label == "this":
                        walls.append(a.wall)
                        peaks.append(a.result["peak"])
                        groups = a.result["groups"]
                b = _run("bare", path=path, task=task).result
                bares.append(b["bare"])
                bare_cpus.append(b["cpu"])
                readers.append(_run("bare", path=path, task=task, reader=True).result["bare"])
                if not args.no_cli:
                    clis.append(_cli(path, task))
            bare, bare_cpu = common.median(bares), common.median(bare_cpus)
            for label, _ in codes:
                audit, cpu = common.median(audits[label]), common.median(cpus[label])
                this = label == "this"
                rows.append([f"{n:,}", task, label, groups, fmt_seconds(audit),
                             fmt_seconds(common.median(walls)) if this else "",
                             fmt_seconds(common.median(clis)) if this and clis else "", fmt_seconds(bare),
                             fmt_ratio(audit / bare), fmt_ratio(audit / common.median(readers)),
                             f"{cpu:.2f} / {bare_cpu:.2f} s = {fmt_ratio(cpu / bare_cpu)}",
                             fmt_bytes(max(peaks)) if this else "", pass_fail(audit < TARGET_SECONDS),
                             pass_fail(audit / bare < TARGET_RATIO),
                             pass_fail(max(peaks) < TARGET_PEAK_BYTES) if this else ""])
    common.print_table(["rows", "task", "code", "groups", "audit", "audit process", "fairwatch audit --out",
                        "bare GROUP BY", "audit/bare", "audit/bare via reader", "CPU audit / bare", "peak", "< 2 s",
                        "< 3x", "< 1 GB"],
                       rows, title=f"regression and multiclass audits (median of {repeat}; {common.machine_summary()})")
    if args.split:
        split = []
        for n in sizes:
            got = _run("split", path=str(common.ensure_parquet("tasks_regression", REGRESSION_SQL, n))).result
            split.append([f"{n:,}", *(f"{got[k]:.2f} s" for k in ("bare", "read", "sums", "buckets")),
                          fmt_ratio((got["sums"] + got["buckets"]) / got["bare"])])
        common.print_table(["rows", "bare GROUP BY", "read label+prediction", "sums query", "bucket query",
                            "(sums+buckets)/bare"], split,
                           title="regression audit: CPU seconds per query (all threads, best of 2)")


if __name__ == "__main__":
    sys.exit(main())
