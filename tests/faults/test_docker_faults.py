"""Faults: production's Docker daemon refusing the SSH user (permission denied on its socket) and a PostgREST
image that is not on that daemon are one short line within seconds, before anything is cloned. The real
daemon, reached through a real sshd; no registry is ever asked (none is reachable here)."""

import os
import shutil
import socket
import tempfile
import time

import pytest

from tasks.errors import HostError
from tasks.hosts import SSHHost
from tasks.sandbox import owned_dir
from tasks.sandbox.sshd import SSHServer
from tests.conftest import cli_project, db_exists, inv
from tests.hotfix_bed import hotfix_config, lm360  # noqa: F401 - fixtures

HANG = 15  # seconds: a bound on a hang (the old behaviour was a 60 s timeout), not a benchmark


@pytest.fixture(scope="module")
def daemon():
    from tasks.sandbox import docker as testbed_docker

    return testbed_docker.ensure_daemon()


@pytest.fixture
def refused_sshd(base, svc):
    """An sshd for the same user whose sessions find the Docker socket (DOCKER_HOST) closed to them: a socket
    only root may open, as /var/run/docker.sock is to a user outside the docker group."""
    sockets = tempfile.mkdtemp(prefix="prodmirror-docker-denied-")
    os.chmod(sockets, 0o755)
    path = os.path.join(sockets, "docker.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)
    os.chmod(path, 0o600)
    server = SSHServer(owned_dir(os.path.join(base, f"denied-{os.getpid()}"), svc[1], svc[2]), *svc).prepare()
    with open(server.config, "a") as f:
        f.write(f"SetEnv DOCKER_HOST=unix://{path}\n")
    yield server.start()
    server.stop()
    listener.close()
    shutil.rmtree(sockets, ignore_errors=True)


def one_line(res):
    assert res.returncode != 0 and "Traceback" not in res.stderr, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.startswith("prodmirror:")]
    assert len(lines) == 1 and len(lines[0]) < 250, res.stderr
    return lines[0]


def test_permission_denied_on_the_docker_socket_is_one_line_within_seconds(refused_sshd, daemon, tmp_path):
    from tasks.config.model import SSHTarget
    from tasks.containers import Docker

    host = SSHHost("production", SSHTarget(**refused_sshd.target()), tmp_path / "known_hosts")
    started = time.monotonic()
    with pytest.raises(HostError, match=r"^production: cannot reach the Docker daemon there: permission denied while "
                                        r"trying to connect to the Docker daemon socket at unix://\S+docker.sock"):
        Docker(host)
    assert time.monotonic() - started < HANG
    host.close()


def test_hotfix_create_with_the_docker_socket_denied_clones_nothing(prod, refused_sshd, lm360, daemon, tmp_path):
    cfg = hotfix_config(tmp_path, prod, refused_sshd, lm360, standin=("prodmirror/postgrest-standin:1", ["true"]))
    started = time.monotonic()
    res = inv(cli_project(tmp_path, cfg), "hotfix.create", "--force")
    assert time.monotonic() - started < HANG
    assert "permission denied while trying to connect to the Docker daemon socket" in one_line(res)
    assert not db_exists(prod, f"{lm360}_bugfix") and not (tmp_path / ".prodmirror" / "hotfix.json").exists()


def test_a_missing_image_is_one_line_within_seconds_and_nothing_is_cloned(prod, sshd, lm360, daemon, tmp_path):
    image = f"prodmirror/no-such-image:{os.getpid()}"
    cfg = hotfix_config(tmp_path, prod, sshd, lm360, standin=(image, ["true"]))
    started = time.monotonic()
    res = inv(cli_project(tmp_path, cfg), "hotfix.create", "--force")
    assert time.monotonic() - started < HANG
    assert one_line(res) == (f"prodmirror: production: image {image} is not on that Docker host "
                             f"(docker pull {image} or docker load there)")
    # what remains: nothing. The image is checked before the clone, so no database, no state, no container.
    assert not db_exists(prod, f"{lm360}_bugfix") and not (tmp_path / ".prodmirror" / "hotfix.json").exists()
    assert not daemon.containers.list(all=True, filters={"name": f"postgrest-bugfix-{lm360}"})
