"""Configuration: every mistake is one line naming the key; ${VAR} comes from the environment and .env."""

import pytest

from tasks import config
from tasks.errors import ConfigError


def base(**db):
    return {"environments": {"production": {"ssh": "deploy@prod.example.com:2222",
                                            "databases": {"gamit": {"engine": "postgres", "name": "db_gamit",
                                                                    "user": "spmo_admin", **db}}},
                             "local": {"databases": {"gamit": {"engine": "postgres", "name": "db_gamit",
                                                               "user": "spmo_admin"}}}}}


def test_load_parses_ssh_string_and_defaults(tmp_path):
    project = config.load(base(), tmp_path)
    prod = project.env("production")
    assert (prod.ssh.user, prod.ssh.host, prod.ssh.port) == ("deploy", "prod.example.com", 2222)
    assert prod.protected is True and project.env("local").protected is False
    assert project.backups_keep == 5 and project.backups_dir == tmp_path / "backups"


def test_load_ssh_mapping_form(tmp_path):
    cfg = base()
    cfg["environments"]["production"]["ssh"] = {"host": "203.0.113.5", "user": "ops", "port": 22, "key_filename": "~/k"}
    ssh = config.load(cfg, tmp_path).env("production").ssh
    assert ssh.host == "203.0.113.5" and ssh.key_filename.endswith("/k") and not ssh.key_filename.startswith("~")


@pytest.mark.parametrize("mutate, message", [
    (lambda c: c["environments"]["production"]["databases"]["gamit"].update(engine="pg"),
     'environments.production.databases.gamit.engine: expected mongo or postgres, got "pg"'),
    (lambda c: c["environments"]["production"]["databases"]["gamit"].update(nmae="x"),
     "environments.production.databases.gamit.nmae: unknown key"),
    (lambda c: c["environments"]["production"]["databases"]["gamit"].update(port="54x"),
     "environments.production.databases.gamit.port: expected a whole number"),
    (lambda c: c["environments"]["production"].update(ssh="a@b@c"),
     'environments.production.ssh: expected "user@host[:port]"'),
    (lambda c: c["environments"]["production"].update(protected="yes"),
     "environments.production.protected: expected true or false"),
    (lambda c: c["environments"]["local"]["databases"]["gamit"].pop("user"),
     "environments.local.databases.gamit.user: required for a postgres database"),
    (lambda c: c["environments"]["local"]["databases"]["gamit"].update(name="db; drop"),
     "environments.local.databases.gamit.name: unexpected characters"),
    (lambda c: c.update(backups={"keep": -1}), "backups.keep: -1 is out of range"),
    (lambda c: c.update(backups={"keep_databases": "two"}), "backups.keep_databases: expected a whole number"),
    (lambda c: c.update(backups={"keep_databases": -2}), "backups.keep_databases: -2 is out of range"),
])
def test_load_reports_mistake_naming_the_key(tmp_path, mutate, message):
    cfg = base()
    mutate(cfg)
    with pytest.raises(ConfigError) as err:
        config.load(cfg, tmp_path)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_variables_from_dotenv_and_environment(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("PG_PASSWORD=from-dotenv\nPG_PORT=6543\n")
    monkeypatch.setenv("PG_PORT", "7000")  # the process environment wins over .env
    project = config.load(base(password="${PG_PASSWORD}", port="${PG_PORT}", host="${PG_HOST:-127.0.0.1}"), tmp_path)
    db = project.env("production").database("gamit")
    assert db.password.reveal() == "from-dotenv" and db.port == 7000 and db.host == "127.0.0.1"
    assert "from-dotenv" not in repr(db) and "from-dotenv" not in str(db.password)


def test_missing_variable_is_reported_when_needed(tmp_path, monkeypatch):
    monkeypatch.delenv("PG_PASSWORD", raising=False)
    project = config.load(base(password="${PG_PASSWORD}"), tmp_path)  # loading alone is fine
    with pytest.raises(ConfigError, match=r"environments.production.databases.gamit.password: \$\{PG_PASSWORD\} is not set"):
        project.pairs("production", "local")


def test_pairs_unknown_environment_and_key(tmp_path):
    project = config.load(base(), tmp_path)
    with pytest.raises(ConfigError, match=r"unknown environment 'staging' \(known: local, production\)"):
        project.pairs("staging", "local")
    with pytest.raises(ConfigError, match=r"unknown database 'gmit' in environment 'production' \(known: gamit\)"):
        project.pairs("production", "local", ["gmit"])


def test_pairs_rejects_engines_that_differ(tmp_path):
    cfg = base()
    cfg["environments"]["local"]["databases"]["gamit"] = {"engine": "mongo", "uri": "mongodb://localhost/x"}
    with pytest.raises(ConfigError, match="engine: 'mongo' differs"):
        config.load(cfg, tmp_path).pairs("production", "local")


def _hotfix(**extra):
    from tasks.config import hotfix

    return hotfix.validate({"database": "lm360", **extra})


@pytest.mark.parametrize("written, shown, seconds", [("24h", "24h", 86400), (" 90 m ", "90m", 5400), ("1d", "1d", 86400),
                                                     ("86400", "1d", 86400), (45, "45s", 45)])
def test_a_ttl_shows_as_written_never_as_seconds(written, shown, seconds):
    ttl = _hotfix(ttl=written).ttl
    assert (str(ttl), ttl.seconds) == (shown, seconds)


def test_create_options_are_checked_in_one_place_as_config_errors():
    from tasks.config.hotfix import create_options

    cfg = _hotfix(ttl="24h")
    assert create_options(cfg) == ("auto", cfg.ttl)
    assert [str(x) for x in create_options(cfg, "template", "90m", terminate=True)] == ["template", "90m"]
    assert create_options(cfg, terminate=True)[0] == "auto"  # auto + --terminate: terminate, then TEMPLATE
    for options, message in [({"strategy": "fast"}, '--strategy: expected auto, template or dump, got "fast"'),
                             ({"ttl": "soon"}, "--ttl: expected a duration"), ({"ttl": "0"}, "--ttl: at least 1s"),
                             ({"strategy": "dump", "terminate": True}, "--terminate ends the sessions")]:
        with pytest.raises(ConfigError, match=f"^{message}"):
            create_options(cfg, **options)
    with pytest.raises(ConfigError, match="^--terminate ends the sessions"):
        create_options(_hotfix(strategy="dump"), terminate=True)


def test_exclude_data_is_a_tuple_of_patterns_per_database(tmp_path):
    project = config.load(base(exclude_data=["sessions", "audit_*", "billing.*"]), tmp_path)
    assert project.env("production").database("gamit").exclude_data == ("sessions", "audit_*", "billing.*")
    assert project.env("local").database("gamit").exclude_data == ()
    assert config.load(base(exclude_data=None), tmp_path).env("production").database("gamit").exclude_data == ()


@pytest.mark.parametrize("value", ["sessions", ["sessions", 3], [""], ["  "], ["a\nb"], {"sessions": True}, [["x"]]])
def test_exclude_data_of_the_wrong_shape_is_one_line(tmp_path, value):
    with pytest.raises(ConfigError) as err:
        config.load(base(exclude_data=value), tmp_path)
    message = str(err.value)
    assert message.startswith("environments.production.databases.gamit.exclude_data: expected a list of table name "
                              "patterns such as sessions or 'audit_*', got ") and "\n" not in message
