"""The drift guard is exact (one test per kind of production change), and a push is three-way: only
what changed locally is written, production's own edits survive, a table changed on both sides is a
conflict, and all pushed tables land in one transaction."""

import subprocess
import time

import pytest

from tasks import audit, drift, syncstate
from tasks.engines import postgres
from tasks.hosts import LocalHost
from tasks.actions import sync
from tasks.errors import CommandError, GuardError
from tests.conftest import during_transfer, kill_children, table_digests


def refused_full_push(synced, *labels):
    """A whole-database push (--full, --force) must refuse, naming each label; return the message."""
    with pytest.raises(GuardError, match="production changed since the last sync") as caught:
        sync.copy(synced, "local", "production", force=True, full=True)
    for name in labels:
        assert name in str(caught.value), str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("sql, label", [
    ("INSERT INTO users (email, name) VALUES ('ui@example.com', 'UI')", "public.users"),
    ("UPDATE billing.invoices SET amount = 1 WHERE id = 3", "billing.invoices"),
    ("DELETE FROM public.events WHERE at < '2026-01-01 00:10:00+00'", "public.events"),
    ("TRUNCATE public.events", "public.events"),
    ("ALTER TABLE public.users ADD COLUMN phone text", "public.users (schema changed)"),
    ("CREATE TABLE public.feature_flags (name text)", "public.feature_flags (new)"),
    ('DROP TABLE public."MixedCase Table"', 'public."MixedCase Table" (dropped)'),
    ("CREATE INDEX users_name_idx ON public.users (name)", "public.users (schema changed)"),
    ("SELECT nextval('billing.invoices_id_seq')", "billing.invoices (sequence moved)"),
])
def test_every_kind_of_production_change_is_drift(prod, dbname, synced, sql, label):
    prod.psql(sql, db=dbname)
    refused_full_push(synced, label)


def test_unchanged_is_proven_and_a_full_push_goes_through(prod, local, dbname, synced):
    prod.psql("SELECT pg_stat_reset(); ANALYZE", db=dbname)  # statistics move; content does not
    local.psql("UPDATE users SET name = 'local' WHERE id = 1", db=dbname, user="spmo_admin")
    rec = sync.copy(synced, "local", "production", force=True, full=True)
    assert "overwritten" not in rec
    assert table_digests(prod, dbname) == table_digests(local, dbname)


def test_a_change_after_a_statistics_reset_is_drift(prod, dbname, synced):
    prod.psql("UPDATE users SET name = 'ui' WHERE id = 2", db=dbname)
    prod.psql("SELECT pg_stat_reset()", db=dbname)
    refused_full_push(synced, "public.users")


def test_a_change_before_a_server_restart_is_drift(prod, dbname, synced):
    prod.psql("UPDATE users SET name = 'ui' WHERE id = 2", db=dbname)
    prod.stop()
    prod.start()
    prod.wait_ready(timeout=30)
    refused_full_push(synced, "public.users")


def test_a_write_committed_by_a_session_that_stays_open_is_drift(prod, dbname, synced):
    session = subprocess.Popen([f"{prod.bin}/psql", "-X", "-h", "127.0.0.1", "-p", str(prod.port), "-U", "postgres",
                                "-d", dbname, "-c", "UPDATE users SET name = 'open session' WHERE id = 4",
                                "-c", "SELECT pg_sleep(30)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while prod.psql("SELECT name FROM users WHERE id = 4", db=dbname).strip() != "open session":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        refused_full_push(synced, "public.users")
    finally:
        session.kill()


def test_writes_made_while_the_pull_ran_are_drift(prod, local, sshd, dbname, synced, mocker):
    prod.psql("INSERT INTO public.events SELECT now(), jsonb_build_object('pad', md5(g::text)) "
              "FROM generate_series(1, 200000) g", db=dbname)
    during_transfer(mocker, "production → local",
                    lambda: prod.psql("UPDATE users SET name = 'during the pull' WHERE id = 9", db=dbname))
    sync.copy(synced, "production", "local")
    mocker.stopall()
    # local holds what the dump saw (before the update); the recorded base says exactly that.
    assert local.psql("SELECT name FROM users WHERE id = 9", db=dbname).strip() == "User 9"
    refused_full_push(synced, "public.users")


def test_a_production_ui_edit_survives_a_push_of_local_work(prod, local, dbname, synced, capfd):
    prod.psql("UPDATE users SET name = 'renamed in the UI' WHERE id = 7", db=dbname)
    local.psql("UPDATE billing.invoices SET note = 'local work' WHERE id = 1; DELETE FROM public.events WHERE "
               "at < '2026-01-01 00:05:00+00'", db=dbname, user="spmo_admin")
    rec = sync.copy(synced, "local", "production", force=True, task="db.sync.to-production")
    err = capfd.readouterr().err
    assert "billing.invoices: push local's (changed locally only)" in err
    assert "public.users: keep production's (changed there only; its edits stay)" in err
    assert rec["tables"] == {"app": ["billing.invoices", "public.events"]}
    assert prod.psql("SELECT name FROM users WHERE id = 7", db=dbname).strip() == "renamed in the UI"
    ours, theirs = table_digests(local, dbname), table_digests(prod, dbname)
    assert ours["billing.invoices"] == theirs["billing.invoices"] and ours["public.events"] == theirs["public.events"]
    # The next push has nothing to do: production's edit is known, local's work is there.
    rec = sync.copy(synced, "local", "production", force=True)
    assert "tables" not in rec and prod.psql("SELECT name FROM users WHERE id = 7", db=dbname).strip() == \
        "renamed in the UI"


def test_a_conflict_is_refused_then_overwritten_only_on_the_explicit_flag(prod, local, dbname, synced, capfd):
    prod.psql("UPDATE users SET name = 'ui' WHERE id = 7", db=dbname)
    local.psql("UPDATE users SET name = 'local' WHERE id = 8", db=dbname, user="spmo_admin")
    with pytest.raises(GuardError, match="changed both locally and in production since the last sync: public.users"):
        sync.copy(synced, "local", "production", force=True)
    assert prod.psql("SELECT name FROM users WHERE id = 7", db=dbname).strip() == "ui"
    sync.copy(synced, "local", "production", force=True, dry_run=True, overwrite=True)
    assert "public.users: CONFLICT, changed on both sides: OVERWRITE production's" in capfd.readouterr().err
    rec = sync.copy(synced, "local", "production", force=True, overwrite=True)
    assert rec["overwritten"] == {"app": ["public.users"]} and audit.read(synced.state_dir)[-1]["overwritten"]
    assert prod.psql("SELECT name FROM users WHERE id IN (7, 8) ORDER BY id", db=dbname).split() == ["User", "7",
                                                                                                    "local"]


def test_a_push_is_all_or_nothing(prod, local, sshd, dbname, synced, mocker):
    local.psql("UPDATE users SET name = 'local' WHERE id = 8; UPDATE billing.invoices SET note = 'n' WHERE id = 2; "
               "INSERT INTO public.events SELECT now(), jsonb_build_object('pad', md5(g::text)) "
               "FROM generate_series(1, 100000) g", db=dbname, user="spmo_admin")
    before = table_digests(prod, dbname)

    killed = during_transfer(mocker, "table(s) local → production", kill_children("pg_dump"))
    with pytest.raises(CommandError):
        sync.copy(synced, "local", "production", force=True)
    assert killed and killed[0]
    assert table_digests(prod, dbname) == before  # not one of the three tables moved


def test_a_local_schema_change_needs_full_and_full_carries_it(prod, local, dbname, synced):
    local.psql("ALTER TABLE public.users ADD COLUMN nickname text", db=dbname, user="spmo_admin")
    with pytest.raises(GuardError, match=r"a table-by-table push cannot carry .*public.users: schema locally.*--full"):
        sync.copy(synced, "local", "production", force=True)
    sync.copy(synced, "local", "production", force=True, full=True)
    assert prod.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'nickname'",
                     db=dbname).strip() == "1"
    base = syncstate.read(synced)["app"]["base"]
    for env in ("production", "local"):  # each side's record is exactly what it holds now
        assert drift.changes(base[env], postgres.snapshot(LocalHost(), synced.env(env).database("app"))) == {}
    assert sync.copy(synced, "local", "production", force=True).get("tables") is None  # nothing left to push
