"""The command line as a user meets it: `inv` in an ops repo. Bad input ends in one line, non-zero, nothing changed."""

import pytest

from tests.conftest import cli_project, db_exists, inv, make_config


def assert_one_line_error(res, text):
    assert res.returncode != 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("prodmirror:")]
    assert len(errors) == 1 and text in errors[0], res.stderr


def test_list_shows_only_working_tasks(tmp_path):
    res = inv(cli_project(tmp_path, {}), "--complete")
    assert sorted(res.stdout.split()) == sorted([
        "db.backup.list", "db.backup.local", "db.backup.production", "db.backup.restore-local",
        "db.backup.restore-production", "db.sync.collection-from-production", "db.sync.collection-to-production",
        "db.sync.from-production", "db.sync.status", "db.sync.to-production",
        "mirror.checkpoint", "mirror.create-superuser", "mirror.fix-migrations", "mirror.force-sync-code",
        "mirror.localize-settings", "mirror.production", "mirror.restore-db", "mirror.status",
        "hotfix.create", "hotfix.deploy", "hotfix.migrate", "hotfix.status", "hotfix.teardown"])


def test_cli_pull_then_status(prod, local, sshd, dbname, tmp_path):
    cfg = make_config(prod, local, dbname, ssh={**sshd.target(), "key_filename": "${KEY}"})
    repo = cli_project(tmp_path, cfg, env_text=f"KEY={sshd.client_key}\n")
    res = inv(repo, "db.sync.from-production")
    assert res.returncode == 0, res.stderr
    assert "app: production → local:" in res.stderr and "/s)" in res.stderr  # plain progress line off a terminal
    status = inv(repo, "db.sync.status")
    assert status.returncode == 0 and "app: in sync" in status.stdout and "public.users" in status.stdout


@pytest.mark.parametrize("args, text", [
    (("db.sync.from-production", "--db", "nope"), "unknown database 'nope' in environment 'production'"),
    (("db.backup.restore-local", "../../etc"), "invalid backup name '../../etc'"),
    (("db.backup.restore-local", "a/b"), "invalid backup name 'a/b'"),
    (("db.backup.restore-local", "local_20200101_000000"), "no backup named 'local_20200101_000000'"),
])
def test_cli_bad_input(prod, local, sshd, dbname, tmp_path, args, text):
    repo = cli_project(tmp_path, make_config(prod, local, dbname, ssh=sshd.target()))
    assert_one_line_error(inv(repo, *args), text)
    assert not db_exists(local, dbname)


def test_cli_unknown_environment(prod, local, dbname, tmp_path):
    cfg = make_config(prod, local, dbname)
    del cfg["environments"]["local"]
    assert_one_line_error(inv(cli_project(tmp_path, cfg), "db.sync.status"), "unknown environment 'local'")


def test_cli_missing_variable(prod, local, dbname, tmp_path):
    cfg = make_config(prod, local, dbname)
    cfg["environments"]["production"]["databases"]["app"]["password"] = "${PROD_PG_PASSWORD}"
    repo = cli_project(tmp_path, cfg, env_text="OTHER=1\n")
    assert_one_line_error(inv(repo, "db.sync.from-production"), "${PROD_PG_PASSWORD} is not set")
    assert not db_exists(local, dbname)


def test_cli_config_mistake_names_key(prod, local, dbname, tmp_path):
    cfg = make_config(prod, local, dbname)
    cfg["environments"]["production"]["databases"]["app"]["engine"] = "pg"
    res = inv(cli_project(tmp_path, cfg), "db.sync.status")
    assert_one_line_error(res, 'environments.production.databases.app.engine: expected mongo or postgres, got "pg"')


def test_cli_unreachable_ssh_host(prod, local, dbname, tmp_path):
    from tasks.sandbox import free_port

    cfg = make_config(prod, local, dbname, ssh=f"nobody@127.0.0.1:{free_port()}")
    assert_one_line_error(inv(cli_project(tmp_path, cfg), "db.sync.from-production"), "connection refused")
    assert not db_exists(local, dbname)


def test_cli_wrong_key(prod, local, sshd, dbname, tmp_path):
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    (tmp_path / "repo").mkdir()
    cfg = make_config(prod, local, dbname, ssh={**sshd.target(), "key_filename": str(tmp_path / "k")})
    repo = cli_project(tmp_path / "repo", cfg)
    assert_one_line_error(inv(repo, "db.sync.from-production"), "authentication failed")
    assert not db_exists(local, dbname)
