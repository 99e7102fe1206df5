"""The run context: one audit line per run whatever its end, locks released, signals turned into Interrupted."""

import os
import signal

import pytest

from tasks import audit
from tasks.actions.run import Run
from tasks.config import Backups, Environment, Project
from tasks.errors import GuardError, Interrupted, ProdmirrorError


@pytest.fixture
def project(tmp_path):
    envs = {"local": Environment(name="local"), "production": Environment(name="production", protected=True)}
    return Project(root=tmp_path, environments=envs, backups=Backups(dir=tmp_path / "backups", keep=5))


def locks(project):
    return sorted(p.name for p in (project.state_dir / "locks").glob("*.lock"))


def test_refusal_is_audited_and_locks_released(project):
    with pytest.raises(GuardError):
        with Run(project, "db.sync.from-production", ["production", "local"], direction="production -> local") as run:
            assert run.proceed("pull", ["a step"]) is True
            assert locks(project) == ["local.lock", "production.lock"]
            raise GuardError("drift")
    assert locks(project) == []
    record = audit.read(project.state_dir)[-1]
    assert (record["task"], record["result"], record["error"]) == ("db.sync.from-production", "refused", "drift")
    assert record["direction"] == "production -> local" and record["user"] and "seconds" in record


@pytest.mark.parametrize("error, result", [(ProdmirrorError("boom"), "failed"), (ValueError("bug"), "failed"),
                                           (KeyboardInterrupt(), "interrupted")])
def test_every_ending_leaves_one_audit_line(project, error, result):
    with pytest.raises(type(error)):
        with Run(project, "t", ["local"]) as run:
            run.proceed("t", [])
            raise error
    records = audit.read(project.state_dir)
    assert len(records) == 1 and records[0]["result"] == result


def test_dry_run_prints_the_plan_takes_no_lock_and_is_audited(project, capsys):
    with Run(project, "db.sync.to-production", ["production"], dry_run=True) as run:
        assert run.proceed("push", ["back up production", "stream local into production"]) is False
        assert locks(project) == []
    err = capsys.readouterr().err
    assert "push (dry run; nothing will be changed):" in err and "2. stream local into production" in err
    assert [r["result"] for r in audit.read(project.state_dir)] == ["dry-run"]


def test_read_only_run_is_not_audited(project):
    with Run(project, "db.sync.status", audit=False):
        pass
    assert audit.read(project.state_dir) == []


def test_sigterm_raises_interrupted_cleans_up_and_audits(project):
    cleaned = []
    with pytest.raises(Interrupted) as caught:
        with Run(project, "db.sync.from-production", ["local"]) as run:
            run.proceed("pull", [])
            run.on_exit(lambda: cleaned.append(locks(project)))
            os.kill(os.getpid(), signal.SIGTERM)
    assert caught.value.exit_code == 143 and caught.value.signal == "SIGTERM"
    assert cleaned == [["local.lock"]]  # cleanups run before the locks are released
    assert locks(project) == []
    record = audit.read(project.state_dir)[-1]
    assert (record["result"], record["signal"]) == ("interrupted", "SIGTERM")
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # the handler is put back


def test_cleanup_failure_does_not_skip_the_others(project):
    done = []
    with Run(project, "t", ["local"]) as run:
        run.proceed("t", [])
        run.on_exit(lambda: done.append("first"))
        run.on_exit(lambda: 1 / 0)
    assert done == ["first"] and locks(project) == []


def test_a_signal_during_a_critical_section_waits_for_its_end(project):
    from tasks import critical

    steps = []
    with pytest.raises(Interrupted) as caught:
        with Run(project, "t", ["local"]) as run:
            run.proceed("t", [])
            with critical.section():
                os.kill(os.getpid(), signal.SIGTERM)
                steps.append("second swap done")  # still runs: the signal waits
            steps.append("never reached")
    assert steps == ["second swap done"] and caught.value.signal == "SIGTERM"
    assert audit.read(project.state_dir)[-1]["result"] == "interrupted"
