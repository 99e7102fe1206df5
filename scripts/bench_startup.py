"""Time what a user types before any task runs, in an ops repo using this prodmirror: `inv --list`,
`inv --help hotfix.create` and `inv --help db.sync.from-production` (target <= 0.3 s each: nothing heavy is
imported until a task runs). Beside them, for scale: the bare interpreter and invoke with no tasks at all.
No servers are needed: none of these connects anywhere.

usage: scripts/bench-startup [--runs 10]
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchlib import ROOT, ops_repo  # noqa: E402 (benchlib puts the checkout on sys.path)

TARGET = 0.3
COMMANDS = (("--list",), ("--help", "hotfix.create"), ("--help", "db.sync.from-production"))
CONFIG = """environments:
  production:
    ssh: {host: 127.0.0.1, user: deploy, port: 22}
    databases:
      lm360: {engine: postgres, name: lm360_prod, user: spmo_admin, host: 127.0.0.1, port: 5432}
  local:
    databases:
      lm360: {engine: postgres, name: lm360, user: spmo_admin, host: 127.0.0.1, port: 5432}
backups: {dir: backups, keep: 5}
hotfix:
  database: lm360
  postgrest: {image: "postgrest/postgrest:v12.2.3", name: postgrest-bugfix, network: host, port: 3000}
"""


def timed(argv, cwd):
    started = time.monotonic()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    python = str(ROOT / ".venv/bin/python")
    with tempfile.TemporaryDirectory(prefix="prodmirror-bench-startup-") as base:
        repo, empty = ops_repo(Path(base) / "repo", CONFIG), Path(base) / "empty"
        empty.mkdir()
        cases = [("python -c pass (for scale)", [python, "-c", "pass"], empty, None),
                 ("inv --version, no tasks (for scale)", [python, "-m", "invoke", "--version"], empty, None)]
        cases += [(f"inv {' '.join(argv)}", [python, "-m", "invoke", *argv], repo, TARGET) for argv in COMMANDS]
        for _, argv, cwd, _ in cases:  # warm the file cache and the bytecode once, untimed
            timed(argv, cwd)
        times = {label: [] for label, *_ in cases}
        for _ in range(args.runs):  # interleaved, so that a busy moment hits every case alike
            for label, argv, cwd, _ in cases:
                times[label].append(timed(argv, cwd))
        print(f"{args.runs} runs each, in an ops repo of this checkout ({os.cpu_count()} cores)")
        worst = 0.0
        for label, _, _, target in cases:
            median, top = statistics.median(times[label]), max(times[label])
            verdict = "" if target is None else f"  (target <= {target:.1f})  {'OK' if median <= target else 'OVER TARGET'}"
            print(f"{label:<40} median {median:.3f} s, max {top:.3f} s{verdict}")
            if target is not None:
                worst = max(worst, median)
        print(f"slowest median of the three: {worst:.3f} s (target <= {TARGET:.1f})")


if __name__ == "__main__":
    main()
