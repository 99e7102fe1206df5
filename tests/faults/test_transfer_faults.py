"""Faults while data moves: a dump or restore killed, the second of two databases failing, the local
server gone. Every target stays as it was, and the message names the part that really failed."""

import os
import subprocess

import pytest

from tasks import audit
from tasks.actions import sync
from tasks.errors import CommandError, ProdmirrorError
from tasks.sandbox import sample
from tests.conftest import db_exists, during_transfer, make_config, pg_db, table_digests

PAD = ("INSERT INTO public.events SELECT now(), jsonb_build_object('pad', md5(g::text) || md5((g * 7)::text)) "
       "FROM generate_series(1, {n}) g")


def _kill(find):
    """Return an action that SIGKILLs what `find()` returns, and returns those pids."""
    def kill():
        pids = find()
        for pid in pids:
            os.kill(pid, 9)
        return pids
    return kill


def _pids(*argv):
    return [int(p) for p in subprocess.run(["pgrep", *argv], capture_output=True, text=True).stdout.split()]


@pytest.fixture
def two_dbs(prod, local, sshd, dbname, project_for):
    """Production has `app` and `app2` (the second one large); local has both, with data to keep."""
    second = dbname + "_2"
    sample.create(prod, second, "spmo_admin")
    prod.psql(PAD.format(n=300000), db=second)
    for name in (dbname, second):
        local.psql(f'CREATE DATABASE "{name}" OWNER spmo_admin')
        local.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7);", db=name, user="spmo_admin")
    cfg = make_config(prod, local, dbname, ssh=sshd.target())
    cfg["environments"]["production"]["databases"]["app2"] = pg_db(prod, second)
    cfg["environments"]["local"]["databases"]["app2"] = pg_db(local, second)
    yield project_for(cfg), second
    for cluster in (prod, local):
        cluster.psql(f'DROP DATABASE IF EXISTS "{second}" WITH (FORCE)')


def test_second_database_failing_leaves_the_first_as_it_was(prod, local, sshd, dbname, two_dbs, mocker):
    project, second = two_dbs
    before = {name: table_digests(local, name) for name in (dbname, second)}
    killed = during_transfer(mocker, "app2: production → local",
                             _kill(lambda: _pids("-u", str(sshd.uid), "-f", f"pg_dump --format=custom.*{second}")))

    with pytest.raises(CommandError, match="production: pg_dump failed"):
        sync.copy(project, "production", "local")

    assert killed and killed[0], "the second dump was never seen streaming"
    assert {name: table_digests(local, name) for name in (dbname, second)} == before  # the first too
    for name in (dbname, second):
        assert not db_exists(local, name[:55] + "__pm_new") and not db_exists(local, name[:55] + "__pm_old")
    assert audit.read(project.state_dir)[-1]["result"] == "failed"


def test_a_killed_local_restore_is_named_as_such(prod, local, sshd, dbname, project_for, mocker):
    prod.psql(PAD.format(n=300000), db=dbname)
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    # the local pg_restore is a child of this very process: only it is killed, never another run's
    killed = during_transfer(mocker, "app: production → local",
                             _kill(lambda: _pids("-P", str(os.getpid()), "-x", "pg_restore")))

    with pytest.raises(CommandError) as caught:
        sync.copy(project, "production", "local")

    assert killed and killed[0]
    assert str(caught.value).startswith("local: pg_restore failed (killed"), str(caught.value)
    assert not db_exists(local, dbname[:55] + "__pm_new")


def test_a_killed_psql_in_a_one_table_sync_says_why(prod, local, dbname, synced, mocker):
    prod.psql(PAD.format(n=200000), db=dbname)
    before = table_digests(local, dbname)
    killed = during_transfer(mocker, "public.events: production → local",
                             _kill(lambda: _pids("-P", str(os.getpid()), "-x", "psql")))

    with pytest.raises(ProdmirrorError) as caught:
        sync.copy_object(synced, "production", "local", "events")

    assert killed and killed[0]
    message = str(caught.value)
    assert message.startswith("local: public.events was left as it was: ") and "killed" in message, message
    assert table_digests(local, dbname) == before


def test_local_server_stopped_mid_pull_is_named_and_leaves_nothing_half_done(prod, local, sshd, dbname, project_for,
                                                                            mocker):
    prod.psql(PAD.format(n=300000), db=dbname)
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    stop = ["su", "-s", "/bin/sh", "-c", f"{local.bin}/pg_ctl -D {local.dir} -m immediate stop", _user(local)]
    stopped = during_transfer(mocker, "production → local",
                              lambda: subprocess.run(stop, check=True, capture_output=True, timeout=30))
    try:
        with pytest.raises(CommandError) as caught:
            sync.copy(project, "production", "local")
    finally:
        local.start()
        local.wait_ready(timeout=30)
    assert stopped
    assert str(caught.value).startswith("local: pg_restore failed"), str(caught.value)
    assert "production" not in str(caught.value).split(":")[0]
    assert not db_exists(local, dbname)  # nothing was swapped in
    # The abort could not drop the temporary database while the server was down; the next run does.
    mocker.stopall()
    sync.copy(project, "production", "local")
    assert not db_exists(local, dbname[:55] + "__pm_new")
    assert table_digests(local, dbname) == table_digests(prod, dbname)


def _user(cluster):
    import pwd

    return pwd.getpwuid(cluster.uid).pw_name


def test_a_truncate_during_the_pull_is_production_changed_afterwards(prod, local, sshd, dbname, project_for, mocker):
    """TRUNCATE is not MVCC-safe: one that commits while the dump's snapshot is read would make an old
    snapshot see an empty table. The snapshot's transaction locks every table first, so the TRUNCATE
    waits for the pull, and the record says what the dump saw: the TRUNCATE is production's change."""
    import time

    from tasks import drift, syncstate
    from tasks.engines import postgres
    from tasks.hosts import LocalHost

    prod.psql(PAD.format(n=200000), db=dbname)
    # read first (schemas in name order), and long enough that the TRUNCATE is queued before events' turn
    prod.psql("CREATE SCHEMA aaa; CREATE TABLE aaa.big AS SELECT g FROM generate_series(1, 3000000) g", db=dbname)
    rows = prod.psql("SELECT count(*) FROM public.events", db=dbname).strip()
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    started = []

    def truncate():
        started.append(subprocess.Popen([f"{prod.bin}/psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(prod.port),
                                         "-U", "postgres", "-d", dbname, "-c", "TRUNCATE public.events"]))
        time.sleep(0.3)  # it queues behind the pull's locks
        return True

    during_transfer(mocker, "production → local", truncate)
    sync.copy(project, "production", "local", task="db.sync.from-production")
    assert started and started[0].wait(timeout=60) == 0
    assert local.psql("SELECT count(*) FROM public.events", db=dbname).strip() == rows  # what the dump saw
    base = syncstate.read(project)["app"]["base"]
    assert base["production"]["tables"]["public.events"][0] == int(rows)
    now = postgres.snapshot(LocalHost(), project.env("production").database("app"))
    assert drift.changes(base["production"], now) == {"public.events": "rows"}
