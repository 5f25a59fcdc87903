"""Bench: the what-if (per-group thresholds, all five constraints) from bucket counts, next to fairlearn on raw rows.

GitHub issue 20. On the standard synthetic log (bench/common.py: 6 groups in s3, full-precision
scores bucketed to 3 decimals by the audit's own counting query), each in its own child process,
in the same run:

- bare GROUP BY s3, y_true, round(score, 3) over the file (the floor any count-based what-if pays);
- `run_whatif` for each of the five constraints at the largest size (default 10M rows): open the
  source, count the score buckets in the engine, fit and evaluate (wall clock per constraint, and the
  child's peak memory over all five);
- the same at 1M rows, and fairlearn's `ThresholdOptimizer(prefit=True)` on the same 1M raw rows
  (read into pandas, then fit per constraint), with the objective each reaches (ours may only be
  below fairlearn's by the stated bucket error).

Informational: exits 0 either way. PASS when each constraint at the largest size takes under 5 s.

    python bench/bench_whatif.py             # 10M rows (fairlearn on 1M)
    python bench/bench_whatif.py --quick     # 200k rows (fairlearn on 200k)
"""

from __future__ import annotations

import sys
import time

import common
from common import fmt_bytes, fmt_seconds, pass_fail

CONSTRAINTS = ("demographic_parity", "true_positive_rate_parity", "false_positive_rate_parity",
               "false_negative_rate_parity", "equalized_odds")
TARGET_SECONDS = 5.0


def child_floor(path: str) -> None:
    """The bare GROUP BY over the file, timed in a fresh DuckDB."""
    import duckdb

    started = time.perf_counter()
    con = duckdb.connect()
    rows = con.sql(f"SELECT s3, y_true, floor(score * 1000 + 0.5) AS b, count(*) AS n FROM read_parquet('{path}') "
                   f"GROUP BY ALL").fetchall()
    common.child_report({"seconds": time.perf_counter() - started, "cells": len(rows)})


def child_ours(path: str) -> None:
    """run_whatif for every constraint (counting afresh each time, as `fairwatch whatif` does), and the refit
    from counts already fetched (what the page pays when only the constraint changes)."""
    from fairwatch.connectors.whatif import fetch_whatif_ranges, run_whatif, whatif_from_ranges
    from fairwatch.metrics.audit.spec import parse_spec

    spec = parse_spec({"source": {"path": path}, "columns": {**common.PREDICTION_COLUMNS, "sensitive": ["s3"]}})
    out = {}
    ranges = fetch_whatif_ranges(spec, ["s3"])
    for constraint in CONSTRAINTS:
        started = time.perf_counter()
        result = run_whatif(spec, ["s3"], constraint)
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        whatif_from_ranges(ranges, spec, ["s3"], constraint)
        out[constraint] = {"seconds": seconds, "refit_seconds": time.perf_counter() - started,
                           "objective": result.fitted.objective_whatif, "bucket_error": result.fit.bucket_error}
    common.child_report(out)


def child_fairlearn(path: str) -> None:
    """fairlearn's ThresholdOptimizer on the raw rows, per constraint; the expected accuracy it reaches."""
    import warnings

    import duckdb
    import numpy as np
    from fairlearn.postprocessing import ThresholdOptimizer

    from tests.test_whatif_oracle import ScoreColumn  # the oracle test's prefit "model": the score itself

    started = time.perf_counter()
    frame = duckdb.sql(f"SELECT s3, y_true, score FROM read_parquet('{path}')").df()
    load = time.perf_counter() - started
    out = {"load_seconds": load}
    y = frame["y_true"].to_numpy() == 1
    for constraint in CONSTRAINTS:
        started = time.perf_counter()
        opt = ThresholdOptimizer(estimator=ScoreColumn().fit(None), constraints=constraint, prefit=True,
                                 predict_method="predict", objective="accuracy_score")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt.fit(frame[["score"]], frame["y_true"], sensitive_features=frame["s3"].astype(str))
        seconds = time.perf_counter() - started
        p = opt._pmf_predict(frame[["score"]], sensitive_features=frame["s3"].astype(str))[:, 1]
        out[constraint] = {"seconds": seconds, "objective": float(np.mean(np.where(y, p, 1 - p)))}
    common.child_report(out)


def main(argv: list[str] | None = None) -> int:
    """Run the children and print the table."""
    parser = common.bench_parser(__doc__.splitlines()[0])
    parser.add_argument("--rows", default="10M", help="rows for the what-if from counts (default 10M)")
    parser.add_argument("--raw-rows", default="1M", help="rows for fairlearn on raw rows (default 1M)")
    args = common.parse_args(parser, argv)
    big = common.parse_count("200k" if args.quick else args.rows)
    small = common.parse_count("200k" if args.quick else args.raw_rows)
    print(common.machine_summary())
    big_path, small_path = str(common.synthetic_predictions(big)), str(common.synthetic_predictions(small))
    me = [__file__]
    floor = common.run_child([*me, "--child", "floor", big_path])
    ours_big = common.run_child([*me, "--child", "ours", big_path])
    ours_small = common.run_child([*me, "--child", "ours", small_path])
    fl = common.run_child([*me, "--child", "fairlearn", small_path])
    print(f"\nbare GROUP BY s3, y_true, score bucket over {big:,} rows: {fmt_seconds(floor.result['seconds'])} "
          f"({floor.result['cells']:,} cells)")
    rows = []
    for c in CONSTRAINTS:
        b, s, f = ours_big.result[c], ours_small.result[c], fl.result[c]
        rows.append([c, fmt_seconds(b["seconds"]), fmt_seconds(b["refit_seconds"]), fmt_seconds(s["seconds"]),
                     fmt_seconds(f["seconds"]),
                     f"{s['objective']:.5f}", f"{f['objective']:.5f}", f"{s['bucket_error']:.5f}",
                     pass_fail(b["seconds"] < TARGET_SECONDS)])
    common.print_table(["constraint", f"fairwatch {big:,}", "refit from counts", f"fairwatch {small:,}", f"fairlearn {small:,} raw",
                        "accuracy (fw)", "accuracy (fl)", "bucket error", f"< {TARGET_SECONDS:g} s"], rows,
                       title="What-if per constraint (wall clock in the child; fairwatch includes counting in the engine)")
    print(f"\npeak memory: fairwatch {big:,} rows {fmt_bytes(ours_big.result['peak_rss'])}, "
          f"{small:,} rows {fmt_bytes(ours_small.result['peak_rss'])}; fairlearn {small:,} raw rows "
          f"{fmt_bytes(fl.result['peak_rss'])} (loading the rows into pandas: {fmt_seconds(fl.result['load_seconds'])})")
    print(f"child wall clock incl. interpreter start: fairwatch {big:,} {fmt_seconds(ours_big.wall)}, "
          f"fairlearn {small:,} {fmt_seconds(fl.wall)}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == "--child":
        {"floor": child_floor, "ours": child_ours, "fairlearn": child_fairlearn}[sys.argv[2]](sys.argv[3])
        sys.exit(0)
    sys.exit(main())
