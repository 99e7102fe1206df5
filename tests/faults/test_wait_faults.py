"""Every wait has a bound: a full disk, a frozen SSH peer, sessions prodmirror may not end, a lock held
on the target. Each ends in one line within seconds (bounds set low here through `limits`), the
target as it was."""

import os
import signal
import subprocess
import time

import pytest

from tasks.actions import sync
from tasks.errors import BackupError, CommandError, HostError, ProdmirrorError
from tests.conftest import db_exists, during_transfer, make_config, table_digests, unavailable

PAD = ("INSERT INTO public.events SELECT now(), jsonb_build_object('pad', md5(g::text) || md5((g * 7)::text)) "
       "FROM generate_series(1, {n}) g")


def _config(prod, local, sshd, dbname, file_backups=False, **limits):
    """`file_backups`: local is dumped to a file before a pull (backups.keep_databases 0; what
    production always gets) instead of being kept as a database backup."""
    cfg = make_config(prod, local, dbname, ssh=sshd.target())
    cfg["limits"] = {"stall": "3s", "lock_wait": "3s", **limits}
    if file_backups:
        cfg["backups"]["keep_databases"] = 0
    return cfg


def _local_copy(local, dbname, rows=0):
    local.psql(f'CREATE DATABASE "{dbname}" OWNER spmo_admin')
    local.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7);", db=dbname, user="spmo_admin")
    if rows:
        local.psql("CREATE TABLE pad (t text); INSERT INTO pad SELECT md5(g::text) || md5((g * 3)::text) "
                   f"FROM generate_series(1, {rows}) g", db=dbname, user="spmo_admin")
    return table_digests(local, dbname)


@pytest.fixture
def tiny_disk(tmp_path):
    if os.getuid() != 0:
        unavailable("root", "mounting a 5 MB tmpfs needs root")
    folder = tmp_path / "backups"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(folder)], check=True, timeout=30)
    yield folder
    subprocess.run(["umount", "-l", str(folder)], timeout=30)


def test_disk_full_while_backing_up_is_one_line_within_seconds(prod, local, sshd, dbname, project_for, tiny_disk):
    before = _local_copy(local, dbname, rows=400000)  # its backup is far larger than 5 MB
    project = project_for(_config(prod, local, sshd, dbname, file_backups=True))
    assert project.backups_dir == tiny_disk
    started = time.monotonic()
    with pytest.raises(BackupError) as caught:
        sync.copy(project, "production", "local")
    assert time.monotonic() - started < 30
    assert "No space left on device" in str(caught.value) and "partial backup was removed" in str(caught.value)
    assert os.listdir(tiny_disk) == []  # no .partial folder, no .part file
    assert table_digests(local, dbname) == before
    assert not db_exists(local, dbname[:55] + "__pm_new")


@pytest.fixture
def own_sshd(base, svc):
    """An sshd of this test's own, so that freezing its sessions freezes no other run's."""
    from tasks.sandbox import owned_dir
    from tasks.sandbox.sshd import SSHServer

    folder = os.path.join(base, "frozen-peer")
    owned_dir(folder, svc[1], svc[2])
    server = SSHServer(folder, svc[0], svc[1], svc[2]).prepare()
    server.start()
    yield server
    server.stop()


def _descendants(pid):
    found, todo = [], [pid]
    while todo:
        out = subprocess.run(["pgrep", "-P", str(todo.pop())], capture_output=True, text=True).stdout.split()
        found += [int(child) for child in out]
        todo += [int(child) for child in out]
    return found


def test_a_frozen_ssh_peer_ends_the_pull_by_itself(prod, local, own_sshd, dbname, project_for, mocker):
    sshd = own_sshd
    prod.psql(PAD.format(n=300000), db=dbname)
    before = _local_copy(local, dbname)
    project = project_for(_config(prod, local, sshd, dbname))

    def freeze():
        sessions = {int(p) for p in subprocess.run(["pgrep", "-u", str(sshd.uid), "-f", f"sshd: {sshd.user}"],
                                                   capture_output=True, text=True).stdout.split()}
        pids = [pid for pid in _descendants(sshd.proc.pid) if pid in sessions]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        return pids

    done = during_transfer(mocker, "production → local", freeze)
    started = time.monotonic()
    try:
        with pytest.raises(HostError, match=r"production: pg_dump: nothing moved for 3 s and the host does not answer; "
                                            r"the connection or the host seems frozen"):
            sync.copy(project, "production", "local")
        elapsed = time.monotonic() - started
    finally:
        for pid in (done[0] if done else []):
            os.kill(pid, signal.SIGCONT)
    assert done and done[0], "no sshd session process was found to freeze"
    assert elapsed < 20
    assert table_digests(local, dbname) == before
    assert not db_exists(local, dbname[:55] + "__pm_new")


def _hold(local, dbname, sql, user="postgres"):
    """Start a session on `dbname` that holds on (a superuser's by default); return it once connected."""
    proc = subprocess.Popen([f"{local.bin}/psql", "-X", "-h", "127.0.0.1", "-p", str(local.port), "-U", user,
                             "-d", dbname, "-c", sql], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if local.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{dbname}' AND usename = '{user}'"
                      ).strip() != "0":
            return proc
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the holding session never connected")


def _release(local, dbname, *procs):
    """End the holding sessions: the client, and its backend (which pg_sleep keeps alive otherwise)."""
    for proc in procs:
        proc.kill()
    local.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{dbname}' "
               "AND pid <> pg_backend_pid()")


def test_a_session_prodmirror_may_not_end_is_found_before_data_moves(prod, local, sshd, dbname, project_for):
    before = _local_copy(local, dbname)
    project = project_for(_config(prod, local, sshd, dbname))
    holder = _hold(local, dbname, "SELECT pg_sleep(60)")
    try:
        started = time.monotonic()
        with pytest.raises(ProdmirrorError, match=rf"local: database {dbname} has sessions that spmo_admin may not "
                                                  r"end: \d+ \(postgres\)"):
            sync.copy(project, "production", "local")
        assert time.monotonic() - started < 10
    finally:
        _release(local, dbname, holder)
    assert not project.backups_dir.exists()  # refused before the backup, before any byte moved
    assert table_digests(local, dbname) == before


def test_a_session_that_appears_during_the_transfer_is_waited_out_with_a_bound(prod, local, sshd, dbname, project_for,
                                                                              mocker):
    prod.psql(PAD.format(n=100000), db=dbname)
    before = _local_copy(local, dbname)
    project = project_for(_config(prod, local, sshd, dbname))
    holders = during_transfer(mocker, "production → local", lambda: _hold(local, dbname, "SELECT pg_sleep(60)"))
    try:
        started = time.monotonic()
        with pytest.raises(ProdmirrorError, match="has sessions that spmo_admin may not end"):
            sync.copy(project, "production", "local")
        assert time.monotonic() - started < 30
    finally:
        _release(local, dbname, *holders)
    assert table_digests(local, dbname) == before
    assert not db_exists(local, dbname[:55] + "__pm_new")


def test_a_lock_held_on_the_target_does_not_block_the_backup_forever(prod, local, sshd, dbname, project_for):
    before = _local_copy(local, dbname)
    project = project_for(_config(prod, local, sshd, dbname, file_backups=True))
    holder = _hold(local, dbname, "BEGIN; LOCK TABLE keep IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);", user="spmo_admin")
    try:
        started = time.monotonic()
        with pytest.raises(CommandError, match=r"local: pg_dump failed .*another session holds a lock on a table of .*gave up after 3 s"):
            sync.copy(project, "production", "local")
        assert time.monotonic() - started < 20
    finally:
        _release(local, dbname, holder)
    assert table_digests(local, dbname) == before


def test_back_to_back_pulls_are_not_blocked_by_autovacuum(prod, local, sshd, dbname, project_for):
    """A freshly restored database draws autovacuum within seconds (here: within one), whose workers a
    non-superuser role may not terminate; the swap leaves them to PostgreSQL's own rename."""
    prod.psql(PAD.format(n=50000), db=dbname)
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    local.psql("ALTER SYSTEM SET autovacuum_naptime = 1; SELECT pg_reload_conf();")
    try:
        for _ in range(4):
            sync.copy(project, "production", "local")
            time.sleep(1.2)
    finally:
        local.psql("ALTER SYSTEM RESET autovacuum_naptime; SELECT pg_reload_conf();")
    assert table_digests(local, dbname) == table_digests(prod, dbname)
