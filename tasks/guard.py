"""Guards of a protected environment: confirmation (type its name; --force/FORCE=true skips it) and one
run per environment at a time (an OS-level lock the kernel releases when its holder dies). The drift guard is drift.py,
the audit log audit.py; the run context (actions/run.py) applies them all."""

import fcntl
import json
import os
import socket
import sys
from datetime import datetime, timezone

from .audit import who
from .errors import GuardError
from .ui import say

TRUE = ("1", "true", "yes", "y", "on")


def forced(force=False):
    """Return True when --force was given or FORCE=true is in the environment (seed 001's CI habit)."""
    return bool(force) or os.environ.get("FORCE", "").strip().lower() in TRUE


def confirm(env, action, force=False, stdin=None):
    """Ask the user to type the environment's name before `action` changes a protected environment.

    Skipped for unprotected environments and when forced. Raise GuardError with no terminal to ask on,
    or when the answer is not the environment's name.
    """
    if not env.protected or forced(force):
        return
    stdin = stdin or sys.stdin
    if not (hasattr(stdin, "isatty") and stdin.isatty()):
        raise GuardError(f"{env.name} is protected and there is no terminal to confirm {action}: "
                         "pass --force or set FORCE=true")
    sys.stderr.write(f"{action} will change {env.name}. Type {env.name!r} to go on: ")
    sys.stderr.flush()
    answer = stdin.readline().strip()
    if answer != env.name:
        raise GuardError(f"not confirmed (typed {answer!r}); nothing was changed")


class Lock:
    """An exclusive lock per environment: `flock` on `.prodmirror/locks/<env>.lock`.

    The kernel holds the lock for the process, so exactly one run holds it even when several start at
    the same instant, and a run that dies (SIGKILL, a crash, a reboot) releases it by dying: there is
    no stale lock to detect or break. The file also says who holds it, for the "busy" message.
    """

    def __init__(self, state_dir, env, task):
        self.path = state_dir / "locks" / f"{env}.lock"
        self.env, self.task, self._fd = env, task, None

    @property
    def held(self):
        return self._fd is not None

    def acquire(self):
        """Take the lock or raise GuardError naming its holder; return self."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise GuardError(
                    f"{self.env} is busy: {holder.get('task', '?')} by {holder.get('user', '?')}@{holder.get('host', '?')} "
                    f"(pid {holder.get('pid', '?')}) since {holder.get('since', '?')}; lock file {self.path}") from None
            # The holder before us may have unlinked the file between our open and our flock: then we
            # hold a lock on a file nobody else will ever open, so try again on the current one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            left = _holder(fd)
            if left.get("pid"):
                say(f"taking over the lock on {self.env} left by pid {left.get('pid')} ({left.get('task', '?')}), "
                    "which ended without releasing it")
            me = {"pid": os.getpid(), "host": socket.gethostname(), "user": who(), "task": self.task,
                  "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
            self._fd = fd
            return self
        raise GuardError(f"cannot take the lock on {self.env} ({self.path}): it keeps being replaced")

    def release(self):
        """Remove the lock file, then let go of the lock (in that order, so nobody locks a removed file)."""
        if self._fd is not None:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            os.close(self._fd)
            self._fd = None


def _holder(fd):
    """Given a lock file's descriptor, return what its holder wrote ({} when empty or torn)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
