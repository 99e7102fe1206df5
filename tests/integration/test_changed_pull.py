"""The incremental pull (`db.sync.from-production --changed`): only the tables that changed on either
side since the last sync are copied, in one transaction; the others are not touched; the result is
production; when that cannot be exact it says why and pulls the whole database."""

import subprocess

import pytest

from tasks import backup_store, syncstate
from tasks.actions import backup, sync
from tests.conftest import make_config, sequences, table_digests


def files(cluster, name):
    """Each table's relfilenode, and the database's oid: what a rewrite, TRUNCATE or swap changes."""
    rows = cluster.psql("SELECT c.oid::regclass || '=' || pg_relation_filenode(c.oid) FROM pg_class c "
                        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' "
                        "AND n.nspname IN ('public', 'billing') ORDER BY 1", db=name).split()
    return rows + [cluster.psql(f"SELECT oid FROM pg_database WHERE datname = '{name}'").strip()]


def pull_changed(project):
    return sync.copy(project, "production", "local", task="db.sync.from-production", changed=True)


def test_only_what_changed_on_either_side_is_copied_and_local_equals_production(synced, prod, local, dbname, capsys):
    prod.psql("UPDATE users SET name = 'ui edit' WHERE id <= 10", db=dbname)  # 10 rows of one small table
    local.psql("DELETE FROM billing.invoices WHERE id = 7", db=dbname)  # local work is overwritten, as a pull does
    before = files(local, dbname)
    rec = pull_changed(synced)
    assert rec["tables"] == {"app": ["billing.invoices", "public.users"]}
    assert table_digests(local, dbname) == table_digests(prod, dbname)
    assert sequences(local, dbname) == sequences(prod, dbname)
    after = files(local, dbname)
    untouched = [f for f in before if "users" not in f and "invoices" not in f]
    assert untouched and all(f in after for f in untouched)  # the other tables and the database itself stay
    assert "changed since the last sync: billing.invoices, public.users" in capsys.readouterr().err
    # the record is exact: nothing changed since, so nothing to do
    assert pull_changed(synced).get("tables") is None


def test_a_write_by_a_session_that_stays_open_comes_along(synced, prod, local, dbname):
    held = subprocess.Popen([f"{prod.bin}/psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(prod.port), "-U", "postgres",
                             "-d", dbname], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        held.stdin.write("UPDATE billing.invoices SET note = 'held session' WHERE id = 5;\n"
                         "SELECT pg_stat_reset();\n")  # and counters cannot have seen it
        held.stdin.flush()
        for _ in range(100):  # the write is committed (autocommit) while the session stays open
            if prod.psql("SELECT note FROM billing.invoices WHERE id = 5", db=dbname).strip() == "held session":
                break
            subprocess.run(["sleep", "0.05"])
        rec = pull_changed(synced)
        assert rec["tables"] == {"app": ["billing.invoices"]}
        assert table_digests(local, dbname) == table_digests(prod, dbname)
    finally:
        held.stdin.close()
        held.wait(timeout=10)


def test_a_sequence_move_copies_its_table(synced, prod, local, dbname):
    prod.psql("SELECT nextval('users_id_seq')", db=dbname)  # an insert that rolled back moves it too
    assert pull_changed(synced)["tables"] == {"app": ["public.users"]}
    assert sequences(local, dbname) == sequences(prod, dbname)


def test_a_schema_change_is_a_whole_database_pull_saying_why(synced, prod, local, dbname, capsys):
    prod.psql("ALTER TABLE users ADD COLUMN nickname text", db=dbname)
    rec = pull_changed(synced)
    assert rec["tables"] == {"app": "all"}
    assert "--changed cannot be exact here (public.users: schema in production since the last sync)" \
        in capsys.readouterr().err
    assert table_digests(local, dbname) == table_digests(prod, dbname)


def test_without_a_record_it_pulls_the_whole_database(prod, local, sshd, dbname, project_for, capsys):
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    sync.copy(project, "production", "local", task="db.sync.from-production")
    (project.state_dir / "sync-state.json").unlink()
    assert pull_changed(project)["tables"] == {"app": "all"}
    assert "no exact record of the last sync" in capsys.readouterr().err


def test_the_replaced_tables_are_backed_up_and_restore(synced, prod, local, dbname):
    local.psql("UPDATE users SET name = 'local work' WHERE id = 3", db=dbname)
    before = table_digests(local, dbname)
    rec = pull_changed(synced)
    taken = backup_store.get(synced, rec["backup"])
    assert taken.kind == "table" and taken.databases["app"]["object"] == "public.users"
    backup.restore_backup(synced, taken.name, "local", force=True)
    assert table_digests(local, dbname) == before
    assert "local" not in syncstate.read(synced)["app"]["base"]  # restored: no longer what the sync left


def test_killed_mid_copy_leaves_local_as_it_was_and_the_record_unchanged(synced, prod, local, dbname, mocker):
    from tasks.errors import ProdmirrorError
    from tests.conftest import during_transfer, kill_children

    prod.psql("UPDATE users SET name = 'ui edit' WHERE id <= 10; INSERT INTO public.events SELECT now(), "
              "jsonb_build_object('pad', md5(g::text)) FROM generate_series(1, 100000) g", db=dbname)
    before, record = table_digests(local, dbname), syncstate.read(synced)

    killed = during_transfer(mocker, "table(s) production → local", kill_children("psql"))
    with pytest.raises(ProdmirrorError):
        pull_changed(synced)
    assert killed and killed[0]
    assert table_digests(local, dbname) == before  # neither table moved: one transaction, rolled back
    assert syncstate.read(synced) == record
    assert pull_changed(synced)["tables"] == {"app": ["public.events", "public.users"]}  # and it can run again
    assert table_digests(local, dbname) == table_digests(prod, dbname)


def test_a_table_a_push_kept_as_production_s_is_copied_by_the_next_incremental_pull(synced, prod, local, dbname):
    """After a three-way push that kept production's edit of one table and pushed local's of another,
    neither side changed since, yet local still has the old version of the kept one: --changed copies it."""
    prod.psql("UPDATE users SET name = 'ui edit' WHERE id = 2", db=dbname)
    local.psql("UPDATE billing.invoices SET note = 'local fix' WHERE id = 4", db=dbname)
    rec = sync.copy(synced, "local", "production", force=True, task="db.sync.to-production")
    assert rec["tables"] == {"app": ["billing.invoices"]}
    assert syncstate.read(synced)["app"]["diverged"] == ["public.users"]
    assert pull_changed(synced)["tables"] == {"app": ["public.users"]}
    assert table_digests(local, dbname) == table_digests(prod, dbname)
    assert syncstate.read(synced)["app"]["diverged"] == []
    assert pull_changed(synced).get("tables") is None


@pytest.mark.parametrize("ddl", [
    "CREATE OR REPLACE VIEW public.user_totals AS SELECT u.id, u.email, 0::numeric AS total FROM public.users u",
    "CREATE OR REPLACE FUNCTION billing.stamp_note() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$",
    "ALTER TYPE public.mood ADD VALUE 'meh'",
    "CREATE SCHEMA reports",
])
def test_a_change_outside_the_tables_is_a_whole_database_pull(synced, prod, local, dbname, capsys, ddl):
    prod.psql(ddl, db=dbname)
    assert pull_changed(synced)["tables"] == {"app": "all"}
    assert "(database objects): schema in production since the last sync" in capsys.readouterr().err
    assert table_digests(local, dbname) == table_digests(prod, dbname)
    assert pull_changed(synced).get("tables") is None  # and the record holds it now


def test_a_materialized_view_refreshed_in_production_is_seen(synced, prod, local, dbname):
    prod.psql("CREATE MATERIALIZED VIEW public.mood_counts AS SELECT mood, count(*) FROM public.users GROUP BY mood",
              db=dbname)
    pull_changed(synced)  # (a new object: a whole-database pull)
    prod.psql("UPDATE users SET mood = 'sad'; REFRESH MATERIALIZED VIEW public.mood_counts", db=dbname)
    rec = pull_changed(synced)
    assert rec["tables"] == {"app": "all"}
    assert local.psql("SELECT string_agg(mood::text || count, ',') FROM public.mood_counts", db=dbname).strip() == "sad200"


def test_a_full_push_is_refused_when_production_changed_a_function(synced, prod, local, dbname):
    from tasks.errors import GuardError

    prod.psql("CREATE OR REPLACE FUNCTION billing.stamp_note() RETURNS trigger LANGUAGE plpgsql AS "
              "$$ BEGIN NEW.note := 'hotfixed in production'; RETURN NEW; END $$", db=dbname)
    before = table_digests(prod, dbname)
    with pytest.raises(GuardError, match=r"\(database objects\) \(schema changed\)"):
        sync.copy(synced, "local", "production", force=True, full=True)
    assert table_digests(prod, dbname) == before
    assert "hotfixed" in prod.psql("SELECT prosrc FROM pg_proc WHERE proname = 'stamp_note'", db=dbname)
