"""Everything that keeps a run safe: confirmation on protected environments, one run per environment
at a time (lock files with stale-lock detection), and the audit log (JSON lines) of every run.
"""

import getpass
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone

from .errors import GuardError, ProdmirrorError
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


def _who():
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class Lock:
    """An exclusive lock file per environment. A lock left by a process that died on this machine is stale and taken over."""

    def __init__(self, state_dir, env, task):
        self.path = state_dir / "locks" / f"{env}.lock"
        self.env, self.task, self.held = env, task, False

    def acquire(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "user": _who(), "task": self.task,
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


def audit(state_dir, record):
    """Append one JSON line to the audit log: who, when, and whatever the run says of itself."""
    state_dir.mkdir(parents=True, exist_ok=True)
    line = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "user": _who(),
            "host": socket.gethostname(), **record}
    with open(state_dir / "audit.jsonl", "a") as f:
        f.write(json.dumps(line, sort_keys=False) + "\n")


def read_audit(state_dir):
    """Return the audit log's records, oldest first."""
    path = state_dir / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def operation(project, task, envs, **record):
    """Lock `envs` (sorted, so two runs never deadlock), yield a dict the run fills, and audit the outcome.

    The audit record says `ok`, `failed` (with the error line), or `interrupted`; the locks are released
    whatever happens.
    """
    record = {"task": task, **record, "result": None, "backup": None}
    locks = [Lock(project.state_dir, env, task) for env in sorted(set(envs))]
    started = time.monotonic()
    try:
        for lock in locks:
            lock.acquire()
        yield record
        record["result"] = "ok"
    except KeyboardInterrupt:
        record["result"] = "interrupted"
        raise
    except ProdmirrorError as exc:
        record.update(result="refused" if isinstance(exc, GuardError) else "failed", error=str(exc))
        raise
    except Exception as exc:
        record.update(result="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        for lock in reversed(locks):
            lock.release()
        record["seconds"] = round(time.monotonic() - started, 2)
        audit(project.state_dir, record)


def drift(recorded, current):
    """Given change counters {table: [changes, rows]} at the last sync and now, return what changed:
    [(table, rows then, rows now, changes since)] — a table added or dropped counts as changed.

    Only the write counter decides (ANALYZE may refresh the row estimate without any write)."""
    changed = []
    for table in sorted(set(recorded) | set(current)):
        then, now = recorded.get(table), current.get(table)
        if (then and then[0]) != (now and now[0]) or (then is None) != (now is None):
            counted = then and now and isinstance(then[0], int) and isinstance(now[0], int)
            changes = (now[0] - then[0]) if counted else None  # MongoDB keeps content hashes, not counts
            changed.append((table, then[1] if then else None, now[1] if now else None, changes))
    return changed


def describe_drift(changed, limit=5):
    def one(table, rows_then, rows_now, changes):
        if rows_then is None:
            return f"{table} (new, {rows_now} rows)"
        if rows_now is None:
            return f"{table} (dropped, had {rows_then} rows)"
        if changes is None:
            return f"{table} ({rows_then} → {rows_now} documents, contents changed)"
        what = f"{changes} rows written" if changes > 0 else "statistics reset"
        return f"{table} ({rows_then} → {rows_now} rows, {what})"

    text = "; ".join(one(*c) for c in changed[:limit])
    return text + (f"; and {len(changed) - limit} more" if len(changed) > limit else "")


def check_drift(last, env, current, force, key, tables=None):
    """Refuse (GuardError) to overwrite `env` if it changed since the last recorded sync, unless forced.

    `last` is the sync-state record of database `key` (or None); `tables` limits the check to some tables.
    Return the drift that was overridden (empty when none).
    """
    recorded = (last or {}).get("counters", {}).get(env)
    if recorded is None:
        if forced(force):
            say(f"warning: {key}: no sync with {env} is recorded; going on because of --force/FORCE")
            return ["no sync recorded"]
        raise GuardError(f"{key}: no sync with {env} is recorded, so edits made there cannot be ruled out: "
                         f"run db.sync.from-production first, or pass --force")
    if tables is not None:
        recorded = {t: v for t, v in recorded.items() if t in tables}
        current = {t: v for t, v in current.items() if t in tables}
    changed = drift(recorded, current)
    if changed and not forced(force):
        raise GuardError(f"{key}: {env} changed since the last sync ({last.get('time')}): {describe_drift(changed)}. "
                         f"Pull it first (db.sync.from-production), or pass --force to overwrite those changes")
    if changed:
        say(f"warning: {key}: overwriting changes made in {env} since the last sync: {describe_drift(changed)}")
    return [c[0] for c in changed]
