"""Alternate prodmirror's `db.sync.from-production` with the raw `ssh HOST pg_dump -Fc DB | pg_restore -d NEW`
over the same loopback sshd, on a database of at least 400 MB; print the median time ratio and the
peak memory (VmHWM) of the prodmirror process. Both restore into a database that does not exist yet,
so both do the same work; one more pull into an existing local database shows the cost of the
backup prodmirror takes first.

usage: scripts/bench-pull [--runs 3] [--scale 30]
"""

import argparse
import os
import subprocess
import time
from pathlib import Path

from benchlib import ops_repo, report, run_task, testbed  # noqa: E402 (benchlib puts the checkout on sys.path)
from tasks.sandbox import sample  # noqa: E402

DB = "bench"


def run_raw(sshd, prod, local, key):
    local.psql("DROP DATABASE IF EXISTS raw_copy WITH (FORCE)")
    local.psql("CREATE DATABASE raw_copy OWNER spmo_admin")
    ssh = ["ssh", "-i", key, "-p", str(sshd.port), "-o", "StrictHostKeyChecking=no", "-o",
           "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{sshd.user}@127.0.0.1",
           f"pg_dump -Fc -U spmo_admin -h 127.0.0.1 -p {prod.port} {DB}"]
    os.sync()  # start with the previous run's writes on disk: each timed run pays only for its own
    restore = ["pg_restore", "--no-owner", "--no-acl", "-U", "spmo_admin", "-h", "127.0.0.1", "-p", str(local.port),
               "-d", "raw_copy"]
    started = time.monotonic()
    dump = subprocess.Popen(ssh, stdout=subprocess.PIPE)
    rc = subprocess.run(restore, stdin=dump.stdout).returncode
    dump.stdout.close()
    if dump.wait() != 0 or rc != 0:
        raise SystemExit("raw pipe failed")
    return time.monotonic() - started


def run_prodmirror(repo, local, drop_first=True):
    if drop_first:
        local.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    os.sync()
    return run_task(repo, "db.sync.from-production")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale (30 ≈ 450 MB)")
    args = parser.parse_args()

    with testbed("prodmirror-bench-pull-", ("production", "local")) as (user, base, clusters, sshd):
        prod, local = clusters["production"], clusters["local"]
        prod.psql("CREATE ROLE spmo_admin LOGIN SUPERUSER")
        local.psql("CREATE ROLE spmo_admin LOGIN CREATEDB")
        print(f"generating the database (pgbench -i -s {args.scale} plus indexed sample tables)…", flush=True)
        sample.create(prod, DB, "spmo_admin", users=50000)
        subprocess.run([f"{prod.bin}/pgbench", "-i", "-q", "-s", str(args.scale), "-h", "127.0.0.1", "-p",
                        str(prod.port), "-U", "spmo_admin", DB], check=True, capture_output=True)
        prod.psql("CREATE INDEX ON pgbench_accounts (abalance); CREATE INDEX ON pgbench_accounts (bid, aid); "
                  "VACUUM ANALYZE", db=DB)
        size = int(prod.psql(f"SELECT pg_database_size('{DB}')"))
        print(f"database size: {size / 1e6:.0f} MB")

        db = lambda c: f"{{engine: postgres, name: {DB}, user: spmo_admin, host: 127.0.0.1, port: {c.port}}}"
        repo = ops_repo(Path(base) / "repo",
            "environments:\n"
            f"  production:\n    ssh: {{host: 127.0.0.1, user: {user}, port: {sshd.port}, key_filename: {sshd.client_key}}}\n"
            f"    databases:\n      bench: {db(prod)}\n"
            f"  local:\n    databases:\n      bench: {db(local)}\n")

        raw, pm, peaks = [], [], []
        for i in range(args.runs):
            raw.append(run_raw(sshd, prod, local, sshd.client_key))
            seconds, peak = run_prodmirror(repo, local)
            pm.append(seconds)
            peaks.append(peak)
            print(f"run {i + 1}: raw pipe {raw[-1]:.2f} s · prodmirror {pm[-1]:.2f} s (peak RSS {peak:.0f} MB)", flush=True)
        with_backup, _ = run_prodmirror(repo, local, drop_first=False)
        report(raw, pm, peaks, 1.10, "raw pipe")
        print(f"peak RSS target <= 100 MB: {'OK' if max(peaks) <= 100 else 'OVER TARGET'}")
        print(f"pull into an existing local database (backup of local first): {with_backup:.2f} s")


if __name__ == "__main__":
    main()
