"""The Django side of the mirror without servers: the localize block, the local database an app's
manage.py must use (config), and how Django's answer is compared with it."""

import pytest

from tasks import config, django_apps, django_settings
from tasks.errors import ConfigError


def cfg(local_dbs, app=None, localize=None):
    mirror = {"django": [{"name": "gamit", "path": "gamit_app", "settings": "gamit_core/settings.py", **(app or {})}]}
    if localize:
        mirror["localize"] = localize
    return {"environments": {"local": {"databases": local_dbs}}, "mirror": mirror}


PG = {"engine": "postgres", "name": "db_gamit", "user": "spmo_admin", "host": "127.0.0.1", "port": 5433}
MONGO = {"engine": "mongo", "uri": "mongodb://127.0.0.1/ecm"}


def test_the_only_local_postgres_database_is_the_default(tmp_path):
    project = config.load(cfg({"gamit": PG, "ecm": MONGO}), tmp_path)
    site = django_apps.bind(project, tmp_path / "mirror")[0]
    assert site.db.key == "gamit" and project.mirror.apps[0].key == "mirror.django[0]"
    assert django_apps.connection(site) == {"NAME": "db_gamit", "HOST": "127.0.0.1", "PORT": "5433", "USER": "spmo_admin"}


@pytest.mark.parametrize("dbs, app, message", [
    ({"gamit": PG}, {"database": "gamti"},
     "mirror.django[0].database: 'gamti' is not a database of environments.local (known: gamit)"),
    ({"gamit": PG, "ecm": MONGO}, {"database": "ecm"},
     "mirror.django[0].database: 'ecm' is a mongo database; Django's needs postgres"),
    ({"gamit": PG}, {"database": ["gamit"]}, "mirror.django[0].database: expected a database key"),
])
def test_a_wrong_database_key_is_refused_when_the_config_loads(tmp_path, dbs, app, message):
    with pytest.raises(ConfigError) as caught:
        config.load(cfg(dbs, app), tmp_path)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_several_postgres_databases_and_no_key_is_refused_by_the_task_naming_the_key(tmp_path):
    project = config.load(cfg({"gamit": PG, "store": {**PG, "name": "db_store"}}), tmp_path)  # db.sync.* still load
    with pytest.raises(ConfigError, match=r"^mirror.django\[0\].database: required: environments.local has several "
                                          r"postgres databases \(gamit, store\); name the one gamit's manage.py must use$"):
        django_apps.bind(project, tmp_path / "mirror")


def test_localize_may_not_set_databases(tmp_path):
    with pytest.raises(ConfigError, match="mirror.localize.DATABASES: prodmirror writes it"):
        config.load(cfg({"gamit": PG}, localize={"DATABASES": {}}), tmp_path)


def test_an_app_in_a_container_reaches_a_database_container_by_its_name(tmp_path):
    project = config.load(cfg({"gamit": {"engine": "postgres", "name": "db_gamit", "user": "u",
                                         "container": "spmo_shared_db"}}, {"container": "app_gamit"}), tmp_path)
    site = django_apps.bind(project, tmp_path)[0]
    assert django_apps.connection(site) == {"NAME": "db_gamit", "HOST": "spmo_shared_db", "PORT": "5432", "USER": "u"}


@pytest.mark.parametrize("actual, expected, same", [
    ({"NAME": "d", "HOST": "localhost", "PORT": ""}, {"NAME": "d", "HOST": "127.0.0.1", "PORT": "5432"}, True),
    ({"NAME": "d", "HOST": "", "PORT": "5433"}, {"NAME": "d", "HOST": "127.0.0.1", "PORT": "5433"}, True),
    ({"NAME": "d", "HOST": "spmo_shared_db", "PORT": "5432"}, {"NAME": "d", "HOST": "spmo_shared_db", "PORT": "5432"}, True),
    ({"NAME": "d", "HOST": "203.0.113.5", "PORT": "5432"}, {"NAME": "d", "HOST": "127.0.0.1", "PORT": "5432"}, False),
    ({"NAME": "d", "HOST": "127.0.0.1", "PORT": "5432"}, {"NAME": "d", "HOST": "127.0.0.1", "PORT": "5433"}, False),
    ({"NAME": "other", "HOST": "127.0.0.1", "PORT": "5433"}, {"NAME": "d", "HOST": "127.0.0.1", "PORT": "5433"}, False),
    ({"ENGINE": "django.db.backends.sqlite3", "NAME": "d", "HOST": "", "PORT": ""},
     {"NAME": "d", "HOST": "", "PORT": "5432"}, False),
])
def test_same_database(actual, expected, same):
    assert django_apps.same_database(actual, expected) is same


def test_describe():
    assert django_apps.describe({"NAME": "db_gamit", "HOST": "203.0.113.5", "PORT": "5432"}) == "db_gamit on 203.0.113.5:5432"
    assert django_apps.describe({"ENGINE": "django.db.backends.sqlite3", "NAME": "/app/db.sqlite3", "HOST": "",
                                 "PORT": ""}) == "/app/db.sqlite3 on localhost:5432 (django.db.backends.sqlite3)"


DB = {"NAME": "db_gamit", "HOST": "127.0.0.1", "PORT": "5433", "USER": "spmo_admin"}


def test_the_block_points_databases_at_local_and_keeps_the_rest(tmp_path, monkeypatch):
    settings = tmp_path / "settings.py"
    settings.write_text("DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'db_gamit',\n"
                        "    'HOST': '203.0.113.5', 'PORT': '5432', 'PASSWORD': 'prod', 'CONN_MAX_AGE': 60}}\n")
    assert django_settings.localize(settings, {"DEBUG": True}, DB) is True
    text = settings.read_text()
    assert django_settings.localize(settings, {"DEBUG": True}, DB) is False and settings.read_text() == text
    monkeypatch.setenv("PRODMIRROR_DB_PASSWORD", "from-env")
    scope = {}
    exec(text, scope)
    assert scope["DEBUG"] is True and scope["DATABASES"]["default"] == {
        "ENGINE": "django.db.backends.postgresql", "NAME": "db_gamit", "HOST": "127.0.0.1", "PORT": "5433",
        "USER": "spmo_admin", "PASSWORD": "from-env", "CONN_MAX_AGE": 60}
    assert django_settings.unlocalized(text) == django_settings.unlocalized(
        "DATABASES = {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'db_gamit',\n"
        "    'HOST': '203.0.113.5', 'PORT': '5432', 'PASSWORD': 'prod', 'CONN_MAX_AGE': 60}}\n")


def test_the_block_works_without_databases_in_settings(monkeypatch):
    monkeypatch.delenv("PRODMIRROR_DB_PASSWORD", raising=False)
    scope = {}
    exec(django_settings.render_block({}, DB), scope)
    assert scope["DATABASES"]["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert scope["DATABASES"]["default"]["PASSWORD"] == ""
