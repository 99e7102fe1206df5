"""Guards: confirmation, FORCE, locks with stale detection, audit log."""

import io
import json
import os
import socket
import subprocess
import sys

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


HOLD = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": "ops1", "user": "ann", "task": "db.sync.from-production",
                         "since": "2026-11-21T08:00:00+00:00"}).encode())
print("held", flush=True)
time.sleep(30)
"""


def test_lock_held_by_another_process_refuses_naming_it(tmp_path):
    path = tmp_path / "locks" / "local.lock"
    path.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(GuardError, match=r"local is busy: db.sync.from-production by ann@ops1 \(pid \d+\)"):
            guard.Lock(tmp_path, "local", "t").acquire()
    finally:
        holder.kill()
        holder.wait()
    # The kernel released the dead holder's lock: the next run takes it, and says whose it was.
    lock = guard.Lock(tmp_path, "local", "t").acquire()
    assert json.loads(path.read_text())["pid"] == os.getpid()
    lock.release()
    assert not path.exists()


@pytest.mark.parametrize("content", ["", "{torn", json.dumps({"pid": 999999, "host": socket.gethostname()})])
def test_a_lock_file_nobody_holds_is_taken_whatever_it_says(tmp_path, content):
    path = tmp_path / "locks" / "local.lock"
    path.parent.mkdir()
    path.write_text(content)
    lock = guard.Lock(tmp_path, "local", "t").acquire()
    assert lock.held and json.loads(path.read_text())["task"] == "t"
    with pytest.raises(GuardError, match="local is busy: t by"):
        guard.Lock(tmp_path, "local", "other").acquire()  # held, even within one process
    lock.release()
    assert not lock.held and not path.exists()
