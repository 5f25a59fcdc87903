"""The `fairwatch` command: the headless peer of the dashboard, reading the same snapshot."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fairwatch.metrics.errors import FairwatchError, SpecError

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
# DuckDB's own default is 80% of RAM: on 10M rows with 5 features the duplicate-cell and slice-cell hash tables
# took the process to 1.2-1.3 GB; held to 500MB DuckDB spills them instead, at no measurable CPU cost (issue 18).
AUDIT_MEMORY_LIMIT = "500MB"


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as our one-line error with exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # prog is "fairwatch" for the top parser (unknown arguments land there) and "fairwatch audit" for a command's.
        raise SpecError(f"{message} (see {self.prog} --help)")


def _reference_pairs(values: Sequence[str] | None) -> dict[str, str] | None:
    """--reference A=VALUE (repeatable) as a mapping."""
    if not values:
        return None
    out = {}
    for item in values:
        if "=" not in item:
            raise SpecError(f"--reference takes FEATURE=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = value
    return out


def _values(text: str | None) -> str | list[str] | None:
    """--positive-label: one value, or several separated by commas (a list the spec validates)."""
    if text is None or "," not in text:
        return text
    return [v.strip() for v in text.split(",")]


def _budget(text: str) -> int:
    """A labelling budget: a whole number of rows, 0 or more (argparse turns the error into our one line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of rows, 0 or more; got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of rows, 0 or more; got {text!r}")
    return value


_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


def _memory(text: str) -> str:
    """A DuckDB memory limit such as 512MB or 1.5GB (a unit is required: a bare number is ambiguous)."""
    if not _SIZE.match(text):
        raise argparse.ArgumentTypeError(f"must be a size with a unit, e.g. 512MB or 2GB; got {text!r}")
    return text.strip()


def _threads(text: str) -> int:
    """A number of engine threads, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of threads, 1 or more; got {text!r}")
    return value


def spec_from_args(args: argparse.Namespace):
    """Build the spec from --config and the flags (flags win)."""
    from fairwatch.connectors.config import load_spec

    overrides: dict[str, dict[str, Any]] = {
        "source": {"path": args.source, "table": args.table, "labels_table": args.labels_table,
                   "labels_path": args.labels, "id_column": args.id},
        "columns": {"label": args.label, "prediction": args.prediction, "score": args.score,
                    "threshold": args.threshold, "sensitive": args.sensitive, "features": args.features,
                    "positive_label": _values(args.positive_label), "positive_prediction": args.positive_prediction,
                    "time": args.time, "model_version": args.model_version, "task": args.task},
        "policy": {"min_support": args.min_support, "fdr": args.fdr},
        "privacy": {"hide_columns": getattr(args, "hide_columns", None),
                    "show_columns": getattr(args, "show_columns", None)},
        "slices": {"max_depth": getattr(args, "max_depth", None), "error": getattr(args, "error", None),
                   "class": getattr(args, "error_class", None)},
        "reference": _reference_pairs(args.reference) or {},
    }
    return load_spec(args.config, overrides)


def _add_spec_flags(p: argparse.ArgumentParser) -> None:
    """The flags that describe what to audit (each may also come from --config)."""
    p.add_argument("source", nargs="?", help="file, glob, folder or DuckDB file ([source] path)")
    p.add_argument("--config", help="a fairwatch.toml; flags override it")
    p.add_argument("--table", help="table or view in a DuckDB file")
    p.add_argument("--labels", help="a separate file of labels, joined on --id")
    p.add_argument("--labels-table", help="a separate table of labels in the same DuckDB file, joined on --id")
    p.add_argument("--id", help="id column that joins predictions and labels")
    p.add_argument("--label", help="label (ground truth) column")
    p.add_argument("--task", choices=("binary", "regression", "multiclass"),
                   help="what the model outputs: a yes/no decision (binary, the default), a number (regression) "
                        "or one of several classes (multiclass) ([columns] task)")
    p.add_argument("--positive-label", help="the label value that counts as positive (default: 1/true); several "
                   "separated by commas, e.g. '<30,>30', count as positive and the rest as negative")
    p.add_argument("--prediction", help="prediction (decision) column")
    p.add_argument("--positive-prediction", help="the prediction value that counts as positive")
    p.add_argument("--score", help="score column (with --threshold: predicted positive when score >= threshold)")
    p.add_argument("--threshold", type=float, help="decision threshold on the score")
    p.add_argument("--sensitive", help="comma-separated sensitive features, e.g. race,sex")
    p.add_argument("--features", help="comma-separated other features for slicing")
    p.add_argument("--reference", action="append", metavar="FEATURE=VALUE",
                   help="reference group of a feature (default: its largest group); repeatable")
    p.add_argument("--time", help="time column")
    p.add_argument("--model-version", help="model version column")
    p.add_argument("--min-support", type=int, help="smallest denominator a rate is shown for (default 30)")
    p.add_argument("--fdr", type=float, help="false-discovery rate for significance (default 0.05)")
    p.add_argument("--hide-columns", help="comma-separated columns never shown in example rows or labelling queues "
                                          "([privacy] hide_columns)")
    p.add_argument("--show-columns", help="comma-separated columns that look like personal data (names, dates of "
                                          "birth, e-mail, phone) to show anyway ([privacy] show_columns)")
    p.add_argument("--max-depth", type=int, help="most predicates in a searched slice (default 3)")
    p.add_argument("--error", choices=("misclassification", "false_negative", "false_positive", "score_loss",
                                       "absolute_error", "squared_error"),
                   help="the error signal the slice search looks for (default misclassification; regression: "
                        "absolute_error or squared_error)")
    p.add_argument("--error-class", help="multiclass --error false_negative: the class whose false negatives "
                                         "are searched ([slices] class)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = _Parser(prog="fairwatch", description="Fairness and bias audits of prediction logs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    audit = sub.add_parser("audit", help="audit a source and write a snapshot folder (JSON, CSV, HTML, PDF, manifest)")
    _add_spec_flags(audit)
    where = audit.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", help="new folder for the snapshot (refused if it exists); its parent folder is the "
                                     "history it chains into")
    where.add_argument("--history", help="history folder: the snapshot goes into a new sub-folder named <time>_<id>")
    audit.add_argument("--zip", help="also write the snapshot as one zip file at this path")
    audit.add_argument("--fail-on-findings", action="store_true",
                       help="exit 1 when the audit has any finding (for CI gates)")
    audit.add_argument("--suppress-below", type=int, metavar="K",
                       help="withhold numbers of groups smaller than K (default [privacy] suppress_below, 10)")
    audit.add_argument("--author", metavar="NAME",
                       help="who creates this snapshot, recorded in it and its manifest (default: the user running "
                            "this command, with the host as id)")
    audit.add_argument("--validate", action="store_true",
                       help="also check snapshot.json against schema/snapshot.schema.json before writing it "
                            "(the tests check every export; FAIRWATCH_VALIDATE=1 does the same)")
    audit.add_argument("--memory-limit", type=_memory, metavar="SIZE", default=AUDIT_MEMORY_LIMIT,
                       help=f"most memory DuckDB may hold while counting (default {AUDIT_MEMORY_LIMIT}: the whole "
                            "process then stays near 1 GB); larger work spills to a private temporary folder, so a "
                            "log larger than memory still audits; raise it on a large machine to spill less")
    audit.add_argument("--threads", type=_threads, metavar="N",
                       help="DuckDB threads (default: one per core)")
    audit.add_argument("--plan-budget", type=_budget, metavar="N",
                       help="also attach the data plan for a labelling budget of N rows to the snapshot "
                            "(default: no plan; fairwatch plan writes the rows to label)")
    audit.add_argument("--whatif-group", metavar="FEATURES",
                       help="also attach the what-if for these sensitive feature(s) to the snapshot (see fairwatch whatif)")
    audit.add_argument("--whatif-constraint", default="false_negative_rate_parity",
                       choices=("demographic_parity", "true_positive_rate_parity", "false_positive_rate_parity",
                                "false_negative_rate_parity", "equalized_odds"),
                       help="the what-if's constraint (default false_negative_rate_parity)")
    audit.add_argument("--whatif-objective", default="accuracy", choices=("accuracy", "balanced_accuracy"),
                       help="the what-if's objective (default accuracy)")
    verify = sub.add_parser("verify", help="check a snapshot, a history or a zip against its hashes (exit 1 if changed)")
    verify.add_argument("path", help="snapshot folder, history folder or snapshot zip")
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    hist = sub.add_parser("history", help="list the snapshots of a history folder and their hash chain")
    hist.add_argument("path", help="history folder (or any snapshot folder in it)")
    hist.add_argument("--json", action="store_true", help="print the list as JSON")
    diff = sub.add_parser("diff", help="what changed between two audits (findings, metrics, spec, data)")
    diff.add_argument("old", help="the older snapshot (folder, zip or snapshot.json)")
    diff.add_argument("new", help="the newer snapshot (folder, zip or snapshot.json)")
    diff.add_argument("--json", action="store_true", help="print the diff as JSON")
    diff.add_argument("--fail-on-new", action="store_true",
                      help="exit 1 when there are new findings or metrics that clearly moved (for scheduled checks)")
    trends = sub.add_parser("trends", help="metrics per time window and group, label coverage; --versions A B "
                                           "compares two model versions")
    _add_spec_flags(trends)
    trends.add_argument("--grain", choices=("day", "week", "month"), help="window length (default: from the time span)")
    trends.add_argument("--grouping", help="the groups shown: a sensitive feature or an intersection such as "
                                           "'sex × age_band' (default: the first sensitive feature)")
    trends.add_argument("--metric", action="append", metavar="METRIC",
                        help="a metric to show (repeatable; default: the task's headline metrics)")
    trends.add_argument("--versions", nargs=2, metavar=("A", "B"),
                        help="also compare model versions A and B per group (Welch / proportion tests, BH q-values)")
    trends.add_argument("--csv", metavar="FILE", help="also write every window × group × metric row to this CSV")
    check = sub.add_parser("check", help="evaluate alert rules on the latest window (exit 1 when one fires)")
    _add_spec_flags(check)
    check.add_argument("--rule", action="append", metavar="RULE",
                       help="an alert rule, added to [alerts] rules (repeatable), e.g. 'psi of age_band > 0.2'")
    check.add_argument("--now", help="check as of this date or time; later rows are ignored (default: the newest row)")
    check.add_argument("--last-days", type=int, help="check the last N whole days instead of the latest window")
    check.add_argument("--grain", choices=("day", "week", "month"),
                       help="window size (default: from the time span: <= 60 days day, <= 400 week, else month)")
    check.add_argument("--baseline", help="drift baseline: the window holding this date (default: the first window)")
    check.add_argument("--findings", nargs=2, metavar=("PREVIOUS", "LATEST"),
                       help="two audit snapshots (folder, zip or snapshot.json) for the rule 'any new finding'")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    plan = sub.add_parser("plan", help="allocate a labelling budget and write the rows to label (CSV, Label Studio JSON)")
    _add_spec_flags(plan)
    plan.add_argument("--budget", type=int, required=True, help="labelled rows to spend")
    plan.add_argument("--recheck", type=int, default=100, help="candidate label errors to re-check")
    plan.add_argument("--uncertain-share", type=float, default=0.2,
                      help="share of each slice's rows nearest the threshold (0: purely random)")
    plan.add_argument("--out", default="data_plan", help="folder for data_plan.csv, label_queue.csv, label_studio_tasks.json")
    whatif = sub.add_parser("whatif", help="per-group thresholds that would meet a fairness constraint, and their cost")
    _add_spec_flags(whatif)
    whatif.add_argument("--group", required=True, help="sensitive feature(s) to equalise over, comma-separated")
    whatif.add_argument("--constraint", required=True, choices=("demographic_parity", "true_positive_rate_parity",
                                                               "false_positive_rate_parity",
                                                               "false_negative_rate_parity", "equalized_odds"))
    whatif.add_argument("--objective", default="accuracy", choices=("accuracy", "balanced_accuracy", "cost"))
    whatif.add_argument("--cost-fn", type=float, default=1.0, help="cost of a false negative (--objective cost)")
    whatif.add_argument("--cost-fp", type=float, default=1.0, help="cost of a false positive (--objective cost)")
    whatif.add_argument("--tolerance", default="exact", choices=("exact", "difference", "band"),
                        help="exact parity, a maximum difference (--max-difference), or the policy band")
    whatif.add_argument("--max-difference", type=float, default=0.0, help="largest allowed difference between rates")
    whatif.add_argument("--deterministic", action="store_true",
                        help="one plain threshold per group (no randomisation; a constraint may then be impossible)")
    whatif.add_argument("--version", help="only rows of this model version")
    whatif.add_argument("--grain", choices=("day", "week", "month"),
                        help="window for the fit/check split (fit on all but the latest window; default from the span)")
    whatif.add_argument("--policy-out", help="write the thresholds as a JSON policy file here")
    whatif.add_argument("--json", action="store_true", help="print the whole result as JSON")
    serve = sub.add_parser("serve", help="start the dashboard (loopback only without sign-in, unless "
                                         "--allow-unauthenticated-remote)")
    from fairwatch.connectors.serve import add_arguments

    add_arguments(serve)
    demo = sub.add_parser("demo", help="write the built-in demo prediction log (DuckDB file)")
    demo.add_argument("--out", default="data/demo.duckdb", help="where to write it (default data/demo.duckdb)")
    demo.add_argument("--rows", type=int, default=600_000, help="number of predictions (default 600000)")
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--config-out", help="also write the demo's fairwatch.toml here")
    demo.add_argument("--task", choices=("binary", "regression", "multiclass"), default="binary",
                      help="binary: loan approvals (default); regression: credit-limit offers; multiclass: risk tiers "
                           "(each with planted effects, see connectors/demo_tasks.py)")
    return parser


def cmd_audit(args: argparse.Namespace) -> int:
    """fairwatch audit: run the audit and write the snapshot folder."""
    from fairwatch.connectors.report_worker import ReportWorker

    workers: list[ReportWorker] = []
    try:
        return _audit(args, workers)
    finally:
        for worker in workers:
            worker.close()


def _start_worker() -> Any:
    """Fork the report worker now: after pandas and the export's modules, before the statistics, any thread or DuckDB.

    Forked here it shares pandas and the report model with this process, then imports fpdf2 and Altair and
    forks its chart process (vl-convert) while this process imports the statistics and audits; the
    report path imports no scipy.stats or statsmodels (metrics/stats/intervals and the overview import them
    where an interval is computed), so the worker needs neither. Forked first thing, before pandas, the worker
    imported pandas a second time: bench_cli, 10M rows, median of 3, same run, load 15: 7.64 CPU-s here against
    8.44 forked first (7.91 on main). Earlier (issue 18) the fork came after the statistics' import: 4.46 s /
    6.44 CPU-s against 5.55 s / 7.10 CPU-s in one process. FAIRWATCH_REPORT_WORKER=0 draws in this process.
    """
    if os.environ.get("FAIRWATCH_REPORT_WORKER", "").strip() == "0":
        return None
    from fairwatch.connectors.report_worker import ReportWorker

    return ReportWorker.start()


def _audit(args: argparse.Namespace, workers: list) -> int:
    """The audit command's work; the report worker it starts goes into `workers` (the caller stops it)."""
    from fairwatch.connectors.access import cli_author
    from fairwatch.connectors.counts import fetch_group_counts
    from fairwatch.connectors.export import author_block, check_target, export_snapshot
    from fairwatch.connectors.fingerprint import fingerprint_source
    from fairwatch.connectors.source import open_source
    from fairwatch.metrics.audit.spec import RowFilter

    spec = spec_from_args(args)
    # The person running the command, or the name given: refused now, before the audit, when it is no name.
    author = author_block({**cli_author(), **({"name": args.author} if args.author is not None else {})})
    if args.out:
        check_target(args.out)  # refuse before spending time on the audit
    if args.zip and Path(args.zip).exists():
        raise SpecError(f"{args.zip} exists; snapshots are never overwritten: choose a new --zip path")
    # Forked after the input is checked: a refused command starts no worker.
    worker = _start_worker()
    if worker is not None:
        workers.append(worker)
    else:
        from fairwatch.connectors.report import warm_up_reports

        warm_up_reports()  # the report libraries load in threads while DuckDB counts
    # The statistics (scipy, statsmodels: about a second) before the first scan, not during it: DuckDB scans on
    # every core, and an import beside its scans cost more CPU than it saved (10M rows, 3 sensitive, interleaved
    # runs, load 12-13: 6.5-8.4 CPU-s imported first against 7.1-8.6 imported during the scans); the worker
    # imports its own libraries meanwhile on the other core.
    from fairwatch.connectors.audit import run_audit

    src = open_source(spec.source, memory_limit=args.memory_limit, threads=args.threads)
    try:
        # The fingerprint and the group counts are scans in DuckDB (GIL released): the fingerprint runs while
        # this thread audits.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="fairwatch-scan") as pool:
            fingerprint = pool.submit(fingerprint_source, src, spec, RowFilter())
            counts = pool.submit(fetch_group_counts, src, spec, RowFilter()) if spec.task == "binary" else None
            # The report's charts are drawn in the worker while the slice search runs (from the groups alone).
            preview = None if worker is None else (lambda early: worker.preview(early.to_dict(), args.suppress_below))
            snap = run_audit(spec, RowFilter(), src, counts=counts.result() if counts is not None else None,
                             on_groups=preview)
            if args.plan_budget is not None:
                from fairwatch.connectors.queue import attach_plan

                snap = attach_plan(snap, args.plan_budget, src)
            if args.whatif_group:
                from fairwatch.connectors.whatif import run_whatif
                from fairwatch.metrics.policy.whatif import Objective

                features = [f.strip() for f in args.whatif_group.split(",") if f.strip()]
                snap = snap.with_whatif(run_whatif(spec, features, args.whatif_constraint,
                                                   Objective(args.whatif_objective), src=src))
            result = export_snapshot(snap, args.out, history=args.history, src=src, k=args.suppress_below,
                                     zip_path=args.zip, author=author, validate=True if args.validate else None,
                                     fingerprint=fingerprint.result(), renderer=worker)
    finally:
        src.close()
    rows = snap.groups.rows
    outside = rows[rows["verdict"] == "outside"]
    sup = result.suppression
    print(f"audited {snap.data.rows:,} rows ({snap.data.unlabelled_rows:,} unlabelled) from {snap.source_description} "
          f"in {snap.duration_seconds:.2f} s")
    print(f"{rows['slice'].nunique()} groups; {len(outside)} metric(s) outside the "
          f"{spec.policy.ratio_low}-{spec.policy.ratio_high} band with q < {spec.policy.fdr}")
    print(f"suppression: k = {sup.k}; {sup.groups_suppressed} group(s) withheld "
          f"({sup.primary_groups} below k, {sup.complementary_groups} complementary), {sup.cells_suppressed} cell(s)")
    print(f"wrote {result.path} ({', '.join(result.files)}, manifest.json)")
    if result.zip_path:
        print(f"wrote {result.zip_path}")
    if snap.data_plan is not None:
        plan = snap.data_plan
        print(f"data plan: {plan.allocated:,} of {plan.budget:,} labelled rows over {len(plan.items)} open "
              f"question(s), in the snapshot's data_plan" + "".join(f"; {n}" for n in plan.notes))
    link = f"follows {result.previous}" if result.previous else "first in its history"
    print(f"snapshot {result.snapshot_id} #{result.sequence} ({link}) by {author['name']}; manifest sha256 "
          f"{result.manifest_sha256}")
    findings = snap.findings or ()
    needs = ", ".join(f"{sum(f.need == n for f in findings)} {n.replace('_', ' ')}"
                      for n in ("model", "better_data", "more_data"))
    small = f"; {snap.slices.small} real but small" if snap.slices and snap.slices.small else ""
    print(f"{len(findings)} finding(s) from the slice search ({needs}{small}; significant and material: "
          f"more than {spec.policy.ratio_high:g}x the rest's error at q < {spec.policy.fdr:g})" if findings else
          (snap.slices.note if any(w in (snap.slices.note or "") for w in ("No finding", "No errors")) else
           f"no finding: {snap.slices.note or 'no slice is significantly and materially worse than the rest'}")
          if snap.slices else "")
    return EXIT_FINDINGS if args.fail_on_findings and findings else EXIT_OK


def cmd_verify(args: argparse.Namespace) -> int:
    """fairwatch verify: exit 0 when every hash and link matches, 1 naming what changed."""
    from fairwatch.connectors.export import verify

    report = verify(args.path)
    if args.json:
        print(json.dumps({"target": report.target, "intact": report.intact, "snapshots": list(report.snapshots),
                          "files_checked": report.files_checked, "links_checked": report.links_checked,
                          "problems": [p.__dict__ for p in report.problems]}, indent=1))
    else:
        print("\n".join(report.lines()))
    return EXIT_OK if report.intact else EXIT_FINDINGS


def cmd_history(args: argparse.Namespace) -> int:
    """fairwatch history: the snapshots of a history in order, with the state of each chain link."""
    from fairwatch.connectors.export import history

    entries = history(args.path)
    if args.json:
        print(json.dumps([e.__dict__ for e in entries], indent=1, default=list))
    else:
        print(f"{'#':>3}  {'snapshot':<32} {'audited':<25} {'rows':>12} {'flagged':>7}  {'data':<12}  link")
        for e in entries:
            rows = f"{e.rows:,}" if e.rows is not None else "?"
            flagged = str(e.flagged) if e.flagged is not None else "?"
            print(f"{e.sequence if e.sequence is not None else '?':>3}  {e.folder:<32} {e.created_at or '?':<25} "
                  f"{rows:>12} {flagged:>7}  {(e.fingerprint or '?')[:12]:<12}  {e.link}")
    broken = [e for e in entries if e.link not in ("first", "ok")]
    return EXIT_FINDINGS if broken else EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """fairwatch diff: what changed from the old audit to the new one."""
    from fairwatch.connectors.export import load_snapshot
    from fairwatch.metrics.monitoring.diff import diff_snapshots

    result = diff_snapshots(load_snapshot(args.old), load_snapshot(args.new))
    if args.json:
        print(json.dumps(result.to_dict(), indent=1, default=str))
    else:
        print("\n".join(result.lines()))
    worse = result.new_findings or any(m.strength == "clear" for m in result.moved)
    return EXIT_FINDINGS if args.fail_on_new and worse else EXIT_OK


def cmd_trends(args: argparse.Namespace) -> int:
    """fairwatch trends: the task's metrics per window for one grouping, coverage, and optionally two versions."""
    from pathlib import Path

    from fairwatch.connectors.monitor import run_trends, run_version_comparison
    from fairwatch.metrics.presentation.trend_views import trend_lines, trend_metrics, version_lines

    spec = spec_from_args(args)
    if args.csv and Path(args.csv).exists():
        raise SpecError(f"{args.csv} exists; choose a new --csv path")
    trends = run_trends(spec, args.grain)
    metrics = args.metric or trend_metrics(trends.rows, spec)[1]
    print("\n".join(trend_lines(trends, args.grouping or spec.sensitive[0], metrics)))
    if args.versions:
        comp = run_version_comparison(spec, *args.versions)
        print("\n".join(version_lines(comp, metrics)))
    if args.csv:
        trends.rows.assign(slice=trends.rows["slice"].map(lambda s: ", ".join(f"{k}={v}" for k, v in (s or ())))
                           ).to_csv(args.csv, index=False)
        print(f"wrote {len(trends.rows):,} rows to {args.csv}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """fairwatch check: evaluate alert rules on the latest window (or the last N days); exit 1 when one fires."""
    from fairwatch.connectors.monitor import run_check
    from fairwatch.metrics.monitoring.alerts import FindingIds

    spec = spec_from_args(args)
    findings = None
    if args.findings:
        from fairwatch.connectors.export import load_snapshot
        from fairwatch.metrics.monitoring.diff import findings_of

        previous, latest = (findings_of(load_snapshot(path)) for path in args.findings)
        findings = FindingIds(latest=tuple(latest), previous=tuple(previous))
    alerts = spec.alerts
    result = run_check(
        spec, [*alerts.rules, *(args.rule or [])], now=args.now,
        last_days=args.last_days if args.last_days is not None else alerts.last_days,
        grain=args.grain or alerts.grain, baseline=args.baseline or alerts.baseline, findings=findings,
    )
    print(json.dumps(result.to_dict(), indent=1) if args.json else "\n".join(result.lines()))
    return EXIT_FINDINGS if result.fired else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    """fairwatch demo: generate the demo prediction log."""
    from fairwatch.connectors.demo import DEMO_CONFIG, write_demo

    if args.rows < 1000:
        raise SpecError("--rows must be at least 1000 for a meaningful demo")
    if args.task != "binary":
        from fairwatch.connectors.demo_tasks import TASK_CONFIGS, write_task_demo

        out = args.out if args.out != "data/demo.duckdb" else f"data/demo_{args.task}.duckdb"
        rows = write_task_demo(out, args.task, rows=args.rows, seed=args.seed)
        print(f"wrote {rows:,} {args.task} predictions to {out}")
        config = TASK_CONFIGS[args.task]
    else:
        summary = write_demo(args.out, rows=args.rows, seed=args.seed)
        print(f"wrote {summary.rows:,} predictions ({summary.labelled_rows:,} labelled) to {summary.path}")
        out, config = args.out, DEMO_CONFIG
    if args.config_out:
        from fairwatch.connectors.config import write_config
        from fairwatch.metrics.audit.spec import SourceSpec, parse_spec

        spec = parse_spec(config)
        spec = spec.with_source(SourceSpec(**{**spec.to_dict()["source"], "path": str(out)}))
        print(f"wrote {write_config(spec, args.config_out)}")
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """fairwatch plan: spend a labelling budget on the open questions and write the rows to label or re-check."""
    from fairwatch.connectors.audit import run_audit
    from fairwatch.connectors.queue import build_queue, label_studio_json, plan_csv, plan_pools, queue_csv
    from fairwatch.connectors.source import open_source
    from fairwatch.metrics.discovery.plan import build_plan

    spec = spec_from_args(args)
    src = open_source(spec.source)
    try:
        snap = run_audit(spec, src=src)
        plan = build_plan(snap, args.budget, plan_pools(snap, src))
        queue = build_queue(snap, plan, src, recheck_rows=args.recheck, uncertain_share=args.uncertain_share)
    finally:
        src.close()
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "data_plan.csv").write_bytes(plan_csv(plan))
        (out / "label_queue.csv").write_bytes(queue_csv(queue))
        (out / "label_studio_tasks.json").write_bytes(label_studio_json(queue))
    except OSError as exc:
        raise SpecError(f"cannot write the plan into {out}: {exc.strerror or exc}") from None
    print(f"objective: {plan.objective}")
    for item in plan.items:
        print(f"  {item.candidate.id}: {item.allocated:,} rows ({item.reason})")
    for note in (*plan.notes, *queue.notes):
        print(f"  note: {note}")
    counts = ", ".join(f"{v:,} {k}" for k, v in queue.counts().items()) or "no rows"
    print(f"wrote {out}/data_plan.csv, label_queue.csv, label_studio_tasks.json ({counts})")
    return EXIT_OK


def cmd_whatif(args: argparse.Namespace) -> int:
    """fairwatch whatif: fit per-group thresholds on all but the latest window, check them on the latest."""
    from fairwatch.connectors.whatif import run_whatif, write_policy
    from fairwatch.metrics.audit.spec import RowFilter
    from fairwatch.metrics.policy.whatif import reference_label, whatif_options

    spec = spec_from_args(args)
    features = [f.strip() for f in args.group.split(",") if f.strip()]
    objective, tolerance = whatif_options(args.objective, args.cost_fn, args.cost_fp, args.tolerance,
                                          args.max_difference, spec.policy, reference_label(spec, features))
    result = run_whatif(spec, features, args.constraint, objective, tolerance, RowFilter(model_version=args.version),
                        grain=args.grain, randomise=not args.deterministic)
    if args.policy_out:
        write_policy(result, args.policy_out)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
    else:
        print("\n".join(result.summary()))
        for rule in result.fit.rules:
            print(f"  {rule.group}: {rule.describe()}")
        if args.policy_out:
            print(f"wrote {args.policy_out}")
    return EXIT_OK if result.fit.feasible else EXIT_FINDINGS


def cmd_serve(args: argparse.Namespace) -> int:
    """fairwatch serve: check the bind address and sign-in settings, then become the Streamlit server."""
    from fairwatch.connectors.serve import options_from_args, serve

    return serve(options_from_args(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: one line on stderr and exit 2 for bad input, never a traceback."""
    try:
        args = build_parser().parse_args(argv)
        return {"audit": cmd_audit, "check": cmd_check, "demo": cmd_demo, "verify": cmd_verify, "history": cmd_history,
                "diff": cmd_diff, "plan": cmd_plan, "serve": cmd_serve, "whatif": cmd_whatif, "trends": cmd_trends}[args.command](args)
    except FairwatchError as exc:
        print(f"fairwatch: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        print("fairwatch: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the promise is: no traceback, ever
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"fairwatch: internal error: {type(exc).__name__}: {first} (please report this)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
