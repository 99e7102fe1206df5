"""Containers with the Docker SDK: a client for an environment's daemon, and the ephemeral PostgREST.

For an SSH environment the SDK talks to the remote daemon through prodmirror's own SSH connection:
a private unix socket on this machine relays each connection to `docker system dial-stdio` run on
the host (what docker-py's `ssh://` does with the ssh binary), so the configured key and the
project's known_hosts apply and nothing else needs setting up. The client keeps one HTTP connection
for the whole run, so a run opens one dial-stdio channel, not one per API path.
"""

import os
import re
import socket
import tempfile
import threading
import time
from urllib.parse import quote

from .errors import HostError, ProdmirrorError, last_line
from .hosts import LocalHost, NoForwarding

LABEL = "prodmirror.hotfix"


class DialStdioRelay:
    """Serve a unix socket; relay every connection to `docker system dial-stdio` on an SSH host.

    When that command fails at once (the SSH user may not use the daemon's socket, docker is missing),
    the connection is hung up and `failure` keeps the line of its stderr that says why.
    """

    def __init__(self, host):
        self.host, self.failure = host, None
        self.dir = tempfile.mkdtemp(prefix="prodmirror-docker-")
        self.path = os.path.join(self.dir, "docker.sock")
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn):
        try:
            proc = self.host.stream(["docker", "system", "dial-stdio"])
        except HostError as exc:  # the SSH session is gone
            self.failure = str(exc)
            _hang_up(conn)
            return

        def upstream():
            try:
                for data in iter(lambda: conn.recv(65536), b""):
                    proc.write(data)
            except OSError:
                pass
            finally:
                proc.close_stdin()

        threading.Thread(target=upstream, daemon=True).start()
        try:
            for data in iter(lambda: _read_idle(proc), b""):
                conn.sendall(data)
        except OSError:
            pass  # the client went away
        else:  # dial-stdio ended; non-zero means it never reached the daemon
            if proc.wait() != 0:
                self.failure = last_line(proc.stderr) or "docker system dial-stdio failed"
        finally:
            _hang_up(conn)
            proc.kill()

    def close(self):
        self.server.close()
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass


def _read_idle(proc):
    """Return the next bytes from dial-stdio, however long that takes. The connection is kept alive between
    API calls, and is quiet while the flow works elsewhere (a clone takes minutes): that is no frozen peer.
    A call the daemon never answers is bounded by the client's own timeout, and the run's end closes the
    channel, which ends this read."""
    while True:
        try:
            return proc.read()
        except HostError:  # limits.stall passed without a byte
            continue


def _hang_up(conn):
    """Close a relayed connection so that the client, and the thread reading it here, see its end now
    (close() alone wakes neither while that thread waits in recv)."""
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    conn.close()


class Docker:
    """A docker-py client for the daemon of `host` (this machine's, or an SSH host's); close() when done.

    Raise HostError in one line if the daemon cannot be reached, saying why when the host said it.
    """

    def __init__(self, host):
        import docker
        import requests

        self.relay, self.host = None, host
        try:
            if isinstance(host, LocalHost):
                self.client = docker.from_env(timeout=60)
                self.client.ping()
            else:
                self.relay = DialStdioRelay(host)
                self.client = _one_connection_client(self.relay.path, timeout=60)
        except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
            failure = self.relay and self.relay.failure
            self.close()
            if failure:
                raise HostError(f"{host.label}: cannot reach the Docker daemon there: {_explain(host, failure)}") from None
            raise HostError(f"{host.label}: the Docker daemon does not answer ({_short(exc)})") from None

    def close(self):
        if getattr(self, "client", None):
            self.client.close()
        if self.relay:
            self.relay.close()


def _one_connection_client(path, timeout):
    """Given the relay's socket, return a DockerClient whose every call shares one kept-alive connection.

    docker-py keeps a connection pool per request URL (…/images/NAME/json, …/containers/NAME/json…), so each
    new path would open another connection, and through the relay another `docker system dial-stdio` over
    SSH. Here one pool of one connection serves every path. The daemon's API version is asked through it
    too (docker-py's own "auto" would ask through a pool of its own), which also checks that it answers."""
    import docker
    from docker.transport import UnixHTTPAdapter

    class OnePool(UnixHTTPAdapter):
        def get_connection(self, url, proxies=None):
            return super().get_connection("http+docker://localhost", proxies)

    url, adapter = f"unix://{path}", OnePool(f"http+unix://{path}", timeout, pool_connections=1, max_pool_size=1)
    probe = docker.APIClient(base_url=url, version=docker.constants.MINIMUM_DOCKER_API_VERSION, timeout=timeout)
    probe.mount("http+docker://", adapter)
    client = docker.DockerClient(base_url=url, version=probe.version(api_version=False)["ApiVersion"], timeout=timeout)
    client.api.mount("http+docker://", adapter)
    return client


def _short(exc):
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _explain(host, failure):
    """Given the line dial-stdio failed with, return the docker CLI's own words for it ("permission denied while
    trying to connect to the Docker daemon socket at …", "Cannot connect to the Docker daemon …"), which
    `docker version` says where dial-stdio only says "failed to open the raw stream connection"."""
    res = host.run(["docker", "version", "--format", "{{.Server.Version}}"], check=False)
    line = re.sub(r': (Get|Head|Post) "[^"]*"', "", last_line(res.stderr)) if res.code else failure
    if line.startswith("permission denied while trying to connect to the Docker daemon socket"):
        line = line.split(": dial unix ")[0] + " (is the SSH user in the docker group there?)"
    return line


def check_image(docker_client, image, where):
    """Raise ProdmirrorError in one line unless `image` is on the daemon's host. prodmirror never pulls: the
    host need not reach a registry, and a pull would be a slow, long error instead of this line."""
    import docker

    try:
        docker_client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ProdmirrorError(f"{where}: {_not_there(image)}") from None
    except docker.errors.APIError as exc:
        raise ProdmirrorError(f"{where}: image {image}: {_short(exc)}") from None


def _not_there(image):
    return f"image {image} is not on that Docker host (docker pull {image} or docker load there)"


def postgrest_spec(cfg, database, name, created, ttl):
    """Given the Postgrest config (hotfix.postgrest) and the bugfix database, return (kwargs for containers.create, secrets).

    The secrets are returned separately so that what is printed (the plan, errors) can mask them.
    """
    password = cfg.db_password.reveal()
    uri = f"postgres://{quote(cfg.db_user, safe='')}:{quote(password, safe='')}@{cfg.db_host}:{cfg.db_port}/{database}"
    env = {"PGRST_DB_URI": uri, "PGRST_DB_SCHEMAS": ",".join(cfg.schemas), "PGRST_DB_ANON_ROLE": cfg.anon_role,
           "PGRST_JWT_SECRET": cfg.jwt_secret.reveal(), "PGRST_SERVER_PORT": str(cfg.port),
           **{k: str(v) for k, v in cfg.environment.items()}}
    labels = {**{k: str(v) for k, v in cfg.labels.items()}, LABEL: name, "prodmirror.database": database,
              "prodmirror.created": created, "prodmirror.ttl": str(ttl)}
    kwargs = {"image": cfg.image, "name": cfg.name, "environment": env, "labels": labels, "detach": True}
    if cfg.network == "host":
        kwargs["network_mode"] = "host"
    else:
        kwargs["network"] = cfg.network
    if cfg.command:
        kwargs["command"] = cfg.command
    return kwargs, [s for s in (password, quote(password, safe=""), cfg.jwt_secret.reveal()) if s]


def mask(text, secrets):
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def start(docker, kwargs, secrets, wait):
    """Start the container (replacing a stopped one of the same name) on `docker` (a Docker) and wait, at most
    `wait` seconds (limits.container_ready), until it is ready (see wait_ready); return (container, how it was
    seen ready).

    Raise ProdmirrorError in one line naming the container, what it last showed and the tail of its log
    (secrets masked) if it exits, turns unhealthy or is not ready in time; it is removed then, as on any
    other failure of the wait (Ctrl-C included): nothing is left running half-started.
    """
    import docker as sdk

    client = docker.client
    try:
        old = client.containers.get(kwargs["name"])
        if old.status == "running":
            raise ProdmirrorError(f"container {kwargs['name']} is already running (hotfix.teardown first, or --replace)")
        old.remove(force=True)
    except sdk.errors.NotFound:
        pass
    try:
        box = client.containers.create(**kwargs)  # not run(): on a missing image it would pull
        box.start()
    except sdk.errors.ImageNotFound:
        raise ProdmirrorError(_not_there(kwargs["image"])) from None
    except sdk.errors.APIError as exc:
        raise ProdmirrorError(f"cannot start {kwargs['name']}: {mask(_short(exc), secrets)}") from None
    try:
        return box, wait_ready(box, Readiness(docker.host, kwargs.get("environment", {})), wait, secrets)
    except BaseException:
        try:
            box.remove(force=True)
        except sdk.errors.DockerException:
            pass  # already gone (auto-removed, or removed by hand meanwhile)
        raise


def wait_ready(box, readiness, wait, secrets):
    """Wait until the started container `box` is ready, at most `wait` seconds; return how it was seen ready.

    Ready is the container's own health check when it has one (the image's HEALTHCHECK: Docker's health
    status turning healthy); else `readiness` (PostgREST answering over HTTP, or its log saying it listens).
    Checked again and again, a few times per second at first, never by sleeping a fixed time and assuming.
    Raise ProdmirrorError (one line, secrets masked) if it exits, turns unhealthy, or is not ready in time.
    """
    deadline, pause = time.monotonic() + wait, 0.01
    while True:
        box.reload()
        state = box.attrs.get("State") or {}
        if box.status in ("exited", "dead"):
            raise ProdmirrorError(f"container {box.name} exited (code {state.get('ExitCode')}) before it was ready; "
                                  f"removed it. Its log: {_log_tail(box, secrets)}")
        health = state.get("Health")
        if health:
            if health.get("Status") == "healthy":
                return "healthy (its HEALTHCHECK)"
            if health.get("Status") == "unhealthy":
                said = mask(_last(str((health.get("Log") or [{}])[-1].get("Output", ""))), secrets)
                raise ProdmirrorError(f"container {box.name} is unhealthy (its HEALTHCHECK said: {said or 'nothing'}); "
                                      f"removed it. Its log: {_log_tail(box, secrets)}")
            seen = f"its HEALTHCHECK says {health.get('Status')}"
        elif box.status == "running":
            ready, seen = readiness.check(box, min(2.0, max(deadline - time.monotonic(), 0.1)))
            if ready:
                return seen
        else:
            seen = f"it is {box.status}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise ProdmirrorError(f"container {box.name} not ready within {wait:g} s (limits.container_ready): {seen}; "
                                  f"removed it. Its log: {_log_tail(box, secrets)}")
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.2)


LISTENING = re.compile(r"(?<!server )Listening on (port \d+|unix socket)")  # not "Admin server listening on port"


class Readiness:
    """Whether a running PostgREST container is ready, asked from its Docker host (`host`), where its port is.

    With an admin server configured (PGRST_ADMIN_SERVER_PORT), its /ready endpoint: 200 once PostgREST has its
    database connection and its schema cache, 503 before. Else the API port itself: any answer but 503 to
    `GET /` (PostgREST 12 listens before it has loaded its schema cache and answers 503 until then). The port
    is on the host's loopback with host networking, else on the container's address in its network; the
    connection is made on that host (through the SSH connection for a remote one). Where no connection can
    be made there (the SSH server allows no TCP forwarding, the container has no address), the log line
    PostgREST writes when it listens ("Listening on port 3000") is the signal.
    """

    def __init__(self, host, environment):
        self.host = host
        admin = environment.get("PGRST_ADMIN_SERVER_PORT")
        self.port, self.path = (int(admin), "/ready") if admin else (int(environment.get("PGRST_SERVER_PORT", 3000)), "/")
        self.by_log = False

    def check(self, box, timeout):
        """Return (ready, what was seen, for a message)."""
        address = self.address(box)
        if address and not self.by_log:
            try:
                status = http_status(self.host, address, self.port, self.path, timeout)
            except NoForwarding:  # this SSH server opens no connections for its clients
                self.by_log = True
            else:
                where = f"{address}:{self.port} on {self.host.label}"
                if status is None:
                    return False, f"nothing answers HTTP at {where} yet"
                if (status == 200) if self.path == "/ready" else (status != 503):
                    return True, f"GET {self.path} at {where} answered {status}"
                return False, f"GET {self.path} at {where} answers {status}"
        logs = box.logs().decode("utf-8", "replace")
        if LISTENING.search(logs):
            return True, "its log says it listens"
        return False, "its log does not say \"Listening on port\" yet"

    @staticmethod
    def address(box):
        """Return the address its port is on, as the Docker host sees it; None if it has none."""
        if box.attrs.get("HostConfig", {}).get("NetworkMode") == "host":
            return "127.0.0.1"
        networks = (box.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        return next((n["IPAddress"] for n in networks.values() if n and n.get("IPAddress")), None)


def http_status(host, address, port, path, timeout):
    """Return the status of `GET path` at address:port, connecting from `host`; None when nothing accepts the
    connection or answers HTTP there within `timeout`. Raise NoForwarding if `host` opens no connections."""
    try:
        conn = host.connect(address, port, timeout)
    except OSError:  # refused, unreachable, no answer: not (yet) listening
        return None
    head = b""
    try:
        conn.settimeout(timeout)
        conn.sendall(f"GET {path} HTTP/1.0\r\nHost: {address}:{port}\r\nConnection: close\r\n\r\n".encode())
        while b"\r\n" not in head and len(head) < 4096:
            data = conn.recv(4096)
            if not data:
                break
            head += data
    except OSError:
        return None
    finally:
        conn.close()
    match = re.match(rb"HTTP/\d(?:\.\d)? (\d{3})", head)
    return int(match.group(1)) if match else None


def _last(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:120] if lines else ""


def _log_tail(box, secrets, lines=3, width=120):
    """Return the last `lines` lines of the container's log on one line (secrets masked), at most `width` long."""
    try:
        text = box.logs(tail=20).decode("utf-8", "replace")
    except Exception:  # gone already: say so rather than hide the first error
        return "(no log: the container is gone)"
    tail = " | ".join([line.strip() for line in mask(text, secrets).splitlines() if line.strip()][-lines:])
    return ("…" + tail[-width:] if len(tail) > width else tail) or "(empty)"


def remove(docker_client, name):
    """Stop and remove container `name`; return True if there was one."""
    import docker

    try:
        box = docker_client.containers.get(name)
    except docker.errors.NotFound:
        return False
    try:
        box.stop(timeout=10)
        box.remove(force=True)
    except docker.errors.NotFound:
        pass
    return True


def serves(docker_client, name):
    """Return the bugfix database container `name` serves (its prodmirror.hotfix label; '' when prodmirror did
    not start it), or None if there is no such container."""
    import docker

    try:
        return docker_client.containers.get(name).labels.get(LABEL, "")
    except docker.errors.NotFound:
        return None


def state(docker_client, name):
    """Return the container's status ('running', 'exited'…) or None if it does not exist."""
    import docker

    try:
        return docker_client.containers.get(name).status
    except docker.errors.NotFound:
        return None
