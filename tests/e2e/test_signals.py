"""Signals as an operator sends them: `kill` (SIGTERM) or Ctrl-C during a pull, through the CLI a user runs.
The run ends at once with 143/130, rolls back what was in progress (no temporary database, local as it
was), releases its locks and leaves one "interrupted" audit line."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import cli_project, db_exists, kept_databases, make_config, table_digests


def _remote_dumps(sshd, dbname):
    out = subprocess.run(["pgrep", "-u", str(sshd.uid), "-f", f"pg_dump --format=custom.*{dbname}"],
                         capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in out]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_mid_pull_rolls_back_releases_locks_and_is_audited(prod, local, sshd, dbname, tmp_path, signum, code):
    prod.psql("INSERT INTO public.events SELECT now(), jsonb_build_object('pad', md5(g::text) || md5((g * 7)::text)) "
              "FROM generate_series(1, 200000) g", db=dbname)
    local.psql(f'CREATE DATABASE "{dbname}" OWNER spmo_admin')
    local.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7);", db=dbname, user="spmo_admin")
    before = table_digests(local, dbname)
    tmp = dbname[:55] + "__pm_new"
    repo = cli_project(tmp_path, make_config(prod, local, dbname, ssh=sshd.target()))
    env = {k: v for k, v in os.environ.items() if k != "FORCE"}
    run = subprocess.Popen([sys.executable, "-m", "invoke", "db.sync.from-production"], cwd=repo, env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    frozen = []
    try:
        # Mid-stream for sure: the temporary database exists and production's pg_dump is frozen.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (frozen or run.poll() is not None):
            pids = _remote_dumps(sshd, dbname)
            if pids and db_exists(local, tmp):
                for pid in pids:
                    os.kill(pid, signal.SIGSTOP)
                frozen = pids
            time.sleep(0.05)
        assert frozen, "the pull never reached the middle of its stream"
        run.send_signal(signum)
        _, err = run.communicate(timeout=60)
    finally:
        for pid in frozen:
            for sig in (signal.SIGCONT, signal.SIGKILL):
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
        if run.poll() is None:
            run.kill()
    assert run.returncode == code, err
    lines = [line for line in err.splitlines() if line.startswith("prodmirror:")]
    assert lines == [f"prodmirror: interrupted ({signal.Signals(signum).name}); what was in progress was rolled back "
                     "and its temporaries dropped (see the audit log)"], err
    assert "Traceback" not in err
    assert not db_exists(local, tmp)
    assert table_digests(local, dbname) == before
    assert not list((repo / ".prodmirror" / "locks").glob("*.lock"))
    records = [json.loads(line) for line in (repo / ".prodmirror" / "audit.jsonl").read_text().splitlines()]
    assert [(r["task"], r["result"], r["signal"]) for r in records] == [
        ("db.sync.from-production", "interrupted", signal.Signals(signum).name)]
    # local's previous database would have been kept by the swap; interrupted before it, nothing was
    assert records[0]["backup"] is None
    assert kept_databases(local, dbname) == []
    assert not [p for p in (repo / "backups").glob("*")] if (repo / "backups").exists() else True
