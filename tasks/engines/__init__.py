"""The engines: one module per database engine in this folder, each satisfying the contract in base.py.

`names()` lists them (what config validation accepts as `engine:`), `engine_for(db)` returns the module
of a configured database, checked against the contract.
"""

import functools
import importlib
import pkgutil

from ..errors import ConfigError
from . import base


@functools.lru_cache(maxsize=None)
def names():
    """Return the engine names available in this version: the modules of this folder but base."""
    return tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name != "base" and not m.name.startswith("_")))


@functools.lru_cache(maxsize=None)
def module(name, path="engine"):
    """Given an engine name, return its module. Raise ConfigError (one line) if it is unknown or lacks
    part of the contract (engines/base.py), naming what is missing."""
    if name not in names():
        raise ConfigError(f'{path}: expected {" or ".join(names())}, got "{name}"')
    mod = importlib.import_module(f".{name}", __name__)
    lacking = base.missing(mod)
    if lacking:
        raise ConfigError(f"{path}: the {name} engine ({mod.__file__}) does not satisfy the engine contract: "
                          f"it lacks {', '.join(lacking)}")
    return mod


def engine_for(db):
    """Given a Database, return the engine module that drives it."""
    return module(db.engine, f"{db.path}.engine")
