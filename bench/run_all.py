"""Run every bench/bench_*.py in turn, each as its own process, and print their output.

    python bench/run_all.py                  # every bench with its default sizes
    python bench/run_all.py --quick          # every bench's smoke run
    python bench/run_all.py --only audit --sizes 1M --repeat 5
    python bench/run_all.py --list

Flags other than --only/--list/--per-bench-timeout are passed through to every bench unchanged;
benches ignore flags that are meant for another one (common.parse_args). Benches are found by glob,
so a new bench_*.py runs without touching this file. A bench's targets are informational (it exits
0 when it misses them); this script exits 1 only when a bench crashed or timed out.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import common


def discover(only: list[str] | None) -> list[Path]:
    """bench_*.py in this folder, sorted by name, optionally only those whose name contains a pattern."""
    scripts = sorted(common.BENCH_DIR.glob("bench_*.py"))
    if only:
        scripts = [s for s in scripts if any(pattern in s.stem for pattern in only)]
    return scripts


def run_one(cmd: list[str], timeout: float | None) -> tuple[int, str]:
    """Run one bench with inherited output; on timeout or Ctrl-C stop it and the children it started."""
    # Its own session, so stopping it also stops its measurement children (one process group).
    proc = subprocess.Popen(cmd, cwd=common.ROOT, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
        return rc, "ok" if rc == 0 else f"FAILED (exit {rc})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        return -1, f"TIMED OUT after {timeout:g} s"
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=True)
    parser.add_argument("--only", action="append", metavar="PATTERN",
                        help="run only benches whose file name contains PATTERN (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the benches and exit")
    parser.add_argument("--per-bench-timeout", type=float, default=None, metavar="SECONDS",
                        help="stop a bench that runs longer than this (default: no limit)")
    args, passthrough = parser.parse_known_args(argv)
    scripts = discover(args.only)
    if args.list:
        for s in scripts:
            print(s.relative_to(common.ROOT))
        return 0
    if not scripts:
        print(f"no bench matches {args.only}; benches: {', '.join(s.stem for s in discover(None))}")
        return 1
    python = common.project_python()
    print(f"run_all: {len(scripts)} bench(es): {', '.join(s.stem for s in scripts)}"
          + (f"; passing {' '.join(passthrough)}" if passthrough else ""))
    summary = []
    for script in scripts:
        print(f"\n{'=' * 100}\n== {script.stem} {' '.join(passthrough)}\n{'=' * 100}", flush=True)
        started = time.perf_counter()
        rc, status = run_one([python, str(script), *passthrough], args.per_bench_timeout)
        if rc == 2 and passthrough:
            status += ": argparse usage error? benches should parse with common.parse_args (bench/README.md)"
        summary.append((script.stem, time.perf_counter() - started, status, rc))
    common.print_table(["bench", "time", "status"], [[n, common.fmt_seconds(t), s] for n, t, s, _ in summary],
                       title="run_all summary (targets are reported by each bench; status is only crash/no crash)",
                       align="lrl")
    return 0 if all(rc == 0 for *_, rc in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
