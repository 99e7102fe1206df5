"""Bad input as a new user or an unlucky operator gives it, through the CLI: one line naming the cause,
a non-zero exit, no traceback, nothing changed."""

import hashlib
import json
import os
import subprocess
import sys

import pytest

from tests.conftest import cli_project, db_exists, inv, make_config, unavailable


def one_line(res, *texts):
    assert res.returncode != 0, res.stdout + res.stderr
    assert "Traceback" not in res.stderr and "Error:" not in res.stderr.replace("prodmirror:", ""), res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("prodmirror:")]
    assert len(lines) == 1, res.stderr
    for text in texts:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def repo(prod, local, sshd, dbname, tmp_path):
    """An ops repo whose local already holds a copy worth keeping."""
    local.psql(f'CREATE DATABASE "{dbname}" OWNER spmo_admin')
    local.psql("CREATE TABLE keep (x int); INSERT INTO keep VALUES (7);", db=dbname, user="spmo_admin")
    return cli_project(tmp_path, make_config(prod, local, dbname, ssh=sshd.target()))


def unchanged(local, dbname):
    return local.psql("SELECT x FROM keep", db=dbname).strip() == "7" and not db_exists(local, dbname[:55] + "__pm_new")


@pytest.mark.parametrize("text, where", [
    ("environments:\n  production: {ssh: [\n", "line 3, column 1: invalid YAML"),
    ("environments:\n\tproduction: {}\n", "line 2, column 1: invalid YAML"),
    (b"environments:\n  production:\n    ssh: \xff\xfe\n", "not UTF-8 text"),
])
def test_a_broken_invoke_yaml_is_one_line_with_file_line_and_column(tmp_path, text, where):
    repo = cli_project(tmp_path, {})
    (repo / "invoke.yaml").write_bytes(text if isinstance(text, bytes) else text.encode())
    res = inv(repo, "db.backup.list")
    assert res.returncode == 2
    one_line(res, str(repo / "invoke.yaml"), where)


def test_a_non_utf8_env_file_is_one_line(repo):
    (repo / ".env").write_bytes(b"PASSWORD=caf\xe9\n")
    one_line(inv(repo, "db.sync.status"), ".env: not UTF-8 text")


@pytest.mark.parametrize("args", [("--db", ""), ("--db", ","), ("--db", " , ")])
def test_an_empty_db_list_is_refused_not_taken_as_every_database(repo, local, dbname, args):
    one_line(inv(repo, "db.sync.from-production", *args), "no database key given")
    assert unchanged(local, dbname)
    assert not (repo / "backups").exists()


@pytest.mark.parametrize("port", [0, 70000, -1])
def test_an_ssh_port_out_of_range_is_refused(prod, local, dbname, tmp_path, port):
    repo = cli_project(tmp_path, make_config(prod, local, dbname, ssh={"host": "127.0.0.1", "port": port}))
    one_line(inv(repo, "db.sync.status"), "environments.production.ssh.port")


def test_backups_dir_that_is_a_list_is_a_config_error(prod, local, dbname, tmp_path):
    cfg = make_config(prod, local, dbname)
    cfg["backups"]["dir"] = ["a", "b"]
    one_line(inv(cli_project(tmp_path, cfg), "db.backup.list"), "backups.dir: expected a folder")


def test_backups_dir_that_is_a_file_is_one_line_and_nothing_changes(repo, local, dbname):
    (repo / "backups").write_text("not a folder")
    one_line(inv(repo, "db.sync.from-production"), "cannot write backups into", "backups.dir")
    assert unchanged(local, dbname)


def test_backups_dir_that_is_read_only_is_one_line_and_nothing_changes(repo, local, dbname):
    if os.getuid() != 0:
        unavailable("root", "a read-only tmpfs mount needs root; chmod does not stop root")
    (repo / "backups").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(repo / "backups")], check=True, timeout=30)
    try:
        one_line(inv(repo, "db.sync.from-production"), "cannot write backups into", "Read-only file system")
    finally:
        subprocess.run(["umount", "-l", str(repo / "backups")], timeout=30)
    assert unchanged(local, dbname)


def test_a_malformed_known_hosts_line_is_one_line_naming_it(repo):
    state = repo / ".prodmirror"
    state.mkdir()
    (state / "known_hosts").write_text("# ok\n[127.0.0.1]:22 ssh-ed25519 AAAA!!!notbase64\n")
    one_line(inv(repo, "db.sync.status"), "known_hosts line 2 is not a valid host key entry")


@pytest.mark.parametrize("content", [b"{torn", b"[1, 2]", b'{"app": 5}', b"\xff\xfe{}"])
def test_a_corrupt_sync_state_stops_the_run_before_anything_is_swapped(repo, local, dbname, content):
    state = repo / ".prodmirror"
    state.mkdir()
    (state / "sync-state.json").write_bytes(content)
    one_line(inv(repo, "db.sync.from-production"), "sync-state.json is corrupt", "nothing was changed")
    assert unchanged(local, dbname)
    assert not (repo / "backups").exists()
    assert (state / "sync-state.json").read_bytes() == content  # left for the user to look at


def test_output_piped_into_head_ends_quietly(repo):
    folder = repo / "backups"
    for n in range(1500):  # enough rows to overflow the pipe before `head` closes it
        name = f"local_20260101_{n:06d}"
        (folder / name).mkdir(parents=True)
        (folder / name / "app.pgdump").write_bytes(b"x")
        (folder / name / "manifest.json").write_text(json.dumps({
            "name": name, "env": "local", "created": "2026-01-01T00:00:00+00:00", "databases": {"app": {
                "engine": "postgres", "file": "app.pgdump", "size": 1, "sha256": hashlib.sha256(b"x").hexdigest()}}}))
    for command in ("db.backup.list", "--list", "--help db.sync.from-production"):
        res = subprocess.run(f"{sys.executable} -m invoke {command} | head -2", shell=True, cwd=repo,
                             capture_output=True, text=True, timeout=120)
        assert len(res.stdout.splitlines()) == 2
        assert "BrokenPipeError" not in res.stderr and "Traceback" not in res.stderr, (command, res.stderr)
