"""An OpenSSH server on 127.0.0.1 that lets one user in with a generated key: "production" as a real SSH host."""

import os
import subprocess
import time

from . import free_port, owned_dir


class SSHServer:
    def __init__(self, base, user, uid, gid, port=None):
        self.dir = os.path.join(base, "sshd")
        self.user, self.uid, self.gid = user, uid, gid
        self.port = port or free_port()
        self.host_key = os.path.join(self.dir, "host_ed25519")
        self.client_key = os.path.join(self.dir, "client_ed25519")
        self.config = os.path.join(self.dir, "sshd_config")
        self.pidfile = os.path.join(self.dir, "sshd.pid")
        self.proc = None

    def _keygen(self, path):
        if not os.path.exists(path):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", path], check=True)

    def prepare(self):
        os.makedirs(self.dir, exist_ok=True)
        self._keygen(self.host_key)
        self._keygen(self.client_key)
        authorized = os.path.join(self.dir, "authorized_keys")
        with open(self.client_key + ".pub") as src, open(authorized, "w") as dst:
            dst.write(src.read())
        os.chmod(authorized, 0o644)
        with open(self.config, "w") as f:
            f.write("\n".join([
                f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}", f"PidFile {self.pidfile}",
                f"AuthorizedKeysFile {authorized}", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                "PubkeyAuthentication yes", "StrictModes no", "UsePAM no", f"AllowUsers {self.user}",
                "Subsystem sftp internal-sftp", "LogLevel ERROR", "MaxSessions 64", "MaxStartups 64",
                "PrintMotd no", "",
            ]))
        if os.getuid() == 0:
            owned_dir("/run/sshd", 0, 0)
        return self

    def sshd_binary(self):
        return "/usr/sbin/sshd"

    def start(self, foreground=True):
        """Start sshd (held as a child when foreground, else daemonized) and wait until it accepts."""
        argv = [self.sshd_binary(), "-f", self.config, "-e"]
        if foreground:
            self.proc = subprocess.Popen(argv + ["-D"], stderr=open(os.path.join(self.dir, "sshd.log"), "a"))
        else:
            subprocess.run(argv, check=True)
        import socket

        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"sshd did not start on 127.0.0.1:{self.port} (see {self.dir}/sshd.log)")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        elif os.path.exists(self.pidfile):
            try:
                os.kill(int(open(self.pidfile).read().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass

    def target(self):
        """Return the `ssh` config mapping prodmirror needs to reach this server."""
        return {"host": "127.0.0.1", "user": self.user, "port": self.port, "key_filename": self.client_key}
