"""db.sync.from-production end to end: a real production reached over a real sshd, real local clusters."""

import json
import os
import subprocess

import pytest

from tasks import audit
from tasks.actions import backup, sync
from tasks.errors import CommandError, GuardError, HostError
from tasks.ui import Progress
from tests.conftest import db_exists, drop_database, kept_databases, make_config, pg_db, sequences, table_digests


def test_pull_over_ssh_copies_schema_data_and_sequences(prod, local, sshd, dbname, project_for):
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))

    rec = sync.copy(project, "production", "local", force=True, task="db.sync.from-production")

    assert rec["result"] is None or rec["backup"] is None  # nothing existed locally: nothing to back up
    assert table_digests(local, dbname) == table_digests(prod, dbname)
    assert sequences(local, dbname) == sequences(prod, dbname)
    assert "billing.invoices_id_seq=5000" in sequences(local, dbname)
    # Objects beyond tables came along and work: enum, view, plpgsql trigger.
    assert local.psql("SELECT count(*) FROM public.user_totals", db=dbname).strip() == "200"
    local.psql("INSERT INTO billing.invoices (user_id, amount) VALUES (1, 9.5)", db=dbname)
    assert local.psql("SELECT note FROM billing.invoices WHERE id = 5001", db=dbname).strip() == "invoice for user 1"
    assert local.psql("SELECT 'happy'::mood", db=dbname).strip() == "happy"
    # Owned by app_owner in production, a role local does not have: restored as the local user.
    assert local.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'invoices'", db=dbname).strip() == "spmo_admin"
    last = audit.read(project.state_dir)[-1]
    assert (last["task"], last["result"], last["direction"]) == ("db.sync.from-production", "ok", "production -> local")


def test_pull_into_container_backs_up_and_replaces(prod, local, sshd, container_pg, dbname, project_for):
    """Production over SSH, local in the `spmo_shared_db` container (docker exec): all three host kinds."""
    from tests.conftest import CONTAINER

    container_pg.psql(f'CREATE DATABASE "{dbname}" OWNER spmo_admin')
    container_pg.psql("CREATE TABLE old_data (x int); INSERT INTO old_data VALUES (42);", db=dbname, user="spmo_admin")
    local_db = pg_db(container_pg, dbname, container=CONTAINER)
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target(), local_db=local_db))
    try:
        rec = sync.copy(project, "production", "local", task="db.sync.from-production")

        assert table_digests(container_pg, dbname) == table_digests(prod, dbname)
        assert sequences(container_pg, dbname) == sequences(prod, dbname)
        manifest = json.loads((project.backups_dir / rec["backup"] / "manifest.json").read_text())
        kept = manifest["databases"]["app"]["kept_as"]  # the previous database itself, in the container
        assert manifest["env"] == "local" and container_pg.psql("SELECT x FROM old_data", db=kept).strip() == "42"
        # The backup holds the old local data: restoring it brings old_data back.
        backup.restore_backup(project, rec["backup"], "local", task="db.backup.restore-local")
        assert container_pg.psql("SELECT x FROM old_data", db=dbname).strip() == "42"
    finally:
        drop_database(container_pg, dbname)


def test_pull_dry_run_changes_nothing(prod, local, sshd, dbname, project_for):
    local.psql(f'CREATE DATABASE "{dbname}" OWNER spmo_admin')
    local.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7);", db=dbname, user="spmo_admin")
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))

    assert sync.copy(project, "production", "local", dry_run=True) is None

    assert local.psql("SELECT x FROM keep", db=dbname).strip() == "7"
    assert not project.backups_dir.exists()
    assert audit.read(project.state_dir)[-1]["result"] == "dry-run"


def test_pull_with_dump_killed_midway_leaves_local_untouched(prod, local, sshd, dbname, project_for, mocker):
    prod.psql("INSERT INTO public.events SELECT now(), jsonb_build_object('pad', md5(g::text) || md5((g * 7)::text)) "
              "FROM generate_series(1, 400000) g", db=dbname)
    local.psql(f'CREATE DATABASE "{dbname}" OWNER spmo_admin')
    local.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7);", db=dbname, user="spmo_admin")
    before = table_digests(local, dbname)
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    killed = []
    real_advance = Progress.advance

    def kill_remote_dump(self, n):
        real_advance(self, n)
        if "production → local" in self.label and not killed:
            out = subprocess.run(["pgrep", "-u", str(sshd.uid), "-f", f"pg_dump --format=custom.*{dbname}"],
                                 capture_output=True, text=True).stdout.split()
            for pid in out:
                os.kill(int(pid), 9)
            killed.extend(out)

    mocker.patch.object(Progress, "advance", kill_remote_dump)

    with pytest.raises(CommandError, match="pg_dump failed"):
        sync.copy(project, "production", "local", task="db.sync.from-production")

    assert killed, "the test did not find the remote pg_dump to kill"
    assert table_digests(local, dbname) == before
    assert not db_exists(local, dbname[:55] + "__pm_new")
    assert not list((project.state_dir / "locks").glob("*.lock"))
    last = audit.read(project.state_dir)[-1]
    assert last["result"] == "failed" and "pg_dump" in last["error"] and last["backup"] is None
    # nothing was swapped, so nothing was kept: no database backup, no renamed database left behind
    assert kept_databases(local, dbname) == []
    assert not list(project.backups_dir.glob("*")) if project.backups_dir.exists() else True


def test_pull_refuses_protected_target_without_terminal(prod, local, sshd, dbname, project_for, monkeypatch):
    monkeypatch.delenv("FORCE", raising=False)
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target(), local_protected=True))

    with pytest.raises(GuardError, match="no terminal"):
        sync.copy(project, "production", "local")
    assert not db_exists(local, dbname)

    monkeypatch.setenv("FORCE", "true")
    sync.copy(project, "production", "local")
    assert db_exists(local, dbname)


def test_pull_reports_unreachable_ssh_host(prod, local, dbname, project_for):
    from tasks.sandbox import free_port

    target = {"host": "127.0.0.1", "port": free_port(), "user": "nobody"}
    project = project_for(make_config(prod, local, dbname, ssh=target))
    with pytest.raises(HostError, match="cannot connect: connection refused"):
        sync.copy(project, "production", "local")
    assert audit.read(project.state_dir)[-1]["result"] == "failed"
    assert not db_exists(local, dbname)
