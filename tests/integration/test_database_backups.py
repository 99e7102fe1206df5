"""Database backups: a pull (or restore) into local keeps the previous local database itself, renamed,
as the backup (nothing dumped); it is listed, restored by a rename, counted by retention, and never
left behind by a failed run."""

import dataclasses

import pytest

from tasks import backup_store
from tasks.actions import backup, sync
from tasks.errors import BackupError, CommandError
from tests.conftest import db_exists, during_transfer, kept_databases, kill_children, make_config, table_digests


def test_a_pull_keeps_the_previous_local_database_and_a_rename_restores_it(synced, prod, local, dbname):
    local.psql("UPDATE users SET name = 'local work' WHERE id = 3", db=dbname)
    before = table_digests(local, dbname)
    prod.psql("UPDATE users SET name = 'from production' WHERE id = 4", db=dbname)

    rec = sync.copy(synced, "production", "local", task="db.sync.from-production")
    [taken] = backup_store.list_backups(synced)
    assert taken.kind == "database" and rec["backup"] == taken.name
    assert not list(taken.path.glob("*.pgdump"))  # nothing was dumped
    [kept] = kept_databases(local, dbname)
    assert taken.databases["app"]["kept_as"] == kept and table_digests(local, kept) == before
    assert table_digests(local, dbname) == table_digests(prod, dbname)
    [row] = backup.list_rows(synced)
    assert row[2] == f"app (database {kept})" and row[6] == "yes, now"

    synced_state = table_digests(local, dbname)
    rec = backup.restore_backup(synced, taken.name, "local", force=True)
    assert table_digests(local, dbname) == before  # the pre-pull state, by a rename
    [aside] = backup_store.list_backups(synced)  # the restored backup is used up; the replaced state is kept
    assert aside.name == rec["backup"] and aside.kind == "database"
    assert table_digests(local, aside.databases["app"]["kept_as"]) == synced_state
    assert kept_databases(local, dbname) == [aside.databases["app"]["kept_as"]]


def test_retention_drops_the_oldest_kept_databases(synced, local, dbname):
    synced.backups = dataclasses.replace(synced.backups, keep_databases=1)
    for _ in range(3):
        sync.copy(synced, "production", "local", task="db.sync.from-production")
    listed = backup_store.list_backups(synced)
    assert len(listed) == 1 and listed[0].kind == "database"
    assert kept_databases(local, dbname) == [listed[0].databases["app"]["kept_as"]]


def test_keep_databases_0_takes_a_file_backup_as_before(synced, local, dbname):
    synced.backups = dataclasses.replace(synced.backups, keep_databases=0)
    sync.copy(synced, "production", "local", task="db.sync.from-production")
    [taken] = backup_store.list_backups(synced)
    assert taken.kind == "full" and taken.verify("app").name == "app.pgdump"
    assert kept_databases(local, dbname) == []


def test_a_failed_pull_keeps_nothing_and_changes_nothing(synced, local, dbname, mocker):
    local.psql("UPDATE users SET name = 'local work' WHERE id = 3", db=dbname)
    before = table_digests(local, dbname)

    killed = during_transfer(mocker, "production → local", kill_children("pg_restore"))
    with pytest.raises(CommandError):
        sync.copy(synced, "production", "local", task="db.sync.from-production")
    assert killed and killed[0]
    assert table_digests(local, dbname) == before
    assert kept_databases(local, dbname) == [] and backup_store.list_backups(synced) == []


def test_a_kept_database_dropped_by_hand_is_missing_and_refused(synced, local, dbname):
    sync.copy(synced, "production", "local", task="db.sync.from-production")
    [taken] = backup_store.list_backups(synced)
    local.psql(f'DROP DATABASE "{taken.databases["app"]["kept_as"]}"')
    assert backup.list_rows(synced)[0][6] == "MISSING"
    before = table_digests(local, dbname)
    with pytest.raises(BackupError, match="no longer the one kept"):
        backup.restore_backup(synced, taken.name, "local", force=True)
    assert table_digests(local, dbname) == before


def test_a_database_backup_restores_only_into_its_own_environment(synced, prod, dbname):
    sync.copy(synced, "production", "local", task="db.sync.from-production")
    [taken] = backup_store.list_backups(synced)
    before = table_digests(prod, dbname)
    with pytest.raises(BackupError, match="can only be restored into local"):
        backup.restore_backup(synced, taken.name, "production", force=True)
    assert table_digests(prod, dbname) == before and db_exists(prod, dbname)


def test_a_run_interrupted_after_the_swap_still_lists_the_database_it_kept(synced, local, dbname, mocker):
    """A signal held back during the swaps is raised once they are made: the previous database was kept,
    so it must be listed (and retained) like any database backup, not left on the server unnamed."""
    from tasks.actions import sync as flows
    from tasks.errors import Interrupted

    local.psql("UPDATE users SET name = 'local work' WHERE id = 3", db=dbname)
    before = table_digests(local, dbname)
    real = flows.restore_all

    def swapped_then_interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise Interrupted(15)

    mocker.patch.object(flows, "restore_all", swapped_then_interrupted)
    with pytest.raises(Interrupted):
        sync.copy(synced, "production", "local", task="db.sync.from-production")
    [taken] = backup_store.list_backups(synced)
    assert taken.kind == "database" and kept_databases(local, dbname) == [taken.databases["app"]["kept_as"]]
    assert table_digests(local, taken.databases["app"]["kept_as"]) == before


def test_retention_counts_each_database_apart(prod, local, sshd, dbname, project_for):
    """Pulling one database again and again never drops another's only kept database."""
    from tests.conftest import drop_database, pg_db

    other = dbname + "_b"
    from tasks.sandbox import sample

    sample.create(prod, other, "spmo_admin")
    cfg = make_config(prod, local, dbname, ssh=sshd.target())
    cfg["environments"]["production"]["databases"]["b"] = pg_db(prod, other)
    cfg["environments"]["local"]["databases"]["b"] = pg_db(local, other)
    cfg["backups"]["keep_databases"] = 1
    project = project_for(cfg)
    try:
        sync.copy(project, "production", "local", task="db.sync.from-production")
        sync.copy(project, "production", "local", task="db.sync.from-production")  # both kept once
        for _ in range(2):
            sync.copy(project, "production", "local", ["app"], task="db.sync.from-production")
        assert len(kept_databases(local, dbname)) == 1 and len(kept_databases(local, other)) == 1
        listed = {key for b in backup_store.list_backups(project) for key in b.databases}
        assert listed == {"app", "b"}
    finally:
        for cluster in (prod, local):
            drop_database(cluster, other)
