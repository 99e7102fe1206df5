"""transfer.restore_all without servers: the order of a restore's steps, and that a restore's own
before_commit() failing aborts every restore of the run before anything is made live."""

import pytest

from tasks.engines.base import Restore
from tasks.transfer import End, restore_all


class Empty(End):
    def read(self, n=0):
        return b""


class Recorded(Restore):
    """A restore that writes down each step it is asked to take (and fails the one named `fail`)."""

    def __init__(self, name, log, fail=None):
        super().__init__(None, None)
        self.name, self.log, self.fail = name, log, fail

    def _step(self, step):
        self.log.append(f"{self.name}.{step}")
        if step == self.fail:
            raise RuntimeError(f"{self.name} {step} failed")

    def begin(self):
        self._step("begin")
        return Empty()

    def before_commit(self):
        self._step("before_commit")

    def commit(self):
        self._step("commit")

    def abort(self):
        self._step("abort")

    def cleanup(self):
        self._step("cleanup")


def jobs(*restores):
    return [(lambda: Empty(), restore, restore.name) for restore in restores]


def test_each_restore_gets_its_last_word_after_the_runs_check_and_before_any_commit():
    log = []
    restore_all(jobs(Recorded("a", log), Recorded("b", log)), before_commit=lambda: log.append("check"))
    assert log == ["a.begin", "b.begin", "check", "a.before_commit", "b.before_commit", "a.commit", "b.commit",
                   "a.cleanup", "b.cleanup"]


def test_a_failing_before_commit_aborts_every_restore_and_commits_none():
    log = []
    with pytest.raises(RuntimeError, match="b before_commit failed"):
        restore_all(jobs(Recorded("a", log), Recorded("b", log, fail="before_commit")))
    assert not any(step.endswith(".commit") for step in log)
    assert log[-2:] == ["a.abort", "b.abort"]
