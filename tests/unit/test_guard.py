"""Guards: confirmation, FORCE, locks with stale detection, audit log."""

import io
import json
import os
import socket
import subprocess

import pytest

from tasks import guard
from tasks.config import Environment
from tasks.errors import GuardError

PROD = Environment(name="production", protected=True)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_confirm_accepts_the_typed_environment_name(monkeypatch):
    monkeypatch.delenv("FORCE", raising=False)
    guard.confirm(PROD, "db.sync.to-production", stdin=Terminal("production\n"))


def test_confirm_refuses_another_answer(monkeypatch):
    monkeypatch.delenv("FORCE", raising=False)
    with pytest.raises(GuardError, match="not confirmed"):
        guard.confirm(PROD, "db.sync.to-production", stdin=Terminal("yes\n"))


def test_confirm_without_terminal_refuses_unless_forced(monkeypatch):
    monkeypatch.delenv("FORCE", raising=False)
    with pytest.raises(GuardError, match="no terminal .* pass --force or set FORCE=true"):
        guard.confirm(PROD, "x", stdin=io.StringIO(""))
    guard.confirm(PROD, "x", force=True, stdin=io.StringIO(""))
    monkeypatch.setenv("FORCE", "true")
    guard.confirm(PROD, "x", stdin=io.StringIO(""))


def test_unprotected_environment_needs_no_confirmation(monkeypatch):
    monkeypatch.delenv("FORCE", raising=False)
    guard.confirm(Environment(name="local"), "x", stdin=io.StringIO(""))


def test_lock_held_by_a_live_process_refuses(tmp_path):
    holder = subprocess.Popen(["sleep", "30"])
    try:
        path = tmp_path / "locks" / "local.lock"
        path.parent.mkdir()
        path.write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "user": "ann",
                                    "task": "db.sync.from-production", "since": "2026-11-21T08:00:00+00:00"}))
        with pytest.raises(GuardError, match="local is busy: db.sync.from-production by ann@"):
            guard.Lock(tmp_path, "local", "t").acquire()
        assert path.exists()
    finally:
        holder.kill()


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / "locks" / "local.lock"
    path.parent.mkdir()
    path.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname()}))
    lock = guard.Lock(tmp_path, "local", "t").acquire()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not path.exists()


def test_lock_being_written_is_busy_and_a_torn_old_one_is_stale(tmp_path):
    path = tmp_path / "locks" / "local.lock"
    path.parent.mkdir()
    path.write_text("")  # another run created it an instant ago and is about to fill it
    with pytest.raises(GuardError, match="local is busy"):
        guard.Lock(tmp_path, "local", "t").acquire()
    old = os.path.getmtime(path) - 60
    os.utime(path, (old, old))  # the same torn file a minute later: its writer died
    guard.Lock(tmp_path, "local", "t").acquire().release()
    assert not path.exists()
