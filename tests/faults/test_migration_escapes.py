"""Faults: a migration that would end or leave its transaction (transaction control, a psql meta-command)
or is not UTF-8 is refused in one line before anything runs, by hotfix.migrate and hotfix.deploy alike,
on the real production server over SSH. Comments, literals and function bodies are no false positives."""

import os
import subprocess

import pytest

from tasks.actions import deploy, hotfix
from tasks.errors import ProdmirrorError
from tests.conftest import cli_project, inv
from tests.hotfix_bed import git, hotfix_config, lm360, project_for, served, snapshot_files  # noqa: F401 - fixtures


@pytest.fixture
def targets(prod, lm360):
    """The bugfix clone and the dev database hotfix.migrate applies to, made directly on the server."""
    names = [f"{lm360}_bugfix", f"{lm360}_dev"]
    for name in names:
        prod.psql(f"CREATE DATABASE {name} TEMPLATE {lm360}")
    return names


def has_table(prod, db, table):
    return prod.psql(f"SELECT to_regclass('{table}') IS NOT NULL", db=db).strip() == "t"


def recorded(prod, db):
    return prod.psql("SELECT coalesce(string_agg(name, ','), '') FROM prodmirror_migrations", db=db).strip() \
        if has_table(prod, db, "public.prodmirror_migrations") else ""


@pytest.mark.parametrize("meta", [
    "\\! touch {marker}",
    "SELECT 1; \\! touch {marker}",
    "\\o |touch {marker}\nSELECT 1;",
    "\\c {lm360}\nCREATE TABLE activity.escaped (x int);",  # would run in production's own database
])
def test_a_psql_meta_command_is_refused_and_never_runs(prod, sshd, lm360, targets, base, tmp_path, meta):
    marker = os.path.join(base, f"ran-{lm360}")
    migration = tmp_path / "migrate_meta.sql"
    migration.write_text("CREATE TABLE activity.first (x int);\n" + meta.format(marker=marker, lm360=lm360) + "\n")
    with pytest.raises(ProdmirrorError, match=r"migrate_meta.sql: line \d: \\[!oc] is a psql meta-command"):
        hotfix.migrate(project_for(tmp_path, prod, sshd, lm360), str(migration))
    assert not os.path.exists(marker)
    for db in [lm360, *targets]:
        assert not has_table(prod, db, "activity.escaped") and not has_table(prod, db, "activity.first")
        assert recorded(prod, db) == ""


@pytest.mark.parametrize("escape", ["COMMIT AND CHAIN;", "SELECT 1; COMMIT;", "END WORK;", "ABORT;",
                                    "ROLLBACK AND CHAIN;"])
def test_transaction_control_is_refused_and_nothing_stays_committed(prod, sshd, lm360, targets, tmp_path, escape):
    migration = tmp_path / "migrate_escape.sql"
    migration.write_text(f"CREATE TABLE activity.first_half (x int);\n{escape}\n"
                         "CREATE TABLE activity.second_half (x int);\nSELECT 1/0;\n")
    with pytest.raises(ProdmirrorError, match=r"migrate_escape.sql: line 2: .* ends or opens a transaction"):
        hotfix.migrate(project_for(tmp_path, prod, sshd, lm360), str(migration))
    for db in targets:
        assert not has_table(prod, db, "activity.first_half") and not has_table(prod, db, "activity.second_half")
        assert recorded(prod, db) == ""


BENIGN = r"""-- COMMIT; the committed rows stay
/* END; /* nested */ ROLLBACK; */
CREATE TABLE activity.notes (body text);
INSERT INTO activity.notes VALUES ('
COMMIT;
END;
'), (E'C:\\path\\ ; COMMIT'), ('\! is not psql here');
CREATE TABLE activity."commit" ("end" int);
CREATE FUNCTION activity.touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW."end" := 1;
  RETURN NEW;
END;
$$;
CREATE FUNCTION activity.sign(x int) RETURNS int LANGUAGE sql
BEGIN ATOMIC
  SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;
END;
SAVEPOINT before_update;
UPDATE activity.notes SET body = body;
ROLLBACK TO SAVEPOINT before_update;
"""


def test_comments_literals_and_function_bodies_are_applied(prod, sshd, lm360, targets, tmp_path):
    migration = tmp_path / "migrate_benign.sql"
    migration.write_text(BENIGN)
    results = hotfix.migrate(project_for(tmp_path, prod, sshd, lm360), str(migration))
    assert results == {name: "applied" for name in targets}
    for db in targets:
        assert prod.psql("SELECT activity.sign(5)", db=db).strip() == "1"
        assert prod.psql("SELECT count(*) FROM activity.notes WHERE body IN "
                         "(E'\\nCOMMIT;\\nEND;\\n', 'C:\\path\\ ; COMMIT', '\\! is not psql here')", db=db).strip() == "3"
        assert recorded(prod, db) == "migrate_benign.sql"


def test_a_non_utf8_migration_is_one_line_naming_the_file(prod, sshd, lm360, targets, tmp_path):
    cfg = hotfix_config(tmp_path, prod, sshd, lm360)
    (tmp_path / "migrate_latin1.sql").write_bytes("INSERT INTO activity.log (what) VALUES ('café');\n".encode("latin-1"))
    res = inv(cli_project(tmp_path, cfg), "hotfix.migrate", "migrate_latin1.sql")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == ["prodmirror: migrate_latin1.sql: not UTF-8 text (byte 0xe9 at offset "
                                               "44); save it as UTF-8"]
    assert all(recorded(prod, db) == "" for db in targets)


@pytest.mark.parametrize("body", ["\\! touch {marker}\n".encode(), "INSERT INTO activity.log (what) VALUES ('café');\n"
                                  .encode("latin-1")], ids=["meta-command", "latin-1"])
def test_deploy_refuses_a_bad_pending_migration_before_changing_anything(prod, sshd, lm360, served, base, tmp_path,
                                                                          monkeypatch, body):
    repo, target = served
    marker = os.path.join(base, f"ran-{lm360}")
    with open(os.path.join(repo, "migrations", "migrate_v3.sql"), "wb") as f:
        f.write(body.replace(b"{marker}", marker.encode()))
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a bad migration")
    subprocess.run(["chown", "-R", f"{sshd.uid}:{sshd.gid}", repo], check=True, timeout=30)
    project = project_for(tmp_path, prod, sshd, lm360, deploy={"repo": repo, "target": target})
    before = (git(repo, "rev-parse", "master", "dev"), snapshot_files(target))
    monkeypatch.setenv("FORCE", "true")
    with pytest.raises(ProdmirrorError, match=r"^migrations/migrate_v3.sql: (line 1: \\! is a psql meta-command|not UTF-8)"):
        deploy.deploy(project)
    assert not os.path.exists(marker)
    assert (git(repo, "rev-parse", "master", "dev"), snapshot_files(target)) == before
    assert not has_table(prod, lm360, "public.prodmirror_migrations") and not has_table(prod, lm360, "activity.applied_v2")
    assert not (tmp_path / "backups").exists() or not any((tmp_path / "backups").iterdir())
