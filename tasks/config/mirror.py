"""The `mirror` section (seed 000): snapshots, the Django apps, and what localize-settings writes."""

import dataclasses
import re

from ..errors import ConfigError
from .model import DjangoApp, Mirror
from .validate import integer, mapping, only, with_defaults

DEFAULTS = {"snapshots": "mirror/snapshots", "keep": 5, "django": [], "localize": None}
# Replaces (not merges with) a configured `localize`: a user who lists settings gets exactly those.
DEFAULT_LOCALIZE = {"DEBUG": True, "ALLOWED_HOSTS": ["*"],
                    "CSRF_TRUSTED_ORIGINS": ["http://localhost:8000", "http://127.0.0.1:8000"]}
APP_KEYS = {"name", "path", "settings", "python", "container", "workdir", "env", "database"}
SETTING = re.compile(r"^[A-Z][A-Z0-9_]*$")


def validate(raw, root):
    """Given the raw `mirror` mapping (${VAR} already filled), return Mirror."""
    raw = with_defaults(mapping(raw, "mirror"), DEFAULTS)
    only(raw, {*DEFAULTS, "superuser"}, "mirror")
    keep = integer(raw["keep"], "mirror.keep", minimum=1)
    apps = tuple(django_app(app, f"mirror.django[{i}]") for i, app in enumerate(raw["django"] or []))
    localize = mapping(raw["localize"] or {}, "mirror.localize")
    for key in localize:
        if not SETTING.match(str(key)):
            raise ConfigError(f"mirror.localize.{key}: a Django setting name (UPPER_CASE)")
        if key == "DATABASES":
            raise ConfigError("mirror.localize.DATABASES: prodmirror writes it from mirror.django[].database "
                              "(the local database); remove it here")
    return Mirror(snapshots=root / str(raw["snapshots"]), keep=keep, apps=apps, localize=localize or DEFAULT_LOCALIZE)


def django_app(app, path):
    app = mapping(app, path)
    only(app, APP_KEYS, path)
    for key in ("name", "path", "settings"):
        if not isinstance(app.get(key), str) or not app[key]:
            raise ConfigError(f"{path}.{key}: required")
    if ".." in app["path"] or app["path"].startswith("/") or ".." in app["settings"]:
        raise ConfigError(f"{path}: path and settings are relative folders inside the code root")
    env = mapping(app.get("env", {}) or {}, f"{path}.env")
    if app.get("database") is not None and not isinstance(app["database"], str):
        raise ConfigError(f"{path}.database: expected a database key of environments.local, got {app['database']!r}")
    return DjangoApp(name=app["name"], path=app["path"], settings=app["settings"],
                     python=app.get("python") or "python3", container=app.get("container") or None,
                     workdir=app.get("workdir") or "/app", env={k: str(v) for k, v in env.items()},
                     database=app.get("database") or None, key=path)


def bind_databases(mirror, environments):
    """Given Mirror and {name: Environment}, return Mirror whose apps name their local database.

    An app without `database:` gets local's only postgres database; with several (or none) it stays
    None and the mirror task that needs it refuses (django_apps.bind). Raise ConfigError for a key
    local does not have, or one that is not postgres."""
    local = environments.get("local")
    dbs = local.databases if local else {}
    postgres = [key for key, db in dbs.items() if db.engine == "postgres"]
    apps = []
    for app in mirror.apps:
        key = app.database
        if key is None:
            key = postgres[0] if len(postgres) == 1 else None
        elif key not in dbs:
            raise ConfigError(f"{app.key}.database: {key!r} is not a database of environments.local "
                              f"(known: {', '.join(sorted(dbs)) or 'none'})")
        elif dbs[key].engine != "postgres":
            raise ConfigError(f"{app.key}.database: {key!r} is a {dbs[key].engine} database; Django's needs postgres")
        apps.append(dataclasses.replace(app, database=key))
    return dataclasses.replace(mirror, apps=tuple(apps))
