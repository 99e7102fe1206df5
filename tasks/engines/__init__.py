"""One module per engine, each with the same functions (preflight, dump, AtomicRestore, exists, fingerprint…)."""

import importlib

from ..errors import ConfigError


def engine_for(db):
    """Given a Database, return the engine module that drives it."""
    try:
        return importlib.import_module(f".{db.engine}", __name__)
    except ModuleNotFoundError:
        raise ConfigError(f"{db.path}.engine: the {db.engine} engine is not available in this version") from None
