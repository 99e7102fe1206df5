"""Django apps of the mirror: run manage.py (on this machine or in a local container) against the
local database only, and create/update the superuser.

Every manage.py prodmirror runs goes through `manage()`. A mirrored settings.py (or its .env) still
points at production, and what settings.py computes at run time is beyond prodmirror's reach, so
`manage()` hands Django the local database in PRODMIRROR_DB_* (read by the localize block of
django_settings.py; the password travels only there) and first asks Django which database `default`
really is: unless it is local's, nothing runs.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from .config.model import Database, DjangoApp
from .errors import ConfigError, GuardError, ProdmirrorError
from .hosts import ContainerHost, LocalHost

SUPERUSER_VARS = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD")
THIS_MACHINE = {"", "localhost", "127.0.0.1", "::1"}  # libpq: '' is the local socket of the same server


@dataclass(frozen=True)
class Site:
    """One app of mirror.django with where it runs: the local code root and the local database its manage.py uses."""

    app: DjangoApp
    root: Path
    db: Database


def bind(project, root, apps=None):
    """Given the project, the local code root and some apps (default: all of mirror.django), return a
    Site each. Raise ConfigError if no app is configured or an app's local database is undecided."""
    if not project.mirror.apps:
        raise ConfigError("mirror.django: no Django app is configured")
    sites = []
    for app in project.mirror.apps if apps is None else apps:
        if app.database is None:
            local = project.environments.get("local")
            postgres = sorted(k for k, db in (local.databases if local else {}).items() if db.engine == "postgres")
            found = f"several postgres databases ({', '.join(postgres)})" if postgres else "no postgres database"
            raise ConfigError(f"{app.key}.database: required: environments.local has {found}; "
                              f"name the one {app.name}'s manage.py must use")
        db = project.env("local").database(app.database)
        project.check(db.path)
        sites.append(Site(app, Path(root), db))
    return sites


def connection(site):
    """Given a Site, return the {NAME, HOST, PORT, USER} Django must use: the local database's (an app
    in a container reaches a database container without `host:` by the container's name)."""
    db = site.db
    host = db.host or (db.container if site.app.container and db.container else "")
    return {"NAME": db.name, "HOST": host, "PORT": str(db.port or 5432), "USER": db.user}


def _env(site, extra=None):
    env = {**site.app.env, **{f"PRODMIRROR_DB_{k}": v for k, v in connection(site).items()}}
    if site.db.password:
        env["PRODMIRROR_DB_PASSWORD"] = site.db.password.reveal()
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ of ours among the mirrored files
    return {**env, **(extra or {})}


def host_for(app):
    """Return the host manage.py of `app` runs on: this machine, or its local container."""
    host = ContainerHost(LocalHost("local"), app.container, workdir=app.workdir) if app.container else LocalHost("local")
    host.label = f"{app.name} manage.py"
    return host


def manage_argv(site, *args):
    if site.app.container:  # the container has the code at `workdir`, and `python` on its PATH (or as configured)
        return [site.app.python, "manage.py", *args]
    return [site.app.python, str(site.root / site.app.path / "manage.py"), *args]


def _run(site, *args, env=None):
    return host_for(site.app).run(manage_argv(site, *args), env=_env(site, env))


def manage(site, *args, env=None):
    """Run `manage.py ARGS` of the site's app against its local database; return the Result.

    Raise GuardError (nothing run) unless Django's default database is local's, CommandError naming
    the app if manage.py fails."""
    check_database(site)
    return _run(site, *args, env=env)


DEFAULT_DATABASE = """
import json
from django.db import connections
settings = connections["default"].settings_dict
print(json.dumps({key: str(settings.get(key) or "") for key in ("ENGINE", "NAME", "HOST", "PORT")}))
"""


def check_database(site):
    """Ask Django (manage.py shell) which database `default` is; raise GuardError unless it is local's."""
    script = site.root / site.app.path / "manage.py"
    if not site.app.container and not script.is_file():  # (in a container, its own error says so)
        raise ProdmirrorError(f"{site.app.name}: no {script}: run mirror.production or mirror.force-sync-code first "
                              f"(or check {site.app.key}.path)")
    out = _run(site, "shell", "-c", DEFAULT_DATABASE).stdout.strip().splitlines()
    try:
        actual = json.loads(out[-1])
    except (IndexError, ValueError):
        raise ProdmirrorError(f"{site.app.name}: could not read Django's database settings "
                              f"({out[-1] if out else 'no output'})") from None
    expected = connection(site)
    if not same_database(actual, expected):
        raise GuardError(f"{site.app.name}: Django's default database is {describe(actual)}, not local's "
                         f"{describe(expected)}; run mirror.localize-settings or fix {site.app.key}.env")


def same_database(actual, expected):
    """Given Django's default database {ENGINE, NAME, HOST, PORT} and the expected {NAME, HOST, PORT},
    return True if both name one database of one PostgreSQL server."""
    hosts = {actual["HOST"], expected["HOST"]}
    return ("postg" in actual.get("ENGINE", "postgresql") and actual["NAME"] == expected["NAME"]
            and (len(hosts) == 1 or hosts <= THIS_MACHINE)
            and (actual["PORT"] or "5432").strip() == (expected["PORT"] or "5432"))


def describe(database):
    """Given {NAME, HOST, PORT[, ENGINE]}, return 'NAME on HOST:PORT' (the engine too when not PostgreSQL)."""
    engine = database.get("ENGINE", "postgresql")
    return (f"{database['NAME']} on {database['HOST'] or 'localhost'}:{database['PORT'] or 5432}"
            + ("" if "postg" in engine else f" ({engine})"))


CREATE_SUPERUSER = """
import os
from django.contrib.auth import get_user_model
User = get_user_model()
user, created = User._default_manager.get_or_create(**{User.USERNAME_FIELD: os.environ["DJANGO_SUPERUSER_USERNAME"]})
if hasattr(user, "email"):
    user.email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(os.environ["DJANGO_SUPERUSER_PASSWORD"])
user.save()
print("created" if created else "updated")
"""


def superuser_credentials(values):
    """Given the environment (+ .env), return the DJANGO_SUPERUSER_* triple. Raise ConfigError naming what is missing."""
    missing = [v for v in SUPERUSER_VARS if not values.get(v)]
    if missing:
        raise ConfigError(f"{', '.join(missing)} not set: put them in .env (the way `createsuperuser --noinput` reads them)")
    return {v: values[v] for v in SUPERUSER_VARS}


def create_superuser(site, credentials):
    """Create or update the superuser of the site's app (password set through the environment, never
    argv); return 'created' or 'updated'."""
    out = manage(site, "shell", "-c", CREATE_SUPERUSER, env=credentials).stdout.strip().splitlines()
    return out[-1] if out else "updated"
