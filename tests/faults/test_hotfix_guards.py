"""Faults: hotfix.teardown and hotfix.create --replace drop only the clones prodmirror made (recorded in
.prodmirror/hotfix.json), never production's own databases; both change a protected environment, so they
confirm like a push and refuse with no terminal and no force. On the real production server over SSH."""

import io
import sys

import pytest

from tasks.actions import hotfix
from tasks.errors import GuardError
from tests.conftest import cli_project, db_exists, inv, table_digests
from tests.hotfix_bed import hotfix_config, lm360, project_for  # noqa: F401 - fixtures


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def project(prod, sshd, lm360, tmp_path, monkeypatch):
    monkeypatch.setenv("FORCE", "true")  # the confirmation is not what refuses here
    prod.psql(f"CREATE DATABASE {lm360}_dev TEMPLATE {lm360}")
    prod.psql(f"CREATE DATABASE {lm360}_other TEMPLATE {lm360}")
    yield project_for(tmp_path, prod, sshd, lm360)
    prod.psql(f"DROP DATABASE IF EXISTS {lm360}_other WITH (FORCE)")


@pytest.mark.parametrize("which, why", [
    ("", "is a production database \\(environments.production.databases.lm360\\)"),
    ("_dev", "is a production database \\(environments.production.databases.dev\\)"),
    ("_other", "exists on production but is not a clone prodmirror made"),
])
def test_teardown_refuses_any_database_it_did_not_clone(prod, lm360, project, which, why):
    name = lm360 + which
    before = table_digests(prod, name)
    with pytest.raises(GuardError, match=f"^{name} {why}"):
        hotfix.teardown(project, name=name)
    assert table_digests(prod, name) == before


def test_teardown_refuses_a_production_database_even_if_the_state_lists_it(prod, lm360, project):
    dev = f"{lm360}_dev"
    hotfix._write_state(project, {dev: {"database": dev, "source": lm360, "environment": "production",
                                        "created": "2020-01-01T00:00:00+00:00", "ttl": 1, "container": None}})
    for call in (lambda: hotfix.teardown(project, name=dev), lambda: hotfix.teardown(project, expired=True)):
        with pytest.raises(GuardError, match=f"^{dev} is a production database"):
            call()
    assert db_exists(prod, dev)


def test_teardown_drops_a_recorded_clone_and_a_name_that_is_nowhere_is_nothing_to_do(prod, lm360, project):
    hotfix.create(project)
    assert hotfix.teardown(project) == [f"{lm360}_bugfix"] and not db_exists(prod, f"{lm360}_bugfix")
    assert hotfix.read_state(project) == {}
    assert hotfix.teardown(project, name=f"{lm360}_never_made") == [f"{lm360}_never_made"]


def test_replace_refuses_a_database_it_did_not_clone(prod, lm360, project):
    clone = f"{lm360}_bugfix"
    prod.psql(f"CREATE DATABASE {clone}")
    prod.psql("CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (42)", db=clone)
    for replace in (True, False):
        with pytest.raises(GuardError, match=f"^{clone} exists on production but is not a clone prodmirror made"):
            hotfix.create(project, replace=replace)
    with pytest.raises(GuardError, match=f"^{lm360}_dev is a production database"):
        hotfix.create(project, name=f"{lm360}_dev", replace=True)
    assert prod.psql("SELECT x FROM keep_me", db=clone).strip() == "42" and db_exists(prod, f"{lm360}_dev")
    assert hotfix.read_state(project) == {}


def test_create_and_teardown_confirm_like_a_push(prod, lm360, project, monkeypatch):
    clone = f"{lm360}_bugfix"
    monkeypatch.delenv("FORCE")
    with pytest.raises(GuardError, match="no terminal to confirm hotfix.create: pass --force or set FORCE=true"):
        hotfix.create(project)
    assert not db_exists(prod, clone) and hotfix.read_state(project) == {}
    monkeypatch.setattr(sys, "stdin", Terminal("production\n"))
    hotfix.create(project)
    monkeypatch.setattr(sys, "stdin", Terminal("yes\n"))
    with pytest.raises(GuardError, match="not confirmed"):
        hotfix.teardown(project)
    assert db_exists(prod, clone) and clone in hotfix.read_state(project)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(GuardError, match="no terminal to confirm hotfix.teardown"):
        hotfix.teardown(project)
    assert db_exists(prod, clone)
    hotfix.teardown(project, force=True)
    assert not db_exists(prod, clone)


def test_cli_confirms_after_the_cheap_checks_and_takes_force(prod, sshd, lm360, tmp_path):
    clone = f"{lm360}_bugfix"
    repo = cli_project(tmp_path, hotfix_config(tmp_path, prod, sshd, lm360))

    def one_line(res, code, text):
        lines = [line for line in res.stderr.splitlines() if line.startswith("prodmirror:")]
        assert res.returncode == code and "Traceback" not in res.stderr and len(lines) == 1 and text in lines[0], \
            res.stderr

    one_line(inv(repo, "hotfix.create"), 3, "production is protected and there is no terminal to confirm hotfix.create")
    assert not db_exists(prod, clone)
    assert inv(repo, "hotfix.create", "--force").returncode == 0 and db_exists(prod, clone)
    one_line(inv(repo, "hotfix.create"), 1, f"{clone} already exists on production")  # checked before asking
    one_line(inv(repo, "hotfix.teardown"), 3, "no terminal to confirm hotfix.teardown")
    assert db_exists(prod, clone)
    assert inv(repo, "hotfix.teardown", env={"FORCE": "true"}).returncode == 0 and not db_exists(prod, clone)
    assert inv(repo, "hotfix.teardown").returncode == 0  # nothing is left: nothing to confirm


@pytest.mark.parametrize("args, text", [
    (("--strategy", "fast"), '--strategy: expected auto, template or dump, got "fast"'),
    (("--ttl", "soon"), "--ttl: expected a duration such as 24h, 90m or 2d, got 'soon'"),
    (("--ttl", "0h"), "--ttl: at least 1s"),
    (("--terminate", "--strategy", "dump"), "--terminate ends the sessions on the source so that TEMPLATE can copy"),
    (("--name", "no-dashes"), "--name: invalid bugfix database name 'no-dashes'"),
])
def test_bad_create_options_are_one_line_and_exit_2_before_anything_runs(prod, sshd, lm360, tmp_path, args, text):
    repo = cli_project(tmp_path, hotfix_config(tmp_path, prod, sshd, lm360))
    res = inv(repo, "hotfix.create", "--force", *args)
    lines = [line for line in res.stderr.splitlines() if line.startswith("prodmirror:")]
    assert res.returncode == 2 and "Traceback" not in res.stderr and len(lines) == 1 and text in lines[0], res.stderr
    assert not db_exists(prod, f"{lm360}_bugfix")
    assert not (tmp_path / ".prodmirror").exists()  # refused before the run: no lock, no SSH host key, no audit line


@pytest.mark.parametrize("content", [b"{torn", b"[]", b'{"x_bugfix": 3}', b"\xff{}"])
def test_a_corrupt_hotfix_state_is_one_line_before_anything_is_cloned_or_dropped(prod, sshd, lm360, tmp_path, content):
    from tasks.errors import ProdmirrorError

    project = project_for(tmp_path, prod, sshd, lm360)
    (project.state_dir).mkdir(parents=True, exist_ok=True)
    (project.state_dir / "hotfix.json").write_bytes(content)
    for call in (lambda: hotfix.create(project, force=True), lambda: hotfix.teardown(project, force=True)):
        with pytest.raises(ProdmirrorError, match="hotfix.json is corrupt"):
            call()
    assert prod.psql(f"SELECT 1 FROM pg_database WHERE datname = '{lm360}_bugfix'").strip() == ""
