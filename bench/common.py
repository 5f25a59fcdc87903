"""Shared helpers for the benchmarks in bench/: data, child processes, timing, memory, tables.

Every bench is a script (`python bench/bench_x.py`), so this module is imported as `common` from the
bench folder. Conventions, so that `bench/run_all.py` can run them all with the same flags:

- build the parser with `bench_parser()` (it has `--quick` and `--repeat`) and parse with
  `parse_args()`, which ignores flags meant for another bench instead of failing;
- measure anything heavy in a child process (`run_child`): each measurement starts from a fresh
  interpreter and a fresh DuckDB, and the child reports its own peak memory;
- print PASS/FAIL against targets but exit 0 either way: a bench informs, tests decide.

Peak memory is the child's `VmHWM` (high-water resident set) from /proc/self/status. Not
`ru_maxrss`: on Linux a child's `ru_maxrss` (RUSAGE_SELF in the child, RUSAGE_CHILDREN or
`os.wait4` in the parent) starts from the *parent's* resident set at fork/exec time; measured here,
a 10 MB child of a 1.5 GB parent reported 1.5 GB. `ru_maxrss` is only the fallback where /proc is
missing.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
OUT_DIR = BENCH_DIR / "out"  # git-ignored
CACHE_DIR = OUT_DIR / "cache"
RESULT_MARKER = "@@BENCH_RESULT "

if str(ROOT) not in sys.path:  # the project's packages (connectors, metrics) without installing
    sys.path.insert(0, str(ROOT))


# --------------------------------------------------------------------------- flags


def bench_parser(description: str) -> argparse.ArgumentParser:
    """A parser with the flags every bench understands: --quick and --repeat."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a small smoke run (small data, one repeat)")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported (default 3)")
    return p


def add_child_flags(parser: argparse.ArgumentParser, children: Mapping[str, Callable[[dict], Any]]) -> None:
    """The hidden flags by which a bench runs one of its measurements in a fresh process of its own."""
    parser.add_argument("--child", choices=sorted(children), help=argparse.SUPPRESS)
    parser.add_argument("--child-args", default="{}", help=argparse.SUPPRESS)


def ran_child(args: argparse.Namespace, children: Mapping[str, Callable[[dict], Any]]) -> bool:
    """Run the measurement --child names, if any (this process is then that child); whether it did."""
    if not getattr(args, "child", None):
        return False
    children[args.child](json.loads(args.child_args))
    return True


def sizes_of(args: argparse.Namespace) -> list[int]:
    """The row counts to measure: 100k with one repeat for --quick, else --sizes (sorted, once each)."""
    if args.quick:
        args.repeat = 1
        return [100_000]
    return sorted(set(parse_sizes(args.sizes)))


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse known flags; flags meant for another bench (run_all passes all of them) are ignored."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        print(f"[{Path(sys.argv[0]).name}] ignoring flags not meant for this bench: {' '.join(unknown)}")
    if getattr(args, "repeat", 1) < 1:
        parser.error("--repeat must be at least 1")
    return args


def parse_count(text: str) -> int:
    """'1000000', '1_000_000', '1e6', '1M' or '100k' as an int."""
    t = text.strip().lower().replace("_", "").replace(",", "")
    mult = 1
    if t and t[-1] in "km":
        mult = 1000 if t[-1] == "k" else 1_000_000
        t = t[:-1]
    return int(float(t) * mult)


def parse_sizes(text: str) -> list[int]:
    """A comma-separated list of row counts ('1000000,10000000' or '1M,10M')."""
    # Commas separate sizes here, so parse each piece on its own.
    return [parse_count(piece) for piece in text.split(",") if piece.strip()]


# --------------------------------------------------------------------------- synthetic data

# Columns of the standard synthetic prediction log:
#   s1 VARCHAR  (2 values, 48/52), s2 VARCHAR (6 values, skewed 55/15/12/10/4/4 %),
#   s3 TINYINT  (6 age bands, uniform), y_true INTEGER 0/1, y_pred INTEGER 0/1 (score >= 0.5),
#   score DOUBLE in [0, 1] (full precision, not pre-rounded).
# Planted effects: base rate depends on s1 and s3; the score is shifted down for s2 = 'b' and for
# s3 = 5, so TPR/FPR/selection rate differ across groups. Deterministic: uniforms come from
# hash(i, k), not random(), so every run and every thread count writes the same rows.
_U = "((hash(i, {k}) % 1000000)::DOUBLE / 1000000.0)"
PREDICTIONS_SQL = f"""
SELECT
    CASE WHEN {_U.format(k=1)} < 0.48 THEN 'female' ELSE 'male' END AS s1,
    CASE WHEN u2 < 0.55 THEN 'a' WHEN u2 < 0.70 THEN 'b' WHEN u2 < 0.82 THEN 'c'
         WHEN u2 < 0.92 THEN 'd' WHEN u2 < 0.96 THEN 'e' ELSE 'f' END AS s2,
    s3,
    y_true,
    (score >= 0.5)::INTEGER AS y_pred,
    score
FROM (
    SELECT i, u2, s3, y_true,
        greatest(0.0, least(1.0, 0.22 + 0.34 * y_true + 0.55 * (u5 - 0.5)
                 - CASE WHEN u2 >= 0.55 AND u2 < 0.70 THEN 0.06 ELSE 0 END
                 - CASE WHEN s3 = 5 THEN 0.04 ELSE 0 END)) AS score
    FROM (
        SELECT i, u2, s3, u5,
            (u4 < 0.30 + 0.04 * (u1 < 0.48)::INTEGER + 0.02 * s3)::INTEGER AS y_true
        FROM (
            SELECT i,
                {_U.format(k=1)} AS u1, {_U.format(k=2)} AS u2,
                (hash(i, 3) % 6)::TINYINT AS s3,
                {_U.format(k=4)} AS u4, {_U.format(k=5)} AS u5
            FROM range({{n}}) AS t(i)
        )
    )
)
"""
PREDICTION_COLUMNS = {"sensitive": ["s1", "s2", "s3"], "label": "y_true", "prediction": "y_pred", "score": "score"}


def ensure_parquet(name: str, select_sql: str, n_rows: int, *, cache_dir: Path = CACHE_DIR) -> Path:
    """Write `select_sql` (with `{n}` for the row count) to Parquet once; later calls reuse the file.

    The file name carries a hash of the SQL, so changing a generator writes a new file instead of
    silently reusing stale data. Written to a temporary name, then renamed: a crash leaves no half file.
    """
    import duckdb

    sql = select_sql.replace("{n}", str(int(n_rows)))
    digest = hashlib.sha256(sql.encode()).hexdigest()[:10]
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{name}_{n_rows}_{digest}.parquet"
    if path.exists():
        return path
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    started = time.perf_counter()
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"COPY ({sql}) TO '{tmp}' (FORMAT parquet)")
    finally:
        con.close()
    os.replace(tmp, path)
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path  # --cache may be outside the checkout
    print(f"  generated {shown} ({n_rows:,} rows, {fmt_bytes(path.stat().st_size)}) "
          f"in {time.perf_counter() - started:.1f} s")
    return path


def synthetic_predictions(n_rows: int) -> Path:
    """The standard synthetic prediction log with `n_rows` rows (see PREDICTIONS_SQL)."""
    return ensure_parquet("predictions", PREDICTIONS_SQL, n_rows)


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True)
class Timing:
    """Runs of one measurement, in seconds."""

    runs: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def min(self) -> float:
        return min(self.runs)

    @property
    def max(self) -> float:
        return max(self.runs)

    def __str__(self) -> str:
        if len(self.runs) == 1:
            return fmt_seconds(self.runs[0])
        return f"{fmt_seconds(self.median)} [{fmt_seconds(self.min)}-{fmt_seconds(self.max)}]"


def time_call(fn: Callable[[], Any], repeat: int = 3, warmup: int = 0) -> tuple[Timing, Any]:
    """Call `fn` warmup + repeat times in this process; the timings of the last `repeat` calls and the last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return Timing(tuple(runs)), result


def median(values: Iterable[float]) -> float:
    """Median of the values (NaN when there are none)."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


# --------------------------------------------------------------------------- memory


def peak_rss_bytes() -> int:
    """Peak resident set of this process so far: VmHWM, or ru_maxrss where /proc is missing (see module doc)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # bytes on macOS, KiB on Linux


def current_rss_bytes() -> int:
    """Resident set of this process now (VmRSS), 0 where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------- child processes


def project_python() -> str:
    """The interpreter for children: this one, or the project's venv when this one lacks the packages."""
    venv = ROOT / ".venv" / "bin" / "python"
    try:
        import duckdb  # noqa: F401
        import pandas  # noqa: F401
        return sys.executable
    except ImportError:
        return str(venv) if venv.exists() else sys.executable


def child_report(payload: dict[str, Any]) -> None:
    """In a child: print the result line the parent parses, with the child's peak memory added."""
    payload = dict(payload)
    payload.setdefault("peak_rss", peak_rss_bytes())
    print(RESULT_MARKER + json.dumps(payload, default=float), flush=True)


@dataclass
class ChildResult:
    """What a child process reported."""

    returncode: int
    wall: float  # seconds, spawn to exit (includes interpreter start and imports)
    result: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and bool(self.result)


def run_child(argv: Sequence[str], *, timeout: float | None = None, env: dict[str, str] | None = None) -> ChildResult:
    """Run `python argv...` from the project root; parse its `child_report` line. Raises on failure."""
    cmd = [project_python(), *argv]
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})
        err.seek(0)
        stderr = err.read()
    wall = time.perf_counter() - started
    result: dict[str, Any] = {}
    other = []
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            result = json.loads(line[len(RESULT_MARKER):])
        else:
            other.append(line)
    out = ChildResult(proc.returncode, wall, result, "\n".join(other), stderr)
    if not out.ok:
        tail = "\n".join((stderr or out.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"child {' '.join(argv[:4])} ... failed (exit {proc.returncode}):\n{tail}")
    return out


def revision_tree(rev: str, flag: str) -> Path:
    """A git revision of this checkout extracted once under bench/out (for before/after in one run).

    Run its code with the tree first on sys.path: its `fairwatch` package's __init__ adds the
    revision's top level (metrics/, connectors/, cli.py), and the libraries are this venv's, so two
    commits are compared with the same libraries.
    """
    got = subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=ROOT,
                         capture_output=True, text=True)
    if got.returncode != 0:
        raise SystemExit(f"{flag} {rev}: neither an executable nor a git revision of {ROOT}")
    sha = got.stdout.strip()
    tree = OUT_DIR / f"rev-{sha[:12]}"
    if not (tree / "cli.py").exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".rev-{sha[:12]}-", dir=OUT_DIR))
        archive = subprocess.run(["git", "archive", "--format=tar", sha], cwd=ROOT, capture_output=True,
                                 check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(partial, filter="data")
        partial.rename(tree)
    return tree


# --------------------------------------------------------------------------- printing


def fmt_seconds(s: float | None) -> str:
    """1.23 s, 45.6 ms, 789 µs."""
    if s is None or s != s:
        return "-"
    if s >= 100:
        return f"{s:.0f} s"
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.0f} µs"


def fmt_bytes(b: float | None) -> str:
    """Decimal units (1 MB = 10^6 bytes, 1 GB = 10^9 bytes), as the targets are stated."""
    if b is None or b != b:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(b) >= size:
            return f"{b / size:.2f} {unit}" if unit == "GB" else f"{b / size:.0f} {unit}"
    return f"{b:.0f} B"


def fmt_ratio(r: float | None) -> str:
    """2.3x."""
    return "-" if r is None or r != r else f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def pass_fail(ok: bool | None) -> str:
    """PASS, FAIL, or n/a when the figure was not measured."""
    return "n/a" if ok is None else "PASS" if ok else "FAIL"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None,
                align: str | None = None) -> None:
    """A plain-text table; `align` is one of l/r per column (default: first left, rest right)."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "l" + "r" * (len(headers) - 1)

    def line(r: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if a == "l" else v.rjust(w) for v, w, a in zip(r, widths, align)).rstrip()

    if title:
        print(f"\n{title}")
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        print(line(r))


def machine_summary() -> str:
    """One line about the machine and library versions, for the top of a bench's output."""
    from importlib import metadata

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            mem = int(fh.readline().split()[1]) * 1024
    except OSError:
        mem = 0
    libs = ", ".join(f"{n} {version(n)}" for n in ("duckdb", "pandas", "fairlearn", "scikit-learn"))
    return (f"python {sys.version.split()[0]}, {os.cpu_count()} cores, {fmt_bytes(mem)} RAM, {libs}; "
            f"load average {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
