"""A throwaway PostgreSQL cluster: initdb, start on 127.0.0.1:PORT, SQL as superuser, stop."""

import glob
import os
import subprocess
import time

from . import as_user, free_port, owned_dir


def bindir():
    """Return the newest PostgreSQL server bin directory on this machine, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


class Cluster:
    def __init__(self, base, name, uid, gid, port=None):
        self.dir = os.path.join(base, name)
        self.uid, self.gid = uid, gid
        self.port = port or free_port()
        self.bin = bindir()
        self.log = os.path.join(self.dir, "server.log")  # inside the data dir: the one place the server user owns

    def _run(self, argv):
        res = subprocess.run(argv, capture_output=True, text=True, **as_user(self.uid))
        if res.returncode != 0:
            raise RuntimeError(f"{os.path.basename(argv[0])} failed: {(res.stderr or res.stdout).strip()[-500:]}")
        return res

    def init(self):
        if not os.path.exists(os.path.join(self.dir, "PG_VERSION")):
            owned_dir(self.dir, self.uid, self.gid)
            self._run([f"{self.bin}/initdb", "-D", self.dir, "-A", "trust", "-U", "postgres", "-E", "UTF8",
                       "--no-locale"])
        return self

    def start(self, socket_dir="/tmp"):
        opts = f"-p {self.port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        self._run([f"{self.bin}/pg_ctl", "-D", self.dir, "-l", self.log, "-o", opts, "-w", "start"])
        return self

    def stop(self):
        if os.path.exists(os.path.join(self.dir, "postmaster.pid")):
            subprocess.run([f"{self.bin}/pg_ctl", "-D", self.dir, "-m", "immediate", "stop"],
                           capture_output=True, **as_user(self.uid))

    def psql(self, sql, db="postgres", user="postgres"):
        """Run SQL as `user` in `db`; return stdout (unaligned, tuples only). Raise on error."""
        res = subprocess.run([f"{self.bin}/psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h",
                              "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db, "-f", "-"],
                             input=sql, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"psql on port {self.port} failed: {res.stderr.strip()}")
        return res.stdout

    def wait_ready(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.psql("SELECT 1")
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
