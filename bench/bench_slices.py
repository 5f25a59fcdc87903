"""Slice search (GitHub issue 3): speed and peak memory at 1M/10M rows, the sliceline package, control.

    .venv/bin/python bench/bench_slices.py [--quick] [--repeat 3] [--sizes 1M,10M]
        [--package-sizes 100k,1M] [--package-timeout 600] [--seeds 100]

Data: a synthetic Parquet prediction log with 8 categorical features f0..f7 (cardinalities 2, 3, 4,
5, 6, 8, 10, 12), a 0/1 label and a prediction that is wrong 15% of the time, 35% in the slice
f1=v0 AND f3=v2; cached in bench/out/cache. Each measurement runs in its own child process (fresh
interpreter and DuckDB, peak memory = the child's VmHWM), and the repeats of different methods are
interleaved, so ratios compare runs made under the same load:

* fairwatch: `open_source` + `fetch_slice_counts` + `find_slices` (depth 3, misclassification,
  min_support 30), wall and CPU seconds (CPU: all threads; a better guide on a busy machine);
* the designs the connector was chosen against, counts only: level-wise GROUPING SETS over the rows
  (one query per depth) and one GROUPING SETS query with all 92 feature combinations;
* the `sliceline` package: `Slicefinder(alpha=0.95, k=50, max_l=3, min_sup=30).fit` on the same
  rows, already in memory (loading not timed), at the sizes it can handle, with a timeout;
* control: on effect-free data, the share of seeds on which the search flags nothing.

Targets (issue 3): 10M rows under 10 s; at least 10x faster than the package at 1M rows; bounded
memory (here: under 1 GB at 10M rows).
"""

from __future__ import annotations

import itertools
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import common

CARDS = (2, 3, 4, 5, 6, 8, 10, 12)
FEATURES = tuple(f"f{i}" for i in range(len(CARDS)))
DEPTH = 3
MIN_SUPPORT = 30
TARGET_10M_SECONDS = 10.0
TARGET_SPEEDUP = 10.0
TARGET_PEAK_BYTES = 1e9
# A deterministic uniform in [0, 1) per row and stream (same trick as common.PREDICTIONS_SQL).
_U = "((hash(i, {k}) % 1000000)::DOUBLE / 1000000.0)"
SLICES_SQL = (
    "SELECT * EXCLUDE (i), CASE WHEN " + _U.format(k=99) + " < 0.15 + CASE WHEN f1 = 'v0' AND f3 = 'v2' THEN 0.2 ELSE 0 END "
    "THEN NOT y ELSE y END AS p FROM (SELECT "
    + ", ".join(f"'v' || CAST(floor({_U.format(k=i)} * {c}) AS INTEGER) AS f{i}" for i, c in enumerate(CARDS))
    + ", " + _U.format(k=98) + " < 0.3 AS y, i FROM range({n}) t(i))"
)


def _cpu() -> float:
    """CPU seconds of this process, all threads (DuckDB's included)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _spec(path: str):
    """The audit spec of a bench log."""
    from fairwatch.metrics.audit.spec import parse_spec

    return parse_spec({
        "source": {"path": path},
        "columns": {"label": "y", "prediction": "p", "sensitive": list(FEATURES[:2]),
                    "features": list(FEATURES[2:])},
        "policy": {"min_support": MIN_SUPPORT},
        "slices": {"max_depth": DEPTH, "error": "misclassification"},
    })


# --------------------------------------------------------------------------- child measurements


def child_fairwatch(path: str) -> dict:
    """One slice search over the whole log: counts in DuckDB, statistics in pandas."""
    from fairwatch.connectors.slice_counts import fetch_slice_counts
    from fairwatch.connectors.source import open_source
    from fairwatch.metrics.discovery.slices import find_slices, top_findings

    spec = _spec(path)
    started, cpu = time.perf_counter(), _cpu()
    src = open_source(spec.source)
    counts = fetch_slice_counts(src, spec, "true", "true")
    counted = time.perf_counter()
    table = find_slices(counts, spec)
    done = time.perf_counter()
    src.con.close()
    top = top_findings(table, 1)
    return {"seconds": done - started, "cpu": _cpu() - cpu, "count_seconds": counted - started,
            "stats_seconds": done - counted, "slices": table.evaluated, "findings": table.findings,
            "top": top.iloc[0]["group"] if len(top) else None}


def _raw_sets(path: str, combos: list[tuple[str, ...]]) -> int:
    """One GROUPING SETS query over the raw rows for these combinations; the slices it returns."""
    import duckdb

    con = duckdb.connect()
    sets = ", ".join("(" + ", ".join(c) + ")" for c in combos)
    got = con.execute(
        f"SELECT {', '.join(FEATURES)}, count(*) AS n, sum(CAST(y <> p AS INTEGER)) AS errors "
        f"FROM read_parquet('{path}') GROUP BY GROUPING SETS ({sets}) HAVING count(*) >= {MIN_SUPPORT}"
    ).fetchall()
    con.close()
    return len(got)


def child_levelwise(path: str) -> dict:
    """Counts only, level-wise: one GROUPING SETS query over the rows per depth."""
    started, cpu = time.perf_counter(), _cpu()
    slices = sum(_raw_sets(path, list(itertools.combinations(FEATURES, d))) for d in range(1, DEPTH + 1))
    return {"seconds": time.perf_counter() - started, "cpu": _cpu() - cpu, "slices": slices}


def child_one_query(path: str) -> dict:
    """Counts only: one GROUPING SETS query over the rows with every combination up to the depth."""
    combos = [c for d in range(1, DEPTH + 1) for c in itertools.combinations(FEATURES, d)]
    started, cpu = time.perf_counter(), _cpu()
    slices = _raw_sets(path, combos)
    return {"seconds": time.perf_counter() - started, "cpu": _cpu() - cpu, "slices": slices}


def child_sliceline(path: str) -> dict:
    """The sliceline package's Slicefinder.fit on the same rows (loaded beforehand, not timed)."""
    import warnings

    import duckdb
    from sliceline.slicefinder import Slicefinder

    frame = duckdb.sql(f"SELECT * FROM read_parquet('{path}')").df()
    x = frame[list(FEATURES)]
    errors = (frame["y"] != frame["p"]).to_numpy(float)
    started, cpu = time.perf_counter(), _cpu()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        finder = Slicefinder(alpha=0.95, k=50, max_l=DEPTH, min_sup=MIN_SUPPORT, verbose=False).fit(x, errors)
    return {"seconds": time.perf_counter() - started, "cpu": _cpu() - cpu, "slices": len(finder.top_slices_)}


def child_imports(path: str) -> dict:
    """Only the imports: the memory floor of a measurement process."""
    import duckdb  # noqa: F401
    import pandas  # noqa: F401

    from fairwatch.connectors.slice_counts import fetch_slice_counts  # noqa: F401
    from fairwatch.metrics.discovery.slices import find_slices  # noqa: F401

    return {"seconds": 0.0, "cpu": 0.0}


CHILDREN = {"fairwatch": child_fairwatch, "levelwise": child_levelwise, "one_query": child_one_query,
            "sliceline": child_sliceline, "imports": child_imports}


# --------------------------------------------------------------------------- control


def control(seeds: int, rows: int = 3000) -> tuple[int, float]:
    """Effect-free data, `seeds` times: on how many does the search flag nothing? (and tests per seed)"""
    import numpy as np
    import pandas as pd

    from fairwatch.connectors.slice_counts import fetch_slice_counts
    from fairwatch.connectors.source import open_frame
    from fairwatch.metrics.discovery.slices import find_slices
    from fairwatch.metrics.audit.spec import parse_spec

    spec = parse_spec({
        "source": {"path": "frame"},
        "columns": {"label": "y", "prediction": "p", "sensitive": ["f0"], "features": ["f1", "f2", "f3"]},
        "policy": {"min_support": MIN_SUPPORT},
    })
    clean, tested = 0, []
    for seed in range(seeds):
        rng = np.random.default_rng(1000 + seed)
        df = pd.DataFrame({f"f{i}": rng.choice([f"v{j}" for j in range(c)], rows)
                           for i, c in enumerate((2, 3, 4, 6))})
        df["y"] = (rng.random(rows) < 0.4).astype(int)
        df["p"] = np.where(rng.random(rows) < 0.2, 1 - df["y"], df["y"])
        table = find_slices(fetch_slice_counts(open_frame(df), spec, "1", "1"), spec)
        clean += table.findings == 0
        tested.append(table.tested)
    return int(clean), statistics.median(tested)


# --------------------------------------------------------------------------- main


def measure(kind: str, path: Path, timeout: float | None = None) -> dict:
    """One child measurement; the package's timeout or crash (out of memory) is a result, not a crash."""
    nan = float("nan")
    try:
        res = common.run_child([__file__, "--child", kind, str(path)], timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "seconds": float("inf"), "cpu": nan, "peak_rss": nan}
    except RuntimeError as exc:
        if kind != "sliceline":
            raise
        reason = str(exc).strip().splitlines()[-1].split(":")[0]
        return {"failed": reason, "seconds": nan, "cpu": nan, "peak_rss": nan, "detail": str(exc).splitlines()[-1]}
    r = res.result
    # Progress as it happens: a long run that stops half-way still leaves its figures.
    print(f"  {kind} {path.name}: {common.fmt_seconds(r['seconds'])} wall, {common.fmt_seconds(r['cpu'])} CPU, "
          f"peak {common.fmt_bytes(r['peak_rss'])}", flush=True)
    return r


def summary(runs: list[dict]) -> dict:
    """Median wall and CPU seconds, highest peak memory over repeated runs."""
    if any(r.get("timeout") or r.get("failed") for r in runs):
        return runs[0]
    out = runs[0] | {"peak_rss": max(r["peak_rss"] for r in runs), "runs": [r["seconds"] for r in runs]}
    for key in ("seconds", "cpu", "count_seconds", "stats_seconds"):
        if key in out:
            out[key] = statistics.median(r[key] for r in runs)
    return out


def main(argv: list[str] | None = None) -> int:
    """Generate the data, run the measurements interleaved, print tables and targets."""
    parser = common.bench_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=2, help="internal: run one measurement (KIND PATH)")
    parser.add_argument("--sizes", type=common.parse_sizes, default=None, help="rows, e.g. 1M,10M")
    parser.add_argument("--package-sizes", type=common.parse_sizes, default=None, help="rows for sliceline")
    parser.add_argument("--package-timeout", type=float, default=600.0, help="seconds per sliceline run")
    parser.add_argument("--seeds", type=int, default=None, help="effect-free seeds for the control")
    args = common.parse_args(parser, argv)
    if args.child:
        kind, path = args.child
        common.child_report(CHILDREN[kind](path))
        return 0
    sizes = args.sizes or ([20_000] if args.quick else [1_000_000, 10_000_000])
    package_sizes = args.package_sizes or ([5_000] if args.quick else [100_000, 1_000_000])
    seeds = args.seeds if args.seeds is not None else (10 if args.quick else 100)
    repeat = 1 if args.quick else args.repeat
    print(common.machine_summary())
    paths = {n: common.ensure_parquet("slices", SLICES_SQL, n) for n in sorted(set(sizes) | set(package_sizes))}
    floor = measure("imports", paths[min(paths)])["peak_rss"]

    # Interleaved: every method once per round, so each ratio compares runs made under the same load.
    runs: dict[tuple[str, int], list[dict]] = {}
    for _ in range(repeat):
        for n in sizes:
            for kind in ("fairwatch", "levelwise", "one_query"):
                runs.setdefault((kind, n), []).append(measure(kind, paths[n]))
    for n in package_sizes:
        if n not in sizes:
            for _ in range(repeat):
                runs.setdefault(("fairwatch", n), []).append(measure("fairwatch", paths[n]))
        runs[("sliceline", n)] = [measure("sliceline", paths[n], timeout=args.package_timeout)]
    res = {key: summary(value) for key, value in runs.items()}

    rows = []
    for (kind, n), r in sorted(res.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        timed_out = r.get("timeout")
        failed = r.get("failed")
        detail = ""
        if kind == "fairwatch":
            detail = (f"count {common.fmt_seconds(r['count_seconds'])} + stats {common.fmt_seconds(r['stats_seconds'])};"
                      f" {r['slices']:,} slices, {r['findings']:,} findings; top: {r['top']}")
        elif failed:
            detail = f"FAILED: {r['detail']}"
        elif not timed_out:
            detail = f"{r['slices']:,} " + ("top slices" if kind == "sliceline" else "slices (counts only)")
        wall = f">{args.package_timeout:.0f} s" if timed_out else "failed" if failed else common.fmt_seconds(r["seconds"])
        rows.append([kind, f"{n:,}", wall,
                     common.fmt_seconds(r.get("cpu")), common.fmt_bytes(r.get("peak_rss")), detail])
    common.print_table(["method", "rows", f"wall (median of {repeat})", "CPU", "peak memory", "detail"], rows,
                       title=f"slice search, depth {DEPTH}, 8 features; memory floor (imports only): "
                             f"{common.fmt_bytes(floor)}", align="lrrrrl")

    ratios = []
    for n in sizes:
        ours = res[("fairwatch", n)]
        for kind in ("levelwise", "one_query"):
            alt = res[(kind, n)]
            ratios.append([f"{kind} / fairwatch counting", f"{n:,}",
                           common.fmt_ratio(alt["seconds"] / ours["count_seconds"]), "wall, counts only"])
    for n in package_sizes:
        ours, theirs = res[("fairwatch", n)], res[("sliceline", n)]
        if theirs.get("failed"):
            ratios.append(["sliceline / fairwatch", f"{n:,}", "-", f"package failed: {theirs['failed']}"])
        elif theirs.get("timeout"):
            ratios.append(["sliceline / fairwatch", f"{n:,}", ">" + common.fmt_ratio(args.package_timeout / ours["seconds"]),
                           "package hit the timeout: a lower bound"])
        else:
            ratios.append(["sliceline / fairwatch", f"{n:,}", common.fmt_ratio(theirs["seconds"] / ours["seconds"]),
                           f"CPU {common.fmt_ratio(theirs['cpu'] / ours['cpu'])}"])
    common.print_table(["ratio", "rows", "x", "note"], ratios, title="ratios (interleaved runs)", align="lrrl")

    started = time.perf_counter()
    clean, tested = control(seeds)
    print(f"\ncontrol: no finding on {clean} of {seeds} effect-free seeds ({clean / seeds:.0%}); "
          f"~{tested:.0f} slices tested per seed; {time.perf_counter() - started:.0f} s")

    big = max(sizes)
    ours = res[("fairwatch", big)]
    at_1m = [n for n in package_sizes if n >= 1_000_000]
    speed = None
    if at_1m:
        theirs, mine = res[("sliceline", at_1m[0])], res[("fairwatch", at_1m[0])]
        if not theirs.get("failed"):  # a package that cannot run at 1M gives no ratio to judge
            bound = args.package_timeout if theirs.get("timeout") else theirs["seconds"]
            speed = bound / mine["seconds"] >= TARGET_SPEEDUP
    targets = [
        [f"{big:,} rows under {TARGET_10M_SECONDS:.0f} s (wall)", common.fmt_seconds(ours["seconds"]),
         common.pass_fail(ours["seconds"] < TARGET_10M_SECONDS if big >= 10_000_000 else None)],
        [f">= {TARGET_SPEEDUP:.0f}x faster than sliceline at 1M rows", "", common.pass_fail(speed)],
        [f"peak memory at {big:,} rows under {common.fmt_bytes(TARGET_PEAK_BYTES)}",
         common.fmt_bytes(ours["peak_rss"]), common.pass_fail(ours["peak_rss"] < TARGET_PEAK_BYTES)],
        ["control: no finding on >= 95% of seeds", f"{clean}/{seeds}", common.pass_fail(clean >= 0.95 * seeds)],
    ]
    common.print_table(["target", "measured", "verdict"], targets, title="targets", align="lrl")
    return 0


if __name__ == "__main__":
    sys.exit(main())
