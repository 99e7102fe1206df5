"""A Docker daemon kept on loopback, a local image made from this machine's own /usr, and a Postgres
container named like the seeds' `spmo_shared_db`. No image can be pulled here, so the image is a
root filesystem of symlinks (bin -> usr/bin, …) imported with `docker import`; containers bind-mount
the host's /usr and /etc read-only and use host networking, so traffic never leaves 127.0.0.1.
"""

import io
import os
import shutil
import subprocess
import tarfile
import time

IMAGE = "prodmirror/hostroot:1"
LABEL = "prodmirror.testbed"


def client():
    import docker

    return docker.from_env(timeout=120)


def daemon_up():
    try:
        return client().ping()
    except Exception:
        return False


def ensure_daemon(log="/tmp/prodmirror-dockerd.log", timeout=60):
    """Return a docker client, starting dockerd (bridge and iptables off) when root and none answers."""
    if daemon_up():
        return client()
    if os.getuid() != 0 or not shutil.which("dockerd"):
        raise RuntimeError("no Docker daemon answers and this process cannot start one (needs root and dockerd)")
    subprocess.Popen(["dockerd", "--bridge=none", "--iptables=false", "--ip6tables=false"],
                     stdout=open(log, "a"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon_up():
            return client()
        time.sleep(0.5)
    raise RuntimeError(f"dockerd did not answer within {timeout}s (see {log})")


def _import_once(docker_client, tag, fill, changes=None):
    """Import image `tag` from a tarball that fill(tar) writes (with Dockerfile `changes` such as a HEALTHCHECK),
    unless the daemon has it; return the tag."""
    import docker

    try:
        docker_client.images.get(tag)
        return tag
    except docker.errors.ImageNotFound:
        pass
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        fill(tar)
    repository, version = tag.split(":")
    docker_client.api.import_image_from_data(buf.getvalue(), repository=repository, tag=version, changes=changes)
    return tag


def _dirs_and_links(tar, dirs, links):
    for name in dirs:
        info = tarfile.TarInfo(name)
        info.type, info.mode = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755
        tar.addfile(info)
    for name, target in links.items():
        info = tarfile.TarInfo(name)
        info.type, info.linkname = tarfile.SYMTYPE, target
        tar.addfile(info)


def ensure_image(docker_client):
    """Import the host-root image (symlinks into the host's /usr, bind-mounted at run time) once; return its tag."""
    return _import_once(docker_client, IMAGE, lambda tar: _dirs_and_links(
        tar, ("usr", "etc", "tmp", "data", "var", "run", "proc", "sys", "dev"),
        {name: f"usr/{name}" for name in ("bin", "sbin", "lib", "lib64")}))


STANDIN = "prodmirror/postgrest-standin:1"
STANDIN_HEALTHCHECK = "prodmirror/postgrest-standin-healthcheck:1"
# httpd in the background and the shell waiting with a trap: the container ends on SIGTERM (docker stop), as
# PostgREST does, where a PID 1 without a handler would ignore it and be killed only after stop's 10 s.
SERVE = 'trap "exit 0" TERM\n/bin/busybox httpd -f -p "$PGRST_SERVER_PORT" -h /www &\nwait'
# The stand-in with a Docker health check (what an image's HEALTHCHECK gives): healthy once its port answers
# HTTP, unhealthy after 3 failed checks 0.2 s apart.
HEALTHCHECK = ('HEALTHCHECK --interval=200ms --timeout=2s --retries=3 CMD ["/bin/busybox", "sh", "-c", '
               '"/bin/busybox wget -q -O /dev/null http://127.0.0.1:$PGRST_SERVER_PORT/"]')


def standin_command(before="", serve=True):
    """Return the stand-in's command running the shell line `before` first (a delay, a log line, an exit), then
    serving HTTP on $PGRST_SERVER_PORT unless not `serve`."""
    line = 'mkdir -p /www && echo "postgrest stand-in: $PGRST_DB_SCHEMAS" > /www/index.html'
    return ["/bin/busybox", "sh", "-c", "\n".join(part for part in (line, before, SERVE if serve else "") if part)]


STANDIN_COMMAND = standin_command()


def ensure_standin(docker_client, busybox="/bin/busybox", healthcheck=False):
    """Import a PostgREST stand-in (a static busybox serving HTTP on $PGRST_SERVER_PORT) once; return its tag.
    With `healthcheck`, the variant whose image defines a HEALTHCHECK."""

    def fill(tar):
        _dirs_and_links(tar, ("bin", "tmp"), {})
        tar.add(os.path.realpath(busybox), arcname="bin/busybox")
        _dirs_and_links(tar, (), {"bin/sh": "busybox"})

    if healthcheck:
        return _import_once(docker_client, STANDIN_HEALTHCHECK, fill, changes=[HEALTHCHECK])
    return _import_once(docker_client, STANDIN, fill)


def standin_postgrest(name, port, db_port, image=STANDIN, command=None, **extra):
    """Return a hotfix.postgrest config for the stand-in: container `name` on host networking, serving on
    127.0.0.1:`port`, pointed at the Postgres on 127.0.0.1:`db_port`; `extra` keys are added as they are."""
    return {"image": image, "command": command or STANDIN_COMMAND, "name": name, "network": "host",
            "db_host": "127.0.0.1", "db_port": db_port, "port": port, **extra}


def remove(docker_client, name):
    """Remove container `name` if it exists (only one this testbed labelled)."""
    import docker

    try:
        old = docker_client.containers.get(name)
    except docker.errors.NotFound:
        return
    if LABEL not in old.labels:
        raise RuntimeError(f"a container named {name} exists and is not the testbed's: remove it or rename")
    try:
        old.remove(force=True)
    except docker.errors.NotFound:
        pass


def run_postgres(docker_client, name, datadir, port, uid, gid, bindir):
    """Run the host's postgres in a container `name` on 127.0.0.1:port with `datadir` as its data; return it."""
    remove(docker_client, name)
    return docker_client.containers.run(
        ensure_image(docker_client),
        command=[f"{bindir}/postgres", "-D", "/data", "-p", str(port), "-k", "/tmp",
                 "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
        name=name, detach=True, network_mode="host", user=f"{uid}:{gid}", labels={LABEL: "1"},
        volumes={"/usr": {"bind": "/usr", "mode": "ro"}, "/etc": {"bind": "/etc", "mode": "ro"},
                 datadir: {"bind": "/data", "mode": "rw"}},
        environment={"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
