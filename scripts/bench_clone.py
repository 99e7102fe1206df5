"""Alternate prodmirror's `hotfix.create` with the raw commands it replaces, on a production reached over a
loopback sshd: `--strategy template` against `psql -c "CREATE DATABASE … TEMPLATE …"`, and
`--strategy dump` against `pg_dump -Fc SRC | pg_restore -d NEW` run on the server, both over ssh; print the
median ratio of each (target <= 1.10). Each run drops its clone again, untimed. prodmirror carries a fixed
~0.2 s (Python, invoke and paramiko start-up, one facts query), visible on small databases.

usage: scripts/bench-clone [--runs 3] [--scale 10]
"""

import argparse
import os
import subprocess
import time
from pathlib import Path

from benchlib import ops_repo, report, run_task, testbed  # noqa: E402 (benchlib puts the checkout on sys.path)

SRC, NEW = "lm360_prod", "lm360_bugfix"


def ssh(sshd, command):
    return ["ssh", "-i", sshd.client_key, "-p", str(sshd.port), "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{sshd.user}@127.0.0.1", command]


def timed(argv):
    os.sync()
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale (50 ≈ 790 MB)")
    args = parser.parse_args()

    with testbed("prodmirror-bench-clone-", ("production",)) as (user, base, clusters, sshd):
        prod = clusters["production"]
        prod.psql("CREATE ROLE spmo_admin LOGIN SUPERUSER")
        prod.psql(f"CREATE DATABASE {SRC} OWNER spmo_admin")
        print(f"generating {SRC} (pgbench -i -s {args.scale})…", flush=True)
        subprocess.run([f"{prod.bin}/pgbench", "-i", "-q", "-s", str(args.scale), "-h", "127.0.0.1", "-p",
                        str(prod.port), "-U", "spmo_admin", SRC], check=True, capture_output=True)
        print(f"database size: {int(prod.psql(f'SELECT pg_database_size({chr(39)}{SRC}{chr(39)})')) / 1e6:.0f} MB")
        repo = ops_repo(Path(base) / "repo",
                        "environments:\n  production:\n"
                        f"    ssh: {{host: 127.0.0.1, user: {user}, port: {sshd.port}, key_filename: {sshd.client_key}}}\n"
                        f"    databases:\n      lm360: {{engine: postgres, name: {SRC}, user: spmo_admin, "
                        f"host: 127.0.0.1, port: {prod.port}}}\n"
                        f"hotfix: {{database: lm360, clone: {NEW}}}\n")
        conn = f"-U spmo_admin -h 127.0.0.1 -p {prod.port}"
        raw_sql = ssh(sshd, f"psql {conn} -d postgres -c 'CREATE DATABASE {NEW} TEMPLATE {SRC}'")
        raw_dump = ssh(sshd, f"createdb {conn} {NEW} && pg_dump -Fc {conn} {SRC} | pg_restore {conn} -d {NEW}")
        drop = lambda: prod.psql(f"DROP DATABASE IF EXISTS {NEW} WITH (FORCE)")  # noqa: E731
        ratios = {}
        for strategy, raw_argv, target in (("template", raw_sql, 1.10), ("dump", raw_dump, 1.10)):
            raw, ours, peaks = [], [], []
            for i in range(args.runs):
                drop()
                raw.append(timed(raw_argv))
                drop()
                os.sync()  # both start with the previous run's writes on disk
                seconds, peak = run_task(repo, "hotfix.create", "--strategy", strategy, "--force")
                ours.append(seconds)
                peaks.append(peak)
                print(f"{strategy} run {i + 1}: raw {raw[-1]:.2f} s · prodmirror {ours[-1]:.2f} s", flush=True)
            print(f"\n== strategy {strategy}")
            ratios[strategy] = report(raw, ours, peaks, target, "raw")
            drop()
        print(f"\nratios: template {ratios['template']:.3f}, online dump {ratios['dump']:.3f}")


if __name__ == "__main__":
    main()
