"""Task options never shadow invoke's own flags (`inv hotfix.create -e` must not mean --terminate), and a
destructive option is spelled out in full."""

import importlib.util
from pathlib import Path

import invoke
import pytest

DESTRUCTIVE = {"force", "replace", "terminate"}


def _core_flags():
    program = invoke.Program()
    return {name for arg in program.core_args() + program.task_args() for name in arg.names if len(name) == 1}


def _tasks(collection, prefix=""):
    for name, body in collection.tasks.items():
        yield prefix + name, body
    for name, sub in collection.collections.items():
        yield from _tasks(sub, f"{prefix}{name}.")


def _root():
    """Load the root namespace from tasks.py, as invoke does (under another module name: `tasks` is the package)."""
    spec = importlib.util.spec_from_file_location("prodmirror_root", Path(__file__).parents[2] / "tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ns


TASKS = sorted(_tasks(_root()), key=lambda pair: pair[0])


def test_core_flags_are_known():
    assert {"c", "d", "e", "f", "h", "l", "p", "r", "R", "T", "V", "w"} <= _core_flags()


@pytest.mark.parametrize("name, body", TASKS, ids=[name for name, _ in TASKS])
def test_no_option_shadows_a_core_flag_and_destructive_ones_have_no_short_flag(name, body):
    core = _core_flags()
    for arg in body.get_arguments():
        shorts = {n for n in arg.names if len(n) == 1}
        assert not shorts & core, f"{name} --{arg.names[0]}: -{''.join(shorts & core)} is invoke's own flag"
        if arg.names[0] in DESTRUCTIVE | {"dry-run"}:
            assert not shorts, f"{name} --{arg.names[0]} has a short flag -{''.join(shorts)}"
