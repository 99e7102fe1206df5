"""Sync state: old files, one-table updates, forgetting a restored side."""

import json

from tasks import syncstate
from tasks.config import Backups, Project


def project(tmp_path):
    return Project(root=tmp_path, environments={}, backups=Backups(dir=tmp_path / "b", keep=5))


def test_one_table_sync_over_a_state_written_by_an_older_prodmirror(tmp_path):
    p = project(tmp_path)
    p.state_dir.mkdir()
    (p.state_dir / "sync-state.json").write_text(json.dumps({"app": {"time": "t", "counters": {"production": {}}}}))
    syncstate.record_objects(p, "app", ["public.users"], {"production": {"tables": {"public.users": [1, "h"]}}})
    entry = syncstate.read(p)["app"]
    assert entry["base"] == {} and "public.users" in entry["objects"]  # nothing exact to update, no crash


def test_record_objects_moves_only_those_tables_and_their_sequences(tmp_path):
    p = project(tmp_path)
    base = {"tables": {"a": [1, "x"], "b": [2, "y"]}, "schema": {"a": "s", "b": "s"},
            "sequences": {"a_seq": ["1", "a"], "b_seq": ["2", "b"]}}
    syncstate.record(p, "app", "production", "local", "t", {"production": base, "local": base})
    landed = {"tables": {"a": [5, "z"]}, "schema": {"a": "s"}, "sequences": {"a_seq": ["5", "a"], "b_seq": ["9", "b"]}}
    syncstate.record_objects(p, "app", ["a"], {"production": landed})
    prod = syncstate.read(p)["app"]["base"]["production"]
    assert prod["tables"] == {"a": [5, "z"], "b": [2, "y"]}
    assert prod["sequences"] == {"a_seq": ["5", "a"], "b_seq": ["2", "b"]}  # b's move stays visible


def test_a_restored_side_is_forgotten(tmp_path):
    p = project(tmp_path)
    snap = {"tables": {}, "schema": {}, "sequences": {}}
    syncstate.record(p, "app", "production", "local", "t", {"production": snap, "local": snap})
    syncstate.forget(p, ["app"], "local")
    assert list(syncstate.read(p)["app"]["base"]) == ["production"]
