"""Guards of a protected environment: confirmation (type its name; --force/FORCE=true skips it) and one
run per environment at a time (lock files with stale-lock detection). The drift guard is drift.py,
the audit log audit.py; the run context (actions/run.py) applies them all."""

import json
import os
import socket
import sys
import time
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
    """An exclusive lock file per environment. A lock left by a process that died on this machine is stale and taken over."""

    def __init__(self, state_dir, env, task):
        self.path = state_dir / "locks" / f"{env}.lock"
        self.env, self.task, self.held = env, task, False

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "user": who(), "task": self.task,
              "since": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None and not self._stale(holder):
                    raise GuardError(
                        f"{self.env} is busy: {holder.get('task')} by {holder.get('user')}@{holder.get('host')} "
                        f"(pid {holder.get('pid')}) since {holder.get('since')}; lock file {self.path}") from None
                say(f"removing a stale lock on {self.env} (pid {holder.get('pid') if holder else '?'} is gone)")
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise GuardError(f"cannot take the lock on {self.env} ({self.path})")

    def _holder(self):
        try:
            text = self.path.read_text()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        try:
            holder = json.loads(text)
            if isinstance(holder, dict) and holder:
                return holder
        except ValueError:
            pass
        # Empty or unparsable: created but not yet filled by its owner (busy), or torn by a crash long ago (stale).
        if age < 5:
            return {"host": "?", "user": "?", "task": "a run that is starting", "pid": "?", "since": "now"}
        return {"pid": 0, "host": socket.gethostname()}

    @staticmethod
    def _stale(holder):
        if holder.get("host") != socket.gethostname():
            return False  # another machine's lock, or one being written: never ours to break
        if not holder.get("pid"):
            return True  # torn by a crash on this machine
        try:
            os.kill(int(holder["pid"]), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self):
        if self.held:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            self.held = False
