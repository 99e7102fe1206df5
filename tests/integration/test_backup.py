"""Backups against real clusters: manifest, verification, retention, restore; and the version guard."""

import dataclasses
import json

import pytest

from tasks import backup_store
from tasks.actions import backup, sync
from tasks.engines import postgres
from tasks.errors import BackupError, ProdmirrorError
from tasks.hosts import Result
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


@pytest.mark.parametrize("name", ["../etc", "a/b", ".hidden", "", "x/../../y"])
def test_bad_backup_names_are_rejected(name, tmp_path):
    with pytest.raises(BackupError, match="invalid backup name"):
        backup_store.check_name(name)


class FakeHost:
    """Answers `--version` and the server-version query: the error path needs no real old server."""

    def __init__(self, label, versions, server=150000):
        self.label, self.versions, self.server = label, versions, server

    def run(self, argv, input=None, env=None, check=True):
        if argv[-1] == "--version":
            return Result(0, f"{argv[0]} (PostgreSQL) {self.versions[argv[0]]}\n", "")
        if "server_version_num" in (input or ""):
            return Result(0, f"{self.server}\x1f1\n", "")  # version, database exists
        return Result(0, "1\n", "")


def test_preflight_reports_pg_dump_older_than_server():
    from tasks.config import Database

    db = Database(key="app", env="production", engine="postgres", name="x", user="u")
    src = FakeHost("production", {"pg_dump": "13.4"}, server=160002)
    dst = FakeHost("local", {"pg_restore": "16.1"})
    with pytest.raises(ProdmirrorError, match="pg_dump 13.4 cannot dump a PostgreSQL 16 server; install postgresql-client-16"):
        postgres.preflight(src, db, dst, db)


def test_preflight_reports_pg_restore_older_than_pg_dump():
    from tasks.config import Database

    db = Database(key="app", env="production", engine="postgres", name="x", user="u")
    with pytest.raises(ProdmirrorError, match="pg_restore 13.1 cannot read an archive from pg_dump 15.2"):
        postgres.preflight(FakeHost("production", {"pg_dump": "15.2"}), db, FakeHost("local", {"pg_restore": "13.1"}), db)
