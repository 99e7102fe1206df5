"""Alternate prodmirror's `hotfix.create` with the raw commands it replaces, on a production reached over a
loopback sshd: `--strategy template` against `psql -c "CREATE DATABASE … TEMPLATE …"`, and
`--strategy dump` against `pg_dump -Fc SRC | pg_restore -d NEW` run on the server, both over ssh; print the
median ratio of each (target <= 1.10). Each run drops its clone again, untimed.

Beside them, the fixed cost: the time from the process's start to its first SQL statement on the server (the
server's own log of the connection, log_connections), prodmirror's `hotfix.create` (Python, invoke, paramiko,
the SSH handshake, the facts query) against the raw `ssh HOST psql -c 'select 1'`; their difference is what
prodmirror adds to every run (target <= 0.15 s). The raw ssh uses the key exchange paramiko negotiates with
this OpenSSH (curve25519), so that both pay the same handshake.

And the clone with its PostgREST container (the tests' stand-in image, imported into production's dockerd,
host networking): `hotfix.create --strategy template` with hotfix.postgrest configured, against what an
operator types in one ssh session: the same CREATE DATABASE … TEMPLATE, `docker run` of the same image, and
a curl loop until its port answers; print both medians and their difference (target: at most 0.7 s more).

Each case starts with an untimed warm-up pair (--warmup 1), then alternates which of the two goes first.

usage: scripts/bench-clone [--runs 3] [--scale 50] [--parts template,dump,container] [--warmup 1]
"""

import argparse
import os
import re
import statistics
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml
from benchlib import ops_repo, report, run_task, testbed  # noqa: E402 (benchlib puts the checkout on sys.path)

SRC, NEW = "lm360_prod", "lm360_bugfix"
FIXED_TARGET = 0.15
CONTAINER_TARGET = 0.7  # seconds prodmirror may add to the raw clone + docker run + wait for the port
BOX = "postgrest-bench"
PARTS = ("template", "dump", "container")
CONNECTION = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) UTC .*connection received")


def ssh(sshd, command):
    return ["ssh", "-i", sshd.client_key, "-p", str(sshd.port), "-o", "StrictHostKeyChecking=no", "-o",
            "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "KexAlgorithms=curve25519-sha256",
            f"{sshd.user}@127.0.0.1", command]


def timed(argv):
    started = time.monotonic()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def log_connections(prod):
    """Make the server log every connection with a millisecond UTC timestamp (what first_sql reads)."""
    prod.psql("ALTER SYSTEM SET log_connections = on")
    prod.psql("ALTER SYSTEM SET log_line_prefix = '%m '")
    prod.psql("ALTER SYSTEM SET log_timezone = 'UTC'")
    prod.psql("SELECT pg_reload_conf()")
    time.sleep(0.5)


def first_sql(prod, since):
    """Given a wall-clock start, return the seconds until the server's first connection after it."""
    with open(prod.log, errors="replace") as log:
        stamps = [datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=timezone.utc).timestamp()
                  for m in map(CONNECTION.match, log) if m]
    return min(t for t in stamps if t >= since - 0.001) - since


def fixed_cost(raw_first, ours_first):
    """Print both medians of the time to the first SQL and their difference against its target; return it."""
    raw, ours = statistics.median(raw_first), statistics.median(ours_first)
    print("\n== fixed cost: process start → first SQL on the server")
    print(f"median raw ssh psql -c 'select 1': {raw:.3f} s")
    print(f"median prodmirror hotfix.create  : {ours:.3f} s")
    print(f"fixed cost of prodmirror: {ours - raw:.3f} s (target <= {FIXED_TARGET:.2f})  "
          f"{'OK' if ours - raw <= FIXED_TARGET else 'OVER TARGET'}")
    return raw, ours


def alternate(runs, warmup, clean, raw_run, ours_run, show):
    """Run raw_run and ours_run (each returns its seconds) `runs` times, raw first in even runs and prodmirror first
    in odd ones (whichever goes first meets the previous drop's disk work), each after clean() and an os.sync(),
    after `warmup` untimed pairs; call show(i, raw, ours) after each pair. Return ([raw seconds], [ours])."""
    raw, ours = [], []
    for i in range(-warmup, runs):
        pair = {}
        for which in (("raw", "ours") if i % 2 == 0 else ("ours", "raw")):
            clean()
            os.sync()
            pair[which] = (raw_run if which == "raw" else ours_run)()
        clean()
        if i >= 0:
            raw.append(pair["raw"])
            ours.append(pair["ours"])
            show(i, pair["raw"], pair["ours"])
    return raw, ours


def postgrest_repo(base, user, sshd, prod, port):
    """The ops repo of the container case: the same production, hotfix.postgrest the stand-in on 127.0.0.1:port."""
    from tasks.sandbox.docker import ensure_daemon, ensure_standin, standin_postgrest

    image = ensure_standin(ensure_daemon())
    pg = standin_postgrest(BOX, port, prod.port, image=image, db_user="authenticator", db_password="${PG_AUTH_PASSWORD}",
                           schemas=["public"], anon_role="web_anon", jwt_secret="${PGRST_JWT_SECRET}")
    cfg = {"environments": {"production": {
        "ssh": {"host": "127.0.0.1", "user": user, "port": sshd.port, "key_filename": sshd.client_key},
        "databases": {"lm360": {"engine": "postgres", "name": SRC, "user": "spmo_admin", "host": "127.0.0.1",
                                "port": prod.port}}}},
        "hotfix": {"database": "lm360", "clone": NEW, "postgrest": pg}}
    repo = ops_repo(Path(base) / "repo-postgrest", yaml.safe_dump(cfg))
    (repo / ".env").write_text("PG_AUTH_PASSWORD=bench-pw\nPGRST_JWT_SECRET=bench-jwt-secret-0123456789abcdef0123\n")
    return repo, pg


def raw_postgrest(sshd, conn, pg):
    """What an operator types on production for the same result: the clone, `docker run` of the same image with
    the same settings, and a loop until its port answers."""
    import shlex

    env = {"PGRST_DB_URI": f"postgres://authenticator:bench-pw@127.0.0.1:{pg['db_port']}/{NEW}",
           "PGRST_DB_SCHEMAS": "public", "PGRST_DB_ANON_ROLE": "web_anon",
           "PGRST_JWT_SECRET": "bench-jwt-secret-0123456789abcdef0123", "PGRST_SERVER_PORT": str(pg["port"])}
    run = ["docker", "run", "-d", "--pull", "never", "--name", BOX, "--network", "host",
           *[part for k, v in env.items() for part in ("-e", f"{k}={v}")], pg["image"], *pg["command"]]
    wait = f"until curl -s -o /dev/null http://127.0.0.1:{pg['port']}/; do sleep 0.02; done"
    return ssh(sshd, f"psql {conn} -d postgres -c 'CREATE DATABASE {NEW} TEMPLATE {SRC}' >/dev/null && "
                     f"{shlex.join(run)} >/dev/null && {wait}")


def container_case(args, prod, sshd, user, base, conn, drop):
    """Alternate raw and prodmirror totals with the container; print both, their medians and the difference."""
    from tasks.sandbox import free_port
    from tasks.sandbox.docker import client

    docker = client()
    repo, pg = postgrest_repo(base, user, sshd, prod, free_port())
    raw_argv = raw_postgrest(sshd, conn, pg)

    def clean():
        try:
            docker.containers.get(BOX).remove(force=True)
        except Exception:  # not there
            pass
        drop()

    peaks = []

    def ours_run():
        seconds, peak = run_task(repo, "hotfix.create", "--strategy", "template", "--force")
        peaks.append(peak)
        return seconds

    def show(i, raw, ours):
        print(f"container run {i + 1}: raw {raw:.2f} s · prodmirror {ours:.2f} s ({ours - raw:+.2f} s)", flush=True)

    try:
        raw, ours = alternate(args.runs, args.warmup, clean, lambda: timed(raw_argv), ours_run, show)
    finally:
        clean()
    median_raw, median_ours = statistics.median(raw), statistics.median(ours)
    print("\n== template clone + PostgREST container (stand-in image, host network)")
    print(f"median raw (ssh: CREATE DATABASE … TEMPLATE; docker run; curl until it answers): {median_raw:.2f} s")
    print(f"median prodmirror hotfix.create --strategy template with hotfix.postgrest        : {median_ours:.2f} s")
    print(f"difference: {median_ours - median_raw:+.2f} s (target <= +{CONTAINER_TARGET:.1f} s)  "
          f"{'OK' if median_ours - median_raw <= CONTAINER_TARGET else 'OVER TARGET'}; "
          f"ratio {median_ours / median_raw:.3f}; peak RSS {max(peaks):.0f} MB")
    return median_raw, median_ours


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--scale", type=int, default=50, help="pgbench scale (50 ≈ 790 MB)")
    parser.add_argument("--parts", default=",".join(PARTS), help="which cases, of " + ",".join(PARTS))
    parser.add_argument("--warmup", type=int, default=1, help="untimed pairs before each case's runs")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if not parts or set(parts) - set(PARTS):
        parser.error(f"--parts: a comma-separated list of {', '.join(PARTS)}")

    with testbed("prodmirror-bench-clone-", ("production",)) as (user, base, clusters, sshd):
        prod = clusters["production"]
        prod.psql("CREATE ROLE spmo_admin LOGIN SUPERUSER")
        prod.psql(f"CREATE DATABASE {SRC} OWNER spmo_admin")
        log_connections(prod)
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
        raw_select = ssh(sshd, f"psql {conn} -d postgres -c 'select 1'")
        raw_sql = ssh(sshd, f"psql {conn} -d postgres -c 'CREATE DATABASE {NEW} TEMPLATE {SRC}'")
        raw_dump = ssh(sshd, f"createdb {conn} {NEW} && pg_dump -Fc {conn} {SRC} | pg_restore {conn} -d {NEW}")
        drop = lambda: prod.psql(f"DROP DATABASE IF EXISTS {NEW} WITH (FORCE)")  # noqa: E731
        ratios, raw_first, ours_first, summary = {}, [], [], []
        for strategy, raw_argv, target in (("template", raw_sql, 1.10), ("dump", raw_dump, 1.10)):
            if strategy not in parts:
                continue
            peaks = []

            def ours_run():
                started = time.time()
                subprocess.run(raw_select, check=True, stdout=subprocess.DEVNULL)  # the raw first SQL, beside it
                raw_first.append(first_sql(prod, started))
                started = time.time()
                seconds, peak = run_task(repo, "hotfix.create", "--strategy", strategy, "--force")
                ours_first.append(first_sql(prod, started))
                peaks.append(peak)
                return seconds

            def show(i, raw, ours):
                print(f"{strategy} run {i + 1}: raw {raw:.2f} s · prodmirror {ours:.2f} s (first SQL after "
                      f"{ours_first[-1]:.3f} s; raw ssh psql after {raw_first[-1]:.3f} s)", flush=True)

            start = len(raw_first)
            raw, ours = alternate(args.runs, args.warmup, drop, lambda: timed(raw_argv), ours_run, show)
            del raw_first[start:start + args.warmup], ours_first[start:start + args.warmup]  # not the warm-up's
            print(f"\n== strategy {strategy}")
            ratios[strategy] = report(raw, ours, peaks, target, "raw")
            summary.append(f"{strategy} {ratios[strategy]:.3f}")
            drop()
        if raw_first:
            raw, ours = fixed_cost(raw_first, ours_first)
            summary.append(f"fixed cost {ours - raw:.3f} s (prodmirror {ours:.3f} s vs raw ssh psql {raw:.3f} s to the "
                           "first SQL)")
        if "container" in parts:
            raw, ours = container_case(args, prod, sshd, user, base, conn, drop)
            summary.append(f"with the container {ours:.2f} s vs raw {raw:.2f} s ({ours - raw:+.2f} s)")
        print(f"\n{args.runs} runs each: " + "; ".join(summary))


if __name__ == "__main__":
    main()
