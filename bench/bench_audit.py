"""Bench: the group audit (`run_audit`) against a bare DuckDB GROUP BY and against fairlearn on raw rows.

GitHub issue 2. For each size (default 1M and 10M synthetic rows: 3 sensitive features with 2, 6
and 6 values, all 7 groupings; 0/1 label, 0/1 prediction, a float score in [0, 1]) it prints:

- the group audit of issue 2 (`run_audit(..., search_slices=False)`: every group and intersection,
  every metric, intervals, disparities, representation; the slice search of issue 3 is measured by
  bench_slices.py) in two forms: with the score metrics (ROC AUC, Brier, ECE: the engine also
  counts per score bucket) and decisions only (no score column). Cold (median of --repeat runs,
  each in a fresh process, so a fresh DuckDB) and warm (median of --repeat more runs in the first
  process), the process's peak resident memory, and where the time goes;
- two bare GROUP BYs over the same file, measured the same way and interleaved with the audits:
  `SELECT s1, s2, s3, y_true, y_pred, count(*) ... GROUP BY ALL`, the decisions-only audit's
  engine work, and the same plus the score bucket `floor(score * 1000 + 0.5)`, the score audit's
  engine work; the ratio of each audit to the bare query over the same keys, and (stricter) of the
  score audit to the bare query without the bucket;
- at sizes up to --fairlearn-max-rows (1M): fairlearn `MetricFrame` on the raw rows with the same
  metrics for every feature and intersection, its time and memory, and the largest difference
  between its numbers and the audit's;
- PASS/FAIL against the targets (at the largest size): audit < 2 s, audit / bare < 3x, peak memory
  < 1 GB. Informational: the script exits 0 either way (non-zero only when something crashed).
  When a target is missed it profiles one audit (cProfile) and prints where the time goes.

    python bench/bench_audit.py                 # 1M and 10M rows, 3 repeats
    python bench/bench_audit.py --quick         # 100k rows, one repeat (smoke run)
    python bench/bench_audit.py --sizes 1M,10M --repeat 5 --profile always
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import common
from common import fmt_bytes, fmt_ratio, fmt_seconds, pass_fail

SENSITIVE = common.PREDICTION_COLUMNS["sensitive"]
TARGET_SECONDS = 2.0
TARGET_RATIO = 3.0
TARGET_PEAK_BYTES = 1e9  # 1 GB
# Metrics compared with fairlearn (audit name -> how fairlearn computes it, see _fairlearn_metrics).
DECISION_METRICS = ("selection_rate", "accuracy", "balanced_accuracy", "true_positive_rate", "false_positive_rate",
                    "true_negative_rate", "false_negative_rate", "precision", "f1")
SCORE_METRICS = ("roc_auc", "brier_score")
BARE_SQL = "SELECT s1, s2, s3, y_true, y_pred, count(*) FROM read_parquet({path}) GROUP BY ALL"
# The same keys as the score audit's one counting query (policy.score_decimals = 3).
BARE_BUCKET_SQL = ("SELECT s1, s2, s3, y_true, y_pred, floor(score * 1000.0 + 0.5) AS b, count(*) "
                   "FROM read_parquet({path}) GROUP BY ALL")
PROFILE_LINES = 22


def audit_spec_dict(path: str, score: bool = True) -> dict[str, Any]:
    """The fairwatch.toml-shaped spec the bench audits with (default policy); without `score`, decisions only."""
    cols = common.PREDICTION_COLUMNS
    columns = {"label": cols["label"], "prediction": cols["prediction"], "sensitive": list(cols["sensitive"])}
    if score:
        columns["score"] = cols["score"]
    return {"source": {"path": path}, "columns": columns}


def groupings(sensitive: list[str]) -> list[tuple[str, ...]]:
    """Every feature alone and every intersection (the audit's own groupings; kept here so the
    fairlearn child does not import the code under test)."""
    return [c for k in range(1, len(sensitive) + 1) for c in itertools.combinations(sensitive, k)]


def group_label(cols: tuple[str, ...], key: Any) -> str:
    """'s1=female, s2=a', as the audit names groups."""
    key = key if isinstance(key, tuple) else (key,)
    return ", ".join(f"{c}={v}" for c, v in zip(cols, key))


# =========================================================================== children
# Each runs in a fresh interpreter, prints what it measured via common.child_report and exits.


def child_imports(_: dict) -> None:
    """Interpreter + imports only: the memory floor every audit process starts from."""
    started = time.perf_counter()
    import fairwatch.connectors.audit  # noqa: F401
    import fairwatch.metrics.audit.spec  # noqa: F401
    common.child_report({"import_seconds": time.perf_counter() - started})


class _StageClock:
    """Wrap module-level functions so each call adds its wall time to a named bucket."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, module: Any, name: str, label: str | None = None, classify=None) -> None:
        """Time calls of module.name (skipped when the code under test no longer has that function)."""
        original = getattr(module, name, None)
        if not callable(original):
            return
        label = label or name

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                key = classify(args) if classify else label
                self.totals[key] = self.totals.get(key, 0.0) + time.perf_counter() - started
                self.calls[key] = self.calls.get(key, 0) + 1

        setattr(module, name, timed)
        self._undo.append((module, name, original))

    def restore(self) -> None:
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo.clear()


def _query_kind(args: tuple) -> str:
    """Which counting query a run_query call is, from the aliases it selects."""
    sql = args[1] if len(args) > 1 else ""
    if "approx_count_distinct" in sql:
        return "query: cardinality check"
    cells, score = "pred_raw" in sql, "AS score" in sql
    if cells and score:
        return "query: cells + score buckets (one scan)"
    if score:
        return "query: score buckets"
    if cells:
        return "query: group cells"
    return "query: other"


def timed_audit(spec, breakdown: bool):
    """One run_audit: (snapshot, seconds, stages). With `breakdown`, the functions it calls are wrapped
    (about 40 wrapped calls, microseconds in all) and stages are (name, seconds, calls), nested
    stages indented; the first row is the whole call."""
    import fairwatch.connectors.audit as audit
    import fairwatch.connectors.counts as counts
    import fairwatch.metrics.stats.groups as groups

    clock = _StageClock()
    if breakdown:
        for name in ("open_source", "fetch_group_counts", "binarize", "binarize_scores", "compute_group_table",
                     "compute_representation", "tool_versions"):
            clock.wrap(audit, name)
        clock.wrap(counts, "run_query", classify=_query_kind)
        for name in ("confusion_by_group", "wide_table", "metric_rows", "reference_slice", "_disparities",
                     "verdicts", "bh_qvalues", "_between_groups", "score_metrics_by_group"):
            clock.wrap(groups, name)
    try:
        started = time.perf_counter()
        snap = audit.run_audit(spec, search_slices=False)
        total = time.perf_counter() - started
    finally:
        clock.restore()
    if not breakdown:
        return snap, total, []
    t, c = clock.totals, clock.calls
    order = [
        ("open_source", 1), ("fetch_group_counts", 1), ("query: cardinality check", 2), ("query: group cells", 2),
        ("query: score buckets", 2), ("query: cells + score buckets (one scan)", 2), ("query: other", 2),
        ("binarize", 1), ("binarize_scores", 1), ("compute_group_table", 1),
        ("confusion_by_group", 2), ("wide_table", 2), ("score_metrics_by_group", 3), ("metric_rows", 2),
        ("reference_slice", 2), ("_disparities", 2), ("verdicts", 2), ("bh_qvalues", 2), ("_between_groups", 2),
        ("compute_representation", 1), ("tool_versions", 1),
    ]
    top = sum(t.get(name, 0.0) for name, level in order if level == 1)
    stages = [("run_audit (total)", total, 1)]
    stages += [("  " * level + name, t[name], c[name]) for name, level in order if name in t]
    stages.append(("  (rest of run_audit: snapshot, glue, unwrapped calls)", total - top, 1))
    return snap, total, stages


def _profile(spec, lines: int) -> str:
    """cProfile of one run_audit (a warm one: the child ran the cold one first), top functions by
    cumulative and by own time."""
    import cProfile
    import io
    import pstats

    from fairwatch.connectors.audit import run_audit

    prof = cProfile.Profile()
    prof.enable()
    run_audit(spec, search_slices=False)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs()
    stats.sort_stats("cumulative").print_stats(lines)
    stats.sort_stats("tottime").print_stats(lines)
    return buf.getvalue()


def child_audit(a: dict) -> None:
    """run_audit cold (the first call in this process), then warm repeats; optionally stage timings of
    the cold call and of one more warm call, the group values, a profile."""
    started = time.perf_counter()
    from fairwatch.metrics.audit.spec import parse_spec
    import fairwatch.connectors.audit  # noqa: F401  (everything run_audit needs)
    import_seconds = time.perf_counter() - started

    spec = parse_spec(audit_spec_dict(a["path"], score=a.get("score", True)))
    snap, cold, stages_cold = timed_audit(spec, breakdown=bool(a.get("breakdown")))
    out: dict[str, Any] = {"cold": cold, "peak_cold": common.peak_rss_bytes(), "import_seconds": import_seconds,
                           "rows": snap.data.rows, "groups": int(snap.groups.rows["slice"].nunique()),
                           "metric_rows": len(snap.groups.rows)}
    if a.get("warm"):
        out["warm"] = [timed_audit(spec, breakdown=False)[1] for _ in range(a["warm"])]
    if a.get("breakdown"):
        out["breakdown_cold"] = stages_cold
        out["breakdown_warm"] = timed_audit(spec, breakdown=True)[2]
    if a.get("dump"):
        rows = snap.groups.rows
        values: dict[str, dict[str, float]] = {}
        for group, metric, value in zip(rows["group"], rows["metric"], rows["value"]):
            values.setdefault(group, {})[metric] = None if value != value else float(value)
        Path(a["dump"]).write_text(json.dumps(values))
    if a.get("profile"):
        out["profile"] = _profile(spec, PROFILE_LINES)
    out["peak_all"] = common.peak_rss_bytes()
    common.child_report(out)


def child_bare(a: dict) -> None:
    """The bare GROUP BY: cold (fresh connection, first query in this process), then warm repeats."""
    started = time.perf_counter()
    import duckdb
    import_seconds = time.perf_counter() - started
    sql = (BARE_BUCKET_SQL if a.get("bucket") else BARE_SQL).format(path="'" + a["path"].replace("'", "''") + "'")
    started = time.perf_counter()
    con = duckdb.connect(":memory:")
    rows = con.execute(sql).fetchall()
    cold = time.perf_counter() - started
    out: dict[str, Any] = {"cold": cold, "cells": len(rows), "import_seconds": import_seconds,
                           "peak_cold": common.peak_rss_bytes()}
    if a.get("warm"):
        timing, _ = common.time_call(lambda: con.execute(sql).fetchall(), repeat=a["warm"])
        out["warm"] = list(timing.runs)
    con.close()
    common.child_report(out)


def _fairlearn_metrics():
    """The fairlearn/sklearn metric functions, named as the audit names them."""
    from functools import partial

    import numpy as np
    from fairlearn.metrics import (
        false_negative_rate,
        false_positive_rate,
        selection_rate,
        true_negative_rate,
        true_positive_rate,
    )
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        brier_score_loss,
        f1_score,
        precision_score,
        roc_auc_score,
    )

    decision = {
        "selection_rate": selection_rate,
        "accuracy": accuracy_score,
        "balanced_accuracy": balanced_accuracy_score,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "true_negative_rate": true_negative_rate,
        "false_negative_rate": false_negative_rate,
        "precision": partial(precision_score, zero_division=np.nan),
        "f1": partial(f1_score, zero_division=np.nan),
    }
    score = {"roc_auc": roc_auc_score, "brier_score": brier_score_loss}
    assert tuple(decision) == DECISION_METRICS and tuple(score) == SCORE_METRICS
    return decision, score


def child_fairlearn(a: dict) -> None:
    """fairlearn MetricFrame on the raw rows: every grouping, decision metrics and score metrics."""
    started = time.perf_counter()
    import pandas as pd
    from fairlearn.metrics import MetricFrame
    decision, score = _fairlearn_metrics()
    import_seconds = time.perf_counter() - started

    started = time.perf_counter()
    df = pd.read_parquet(a["path"])
    load = time.perf_counter() - started
    y_true, y_pred, y_score = df["y_true"].to_numpy(), df["y_pred"].to_numpy(), df["score"].to_numpy()
    values: dict[str, dict[str, float]] = {}
    per_grouping: dict[str, float] = {}
    started = time.perf_counter()
    for cols in groupings(SENSITIVE):
        t0 = time.perf_counter()
        sf = df[list(cols)]
        frames = (MetricFrame(metrics=decision, y_true=y_true, y_pred=y_pred, sensitive_features=sf),
                  MetricFrame(metrics=score, y_true=y_true, y_pred=y_score, sensitive_features=sf))
        for mf in frames:
            for key, row in mf.by_group.iterrows():
                values.setdefault(group_label(cols, key), {}).update({m: float(v) for m, v in row.items()})
        per_grouping[" x ".join(cols)] = time.perf_counter() - t0
    metricframe = time.perf_counter() - started
    Path(a["dump"]).write_text(json.dumps(values))
    common.child_report({"load": load, "metricframe": metricframe, "import_seconds": import_seconds,
                         "groups": len(values), "per_grouping": per_grouping})


CHILDREN = {"imports": child_imports, "audit": child_audit, "bare": child_bare, "fairlearn": child_fairlearn}


# =========================================================================== parent


def spawn(kind: str, **kwargs: Any) -> common.ChildResult:
    """Run one child measurement of this script."""
    return common.run_child([str(Path(__file__).resolve()), "--child", kind, "--child-args", json.dumps(kwargs)])


def compare(audit: dict[str, dict[str, float]], fair: dict[str, dict[str, float]]) -> list[list[Any]]:
    """Per metric: groups compared and the largest |audit - fairlearn| (masked/undefined values skipped)."""
    out = []
    for metric in DECISION_METRICS + SCORE_METRICS:
        diffs, skipped = [], 0
        for group, by_metric in fair.items():
            a, f = audit.get(group, {}).get(metric), by_metric.get(metric)
            if a is None or f is None or f != f:
                skipped += 1
                continue
            diffs.append(abs(a - f))
        worst = max(diffs) if diffs else float("nan")
        if metric in SCORE_METRICS:
            note = "scores bucketed to 3 decimals in the audit (policy.score_decimals): bounded, not exact"
        else:
            note = "exact" if worst <= 1e-12 else "DIFFERS"
        out.append([metric, len(diffs), skipped, f"{worst:.2e}", note])
    return out


def run_size(n: int, args: argparse.Namespace, fairlearn: bool) -> dict[str, Any]:
    """All measurements at one size."""
    path = str(common.synthetic_predictions(n))
    out_dir = common.OUT_DIR / "bench_audit"
    out_dir.mkdir(parents=True, exist_ok=True)
    audit_dump = out_dir / f"audit_values_{n}.json" if fairlearn else None
    audits, bares, decisions, buckets = [], [], [], []
    for i in range(args.repeat):  # interleaved, so load on the machine hits all alike
        first = i == 0
        warm = args.repeat if first else 0
        print(f"  {n:,} rows: run {i + 1}/{args.repeat} (score audit, decisions audit, two bare GROUP BYs)", flush=True)
        audits.append(spawn("audit", path=path, warm=warm, breakdown=first,
                            dump=str(audit_dump) if first and audit_dump else None).result)
        decisions.append(spawn("audit", path=path, warm=warm, score=False).result)
        bares.append(spawn("bare", path=path, warm=warm).result)
        buckets.append(spawn("bare", path=path, warm=warm, bucket=True).result)
    res: dict[str, Any] = {
        "decisions_cold": common.Timing(tuple(r["cold"] for r in decisions)),
        "decisions_warm": common.Timing(tuple(decisions[0]["warm"])),
        "decisions_peak": common.median(r["peak_cold"] for r in decisions),
        "bucket_cold": common.Timing(tuple(r["cold"] for r in buckets)),
        "bucket_warm": common.Timing(tuple(buckets[0]["warm"])),
        "n": n, "path": path,
        "audit_cold": common.Timing(tuple(r["cold"] for r in audits)),
        "audit_warm": common.Timing(tuple(audits[0]["warm"])),
        "bare_cold": common.Timing(tuple(r["cold"] for r in bares)),
        "bare_warm": common.Timing(tuple(bares[0]["warm"])),
        "audit_peak": common.median(r["peak_cold"] for r in audits),
        "bare_peak": common.median(r["peak_cold"] for r in bares),
        "import_seconds": common.median(r["import_seconds"] for r in audits),
        "breakdown_cold": audits[0]["breakdown_cold"], "breakdown_warm": audits[0]["breakdown_warm"],
        "groups": audits[0]["groups"], "metric_rows": audits[0]["metric_rows"], "rows": audits[0]["rows"],
        "cells": bares[0]["cells"],
    }
    if fairlearn:
        res["fairlearn"], fair_values = fairlearn_baseline(path, n, out_dir, args.fresh_fairlearn)
        res["agreement"] = compare(json.loads(audit_dump.read_text()), fair_values)
    return res


def fairlearn_baseline(path: str, n: int, out_dir: Path, fresh: bool) -> tuple[dict[str, Any], dict]:
    """fairlearn on the raw rows: measured, or reused from an earlier run on the same data file with
    the same library versions (it does not involve fairwatch's code and takes minutes)."""
    versions = {name: _version(name) for name in ("fairlearn", "scikit-learn", "pandas", "numpy", "pyarrow")}
    cache = out_dir / f"fairlearn_{Path(path).stem}.json"
    if not fresh and cache.exists():
        saved = json.loads(cache.read_text())
        if saved.get("versions") == versions:
            print(f"  {n:,} rows: fairlearn MetricFrame: reusing the measurement of {saved['measured_at']} "
                  f"({cache.relative_to(common.ROOT)}; --fresh-fairlearn measures again)", flush=True)
            return saved["result"] | {"cached": saved["measured_at"]}, saved["values"]
    print(f"  {n:,} rows: fairlearn MetricFrame on raw rows (slow: minutes)", flush=True)
    dump = out_dir / f"fairlearn_values_{n}.json"
    result = spawn("fairlearn", path=path, dump=str(dump)).result
    values = json.loads(dump.read_text())
    measured_at = time.strftime("%Y-%m-%d %H:%M")
    cache.write_text(json.dumps({"versions": versions, "measured_at": measured_at, "result": result, "values": values}))
    return result | {"cached": None}, values


def _version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def targets(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(target, measured, met) at one size: the score audit (the larger work) and the decisions-only audit."""
    secs, peak = r["audit_cold"].median, max(r["audit_peak"], r["decisions_peak"])
    ratio = r["audit_cold"].median / r["bucket_cold"].median
    ratio_dec = r["decisions_cold"].median / r["bare_cold"].median
    return [
        (f"whole audit with score metrics < {TARGET_SECONDS:g} s (cold, median)", fmt_seconds(secs),
         secs < TARGET_SECONDS),
        (f"score audit / bare GROUP BY on the same keys (score bucket included) < {TARGET_RATIO:g}x",
         fmt_ratio(ratio), ratio < TARGET_RATIO),
        (f"decisions-only audit / bare GROUP BY on the same keys < {TARGET_RATIO:g}x", fmt_ratio(ratio_dec),
         ratio_dec < TARGET_RATIO),
        ("peak memory of an audit process < 1 GB", fmt_bytes(peak), peak < TARGET_PEAK_BYTES),
    ]


def report(results: list[dict[str, Any]], base: dict[str, Any], args: argparse.Namespace) -> bool:
    """Print every table; True when every target is met at the largest size."""
    common.print_table(
        ["rows", "audit", "cold", "warm", "bare GROUP BY, same keys", "cold", "warm", "ratio cold", "ratio warm"],
        [row for r in results for row in (
            [f"{r['n']:,}", "with score metrics", r["audit_cold"], r["audit_warm"], "keys + score bucket",
             r["bucket_cold"], r["bucket_warm"], fmt_ratio(r["audit_cold"].median / r["bucket_cold"].median),
             fmt_ratio(r["audit_warm"].median / r["bucket_warm"].median)],
            [f"{r['n']:,}", "decisions only", r["decisions_cold"], r["decisions_warm"], "keys",
             r["bare_cold"], r["bare_warm"], fmt_ratio(r["decisions_cold"].median / r["bare_cold"].median),
             fmt_ratio(r["decisions_warm"].median / r["bare_warm"].median)],
            [f"{r['n']:,}", "with score metrics", r["audit_cold"], r["audit_warm"], "keys (no bucket; stricter)",
             r["bare_cold"], r["bare_warm"], fmt_ratio(r["audit_cold"].median / r["bare_cold"].median),
             fmt_ratio(r["audit_warm"].median / r["bare_warm"].median)])],
        title=f"Time: group audit (run_audit without the slice search) vs bare DuckDB GROUP BY (median [min-max] "
              f"of {args.repeat}; cold = first call in a fresh process, warm = repeated in that process)",
    )
    common.print_table(
        ["rows", "audit process peak", "of which imports", "audit increment", "bare GROUP BY peak", "import time",
         "groups", "metric rows", "count cells (bare)"],
        [[f"{r['n']:,}", fmt_bytes(r["audit_peak"]), fmt_bytes(base["peak_rss"]),
          fmt_bytes(r["audit_peak"] - base["peak_rss"]), fmt_bytes(r["bare_peak"]), fmt_seconds(r["import_seconds"]),
          r["groups"], r["metric_rows"], r["cells"]] for r in results],
        title="Memory: peak resident set (VmHWM) of the child process doing one cold audit (median); "
              "'of which imports' = a child that only imports connectors.audit",
    )
    stage_names: list[str] = []
    for r in results:  # union of stages, in the order they appear
        for name, _, _ in r["breakdown_cold"] + r["breakdown_warm"]:
            if name not in stage_names:
                stage_names.append(name)
    rows = []
    for name in stage_names:
        row, calls = [name], "-"
        for r in results:
            cold, warm = dict((n, (s, c)) for n, s, c in r["breakdown_cold"]), dict(
                (n, (s, c)) for n, s, c in r["breakdown_warm"])
            total = r["breakdown_cold"][0][1]
            row += [fmt_seconds(cold[name][0]) if name in cold else "-",
                    f"{100 * cold[name][0] / total:.0f}%" if name in cold else "-",
                    fmt_seconds(warm[name][0]) if name in warm else "-"]
            calls = cold.get(name, warm.get(name, (0, calls)))[1]
        rows.append(row + [calls])
    common.print_table(
        ["stage"] + [h for r in results for h in (f"{r['n']:,} cold", "share", "warm")] + ["calls"], rows,
        title="Where run_audit spends its time (the first child's cold call and one more warm call; "
              "indented = inside the stage above)",
        align="l" + "r" * (3 * len(results) + 1),
    )
    fair = [r for r in results if "fairlearn" in r]
    if fair:
        common.print_table(
            ["rows", "load Parquet->pandas", "MetricFrame (7 groupings)", "fairlearn total", "fairlearn peak",
             "audit cold", "fairlearn/audit time", "fairlearn/audit memory"],
            [[f"{r['n']:,}", fmt_seconds(r["fairlearn"]["load"]), fmt_seconds(r["fairlearn"]["metricframe"]),
              fmt_seconds(r["fairlearn"]["load"] + r["fairlearn"]["metricframe"]), fmt_bytes(r["fairlearn"]["peak_rss"]),
              fmt_seconds(r["audit_cold"].median),
              fmt_ratio((r["fairlearn"]["load"] + r["fairlearn"]["metricframe"]) / r["audit_cold"].median),
              fmt_ratio(r["fairlearn"]["peak_rss"] / r["audit_peak"])] for r in fair],
            title=f"fairlearn MetricFrame on the raw rows ({len(DECISION_METRICS)} decision + {len(SCORE_METRICS)} "
                  f"score metrics, every feature and intersection; one run, fresh process)",
        )
        for r in fair:
            if r["fairlearn"].get("cached"):
                print(f"  at {r['n']:,} rows the fairlearn figures were measured at {r['fairlearn']['cached']} "
                      f"(reused; its values are compared with this run's audit below)")
        for r in fair:
            print("  MetricFrame time per grouping: " + ", ".join(
                f"{g} {fmt_seconds(t)}" for g, t in r["fairlearn"]["per_grouping"].items()))
        for r in fair:
            common.print_table(["metric", "groups compared", "skipped", "max |audit - fairlearn|", "note"],
                               r["agreement"], align="lrrrl",
                               title=f"Agreement with fairlearn at {r['n']:,} rows (every group of every grouping)")
    largest = results[-1]
    checks = targets(largest)
    common.print_table(["target (informational)", "measured", "verdict"],
                       [[t, m, pass_fail(ok)] for t, m, ok in checks],
                       title=f"Targets at {largest['n']:,} rows" + ("" if largest["n"] >= 10_000_000 else
                                                                    " (the targets are stated for 10M rows)"),
                       align="lrl")
    if len(results) > 1:
        for r in results[:-1]:
            print(f"  at {r['n']:,} rows: " + "; ".join(f"{t.split(' (')[0]} {m} {pass_fail(ok)}"
                                                         for t, m, ok in targets(r)))
    for r in results:
        if r.get("profile"):
            print(f"\ncProfile of one warm run_audit at {r['n']:,} rows (the second call in a fresh process; "
                  f"cumulative time counts callees, tottime only the function's own code)")
            print(r["profile"].rstrip())
    return all(ok for _, _, ok in checks)


def main(argv: list[str] | None = None) -> int:
    parser = common.bench_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000", help="row counts, comma-separated (default 1M,10M)")
    parser.add_argument("--fairlearn-max-rows", type=common.parse_count, default=1_000_000,
                        help="run fairlearn on raw rows only up to this size (default 1M: it is slow)")
    parser.add_argument("--fresh-fairlearn", action="store_true",
                        help="measure fairlearn again instead of reusing an earlier measurement on the same data")
    parser.add_argument("--profile", choices=("auto", "always", "never"), default="auto",
                        help="cProfile one audit at the largest size: when a target is missed (auto), always, never")
    common.add_child_flags(parser, CHILDREN)
    args = common.parse_args(parser, argv)
    if common.ran_child(args, CHILDREN):
        return 0

    sizes = common.sizes_of(args)
    print("bench_audit: run_audit vs bare DuckDB GROUP BY vs fairlearn MetricFrame (GitHub issue 2)")
    print(common.machine_summary())
    print(f"sizes {', '.join(f'{n:,}' for n in sizes)}; repeat {args.repeat}; data cached in "
          f"{common.CACHE_DIR.relative_to(common.ROOT)}/")
    started = time.perf_counter()
    base = spawn("imports").result
    results = []
    for n in sizes:
        results.append(run_size(n, args, fairlearn=n <= args.fairlearn_max_rows))
    met = all(ok for _, _, ok in targets(results[-1]))
    if args.profile == "always" or (args.profile == "auto" and not met):
        print(f"  {sizes[-1]:,} rows: profiling one audit (cProfile)", flush=True)
        results[-1]["profile"] = spawn("audit", path=results[-1]["path"], profile=True).result["profile"]
    report(results, base, args)
    print(f"\nbench_audit finished in {time.perf_counter() - started:.0f} s (exit 0: targets are informational)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
