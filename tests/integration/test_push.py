"""db.sync.to-production, the drift guard, one-table sync, after-sync hooks and restore-production,
against real clusters with production behind a real sshd."""

import bcrypt
import pytest

from tasks import audit
from tasks.actions import backup, sync
from tasks.errors import GuardError, ProdmirrorError
from tests.conftest import cli_project, inv, make_config, sequences, table_digests


def test_push_replaces_production_keeps_owners_and_backs_up(prod, local, dbname, synced):
    local.psql("UPDATE users SET name = 'edited locally' WHERE id = 3; DELETE FROM public.events WHERE at < "
               "'2026-01-01 01:00:00+00'", db=dbname, user="spmo_admin")

    rec = sync.copy(synced, "local", "production", force=True, task="db.sync.to-production")

    assert table_digests(prod, dbname) == table_digests(local, dbname)
    assert sequences(prod, dbname) == sequences(local, dbname)
    # production's owner and grant on billing.invoices survived the push (local has neither).
    assert prod.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'invoices'", db=dbname).strip() == "app_owner"
    assert prod.psql("SELECT has_table_privilege('app_owner', 'billing.invoices', 'SELECT')", db=dbname).strip() == "t"
    backup = synced.backups_dir / rec["backup"]
    assert rec["backup"].startswith("production_") and (backup / "app.pgdump").exists()


def test_push_without_terminal_or_force_refuses(prod, local, dbname, synced, monkeypatch):
    monkeypatch.delenv("FORCE", raising=False)
    local.psql("UPDATE users SET name = 'x'", db=dbname, user="spmo_admin")
    before = table_digests(prod, dbname)
    with pytest.raises(GuardError, match="production is protected and there is no terminal"):
        sync.copy(synced, "local", "production")
    assert table_digests(prod, dbname) == before


def test_push_with_force_env_variable(prod, local, dbname, synced, monkeypatch):
    monkeypatch.setenv("FORCE", "true")
    local.psql("UPDATE users SET name = 'from CI'", db=dbname, user="spmo_admin")
    sync.copy(synced, "local", "production")
    assert prod.psql("SELECT DISTINCT name FROM users", db=dbname).strip() == "from CI"


class Terminal:
    """A user at a terminal who types `production` when asked."""

    def isatty(self):
        return True

    def readline(self):
        return "production\n"


def test_a_table_changed_on_both_sides_is_a_conflict_and_status_shows_the_drift(prod, local, dbname, synced,
                                                                                monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.delenv("FORCE", raising=False)
    prod.psql("UPDATE users SET name = 'renamed by the admin in the UI' WHERE id = 7", db=dbname)
    local.psql("UPDATE users SET name = 'local work' WHERE id = 8", db=dbname, user="spmo_admin")

    with pytest.raises(GuardError) as err:
        sync.copy(synced, "local", "production", force=False, task="db.sync.to-production")
    message = str(err.value)
    assert "changed both locally and in production since the last sync: public.users" in message
    assert "--overwrite-production-changes" in message
    assert prod.psql("SELECT name FROM users WHERE id = 7", db=dbname).strip() == "renamed by the admin in the UI"
    report = sync.status(synced, keys=["app"])[0]
    assert report["drift"] == {"public.users": "rows"}
    assert audit.read(synced.state_dir)[-1]["result"] == "refused"


def test_force_never_overrides_the_drift_guard_only_the_explicit_flag_does(prod, local, dbname, synced):
    prod.psql("UPDATE users SET name = 'admin edit' WHERE id = 7", db=dbname)
    with pytest.raises(GuardError, match=r"production changed since the last sync .*public.users \(rows: 200 → 200"):
        sync.copy(synced, "local", "production", force=True, full=True)
    assert prod.psql("SELECT name FROM users WHERE id = 7", db=dbname).strip() == "admin edit"
    rec = sync.copy(synced, "local", "production", force=True, full=True, overwrite=True)
    assert rec["overwritten"] == {"app": ["public.users"]}
    assert audit.read(synced.state_dir)[-1]["overwritten"] == {"app": ["public.users"]}
    assert prod.psql("SELECT name FROM users WHERE id = 7", db=dbname).strip() == "User 7"


def test_push_refuses_when_never_synced(prod, local, sshd, dbname, project_for):
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    local.psql(f'CREATE DATABASE "{dbname}" OWNER spmo_admin')
    with pytest.raises(GuardError, match="no exact record of the last sync"):
        sync.copy(project, "local", "production", force=False)  # refused before any prompt
    with pytest.raises(GuardError, match="no exact record of the last sync"):
        sync.copy(project, "local", "production", force=True, full=True)


def test_table_from_production_with_sequence(prod, local, dbname, synced):
    prod.psql("INSERT INTO users (email, name) VALUES ('new@example.com', 'New')", db=dbname)
    local.psql("UPDATE billing.invoices SET amount = 1 WHERE id = 1", db=dbname, user="spmo_admin")
    invoices_before = table_digests(local, dbname)['billing.invoices']

    rec = sync.copy_object(synced, "production", "local", "users")

    assert table_digests(local, dbname)['public.users'] == table_digests(prod, dbname)['public.users']
    assert "public.users_id_seq=201" in sequences(local, dbname)
    assert table_digests(local, dbname)['billing.invoices'] == invoices_before  # only that table moved
    assert rec["backup"].startswith("local_")


def test_table_to_production_with_foreign_key_and_trigger(prod, local, dbname, synced):
    local.psql("INSERT INTO billing.invoices (user_id, amount, note) VALUES (3, 12.5, 'kept as is')",
               db=dbname, user="spmo_admin")
    sync.copy_object(synced, "local", "production", "billing.invoices", force=True)
    assert table_digests(prod, dbname)['billing.invoices'] == table_digests(local, dbname)['billing.invoices']
    assert "billing.invoices_id_seq=5001" in sequences(prod, dbname)
    assert prod.psql("SELECT note FROM billing.invoices WHERE id = 5001", db=dbname).strip() == "kept as is"
    assert prod.psql("SELECT tgenabled FROM pg_trigger WHERE tgname = 'invoices_stamp'", db=dbname).strip() == "O"


def test_table_push_that_breaks_a_foreign_key_is_refused(prod, local, dbname, synced):
    local.psql("DELETE FROM billing.invoices WHERE user_id = 5; DELETE FROM users WHERE id = 5", db=dbname, user="spmo_admin")
    before = table_digests(prod, dbname)
    with pytest.raises(ProdmirrorError, match="invoices_user_id_fkey"):
        sync.copy_object(synced, "local", "production", "users", force=True)
    assert table_digests(prod, dbname) == before
    assert prod.psql("SELECT count(*) FROM pg_constraint WHERE conname = 'invoices_user_id_fkey'", db=dbname).strip() == "1"


def test_table_push_refuses_drift_on_that_table_only(prod, local, dbname, synced, monkeypatch):
    monkeypatch.setattr("sys.stdin", Terminal())
    monkeypatch.delenv("FORCE", raising=False)
    prod.psql("UPDATE billing.invoices SET amount = 99 WHERE id = 2", db=dbname)
    with pytest.raises(GuardError, match=r"billing.invoices \(rows: 600 → 600, contents changed\)"):
        sync.copy_object(synced, "local", "production", "billing.invoices")
    assert prod.psql("SELECT amount FROM billing.invoices WHERE id = 2", db=dbname).strip() == "99.00"
    # The edit concerns billing.invoices only: pushing another table is allowed (after typing the name).
    local.psql("UPDATE public.events SET payload = '{}'", db=dbname, user="spmo_admin")
    sync.copy_object(synced, "local", "production", "events")
    assert prod.psql("SELECT DISTINCT payload FROM public.events", db=dbname).strip() == "{}"


def test_unknown_table_names_the_closest(prod, local, dbname, synced):
    with pytest.raises(ProdmirrorError, match=r"no table 'userz' .*closest: users"):
        sync.copy_object(synced, "production", "local", "userz")


@pytest.mark.parametrize("name", ["users; rm -rf /", "$(id)", "`id`", "users|cat", "a b", "../x", "-rf"])
def test_unsafe_names_resolve_to_nothing_and_change_nothing(prod, dbname, synced, name):
    before = table_digests(prod, dbname)
    with pytest.raises(ProdmirrorError, match="no table|cannot read"):
        sync.copy_object(synced, "local", "production", name, force=True)
    assert table_digests(prod, dbname) == before
    assert not list(synced.backups_dir.glob("production_*"))


def test_after_sync_resets_passwords_with_bcrypt(prod, local, sshd, dbname, project_for, monkeypatch):
    monkeypatch.setenv("SYNC_RESET_PASSWORD", "correct horse battery")
    cfg = make_config(prod, local, dbname, ssh=sshd.target())
    cfg["environments"]["local"]["databases"]["app"]["after_sync"] = {
        "reset_passwords": {"table": "users", "match": "email", "users": ["user1@example.com", "ghost@example.com"],
                            "field": "password_digest", "scheme": "bcrypt", "password": "${SYNC_RESET_PASSWORD}"},
        "run": ["echo hook ran > /dev/null"]}
    project = project_for(cfg)
    rec = sync.copy(project, "production", "local")
    stored = local.psql("SELECT password_digest FROM users WHERE email = 'user1@example.com'", db=dbname).strip()
    assert bcrypt.checkpw(b"correct horse battery", stored.encode())
    assert rec["after_sync"]["app"]["reset_passwords"] == {"reset": 1, "not_found": 1}
    assert rec["after_sync"]["app"]["run"] == [{"command": "echo hook ran > /dev/null", "exit": 0}]
    assert "correct horse" not in (project.state_dir / "audit.jsonl").read_text()


def test_after_sync_missing_password_variable_stops_before_anything(prod, local, sshd, dbname, tmp_path):
    cfg = make_config(prod, local, dbname, ssh=sshd.target())
    cfg["environments"]["local"]["databases"]["app"]["after_sync"] = {
        "reset_passwords": {"table": "users", "match": "email", "users": ["user1@example.com"],
                            "field": "password_digest", "password": "${NOT_SET_ANYWHERE}"}}
    res = inv(cli_project(tmp_path, cfg), "db.sync.from-production")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "after_sync.reset_passwords.password: ${NOT_SET_ANYWHERE} is not set" in res.stderr
    assert local.psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}'").strip() == ""


def test_restore_production_from_backup(prod, local, dbname, synced):
    taken = backup.backup(synced, "production")
    prod.psql("DELETE FROM public.events", db=dbname)
    rec = backup.restore_backup(synced, taken.name, "production", force=True, task="db.backup.restore-production")
    assert prod.psql("SELECT count(*) FROM public.events", db=dbname).strip() == "200"
    assert prod.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'invoices'", db=dbname).strip() == "app_owner"
    assert rec["backup"].startswith("production_") and rec["backup"] != taken.name


def test_cli_push_and_bad_collection_names(prod, local, sshd, dbname, tmp_path, synced):
    (tmp_path / "repo").mkdir()
    repo = cli_project(tmp_path / "repo", make_config(prod, local, dbname, ssh=sshd.target()))
    # The ops repo shares the sync state of `synced` so that the drift guard knows the last sync.
    (repo / ".prodmirror").mkdir()
    (repo / ".prodmirror" / "sync-state.json").write_text((synced.state_dir / "sync-state.json").read_text())
    res = inv(repo, "db.sync.to-production", env={"FORCE": "true"})
    assert res.returncode == 0 and "nothing to do: no table changed since the last sync" in res.stderr
    local.psql("UPDATE users SET name = 'x' WHERE id = 1", db=dbname, user="spmo_admin")
    res = inv(repo, "db.sync.to-production")
    assert res.returncode == 3 and "no terminal" in res.stderr
    res = inv(repo, "db.sync.to-production", env={"FORCE": "true"})
    assert res.returncode == 0 and "public.users: push local's (changed locally only)" in res.stderr, res.stderr
    for name in ("users; rm -rf /", "$(id)"):
        res = inv(repo, "db.sync.collection-to-production", name, "--force")
        assert res.returncode == 1 and res.stderr.strip().splitlines()[-1].startswith(f"prodmirror: no table {name!r}")


def test_every_sync_and_restore_dry_run_changes_nothing_and_leaves_one_audit_line(prod, local, dbname, synced):
    local.psql("UPDATE users SET name = 'edited locally' WHERE id = 3", db=dbname, user="spmo_admin")
    taken = backup.backup(synced, "local").name
    before = (table_digests(prod, dbname), table_digests(local, dbname), sorted(p.name for p in synced.backups_dir.iterdir()))
    start = len(audit.read(synced.state_dir))
    calls = [
        ("db.sync.from-production", lambda t: sync.copy(synced, "production", "local", dry_run=True, task=t)),
        ("db.sync.to-production", lambda t: sync.copy(synced, "local", "production", dry_run=True, task=t)),
        ("db.sync.collection-from-production", lambda t: sync.copy_object(synced, "production", "local", "users",
                                                                          dry_run=True, task=t)),
        ("db.sync.collection-to-production", lambda t: sync.copy_object(synced, "local", "production", "users",
                                                                        dry_run=True, task=t)),
        ("db.backup.restore-local", lambda t: backup.restore_backup(synced, taken, "local", dry_run=True, task=t)),
        ("db.backup.restore-production", lambda t: backup.restore_backup(synced, taken, "production", dry_run=True,
                                                                         task=t)),
    ]
    for task, call in calls:
        assert call(task) is None
    assert (table_digests(prod, dbname), table_digests(local, dbname),
            sorted(p.name for p in synced.backups_dir.iterdir())) == before
    records = audit.read(synced.state_dir)[start:]
    assert [(r["task"], r["result"]) for r in records] == [(task, "dry-run") for task, _ in calls]
