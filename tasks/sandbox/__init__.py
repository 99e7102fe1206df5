"""Throwaway infrastructure on this machine: PostgreSQL clusters, an OpenSSH server on 127.0.0.1 and a
Docker container running Postgres. The built-in sandbox (`scripts/sandbox`), the tests and the
benchmarks all stand on it, so "production" is always a real SSH host and a real server.

As root, servers run as an unprivileged user (initdb refuses root) and sshd logs that user in; as
anyone else, everything runs as you.
"""

import os
import pwd
import shutil
import socket
import subprocess

SERVICE_USER = "pmsandbox"


def free_port():
    """Return a TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def service_user():
    """Return (name, uid, gid) of the user servers run as; as root, create it if needed."""
    if os.getuid() != 0:
        entry = pwd.getpwuid(os.getuid())
        return entry.pw_name, entry.pw_uid, entry.pw_gid
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", SERVICE_USER], check=True)
        entry = pwd.getpwnam(SERVICE_USER)
    # useradd leaves the password locked ('!'), and sshd with UsePAM no then refuses even key logins.
    subprocess.run(["usermod", "-p", "*", SERVICE_USER], check=True)
    try:  # the SSH "production" drives the local daemon as its Docker host (hotfix tests)
        import grp

        grp.getgrnam("docker")
        subprocess.run(["usermod", "-aG", "docker", SERVICE_USER], check=True)
    except KeyError:
        pass
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def owned_dir(path, uid, gid):
    """Create `path` (and parents) and give it to uid:gid; return it as a string."""
    os.makedirs(path, exist_ok=True)
    if os.getuid() == 0:
        os.chown(path, uid, gid)
    return str(path)


def as_user(uid):
    """Return subprocess kwargs that run a child as `uid` (only meaningful as root)."""
    return {"user": uid} if os.getuid() == 0 and uid != 0 else {}


def which(program):
    return shutil.which(program) is not None
