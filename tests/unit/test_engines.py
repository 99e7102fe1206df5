"""The engine contract (engines/base.py): every engine module satisfies it, and one that does not is
named in one line before anything runs."""

import sys
import types

import pytest

from tasks import config, engines
from tasks.engines import base
from tasks.errors import ConfigError


@pytest.mark.parametrize("name", engines.names())
def test_every_engine_module_satisfies_the_contract(name):
    module = engines.module(name)
    assert base.missing(module) == []
    assert isinstance(module.REQUIRED_KEYS, tuple) and module.OBJECT_WORD
    for restore in ("AtomicRestore", "ObjectReplace"):
        factory = getattr(module, restore)
        assert callable(factory)
    assert issubclass(module.AtomicRestore, base.Restore)


def test_engines_are_discovered_from_the_folder():
    assert {"postgres", "mongo"} <= set(engines.names()) and "base" not in engines.names()


def test_an_incomplete_engine_is_one_line_naming_what_it_lacks(monkeypatch):
    fake = types.ModuleType("tasks.engines.fakedb")
    fake.__file__ = "tasks/engines/fakedb.py"
    fake.REQUIRED_KEYS, fake.OBJECT_WORD = ("name",), "table"
    fake.dump = lambda host, db: None
    monkeypatch.setitem(sys.modules, "tasks.engines.fakedb", fake)
    monkeypatch.setattr(engines, "names", lambda: ("fakedb", "mongo", "postgres"))
    engines.module.cache_clear()
    try:
        cfg = {"environments": {"local": {"databases": {"x": {"engine": "fakedb", "name": "n"}}}}}
        with pytest.raises(ConfigError) as caught:
            config.load(cfg, "/nonexistent")
    finally:
        engines.module.cache_clear()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("environments.local.databases.x.engine: the fakedb engine")
    assert "lacks AtomicRestore, DUMP_TOOL" in message and "preflight" in message and "dump," not in message


def test_config_asks_the_engine_what_it_requires(tmp_path):
    with pytest.raises(ConfigError, match=r"databases.x.uri: required for a mongo database"):
        config.load({"environments": {"local": {"databases": {"x": {"engine": "mongo"}}}}}, tmp_path)
    with pytest.raises(ConfigError, match=r'engine: expected mongo or postgres, got "pg"'):
        config.load({"environments": {"local": {"databases": {"x": {"engine": "pg"}}}}}, tmp_path)
