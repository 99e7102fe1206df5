"""The flows behind the tasks, one module per namespace and named like it (sync, backup, mirror, hotfix,
deploy), each run inside the one run context of run.py. Every function takes a Project and plain
options, so tests call them directly; the tasks only parse options and print.

Each flow module is loaded when a task first uses it, not when invoke loads the tasks: `from .actions
import sync` in a task module gives a module that imports itself on its first attribute (stdlib
LazyLoader), so `inv hotfix.create` never pays for the sync, backup and mirror flows, nor `inv --list`
for any.
"""

import importlib.util
import sys


def __getattr__(name):
    """Given the name of a flow module not imported yet, return it, loaded on first use."""
    spec = importlib.util.find_spec(f"{__name__}.{name}")
    if spec is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    globals()[name] = module
    return module
