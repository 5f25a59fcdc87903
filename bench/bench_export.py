"""Bench: exporting an audit snapshot (fingerprint, suppression, JSON, CSV, charts, HTML, PDF, manifest) at 10M rows.

GitHub issue 6. For each size (default 10M synthetic rows, `common.synthetic_predictions`: 3 sensitive
features with 2, 6 and 6 values, all 7 groupings, a score) it runs, in a fresh process per repeat:
`run_audit` (for reference), then `export_snapshot` twice into bench/out/export/: the first export
is cold (the process renders its first chart and first PDF, as `fairwatch audit` does), the second
warm (as in the long-running dashboard). It prints the median time of each export stage, the size
of each file, the peak memory, and PASS/FAIL for the target: a cold export (fingerprint over every
row included) takes under 10 s beyond the audit. Informational: exits 0 either way.

    python bench/bench_export.py                 # 10M rows, 3 repeats
    python bench/bench_export.py --quick         # 100k rows, one repeat (smoke run)
    python bench/bench_export.py --sizes 1M,10M --repeat 5
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import common
from common import fmt_bytes, fmt_seconds, pass_fail

TARGET_SECONDS = 10.0
OUT = common.OUT_DIR / "export"


def spec_dict(path: str) -> dict[str, Any]:
    """The fairwatch.toml-shaped spec of the synthetic log (default policy, default suppression k = 10)."""
    cols = common.PREDICTION_COLUMNS
    return {"source": {"path": path},
            "columns": {"label": cols["label"], "prediction": cols["prediction"], "score": cols["score"],
                        "sensitive": list(cols["sensitive"])}}


# =========================================================================== child


def child_export(kw: dict) -> None:
    """One audit and two exports (cold, then warm) in this fresh process."""
    from fairwatch.connectors.audit import run_audit
    from fairwatch.connectors.export import export_snapshot, verify
    from fairwatch.connectors.source import open_source
    from fairwatch.metrics.audit.spec import RowFilter, parse_spec

    spec = parse_spec(spec_dict(kw["path"]))
    src = open_source(spec.source)
    try:
        started = time.perf_counter()
        snap = run_audit(spec, RowFilter(), src)
        audit_seconds = time.perf_counter() - started
        runs = []
        for label in ("cold", "warm"):
            out = Path(kw["out"]) / label
            started = time.perf_counter()
            result = export_snapshot(snap, out, src=src, zip_path=Path(kw["out"]) / f"{label}.zip")
            runs.append({"label": label, "seconds": time.perf_counter() - started, "stages": dict(result.timings)})
        started = time.perf_counter()
        intact = verify(Path(kw["out"]) / "cold").intact
        verify_seconds = time.perf_counter() - started
    finally:
        src.con.close()
    cold = Path(kw["out"]) / "cold"
    sizes = {p.name: p.stat().st_size for p in sorted(cold.iterdir())}
    sizes["(zip)"] = (Path(kw["out"]) / "cold.zip").stat().st_size
    common.child_report({"rows": snap.data.rows, "groups": int(snap.groups.rows["slice"].nunique()),
                         "audit_seconds": audit_seconds, "runs": runs, "sizes": sizes, "intact": intact,
                         "verify_seconds": verify_seconds, "suppressed": result.suppression.cells_suppressed})


CHILDREN = {"export": child_export}


# =========================================================================== parent


def spawn(kind: str, **kwargs: Any) -> common.ChildResult:
    """Run one child measurement of this script."""
    return common.run_child([str(Path(__file__).resolve()), "--child", kind, "--child-args", json.dumps(kwargs)])


def run_size(n: int, repeat: int) -> dict[str, Any]:
    """Median figures over `repeat` fresh processes at one size."""
    path = common.synthetic_predictions(n)
    results = []
    for i in range(repeat):
        out = OUT / f"{n}_{i}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        print(f"  {n:,} rows: run {i + 1}/{repeat}", flush=True)
        results.append(spawn("export", path=str(path), out=str(out)).result)
        # Keep the last run's snapshot for a look; the others only cost disk.
        if i < repeat - 1:
            shutil.rmtree(out, ignore_errors=True)
    return {"n": n, "results": results}


def report(all_sizes: list[dict[str, Any]]) -> bool:
    """Print the tables; True when the target is met at the largest size."""
    ok = True
    for entry in all_sizes:
        res = entry["results"]
        n = entry["n"]
        first = res[0]
        stages = list(first["runs"][0]["stages"])
        rows = []
        for stage in stages + ["total"]:
            row: list[Any] = [stage]
            for k in (0, 1):
                values = [r["runs"][k]["seconds"] if stage == "total" else r["runs"][k]["stages"].get(stage, 0.0)
                          for r in res]
                row.append(fmt_seconds(common.median(values)))
            rows.append(row)
        common.print_table(["stage", "cold export", "warm export"], rows,
                           title=f"{n:,} rows, {first['groups']} groups ({first['suppressed']} cells suppressed): "
                                 f"median of {len(res)} fresh process(es)")
        audit = common.median(r["audit_seconds"] for r in res)
        cold = common.median(r["runs"][0]["seconds"] for r in res)
        warm = common.median(r["runs"][1]["seconds"] for r in res)
        peak = common.median(r["peak_rss"] for r in res)
        common.print_table(["file", "bytes"], [[k, fmt_bytes(v)] for k, v in first["sizes"].items()],
                           title="files of one snapshot")
        met = cold < TARGET_SECONDS
        ok = met
        print(f"\naudit {fmt_seconds(audit)}; export cold {fmt_seconds(cold)}, warm {fmt_seconds(warm)} "
              f"(fingerprint over {first['rows']:,} rows included); verify {fmt_seconds(common.median(r['verify_seconds'] for r in res))}; "
              f"peak memory {fmt_bytes(peak)}; verify intact: {all(r['intact'] for r in res)}")
        print(f"target: cold export < {TARGET_SECONDS:g} s beyond the audit: {pass_fail(met)}")
    return ok


def main(argv: list[str] | None = None) -> int:
    """Parse flags; run a child measurement or the whole bench."""
    parser = common.bench_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000000", help="row counts, comma-separated (default 10M)")
    common.add_child_flags(parser, CHILDREN)
    args = common.parse_args(parser, argv)
    if common.ran_child(args, CHILDREN):
        return 0
    sizes = common.sizes_of(args)
    print("bench_export: snapshot export (fingerprint, JSON, CSV, charts, HTML, PDF, manifest) (GitHub issue 6)")
    print(common.machine_summary())
    started = time.perf_counter()
    results = [run_size(n, args.repeat) for n in sizes]
    report(results)
    print(f"\nlast snapshot kept in {OUT.relative_to(common.ROOT)}/; bench_export finished in "
          f"{time.perf_counter() - started:.0f} s (exit 0: targets are informational)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
