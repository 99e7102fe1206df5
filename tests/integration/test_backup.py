"""Backups against real clusters: manifest, verification, retention, restore."""

import dataclasses
import json

import pytest

from tasks import backup_store
from tasks.actions import backup, sync
from tasks.errors import BackupError
from tests.conftest import make_config, table_digests


def test_backup_production_writes_verified_manifest(prod, local, sshd, dbname, project_for):
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    taken = backup.backup(project, "production")
    entry = json.loads((taken.path / "manifest.json").read_text())["databases"]["app"]
    assert entry["engine"] == "postgres" and entry["database"] == dbname and entry["verified"] is True
    assert entry["tool"].startswith("pg_dump 1") and entry["size"] == (taken.path / "app.pgdump").stat().st_size
    assert (taken.path / "app.pgdump").read_bytes()[:5] == b"PGDMP"
    assert taken.verify("app") == taken.path / "app.pgdump"


def test_retention_keeps_newest_and_never_the_one_just_taken(prod, local, sshd, dbname, project_for):
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target(), keep=2))
    names = [backup.backup(project, "production").name for _ in range(3)]
    assert [b.name for b in backup_store.list_backups(project)] == names[:0:-1]
    project.backups = dataclasses.replace(project.backups, keep=0)
    last = backup.backup(project, "production").name
    assert [b.name for b in backup_store.list_backups(project)] == [last]


def test_tampered_backup_is_refused_and_nothing_changes(prod, local, sshd, dbname, project_for):
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    sync.copy(project, "production", "local")
    taken = backup.backup(project, "local")
    with open(taken.path / "app.pgdump", "r+b") as f:
        f.seek(100)
        f.write(b"XXXX")
    local.psql("UPDATE users SET name = 'changed' WHERE id = 1", db=dbname)
    before = table_digests(local, dbname)
    with pytest.raises(BackupError, match="does not match its manifest"):
        backup.restore_backup(project, taken.name, "local")
    assert table_digests(local, dbname) == before
