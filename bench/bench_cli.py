"""Whole `fairwatch audit` processes (GitHub issue 18): wall clock and peak RSS as a user runs them.

    .venv/bin/python bench/bench_cli.py [--quick] [--repeat 3] [--rows 10M]
        [--fairwatch LABEL=PATH ...] [--only 3|5]

Times, on a generated Parquet prediction log (race, sex, age_band, region, channel, device, product,
state, label, prediction; cached in bench/out/cache):
- `fairwatch audit LOG --label label --prediction prediction --sensitive race,sex,age_band --out DIR`;
- the same with `--features region,channel,device,product,state`;
- a bare DuckDB `GROUP BY` process over the same file (Python start, `import duckdb`, one query);
each as a fresh process, through `/usr/bin/time -f '%e %M %U %S'` (wall seconds, CPU seconds, the child's peak RSS: a
small C parent, so the child's ru_maxrss is not inflated by ours; see common.py), median of
`--repeat`, runs of every command interleaved so that ratios compare runs made under the same load.

Each audit also runs on the log's first 20,000 rows (same generator): that is its fixed cost (Python start,
imports, the report's charts and PDF), printed with what the full log adds to it (`--no-floor` skips it).

`--fairwatch LABEL=PATH` (repeatable) times several installs in the same run, e.g.
`--fairwatch main=/work/main/.venv/bin/fairwatch --fairwatch this=.venv/bin/fairwatch` for before
and after. PATH may also be a git revision of this checkout (`--fairwatch before=6de8774 --fairwatch
now=HEAD`): its tree is extracted once into bench/out/rev-<sha> and run with this interpreter, so two
commits are compared with the same libraries. `--extra "--memory-limit 1GB"` adds arguments to every
audit; `--log FILE` times an existing Parquet log instead of the generated one, and `--cache DIR` puts
the generated log elsewhere (a 100M-row log is ~330 MB: `--rows 100M --cache /tmp/x --only 5 --repeat 1`). Targets (issue 18): <= 3 s and <= 600 MB for the 3-sensitive audit; <= 6 s and <= 1 GB
with the 5 features. The machine is shared: the ratio to the bare GROUP BY is the steadier figure.
"""

from __future__ import annotations

import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common

# A deterministic uniform in [0, 1) per row and stream (same trick as common.PREDICTIONS_SQL).
_U = "((hash(i, {k}) % 1000000)::DOUBLE / 1000000.0)"


def _pick(k: int, values: list[str], weights: list[float] | None = None) -> str:
    """A CASE that picks one of `values` from uniform stream k (equal shares unless weighted)."""
    weights = weights or [1.0] * len(values)
    total, acc, whens = sum(weights), 0.0, []
    for v, w in zip(values[:-1], weights[:-1]):
        acc += w / total
        whens.append(f"WHEN {_U.format(k=k)} < {acc:.6f} THEN '{v}'")
    return f"CASE {' '.join(whens)} ELSE '{values[-1]}' END"


STATES = [f"S{i:02d}" for i in range(50)]
# Label base rate and a prediction that errs more for some groups (so the slice search has findings).
CLI_LOG_SQL = f"""
SELECT race, sex, age_band, region, channel, device, product, state,
       label,
       CASE WHEN {_U.format(k=20)} < 0.12 + CASE WHEN race = 'Black' AND age_band = '18-24' THEN 0.08 ELSE 0 END
                 + CASE WHEN channel = 'phone' THEN 0.03 ELSE 0 END
            THEN 1 - label ELSE label END AS prediction
FROM (
  SELECT {_pick(1, ['White', 'Black', 'Hispanic', 'Asian', 'Other'], [60, 13, 17, 6, 4])} AS race,
         {_pick(2, ['female', 'male'], [49, 51])} AS sex,
         {_pick(3, ['18-24', '25-34', '35-44', '45-54', '55-64', '65+'])} AS age_band,
         {_pick(4, ['north', 'south', 'east', 'west', 'central', 'coast', 'mountain', 'plains'])} AS region,
         {_pick(5, ['web', 'app', 'phone', 'branch'], [45, 35, 10, 10])} AS channel,
         {_pick(6, ['desktop', 'mobile', 'tablet'], [40, 50, 10])} AS device,
         {_pick(7, [f'p{j}' for j in range(12)])} AS product,
         {_pick(8, STATES)} AS state,
         ({_U.format(k=9)} < 0.35)::INTEGER AS label, i
  FROM range({{n}}) AS t(i)
)
"""
SENSITIVE = "race,sex,age_band"
FEATURES = "region,channel,device,product,state"
TARGETS = {"3": (3.0, 600e6), "5": (6.0, 1e9)}
# The floor: each audit also runs on the log's first rows, where its data work is nearly nothing.
FLOOR_ROWS = 20_000


def cli_log(n_rows: int, cache_dir: Path | None = None) -> Path:
    """The generated log of the issue's commands (see CLI_LOG_SQL), written once."""
    return common.ensure_parquet("cli_log", CLI_LOG_SQL, n_rows, **({"cache_dir": cache_dir} if cache_dir else {}))


def fairwatch_command(path: str) -> list[str]:
    """The argv prefix that runs `fairwatch` from an executable, or from a git revision of this checkout."""
    if Path(path).is_file():
        return [path]
    tree = common.revision_tree(path, "--fairwatch")
    # The revision's `fairwatch` package first on the path (before the editable install and the working
    # directory); its __init__ adds the revision's top level (metrics/, connectors/, cli.py) to the package.
    code = f"import sys; sys.path.insert(0, {str(tree)!r}); from fairwatch.cli import main; sys.exit(main())"
    return [common.project_python(), "-c", code]


def audit_argv(fairwatch: list[str], log: Path, out: Path, with_features: bool, extra: list[str] = ()) -> list[str]:
    """The issue's audit command line."""
    argv = [*fairwatch, "audit", str(log), "--label", "label", "--prediction", "prediction",
            "--sensitive", SENSITIVE, "--out", str(out)]
    return argv + (["--features", FEATURES] if with_features else []) + list(extra)


def bare_argv(log: Path) -> list[str]:
    """A process that only starts Python, imports duckdb and runs the group counts over the file."""
    sql = (f"SELECT race, sex, age_band, label, prediction, count(*) AS n "
           f"FROM read_parquet('{log}') GROUP BY ALL")
    return [common.project_python(), "-c", f"import duckdb; duckdb.sql({sql!r}).fetchall()"]


def timed(argv: list[str]) -> tuple[float, int, float]:
    """Run a command under /usr/bin/time; its wall seconds, peak RSS in bytes and CPU seconds. Raises when it fails."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as fh:
        proc = subprocess.run(["/usr/bin/time", "-o", fh.name, "-f", "%e %M %U %S", *argv], cwd=common.ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-10:])
            raise RuntimeError(f"{' '.join(argv[:3])} ... exited {proc.returncode}:\n{tail}")
        wall, kib, user, system = fh.read().split()[-4:]
    return float(wall), int(kib) * 1024, float(user) + float(system)


def main(argv: list[str] | None = None) -> int:
    """Measure the commands interleaved and print medians, ratios and PASS/FAIL."""
    p = common.bench_parser(__doc__.splitlines()[0])
    p.add_argument("--rows", type=common.parse_count, default=10_000_000, help="rows of the log (default 10M)")
    p.add_argument("--fairwatch", action="append", metavar="LABEL=PATH",
                   help="a fairwatch executable to time (repeatable; default: this checkout's .venv/bin/fairwatch)")
    p.add_argument("--only", choices=("3", "5"), help="only the 3-sensitive audit or only the 5-feature one")
    p.add_argument("--extra", default="", help="more arguments for every audit, e.g. \"--memory-limit 1GB\"")
    p.add_argument("--log", type=Path, help="time this Parquet log (with the generated log's columns) instead")
    p.add_argument("--cache", type=Path, help="folder for the generated log (default bench/out/cache)")
    p.add_argument("--no-floor", action="store_true", help=f"skip the same commands on the log's first {FLOOR_ROWS:,} rows")
    args = common.parse_args(p, argv)
    rows, repeat = (200_000, 1) if args.quick else (args.rows, args.repeat)
    extra = shlex.split(args.extra)
    installs = []
    for item in args.fairwatch or [f"this={common.ROOT / '.venv' / 'bin' / 'fairwatch'}"]:
        label, _, path = item.partition("=")
        installs.append((label, fairwatch_command(path or label)))
    if not Path("/usr/bin/time").exists():
        print("bench_cli needs /usr/bin/time (apt-get install time)")
        return 1
    print(common.machine_summary())
    log = args.log or cli_log(rows, args.cache)
    if args.log:
        import duckdb

        rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{log}')").fetchall()[0][0]
    # The same commands on the log's first rows: what a run costs whatever the data (start, imports, report).
    small = None if args.no_floor or rows <= FLOOR_ROWS else cli_log(FLOOR_ROWS, args.cache)
    commands = {"bare GROUP BY": lambda out: bare_argv(log)}
    for label, path in installs:
        for kind in ("3", "5"):
            if args.only in (None, kind):
                commands[f"{label}: audit {kind}"] = (
                    lambda out, path=path, kind=kind: audit_argv(path, log, out, kind == "5", extra))
                if small is not None:
                    commands[f"{label}: audit {kind} on {FLOOR_ROWS:,} rows"] = (
                        lambda out, path=path, kind=kind: audit_argv(path, small, out, kind == "5", extra))
    runs: dict[str, list[tuple[float, int, float]]] = {name: [] for name in commands}
    work = Path(tempfile.mkdtemp(prefix="bench-cli-", dir=common.OUT_DIR))
    try:
        for r in range(repeat):
            for name, make in commands.items():
                out = work / f"{name.replace(' ', '_').replace(':', '')}-{r}"
                runs[name].append(timed(make(out)))
                print(f"  run {r + 1}/{repeat} {name}: {runs[name][-1][0]:.2f} s, "
                      f"{common.fmt_bytes(runs[name][-1][1])}, {runs[name][-1][2]:.2f} CPU-s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bare = statistics.median(w for w, _, _ in runs["bare GROUP BY"])
    bare_cpu = statistics.median(c for _, _, c in runs["bare GROUP BY"])
    table = []
    for name, got in runs.items():
        wall = statistics.median(w for w, _, _ in got)
        rss = statistics.median(m for _, m, _ in got)
        cpu = statistics.median(c for _, _, c in got)
        kind = name.rsplit(" ", 1)[-1] if "audit" in name and "rows" not in name else None
        target = TARGETS.get(kind) if kind else None
        verdict = common.pass_fail(wall <= target[0] and rss <= target[1]) if target else ""
        table.append([name, common.Timing(tuple(w for w, _, _ in got)), common.fmt_bytes(rss),
                      common.fmt_ratio(wall / bare) if bare else "-", f"{cpu:.2f}",
                      common.fmt_ratio(cpu / bare_cpu) if bare_cpu else "-",
                      f"<= {target[0]:g} s, <= {common.fmt_bytes(target[1])}" if target else "", verdict])
    common.print_table(["command", "wall (median [min-max])", "peak RSS", "wall / bare", "CPU-s", "CPU / bare",
                        "target", ""], table,
                       title=f"whole processes on {rows:,} rows ({log.name}), {repeat} run(s) each")
    for name in runs:
        floor = f"{name} on {FLOOR_ROWS:,} rows"
        if floor in runs:
            full, fixed = (statistics.median(w for w, _, _ in runs[n]) for n in (name, floor))
            print(f"{name}: {fixed:.2f} s of {full:.2f} s is the same command on {FLOOR_ROWS:,} rows (start, imports, "
                  f"report); the {rows:,} rows add {full - fixed:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
