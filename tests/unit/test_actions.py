"""The flow modules load on first use: invoke loading the tasks (`inv --list`, or before any task) pays for
none of them, and a task pays only for its own flow and for no heavy library it does not reach (a hotfix.create
dry run never opens SSH or Docker, so neither fabric, paramiko nor docker is imported). In a fresh
interpreter, through invoke's own Program, as `inv` runs."""

import json
import subprocess
import sys

import pytest

from tests.conftest import cli_project

HEAVY = ("fabric", "paramiko", "docker", "rich", "requests", "psycopg", "pymongo", "bcrypt")
DRIVER = """
import json, sys, types
from invoke.main import program
program.run(["inv", *sys.argv[1:]], exit=False)
loaded = sorted(name for name, module in sys.modules.items() if type(module) is types.ModuleType)
print(json.dumps(loaded), file=sys.stderr)
"""
CONFIG = {"environments": {"production": {"ssh": {"host": "127.0.0.1", "port": 9, "user": "nobody"}, "databases": {
    "lm360": {"engine": "postgres", "name": "lm360_prod", "user": "spmo_admin"}}}}, "hotfix": {"database": "lm360"}}


@pytest.fixture
def repo(tmp_path):
    return cli_project(tmp_path, CONFIG)


def loaded_by(repo, *args):
    """Run `inv ARGS` in a fresh interpreter; return (its stderr, the names of the modules it executed)."""
    res = subprocess.run([sys.executable, "-c", DRIVER, *args], cwd=repo, capture_output=True, text=True, timeout=60)
    *said, modules = res.stderr.splitlines()
    return "\n".join(said), json.loads(modules)


def flows(modules):
    return [name for name in modules if name.startswith("tasks.actions.")]


def heavy(modules):
    return [name for name in modules if name.split(".")[0] in HEAVY]


def test_loading_the_tasks_runs_no_flow_and_no_heavy_library(repo):
    _, modules = loaded_by(repo, "--list")
    assert "tasks.hotfix" in modules and "tasks.db.sync" in modules
    assert flows(modules) == [] and heavy(modules) == []


def test_a_hotfix_create_dry_run_loads_its_flow_only(repo):
    said, modules = loaded_by(repo, "hotfix.create", "--dry-run")
    assert "dry run; nothing will be changed" in said
    assert flows(modules) == ["tasks.actions.hotfix", "tasks.actions.run"]
    assert heavy(modules) == []
