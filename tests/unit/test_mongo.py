"""The MongoDB engine without a server: argv builders, the secret-carrying wrapper (run for real),
missing tools (real), the swap and its rollback, password resets (pymongo replaced by fakes)."""

import os
from unittest.mock import MagicMock

import pytest

from tasks import config, drift
from tasks.actions import sync
from tasks.config import Database, Secret
from tasks.engines import mongo
from tasks.errors import ConfigError, HostError
from tasks.hosts import LocalHost

URI = "mongodb://ecm:pa55w0rd@203.0.113.7:27017/valkyrie_ecm?retryWrites=true"


def db(uri=URI, name=None):
    return Database(key="ecm", env="production", engine="mongo", name=name, uri=Secret(uri))


def test_database_name_from_uri_or_name():
    assert mongo.database_name(db()) == "valkyrie_ecm"
    assert mongo.database_name(db(name="other")) == "other"
    with pytest.raises(ConfigError, match="give `name`, or a database in the uri"):
        mongo.database_name(db("mongodb://localhost:27017"))


def test_dump_and_restore_argv_never_hold_the_uri():
    dump = mongo.dump_argv(db())
    assert dump[:5] == ("sh", "-c", mongo.CONFIG_WRAPPER, "sh", "mongodump")
    assert dump[5:] == ("--archive", "--db=valkyrie_ecm")
    restore = mongo.restore_argv(db(), gzip=True)
    assert restore[4:] == ("mongorestore", "--archive", "--drop", "--nsFrom=$db$.$coll$",
                           "--nsTo=valkyrie_ecm.$coll$__pm_new", "--gzip")
    assert not any("pa55w0rd" in part for part in dump + restore)


def test_one_collection_argv_includes_gridfs_names():
    assert mongo.dump_argv(db(), collection="fs.chunks")[-1] == "--collection=fs.chunks"
    restore = mongo.restore_argv(db(), collection="identity_users")
    assert restore[5:] == ("--archive", "--drop", "--nsInclude=*.identity_users", "--nsFrom=$db$.identity_users",
                           "--nsTo=valkyrie_ecm.identity_users__pm_new")


def test_tool_uri_moves_database_to_auth_source():
    assert mongo.tool_uri(URI) == "mongodb://ecm:pa55w0rd@203.0.113.7:27017/?retryWrites=true&authSource=valkyrie_ecm"
    assert mongo.tool_uri("mongodb://h/?authSource=admin") == "mongodb://h/?authSource=admin"


def test_config_wrapper_hands_the_uri_in_a_private_file_and_removes_it(tmp_path):
    fake = tmp_path / "fake-mongodump"
    fake.write_text('#!/bin/sh\nf="${1#--config=}"\nstat -c %a "$f"\ncat "$f"\necho "$f"\n')
    fake.chmod(0o755)
    out = LocalHost().run(mongo.tool_argv(str(fake)), env=mongo.tool_env(db())).stdout.splitlines()
    assert out[0] == "600"
    assert out[1] == "uri: 'mongodb://ecm:pa55w0rd@203.0.113.7:27017/?retryWrites=true&authSource=valkyrie_ecm'"
    assert not os.path.exists(out[2])


def test_quote_in_uri_is_refused():
    with pytest.raises(ConfigError, match="percent-encode"):
        mongo.tool_env(db("mongodb://u:it's@h/x"))


@pytest.mark.skipif(bool(__import__("shutil").which("mongodump")), reason="mongodump is on PATH here")
def test_missing_tools_are_one_line_naming_the_package():
    with pytest.raises(HostError, match="local: mongodump is not installed; install the MongoDB Database Tools"):
        mongo.tool_version(LocalHost("local"), "mongodump")


@pytest.mark.skipif(bool(__import__("shutil").which("mongodump")), reason="mongodump is on PATH here")
def test_sync_with_missing_tools_stops_before_changing_anything(tmp_path):
    cfg = {"environments": {
        "production": {"databases": {"ecm": {"engine": "mongo", "uri": "mongodb://127.0.0.1:9/ecm"}}},
        "local": {"databases": {"ecm": {"engine": "mongo", "uri": "mongodb://127.0.0.1:9/ecm_dev"}}}}}
    project = config.load(cfg, tmp_path)
    with pytest.raises(HostError, match="mongodump is not installed"):
        sync.copy(project, "production", "local")
    assert not (tmp_path / "backups").exists()


class FakeDatabase:
    """Enough of pymongo's Database for the swap: collection names and renameCollection on admin."""

    def __init__(self, names, fail_on=None):
        self.name, self.names, self.calls, self.fail_on = "ecm", set(names), [], fail_on
        self.client = MagicMock()
        self.client.admin.command.side_effect = self._command

    def _command(self, cmd, source, to, dropTarget=False):
        self.calls.append((source.split(".", 1)[1], to.split(".", 1)[1]))
        if self.fail_on and source.endswith(self.fail_on):
            raise RuntimeError("rename failed")
        self.names.discard(source.split(".", 1)[1])
        self.names.add(to.split(".", 1)[1])

    def list_collection_names(self):
        return sorted(self.names)

    def drop_collection(self, name):
        self.names.discard(name)


def test_swap_renames_new_over_old_then_drops_old():
    fake = FakeDatabase(["users", "users__pm_new", "fs.files", "fs.files__pm_new"])
    mongo.swap_in(fake, ["fs.files", "users"])
    assert fake.names == {"users", "fs.files"}
    assert fake.calls[:2] == [("fs.files", "fs.files__pm_old"), ("fs.files__pm_new", "fs.files")]


def test_swap_failing_half_way_puts_the_old_collections_back():
    fake = FakeDatabase(["a", "a__pm_new", "b", "b__pm_new"], fail_on="b__pm_new")
    with pytest.raises(RuntimeError):
        mongo.swap_in(fake, ["a", "b"])
    assert "a" in fake.names and "b" in fake.names and not {"a__pm_old", "b__pm_old"} & fake.names
    assert fake.calls[-2:] == [("a__pm_old", "a"), ("b__pm_old", "b")]  # both previous collections are back


def test_reset_passwords_updates_by_match_field(monkeypatch):
    coll = MagicMock()
    coll.update_one.side_effect = lambda query, update: MagicMock(matched_count=int(query["email"] != "gone@example.com"))
    monkeypatch.setattr(mongo, "_database", lambda d: {"users": coll})
    found = mongo.reset_passwords(None, db(), "users", "email", "password_digest",
                                  ["admin@example.com", "gone@example.com"],
                                  {"admin@example.com": "$2b$h1", "gone@example.com": "$2b$h2"})
    assert found == ["admin@example.com"]
    coll.update_one.assert_any_call({"email": "admin@example.com"}, {"$set": {"password_digest": "$2b$h1"}})


def test_after_sync_for_mongo_needs_collection_key(tmp_path):
    cfg = {"environments": {"local": {"databases": {"ecm": {
        "engine": "mongo", "uri": "mongodb://localhost/ecm",
        "after_sync": {"reset_passwords": {"table": "users", "match": "email", "users": ["a@example.com"],
                                           "field": "password_digest", "password": "x"}}}}}}}
    with pytest.raises(ConfigError, match=r"after_sync.reset_passwords.table: unknown key"):
        config.load(cfg, tmp_path)


def test_drift_of_hashed_collections_is_described():
    base = {"tables": {"users": [3, "abc"]}, "schema": {"users": "i1"}, "sequences": {}}
    now = {"tables": {"users": [3, "def"]}, "schema": {"users": "i1"}, "sequences": {}}
    changed = drift.changes(base, now)
    assert changed == {"users": "rows"}
    assert drift.describe(changed, base, now) == "users (rows: 3 → 3, contents changed)"


def test_collections_of_a_three_way_push_are_swapped_with_undo_when_a_later_one_fails(monkeypatch):
    """restore_all over ObjectReplace: the first collection's swap is undone when the second's fails."""
    from tasks.transfer import End, restore_all

    fake = FakeDatabase(["users", "users__pm_new", "orders", "orders__pm_new"], fail_on="orders__pm_new")
    monkeypatch.setattr(mongo, "_database", lambda d: fake)

    class Done(End):
        def read(self, n=0):
            return b""

    restores = [mongo.ObjectReplace(None, db(), name) for name in ("users", "orders")]
    for restore in restores:
        restore.begin = lambda: Done()
    jobs = [(lambda: Done(), restore, restore.name) for restore in restores]
    with pytest.raises(RuntimeError, match="rename failed"):
        restore_all(jobs)
    assert ("users__pm_old", "users") in fake.calls  # the swap already made was put back
    assert "users" in fake.names and "users__pm_old" not in fake.names


def test_a_mongo_push_plan_goes_collection_by_collection():
    jobs = mongo.object_jobs("src", db(), "dst", db(), ["users", "orders"], "label")
    assert [label for _, _, label in jobs] == ["users", "orders"]
    assert all(isinstance(restore, mongo.ObjectReplace) for _, restore, _ in jobs)


def test_schema_is_each_collections_indexes_and_options(monkeypatch):
    class Collection:
        def __init__(self, indexes, options):
            self._indexes, self._options = indexes, options

        def index_information(self):
            return self._indexes

        def options(self):
            return self._options

    class Database(dict):
        def list_collection_names(self):
            return list(self) + ["system.views", "users__pm_new"]

    fake = Database(users=Collection({"_id_": {"v": 2, "key": [("_id", 1)]},
                                      "email_1": {"v": 2, "key": [("email", 1)], "unique": True, "ns": "ecm.users"}},
                                     {}),
                    logs=Collection({"_id_": {"v": 1, "key": [("_id", 1)]}}, {"capped": True, "size": 4096}))
    monkeypatch.setattr(mongo, "_database", lambda d: fake)

    before = mongo.schema(None, db())
    assert before == {
        "logs": {"index _id_": '{"key": [["_id", 1]]}', "options": '{"capped": true, "size": 4096}'},
        "users": {"index _id_": '{"key": [["_id", 1]]}', "index email_1": '{"key": [["email", 1]], "unique": true}'}}
    # the index format version and namespace say how, not what: another server version, the same signature
    fake["users"]._indexes["email_1"] = {"v": 1, "key": [("email", 1)], "unique": True}
    assert mongo.schema(None, db()) == before
    del fake["users"]._indexes["email_1"]
    assert sync.schema_differences(before, mongo.schema(None, db())) == ["users: index email_1 only in production"]


def test_excluded_collections_leave_the_dump_and_the_restore():
    dump = mongo.dump_argv(db(), exclude=["sessions", "audit.log"])
    assert dump[5:] == ("--archive", "--db=valkyrie_ecm", "--excludeCollection=sessions",
                        "--excludeCollection=audit.log")  # --excludeCollection needs --db: it is there
    restore = mongo.restore_argv(db(), exclude=["sessions", "odd*name\\x"])
    assert restore[5:] == ("--archive", "--drop", "--nsFrom=$db$.$coll$", "--nsTo=valkyrie_ecm.$coll$__pm_new",
                           "--nsExclude=*.sessions", "--nsExclude=*.odd\\*name\\\\x")  # literal * and \ escaped
    assert mongo.dump_argv(db()) == mongo.dump_argv(db(), exclude=())


def test_excluded_collections_are_found_by_glob(monkeypatch):
    fake = FakeDatabase(["sessions", "audit_2025", "audit_2026", "users", "users__pm_new", "system.views"])
    monkeypatch.setattr(mongo, "_database", lambda d: fake)
    assert mongo.excluded(None, db(), ("audit_*", "sessions")) == ["audit_2025", "audit_2026", "sessions"]
    assert mongo.excluded(None, db(), ()) == []


def test_a_whole_restore_leaves_the_targets_excluded_collections_as_they_are(monkeypatch):
    fake = FakeDatabase(["users", "users__pm_new", "sessions", "gone"])
    fake.drop_collection = lambda name: fake.names.discard(name) or fake.calls.append(("drop", name))
    monkeypatch.setattr(mongo, "_database", lambda d: fake)
    restore = mongo.AtomicRestore(None, db(), exclude=["sessions"])
    restore.commit()
    restore.cleanup()
    assert "sessions" in fake.names and ("drop", "sessions") not in fake.calls
    assert not any("sessions" in call[0] for call in fake.calls)  # never renamed either
    assert "gone" not in fake.names and fake.names == {"users", "sessions"}  # what the source lacks still goes


def test_a_mongo_snapshot_without_excluded_collections_leaves_out_their_definitions():
    from tasks import exclude_data

    snap = {"tables": {"sessions": [5, "h"], "users": [2, "u"]}, "schema": {"sessions": "i", "users": "j"},
            "sequences": {}}
    out = exclude_data.strip(snap, {"sessions"}, mongo.EXCLUDES_DEFINITIONS)
    assert out == {"tables": {"users": [2, "u"]}, "schema": {"users": "j"}, "sequences": {}}
