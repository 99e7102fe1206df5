"""The run context: what every flow that touches an environment does the same way.

    with Run(project, "db.sync.from-production", ["production", "local"], dry_run=dry_run) as run:
        if not run.proceed(title, steps):   # prints the plan; a dry run stops here, audited
            return None
        host = run.hosts.for_db(db)         # opened on demand, closed at the end
        ...

- the plan is printed; a dry run is audited as `dry-run` and changes nothing;
- the locks of its environments are taken (sorted, so two runs never deadlock) once the plan is
  accepted, and released whatever happens;
- hosts (SSH sessions) and Docker clients are opened on demand and closed at the end;
- SIGINT and SIGTERM raise `Interrupted` in the flow, so the restore in progress is aborted and its
  temporary database dropped by the same cleanup as any failure; the exit code is 130 or 143;
- one audit line per run: ok, failed, refused, interrupted or dry-run, with what the flow recorded
  in `run.record` (backup taken, bytes, …). Read-only runs (status) pass audit=False.
"""

import signal
import threading
import time

from .. import audit, critical
from ..errors import GuardError, Interrupted, ProdmirrorError
from ..guard import Lock
from ..hosts import Hosts
from ..ui import print_plan, say

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Run:
    """One run of `task` against environments `envs`. Use it as a context manager."""

    def __init__(self, project, task, envs=(), *, dry_run=False, echo=False, audit=True, **record):
        self.project, self.task, self.envs = project, task, sorted(set(envs))
        self.dry_run, self.audited = dry_run, audit
        self.record = {"task": task, **record, "result": None, "backup": None}
        self.hosts = Hosts(project, echo)
        self._locks, self._dockers, self._cleanups = [], {}, []
        self._handlers, self._stopping = {}, False

    # --- the flow's side ---------------------------------------------------------------------------

    def proceed(self, title, steps):
        """Print the plan. On a dry run, mark it audited as such and return False; otherwise take the
        locks and return True."""
        print_plan(title, steps, self.dry_run)
        if self.dry_run:
            self.record["result"] = "dry-run"
            return False
        self.lock()
        return True

    def lock(self):
        """Take the locks of this run's environments (GuardError naming the holder if one is busy)."""
        for env in self.envs:
            if env not in {lock.env for lock in self._locks}:
                self._locks.append(Lock(self.project.state_dir, env, self.task).acquire())

    def docker(self, env):
        """Return a Docker client (containers.Docker) for environment `env`'s daemon, opened once per run."""
        if env.name not in self._dockers:
            from ..containers import Docker

            self._dockers[env.name] = Docker(self.hosts.for_env(env))
        return self._dockers[env.name]

    def on_exit(self, cleanup):
        """Run `cleanup()` when the run ends, however it ends (last registered, first run)."""
        self._cleanups.append(cleanup)

    # --- the context -------------------------------------------------------------------------------

    def __enter__(self):
        self._started = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._handlers[signum] = signal.signal(signum, self._interrupt)
        return self

    def _interrupt(self, signum, frame):
        if critical.defer(signum):
            say(f"{signal.Signals(signum).name}: finishing the swap in progress first, then stopping")
            return
        if self._stopping:
            say(f"{signal.Signals(signum).name} again: already stopping, cleaning up")
            return  # a second signal must not break the cleanup of the first
        self._stopping = True
        raise Interrupted(signum)

    def __exit__(self, exc_type, exc, tb):
        self._stopping = True  # from here on, signals wait for the cleanup
        if self.record["result"] is None:
            self.record.update(_outcome(exc))
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001 - one cleanup failing must not skip the others
                say(f"warning: cleanup failed: {error}")
        for docker in self._dockers.values():
            docker.close()
        self.hosts.close()
        for lock in reversed(self._locks):
            lock.release()
        self.record["seconds"] = round(time.monotonic() - self._started, 2)
        if self.audited:
            audit.write(self.project.state_dir, self.record)
        for signum, handler in self._handlers.items():
            signal.signal(signum, handler)
        return False


def _outcome(exc):
    """Given the exception a run ended with (or None), return its audit result."""
    if exc is None:
        return {"result": "ok"}
    if isinstance(exc, Interrupted):
        return {"result": "interrupted", "signal": exc.signal}
    if isinstance(exc, KeyboardInterrupt):
        return {"result": "interrupted", "signal": "SIGINT"}
    if isinstance(exc, GuardError):
        return {"result": "refused", "error": str(exc)}
    if isinstance(exc, ProdmirrorError):
        return {"result": "failed", "error": str(exc)}
    return {"result": "failed", "error": f"{type(exc).__name__}: {exc}"}
