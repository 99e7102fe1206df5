"""The `hotfix` section (seed 002): which production database to clone, how, for how long; the PostgREST
container, the migrations and the deploy. Absent (nothing but the defaults) means hotfix.* is not set up."""

import re

from ..errors import ConfigError
from .model import Deploy, Hotfix, Migrations, Postgrest, Secret
from .validate import SIMPLE_NAME, integer, mapping, only, subsection, timespan, with_defaults

DEFAULTS = {"environment": "production", "clone": "{name}_bugfix", "strategy": "auto", "ttl": "24h",
            "migrations": {"dir": "migrations", "pattern": "*.sql", "table": "prodmirror_migrations"}}
KEYS = {*DEFAULTS, "database", "dev_database", "postgrest", "deploy"}
STRATEGIES = ("auto", "template", "dump")
POSTGREST_KEYS = {"image", "name", "network", "db_host", "db_port", "db_user", "db_password", "schemas", "anon_role",
                  "jwt_secret", "port", "labels", "command", "url", "environment"}
DEPLOY_KEYS = {"repo", "dev_branch", "branch", "source", "target", "exclude"}


def validate(raw):
    """Given the raw `hotfix` mapping (${VAR} already filled), return Hotfix, or None when not configured."""
    raw = with_defaults(mapping(raw, "hotfix"), DEFAULTS)
    if raw == DEFAULTS:
        return None
    only(raw, KEYS, "hotfix")
    if not raw.get("database"):
        raise ConfigError("hotfix.database: required (the key of the production database to clone)")
    if "{name}" not in raw["clone"] and not SIMPLE_NAME.match(raw["clone"]):
        raise ConfigError("hotfix.clone: a database name, or a pattern with {name}")
    return Hotfix(database=raw["database"], environment=raw["environment"], clone=raw["clone"],
                  strategy=clone_strategy(raw["strategy"], "hotfix.strategy"), ttl=lifetime(raw["ttl"], "hotfix.ttl"),
                  dev_database=raw.get("dev_database") or None, postgrest=postgrest(raw.get("postgrest")),
                  migrations=migrations(raw["migrations"]), deploy=deploy(raw.get("deploy")))


def clone_strategy(value, path):
    """Return `value` if it is a clone strategy; raise ConfigError naming `path` otherwise."""
    if value not in STRATEGIES:
        raise ConfigError(f'{path}: expected {", ".join(STRATEGIES[:-1])} or {STRATEGIES[-1]}, got "{value}"')
    return value


def lifetime(value, path):
    """Given a lifetime ('24h', '90m', '2d'), return its Duration; raise ConfigError naming `path` unless it is one
    of at least 1s."""
    span = timespan(value, path)
    if span.seconds < 1:
        raise ConfigError(f"{path}: at least 1s (a clone that expired at once would be gone at the next teardown)")
    return span


def create_options(cfg, strategy=None, ttl=None, terminate=False):
    """Given the Hotfix section and hotfix.create's options (None: as configured), return (strategy, ttl Duration).

    Every option is checked here, before anything runs, and a bad one is ConfigError naming it (exit 2, like
    any bad input). --terminate ends sessions so that TEMPLATE can copy: it goes with template, makes auto
    choose template, and is refused with dump, which clones online and has no session to end.
    """
    chosen = cfg.strategy if strategy is None else clone_strategy(strategy, "--strategy")
    span = cfg.ttl if ttl is None else lifetime(ttl, "--ttl")
    if terminate and chosen == "dump":
        raise ConfigError("--terminate ends the sessions on the source so that TEMPLATE can copy it; the dump "
                          "strategy clones online and ends none: leave out --terminate, or pass --strategy template")
    return chosen, span


def postgrest(raw):
    raw = subsection(raw, "hotfix.postgrest", POSTGREST_KEYS, ("image", "name"))
    if raw is None:
        return None
    schemas = raw.get("schemas", [])
    labels = mapping(raw.get("labels", {}) or {}, "hotfix.postgrest.labels")
    values = {**raw, "labels": labels, "environment": mapping(raw.get("environment", {}) or {}, "hotfix.postgrest.environment"),
              "schemas": tuple(schemas if isinstance(schemas, list) else [s.strip() for s in str(schemas).split(",")]),
              "db_password": Secret(raw.get("db_password") or ""), "jwt_secret": Secret(raw.get("jwt_secret") or "")}
    for key in ("db_port", "port"):
        if key in raw:
            values[key] = integer(raw[key], f"hotfix.postgrest.{key}", minimum=1, maximum=65535)
    return Postgrest(**values)


def migrations(raw):
    raw = mapping(raw or {}, "hotfix.migrations")
    only(raw, {"dir", "pattern", "table"}, "hotfix.migrations")
    out = Migrations(**raw)
    if not re.match(r"^[a-z_][a-z0-9_]*$", out.table):
        raise ConfigError("hotfix.migrations.table: a plain lower-case table name")
    return out


def deploy(raw):
    raw = subsection(raw, "hotfix.deploy", DEPLOY_KEYS, ("repo", "target"))
    if raw is None:
        return None
    if "exclude" in raw and (not isinstance(raw["exclude"], list) or not all(isinstance(e, str) and e for e in raw["exclude"])):
        raise ConfigError("hotfix.deploy.exclude: expected a list of patterns such as [.git, node_modules]")
    return Deploy(**{**raw, **({"exclude": tuple(raw["exclude"])} if "exclude" in raw else {})})
