"""The readiness wait of a started container (containers.wait_ready, Readiness, http_status) and the TCP
connection a host opens for it (SSHHost.connect). The real thing runs in tests/integration/test_hotfix.py and
tests/faults/test_docker_faults.py; here are the answers a real dockerd or sshd gives rarely: a tiny HTTP server
on 127.0.0.1 for the statuses, stand-ins for the container and the SSH transport for the error paths."""

import socket
import threading

import pytest

from tasks import containers
from tasks.errors import ProdmirrorError
from tasks.hosts import LocalHost, NoForwarding, SSHHost


@pytest.fixture
def answering():
    """Return serve(reply): a socket on 127.0.0.1 that answers each connection with `reply`; its port."""
    servers = []

    def serve(reply):
        server = socket.create_server(("127.0.0.1", 0))
        servers.append(server)

        def loop():
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                conn.recv(4096)
                conn.sendall(reply)
                conn.close()

        threading.Thread(target=loop, daemon=True).start()
        return server.getsockname()[1]

    yield serve
    for server in servers:
        server.close()


def test_http_status_reads_the_status_line_and_none_when_nothing_answers_http(answering):
    host = LocalHost("production")
    assert containers.http_status(host, "127.0.0.1", answering(b"HTTP/1.1 503 Service Unavailable\r\n\r\n"), "/", 2) == 503
    assert containers.http_status(host, "127.0.0.1", answering(b"HTTP/1.0 200 OK\r\n\r\n"), "/ready", 2) == 200
    assert containers.http_status(host, "127.0.0.1", answering(b"SSH-2.0-OpenSSH\r\n"), "/", 2) is None
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    assert containers.http_status(host, "127.0.0.1", port, "/", 2) is None  # refused: not listening (yet)


class Box:
    """A container as docker-py shows it, with the states a test gives it one reload() after another."""

    def __init__(self, *states, network="host", log=b""):
        self.states, self.name, self.log = list(states), "postgrest-bugfix", log
        self.attrs = {"HostConfig": {"NetworkMode": network}}
        self.removed = False

    def reload(self):
        status, health = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        self.status = status
        self.attrs["State"] = {"Status": status, "ExitCode": 1 if status == "exited" else 0,
                               **({"Health": health} if health else {})}

    def logs(self, tail=None):
        return self.log


class Never:
    def check(self, box, timeout):
        return False, "nothing answers HTTP at 127.0.0.1:3000 on production yet"


def test_an_exited_container_is_one_line_with_its_log_tail_secrets_masked():
    box = Box(("running", None), ("exited", None), log=b"a\nb\nconnecting with s3cret\nFATAL: no such role\n")
    with pytest.raises(ProdmirrorError) as failed:
        containers.wait_ready(box, Never(), 5, ["s3cret"])
    assert str(failed.value) == ("container postgrest-bugfix exited (code 1) before it was ready; removed it. "
                                 "Its log: b | connecting with *** | FATAL: no such role")


def test_the_health_status_decides_when_there_is_one():
    starting, healthy = {"Status": "starting"}, {"Status": "healthy"}
    assert containers.wait_ready(Box(("running", starting), ("running", healthy)), Never(), 5, []) == \
        "healthy (its HEALTHCHECK)"
    unhealthy = {"Status": "unhealthy", "Log": [{"Output": "curl: (7) Failed to connect\n"}]}
    with pytest.raises(ProdmirrorError, match=r"is unhealthy \(its HEALTHCHECK said: curl: \(7\) Failed to connect\); "
                                              r"removed it. Its log: \(empty\)$"):
        containers.wait_ready(Box(("running", starting), ("running", unhealthy)), Never(), 5, [])
    with pytest.raises(ProdmirrorError, match=r"not ready within 0.05 s \(limits.container_ready\): its HEALTHCHECK "
                                              r"says starting; removed it"):
        containers.wait_ready(Box(("running", starting)), Never(), 0.05, [])


def test_readiness_asks_the_admin_servers_ready_when_configured_else_the_api_port():
    api = containers.Readiness(None, {"PGRST_SERVER_PORT": "3000"})
    admin = containers.Readiness(None, {"PGRST_SERVER_PORT": "3000", "PGRST_ADMIN_SERVER_PORT": "3001"})
    assert (api.port, api.path, admin.port, admin.path) == (3000, "/", 3001, "/ready")


def test_the_port_is_on_the_hosts_loopback_with_host_networking_else_on_the_containers_address():
    box = Box(("running", None))
    assert containers.Readiness.address(box) == "127.0.0.1"
    box.attrs = {"HostConfig": {"NetworkMode": "root_default"},
                 "NetworkSettings": {"Networks": {"root_default": {"IPAddress": "10.9.0.7"}}}}
    assert containers.Readiness.address(box) == "10.9.0.7"
    box.attrs["NetworkSettings"]["Networks"]["root_default"]["IPAddress"] = ""
    assert containers.Readiness.address(box) is None  # none: the log line decides


def test_503_is_not_ready_on_the_api_port_and_only_200_is_ready_on_ready(answering):
    host = LocalHost("production")
    box = Box(("running", None))
    box.reload()
    readiness = containers.Readiness(host, {"PGRST_SERVER_PORT": answering(b"HTTP/1.1 503 x\r\n\r\n")})
    assert readiness.check(box, 2) == (False, f"GET / at 127.0.0.1:{readiness.port} on production answers 503")
    readiness = containers.Readiness(host, {"PGRST_SERVER_PORT": answering(b"HTTP/1.1 404 x\r\n\r\n")})
    assert readiness.check(box, 2)[0] is True  # PostgREST answered: it is up (a 404 is the caller's matter)
    readiness = containers.Readiness(host, {"PGRST_ADMIN_SERVER_PORT": answering(b"HTTP/1.1 404 x\r\n\r\n")})
    assert readiness.check(box, 2)[0] is False


def test_without_forwarding_the_log_line_decides_and_the_admin_line_does_not_count(monkeypatch):
    class Refusing:
        label = "production"

        def connect(self, address, port, timeout):
            raise NoForwarding("production: the SSH server does not open TCP connections (AllowTcpForwarding)")

    box = Box(("running", None), log=b"Admin server listening on port 3001\n")
    box.reload()
    readiness = containers.Readiness(Refusing(), {"PGRST_SERVER_PORT": "3000"})
    assert readiness.check(box, 2) == (False, 'its log does not say "Listening on port" yet')
    assert readiness.by_log  # asked once, never again
    box.log += b"Listening on port 3000\n"
    assert readiness.check(box, 2) == (True, "its log says it listens")


def test_an_ssh_host_tells_a_refused_port_from_a_server_that_forwards_nothing(mocker):
    import paramiko

    host = SSHHost.__new__(SSHHost)
    host.label = "production"
    transport = mocker.Mock()
    mocker.patch.object(SSHHost, "open", return_value=transport)
    transport.open_channel.side_effect = paramiko.ChannelException(2, "Connect failed")
    with pytest.raises(ConnectionRefusedError, match="127.0.0.1:3000 on production: Connect failed"):
        host.connect("127.0.0.1", 3000, 2)
    transport.open_channel.side_effect = paramiko.ChannelException(1, "Administratively prohibited")
    with pytest.raises(NoForwarding, match="AllowTcpForwarding"):
        host.connect("127.0.0.1", 3000, 2)
    transport.open_channel.side_effect = paramiko.SSHException("Timeout opening channel.")
    with pytest.raises(TimeoutError):
        host.connect("127.0.0.1", 3000, 2)
