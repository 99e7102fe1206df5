"""Where a command runs: this machine, an SSH host (Fabric), or a container on either.

Every host offers the same two calls on argv lists (quoted once, here, at the boundary):
- `run(argv, input=..., env=...)` for small text commands, returning a `Result`;
- `stream(argv, env=...)` for binary data: a started `Proc` whose stdout/stdin are raw bytes.
`env` carries secrets (PGPASSWORD…): they go into the child's environment on this machine, and over
SSH or `docker exec` they travel on the command's stdin, read by a tiny `sh` prologue, so they never
appear in argv, in `ps` on either side, or in an echo.
"""

import shlex
import socket
import sys
import threading
from pathlib import Path

from .config.model import Limits
from .errors import HostError
from .procs import ChannelProc, LocalProc, Result


class Host:
    """Base: `run` is `stream` plus collecting the output, so every kind of host behaves alike.

    `limits` (config: limits.stall, limits.lock_wait) bound the waits of what runs there."""

    label = "host"
    echo = False
    limits = Limits()

    def stream(self, argv, env=None):
        raise NotImplementedError

    def run(self, argv, input=None, env=None, check=True, binary=False):
        """Given argv (and optional text input), run it and return a Result (its stdout bytes if `binary`, else
        text). Raise CommandError if check and it fails."""
        proc = self.stream(argv, env=env)
        out = bytearray()
        feeder = None
        if input:
            data = input.encode() if isinstance(input, str) else input
            feeder = threading.Thread(target=self._feed, args=(proc, data), daemon=True)
            feeder.start()
        else:
            proc.close_stdin()
        for chunk in iter(proc.read, b""):
            out += chunk
        if feeder:
            feeder.join()
        code = proc.wait()
        if check:
            proc.check(code)
        return Result(code, bytes(out) if binary else out.decode("utf-8", "replace"), proc.stderr)

    @staticmethod
    def _feed(proc, data):
        try:
            proc.write(data)
            proc.close_stdin()
        except OSError:
            pass  # the command exited early; its exit code tells why

    def _echo(self, argv):
        if self.echo:
            print(f"[{self.label}] {shlex.join(argv)}", file=sys.stderr, flush=True)

    def connect(self, address, port, timeout):
        """Open a TCP connection to address:port as this host sees it (its loopback is its own); return an
        object with sendall, recv, settimeout and close. Raise OSError when nothing accepts there, NoForwarding
        when this host will not open connections for us at all."""
        raise NotImplementedError

    def close(self):
        pass


class NoForwarding(HostError):
    """An SSH server that refuses to open TCP connections for its client (AllowTcpForwarding no)."""


class LocalHost(Host):
    """This machine."""

    def __init__(self, label="local"):
        self.label = label

    def stream(self, argv, env=None):
        self._echo(argv)
        return LocalProc(self.label, argv, env=env)

    def connect(self, address, port, timeout):
        return socket.create_connection((address, port), timeout=timeout)


def secret_prologue(names):
    """Given env var names, return the `sh -c` argv prefix that reads their values from stdin, one per line."""
    reads = " && ".join(f"IFS= read -r {n}" for n in names)
    return ["sh", "-c", f'{reads} && export {" ".join(names)} && exec "$@"', "sh"]


class SSHHost(Host):
    """A host reached over SSH with Fabric. Host keys: trust on first use into a project-local file."""

    def __init__(self, label, target, known_hosts, connect_timeout=10):
        from fabric import Connection  # imported here: a purely local run never pays for it

        self.label, self.target, self.known_hosts = label, target, Path(known_hosts)
        kwargs = {"key_filename": target.key_filename} if target.key_filename else {}
        self.conn = Connection(host=target.host, user=target.user, port=target.port,
                               connect_timeout=connect_timeout, connect_kwargs=kwargs)

    def open(self):
        """Connect if not yet connected. Raise HostError with one line for any reason it cannot."""
        if self.conn.is_connected:
            return self.conn.transport
        import paramiko

        client = self.conn.client
        self.known_hosts.parent.mkdir(parents=True, exist_ok=True)
        self.known_hosts.touch(exist_ok=True)
        for path in (Path("~/.ssh/known_hosts").expanduser(), self.known_hosts):
            if path.exists():
                _load_host_keys(client, path, self.label)
        client.set_missing_host_key_policy(TrustOnFirstUse(self.label, self.known_hosts))
        where = f"{self.label}: {self.target}"
        try:
            if not self.conn.gateway:  # a ProxyJump/ProxyCommand of the SSH config brings its own socket
                self.conn.connect_kwargs["sock"] = self._socket()
            self.conn.open()
        except paramiko.BadHostKeyException as exc:
            raise HostError(
                f"{where}: host key changed (now {_fingerprint(exc.key)}, expected {_fingerprint(exc.expected_key)}); "
                f"refusing to connect. If the change is expected, remove that host from {self.known_hosts}") from None
        except paramiko.AuthenticationException:
            raise HostError(f"{where}: authentication failed (check the key or the user)") from None
        except (socket.timeout, TimeoutError):
            raise HostError(f"{where}: no answer within {self.conn.connect_timeout}s") from None
        except (OSError, paramiko.SSHException) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            if isinstance(exc, ConnectionRefusedError):
                reason = "connection refused"
            raise HostError(f"{where}: cannot connect: {reason}") from None
        finally:
            sock = self.conn.connect_kwargs.pop("sock", None)
            if sock and not self.conn.is_connected:
                sock.close()
        return self.conn.transport

    def _socket(self):
        """Return a TCP connection to the SSH server (host and port as Fabric resolved them), small writes sent at once.

        TCP_NODELAY is set before the first byte: each round trip of the handshake and of every small
        command would otherwise wait ~40 ms on Nagle + delayed ACK (OpenSSH's client sets it too)."""
        sock = socket.create_connection((self.conn.host, self.conn.port), timeout=self.conn.connect_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stream(self, argv, env=None):
        transport = self.open()
        env = env or {}
        full = secret_prologue(list(env)) + list(argv) if env else list(argv)
        self._echo(argv)
        prologue = "".join(f"{v}\n" for v in env.values()).encode()
        try:
            return ChannelProc(self.label, argv, transport, shlex.join(full), prologue, stall=self.limits.stall)
        except HostError:
            raise
        except Exception as exc:  # paramiko raises several kinds when the session drops
            raise HostError(f"{self.label}: cannot start {argv[0]}: {exc or type(exc).__name__}") from None

    def connect(self, address, port, timeout):
        """A direct-tcpip channel of this host's one SSH connection: the server dials address:port itself."""
        import paramiko

        _quiet_refused_opens()
        try:
            return self.open().open_channel("direct-tcpip", (address, port), ("127.0.0.1", 0), timeout=timeout)
        except paramiko.ChannelException as exc:
            if exc.code == paramiko.common.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED:
                raise NoForwarding(f"{self.label}: the SSH server does not open TCP connections (AllowTcpForwarding)") from None
            raise ConnectionRefusedError(f"{address}:{port} on {self.label}: {exc.text}") from None
        except paramiko.SSHException as exc:  # no answer to the open within `timeout`
            raise TimeoutError(f"{address}:{port} on {self.label}: {exc}") from None

    def close(self):
        self.conn.close()


def _quiet_refused_opens():
    """Keep paramiko from logging each refused direct-tcpip open as an ERROR (printed on stderr, since nothing
    configures logging): a port that does not accept yet is an answer the caller reads and reports itself."""
    import logging

    logger = logging.getLogger("paramiko.transport")
    if not any(isinstance(f, _RefusedOpens) for f in logger.filters):
        logger.addFilter(_RefusedOpens())


class _RefusedOpens:
    def filter(self, record):
        return "open FAILED" not in str(record.msg)


def _load_host_keys(client, path, label):
    """Load a known_hosts file into the client; raise HostError naming the line that is not a host key."""
    import paramiko

    try:
        if path == Path("~/.ssh/known_hosts").expanduser():
            client.load_system_host_keys(str(path))
        else:
            client.load_host_keys(str(path))
    except paramiko.hostkeys.InvalidHostKey as exc:
        lines = path.read_text(errors="replace").splitlines()
        number = next((i for i, line in enumerate(lines, 1) if line.strip() == str(exc.line).strip()), "?")
        raise HostError(f"{label}: {path} line {number} is not a valid host key entry; fix or remove that line") from None
    except (UnicodeDecodeError, OSError) as exc:
        raise HostError(f"{label}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


class TrustOnFirstUse:
    """paramiko policy: remember an unknown host's key in the project's known_hosts file, and say so."""

    def __init__(self, label, path):
        self.label, self.path = label, Path(path)

    def missing_host_key(self, client, hostname, key):
        client.get_host_keys().add(hostname, key.get_name(), key)
        client.save_host_keys(str(self.path))
        print(f"{self.label}: trusting new host key of {hostname} ({_fingerprint(key)}), saved to {self.path}",
              file=sys.stderr)


def _fingerprint(key):
    import base64
    import hashlib

    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


class ContainerHost(Host):
    """A container on another host, reached with `docker exec -i` on that host.

    The exec runs through the docker CLI rather than the SDK because a restore needs stdin closed to
    end, and docker-py's attached exec socket offers no reliable half-close. Secrets go with `-e NAME`
    (value taken from the docker CLI's own environment, which the inner host fills without argv).
    """

    def __init__(self, inner, container, workdir=None):
        self.inner, self.container, self.workdir = inner, container, workdir
        self.label = f"{container} on {inner.label}"
        self.limits = inner.limits

    def exec_argv(self, argv, env=None):
        flags = [part for name in (env or {}) for part in ("-e", name)]
        if self.workdir:
            flags += ["-w", self.workdir]
        return ["docker", "exec", "-i", *flags, self.container, *argv]

    def stream(self, argv, env=None):
        proc = self.inner.stream(self.exec_argv(argv, env), env=env)
        proc.where, proc.argv = self.label, list(argv)  # errors name the tool, not `docker`
        return proc

    def check_running(self):
        """Raise HostError unless the container exists and runs (Docker SDK for a local daemon)."""
        if isinstance(self.inner, LocalHost):
            state = _local_container_state(self.container)
        else:
            res = self.inner.run(["docker", "inspect", "-f", "{{.State.Status}}", self.container], check=False)
            state = res.stdout.strip() if res.code == 0 else None
        if state != "running":
            why = "does not exist" if state is None else f"is {state}"
            raise HostError(f"container {self.container} on {self.inner.label} {why}")


def _local_container_state(name):
    import docker

    try:
        client = docker.from_env()
        return client.containers.get(name).status
    except docker.errors.NotFound:
        return None
    except docker.errors.DockerException as exc:
        raise HostError(f"docker on this machine is not reachable: {exc}") from None


class Hosts:
    """One open host per environment for the duration of a command; close() ends SSH sessions."""

    def __init__(self, project, echo=False):
        self.project, self.echo, self._open = project, echo, {}

    def for_env(self, env):
        if env.name not in self._open:
            if env.ssh:
                host = SSHHost(env.name, env.ssh, self.project.state_dir / "known_hosts")
            else:
                host = LocalHost(env.name)
            host.echo = self.echo
            host.limits = self.project.limits
            self._open[env.name] = host
        return self._open[env.name]

    def for_db(self, db):
        """Given a Database, return the Host its client tools run on (its container, or its env's host)."""
        host = self.for_env(self.project.env(db.env))
        if db.container:
            host = ContainerHost(host, db.container)
            host.echo = self.echo
        return host

    def close(self):
        for host in self._open.values():
            host.close()
        self._open.clear()


def check_containers(*hosts):
    """Raise HostError (one line) if a container host among `hosts` is not running."""
    for host in hosts:
        if isinstance(host, ContainerHost):
            host.check_running()
