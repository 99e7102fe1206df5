"""The backup store's checks that need no database: backup names."""

import pytest

from tasks import backup_store
from tasks.errors import BackupError


@pytest.mark.parametrize("name", ["../etc", "a/b", ".hidden", "", "x/../../y"])
def test_bad_backup_names_are_rejected(name, tmp_path):
    with pytest.raises(BackupError, match="invalid backup name"):
        backup_store.check_name(name)


def _kept_manifest(tmp_path, **entry):
    import json

    folder = tmp_path / "local_20261201_101010"
    folder.mkdir()
    good = {"engine": "postgres", "database": "db_gamit", "kept_as": "db_gamit__pm_20261201101010", "oid": 16390,
            "size": 8000}
    (folder / "manifest.json").write_text(json.dumps({"name": folder.name, "env": "local",
                                                      "created": "2026-12-01T10:10:10+00:00",
                                                      "databases": {"gamit": {**good, **entry}}}))
    return folder


def test_a_database_backup_manifest_is_read_as_kind_database(tmp_path):
    from tasks import manifest

    folder = _kept_manifest(tmp_path)
    assert backup_store.Backup(folder, manifest.read(folder)).kind == "database"


@pytest.mark.parametrize("entry, message", [
    ({"kept_as": ""}, "names no database"),
    ({"kept_as": "x" * 64}, "names no database"),
    ({"kept_as": "a\nb"}, "names no database"),
    ({"oid": "16390"}, "no valid oid"),
    ({"size": -1}, "no valid size"),
])
def test_a_database_backup_manifest_is_untrusted_input(tmp_path, entry, message):
    from tasks import manifest

    folder = _kept_manifest(tmp_path, **entry)
    with pytest.raises(BackupError, match=message):
        manifest.read(folder)


def test_a_backup_being_written_holds_its_name(tmp_path):
    from datetime import datetime, timezone

    stamp = datetime(2026, 12, 1, 10, 10, 10, tzinfo=timezone.utc)
    (tmp_path / ".partial-local_20261201_101010-123").mkdir()
    assert backup_store._new_name(tmp_path, "local", stamp) == "local_20261201_101010_2"
