"""Faults: production's Docker daemon refusing the SSH user (permission denied on its socket) and a PostgREST
image that is not on that daemon are one short line within seconds, before anything is cloned; a PostgREST
that never gets ready, exits at once or turns unhealthy is one line naming it and its log, and is removed
while the clone stays (as after any failure to start it); an SSH server that forwards no TCP makes the log
line the signal. The real daemon, reached through a real sshd; no registry is ever asked (none is reachable
here)."""

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
from tasks.sandbox import docker as testbed_docker

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


def _sshd_with(base, svc, name, line):
    server = SSHServer(owned_dir(os.path.join(base, f"{name}-{os.getpid()}"), svc[1], svc[2]), *svc).prepare()
    with open(server.config, "a") as f:
        f.write(line + "\n")
    return server.start()


@pytest.fixture
def no_forwarding_sshd(base, svc):
    """An sshd for the same user that opens no TCP connection for its clients (AllowTcpForwarding no)."""
    server = _sshd_with(base, svc, "noforward", "AllowTcpForwarding no")
    yield server
    server.stop()


def failed_start(tmp_path, prod, sshd, lm360, daemon, image, command, limits=None):
    """Run `inv hotfix.create` with PostgREST given (image, command); return (its one error line, its stderr) after
    checking what the failure leaves: the clone, recorded (hotfix.status lists it), and no container."""
    tmp_path.mkdir(exist_ok=True)
    cfg = hotfix_config(tmp_path, prod, sshd, lm360, standin=(image, command), limits=limits)
    repo = cli_project(tmp_path, cfg, env_text=(tmp_path / ".env").read_text())
    res = inv(repo, "hotfix.create", "--force")
    line = one_line(res)
    name = cfg["hotfix"]["postgrest"]["name"]
    assert not daemon.containers.list(all=True, filters={"name": name}), "the container was left behind"
    assert f"{lm360}_bugfix stays (see hotfix.status); the container did not start" in res.stderr
    assert db_exists(prod, f"{lm360}_bugfix")
    assert f"{lm360}_bugfix" in (tmp_path / ".prodmirror" / "hotfix.json").read_text()
    assert "s3cret" not in res.stderr
    return line, res, name, cfg


def test_a_postgrest_that_never_answers_is_one_line_within_the_bound_and_removed(prod, sshd, lm360, daemon, tmp_path):
    command = testbed_docker.standin_command(before="exec /bin/busybox sleep 600", serve=False)
    line, _, name, cfg = failed_start(tmp_path, prod, sshd, lm360, daemon, testbed_docker.ensure_standin(daemon),
                                      command, limits={"container_ready": "2s"})
    port = cfg["hotfix"]["postgrest"]["port"]
    assert line == (f"prodmirror: container {name} not ready within 2 s (limits.container_ready): nothing answers HTTP "
                    f"at 127.0.0.1:{port} on production yet; removed it. Its log: (empty)")


def test_a_postgrest_that_exits_at_once_is_one_line_with_its_log(prod, sshd, lm360, daemon, tmp_path):
    command = testbed_docker.standin_command(serve=False, before=(
        'echo "connecting to $PGRST_DB_URI" >&2\necho "FATAL: could not bind port $PGRST_SERVER_PORT" >&2\nexit 3'))
    line, _, name, cfg = failed_start(tmp_path, prod, sshd, lm360, daemon, testbed_docker.ensure_standin(daemon),
                                      command)
    port = cfg["hotfix"]["postgrest"]["port"]
    assert line == (f"prodmirror: container {name} exited (code 3) before it was ready; removed it. Its log: "
                    f"connecting to postgres://authenticator:***@127.0.0.1:{prod.port}/{lm360}_bugfix | "
                    f"FATAL: could not bind port {port}")


def test_an_image_whose_healthcheck_fails_is_one_line_with_what_it_said(prod, sshd, lm360, daemon, tmp_path):
    command = testbed_docker.standin_command(before='echo "not serving"\nexec /bin/busybox sleep 600', serve=False)
    line, _, name, cfg = failed_start(tmp_path, prod, sshd, lm360, daemon,
                                      testbed_docker.ensure_standin(daemon, healthcheck=True), command)
    assert line == (f"prodmirror: container {name} is unhealthy (its HEALTHCHECK said: wget: can't connect to remote "
                    f"host (127.0.0.1): Connection refused); removed it. Its log: not serving")


def test_without_tcp_forwarding_the_log_line_is_the_signal(prod, no_forwarding_sshd, lm360, daemon, tmp_path):
    """PostgREST's own "Listening on port N": ready when it says so; not ready within the bound when it never does."""
    image = testbed_docker.ensure_standin(daemon)
    says = testbed_docker.standin_command(before='echo "Listening on port $PGRST_SERVER_PORT"')
    (tmp_path / "says").mkdir()
    cfg = hotfix_config(tmp_path / "says", prod, no_forwarding_sshd, lm360, standin=(image, says))
    repo = cli_project(tmp_path / "says", cfg, env_text=(tmp_path / "says" / ".env").read_text())
    res = inv(repo, "hotfix.create", "--force")
    assert res.returncode == 0, res.stderr
    assert ": its log says it listens); PostgREST answers at" in res.stderr
    assert inv(repo, "hotfix.teardown", "--force").returncode == 0
    silent = testbed_docker.standin_command()
    line, *_ = failed_start(tmp_path / "silent", prod, no_forwarding_sshd, lm360, daemon, image, silent,
                            limits={"container_ready": "1s"})
    assert line.endswith(' not ready within 1 s (limits.container_ready): its log does not say "Listening on port" '
                         'yet; removed it. Its log: (empty)')
