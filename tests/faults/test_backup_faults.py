"""Faults around backups: retention never eats the backup being restored, one-table backups keep to
themselves, manifests are untrusted input, and a listing never vouches for a file that changed."""

import dataclasses
import json
import shutil

import pytest

from tasks import audit, backup_store
from tasks.actions import backup, sync
from tasks.errors import BackupError
from tests.conftest import cli_project, inv, make_config, table_digests


@pytest.mark.parametrize("keep", [5, 0])
def test_restoring_the_oldest_backup_keeps_it_whatever_backups_keep_says(prod, local, sshd, dbname, project_for, keep):
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target(), keep=5))
    sync.copy(project, "production", "local")
    local.psql("CREATE TABLE marker (x int); INSERT INTO marker VALUES (1)", db=dbname, user="spmo_admin")
    oldest = backup.backup(project, "local").name
    wanted = table_digests(local, dbname)
    for _ in range(4 if keep else 0):
        backup.backup(project, "local")
    local.psql("DROP TABLE marker", db=dbname, user="spmo_admin")
    project.backups = dataclasses.replace(project.backups, keep=keep)

    rec = backup.restore_backup(project, oldest, "local")

    assert table_digests(local, dbname) == wanted
    names = [b.name for b in backup_store.list_backups(project)]
    assert oldest in names and rec["backup"] in names  # the one restored, and the one just taken
    local.psql("DROP TABLE marker", db=dbname, user="spmo_admin")
    backup.restore_backup(project, oldest, "local")  # and again: it is still there, still verified
    assert table_digests(local, dbname) == wanted


def test_one_table_backups_are_listed_as_such_and_keep_to_their_own_retention(prod, local, dbname, synced):
    synced.backups = dataclasses.replace(synced.backups, keep=2)
    fulls = [backup.backup(synced, "production").name for _ in range(2)]
    for n in range(3):
        local.psql(f"UPDATE users SET name = 'edit {n}' WHERE id = 1", db=dbname, user="spmo_admin")
        sync.copy_object(synced, "local", "production", "users", force=True)
    kept = backup_store.list_backups(synced)
    assert [b.name for b in kept if b.env == "production" and b.kind == "full"] == fulls[::-1]
    assert len([b for b in kept if b.env == "production" and b.kind == "table"]) == 2
    rows = {row[0]: row for row in backup.list_rows(synced)}
    table_row = next(row for row in rows.values() if "only" in row[2])
    assert table_row[2] == "app (public.users only)" and table_row[6].startswith("yes, ")


def _forge(project, name, manifest):
    folder = project.backups_dir / name
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))


GOOD = {"env": "local", "created": "2026-11-30T10:00:00+00:00",
        "databases": {"app": {"engine": "postgres", "file": "app.pgdump", "size": 5, "sha256": "0" * 64}}}


@pytest.mark.parametrize("manifest, message", [
    ("{not json", "manifest.json is not valid JSON"),
    ({**GOOD, "databases": {}}, "lists no databases"),
    ({k: v for k, v in GOOD.items() if k != "databases"}, "lists no databases"),
    ({**GOOD, "databases": {"app": {**GOOD["databases"]["app"], "file": "/etc/passwd"}}}, "names a file outside"),
    ({**GOOD, "databases": {"app": {**GOOD["databases"]["app"], "file": "../../x.pgdump"}}}, "names a file outside"),
    ({**GOOD, "databases": {"app": {**GOOD["databases"]["app"], "sha256": "abc"}}}, "has no valid sha256"),
    ({**GOOD, "created": "yesterday"}, "has no valid created time"),
    ([1, 2], "is not a JSON object"),
])
def test_an_untrusted_manifest_is_one_line_and_nothing_runs(prod, local, sshd, dbname, tmp_path, manifest, message):
    cfg = make_config(prod, local, dbname, ssh=sshd.target())
    repo = cli_project(tmp_path, cfg)
    local.psql(f'CREATE DATABASE "{dbname}" OWNER spmo_admin')
    before = table_digests(local, dbname)
    name = "local_20261130_100000"
    project = type("P", (), {"backups_dir": repo / "backups"})
    _forge(project, name, manifest if not isinstance(manifest, dict) else {**manifest, "name": name})
    res = inv(repo, "db.backup.restore-local", name, "--force")
    lines = [line for line in res.stderr.splitlines() if line.startswith("prodmirror:")]
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert len(lines) == 1 and message in lines[0], res.stderr
    assert table_digests(local, dbname) == before
    assert sorted(p.name for p in (repo / "backups").iterdir()) == [name]  # no pre-restore backup either
    listing = inv(repo, "db.backup.list")
    assert listing.returncode == 0 and f"skipping {name}: manifest.json" in listing.stderr


def test_an_over_long_backup_name_is_one_line(tmp_path):
    with pytest.raises(BackupError, match="invalid backup name 'xxxxxxxx") as caught:
        backup_store.check_name("x" * 300)
    assert len(str(caught.value)) < 160


def test_listing_never_vouches_for_a_file_that_changed(prod, local, sshd, dbname, project_for):
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    taken = backup.backup(project, "production")
    dump = taken.path / "app.pgdump"
    assert backup.list_rows(project)[0][6].startswith("yes, ")
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    dump.write_bytes(bytes(data))
    assert backup.list_rows(project)[0][6] == "NO: changed"
    dump.unlink()
    assert backup.list_rows(project)[0][6] == "MISSING"
    with pytest.raises(BackupError, match="is missing"):
        backup.restore_backup(project, taken.name, "local")
    shutil.rmtree(taken.path)
    assert audit.read(project.state_dir)[-1]["result"] == "failed"
