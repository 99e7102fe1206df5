"""Alternate prodmirror's `db.sync.from-production` with the raw `ssh HOST pg_dump -Fc DB | pg_restore -d NEW`
over the same loopback sshd, on a pgbench database plus indexed sample tables; print, side by side, the
median time of each and their ratio, and the peak memory (VmHWM) of the prodmirror process.

- **pull into an existing local database** (what a user runs every morning), its backup included (the
  previous local database kept, renamed: backups.keep_databases), against the raw pipe into a new
  database; target <= 1.03;
- **restore the pre-pull state** (`db.backup.restore-local` of that database backup); target <= 1 s;
- **--changed** after 10 rows changed in one small table (pgbench_branches), against a full pull; target >= 10x faster,
  and the result equal to production (row digests compared);
- **peak RSS** of every prodmirror run; target <= 100 MB.

usage: scripts/bench-pull [--runs 3] [--scale 30]
"""

import argparse
import os
import statistics
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


def run_prodmirror(repo, local, *args, drop_first=False):
    if drop_first:
        local.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    os.sync()
    return run_task(repo, "db.sync.from-production", *args)


def digests(cluster):
    """Per table: row count and an md5 of its rows in a fixed order (an independent equality check)."""
    tables = cluster.psql("SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                          "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", db=DB).splitlines()
    return {t: cluster.psql(f"SELECT count(*) || md5(coalesce(string_agg(x::text, ',' ORDER BY x::text), '')) "
                            f"FROM {t} x", db=DB).strip() for t in tables}


def newest_backup(repo):
    manifests = sorted((repo / "backups").glob("*/manifest.json"), key=lambda p: p.stat().st_mtime)
    return manifests[-1].parent.name


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=30, help="pgbench scale (30 ≈ 600 MB with the sample tables)")
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

        peaks = []
        first, peak = run_prodmirror(repo, local, drop_first=True)  # local exists from here on
        peaks.append(peak)
        print(f"first pull (into a new local database): {first:.2f} s", flush=True)
        raw, pm, restores = [], [], []
        for i in range(args.runs):
            raw.append(run_raw(sshd, prod, local, sshd.client_key))
            seconds, peak = run_prodmirror(repo, local)
            pm.append(seconds)
            peaks.append(peak)
            restore, peak = run_task(repo, "db.backup.restore-local", newest_backup(repo), "--force")
            restores.append(restore)
            peaks.append(peak)
            print(f"run {i + 1}: raw pipe into a new database {raw[-1]:.2f} s · prodmirror into the existing one, "
                  f"backup included {pm[-1]:.2f} s (peak RSS {peak:.0f} MB) · restore of the pre-pull state "
                  f"{restores[-1]:.2f} s", flush=True)
        local.psql("DROP DATABASE IF EXISTS raw_copy WITH (FORCE)")
        report(raw, pm, peaks, 1.03, "raw pipe")
        print(f"median restore of the pre-pull state: {statistics.median(restores):.2f} s (target <= 1 s)  "
              f"{'OK' if statistics.median(restores) <= 1 else 'OVER TARGET'}")

        full, changed = [], []
        for i in range(args.runs):
            seconds, peak = run_prodmirror(repo, local)
            full.append(seconds)
            peaks.append(peak)
            prod.psql(f"UPDATE public.pgbench_branches SET filler = 'bench {i}' WHERE bid <= 10", db=DB)
            seconds, peak = run_prodmirror(repo, local, "--changed")
            changed.append(seconds)
            peaks.append(peak)
            print(f"run {i + 1}: full pull {full[-1]:.2f} s · --changed after 10 rows of pgbench_branches changed "
                  f"{changed[-1]:.2f} s", flush=True)
        equal = digests(local) == digests(prod)
        speedup = statistics.median(full) / statistics.median(changed)
        print(f"\nmedian full pull      : {statistics.median(full):.2f} s")
        print(f"median --changed      : {statistics.median(changed):.2f} s")
        print(f"--changed speed-up    : {speedup:.1f}x (target >= 10x)  {'OK' if speedup >= 10 else 'UNDER TARGET'}")
        print(f"local equals production after --changed (row digests): {'yes' if equal else 'NO'}")
        print(f"peak RSS of any prodmirror run: {max(peaks):.0f} MB (target <= 100 MB)  "
              f"{'OK' if max(peaks) <= 100 else 'OVER TARGET'}")


if __name__ == "__main__":
    main()
