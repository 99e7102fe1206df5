"""Django apps of the mirror: localize settings.py, run manage.py (on this machine or in a local
container), create/update the superuser, detect and repair an inconsistent migration history."""

import json
import re

from .errors import ConfigError, ProdmirrorError
from .hosts import ContainerHost, LocalHost

BEGIN = "# >>> prodmirror localize: managed block, rewritten by `inv mirror.localize-settings` >>>"
END = "# <<< prodmirror localize <<<"
BLOCK = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
SUPERUSER_VARS = ("DJANGO_SUPERUSER_USERNAME", "DJANGO_SUPERUSER_EMAIL", "DJANGO_SUPERUSER_PASSWORD")


def render_block(values):
    """Given {SETTING: value}, return the managed block (Python literals, sorted for a stable file)."""
    lines = [BEGIN] + [f"{key} = {value!r}" for key, value in sorted(values.items())] + [END]
    return "\n".join(lines) + "\n"


def localize(settings_path, values):
    """Write the managed block at the end of settings.py (replacing an earlier one). Return True if the file changed."""
    try:
        text = settings_path.read_text()
    except FileNotFoundError:
        raise ProdmirrorError(f"{settings_path}: no such settings file (check mirror.django[].settings)") from None
    block = render_block(values)
    body = BLOCK.sub("", text).rstrip("\n")
    new = f"{body}\n\n{block}" if body else block
    if new == text:
        return False
    settings_path.write_text(new)
    return True


def host_for(app):
    """Return the host manage.py of `app` runs on: this machine, or its local container."""
    if app.container:
        return ContainerHost(LocalHost("local"), app.container, workdir=app.workdir)
    return LocalHost("local")


def manage_argv(app, code_root, *args):
    if app.container:  # the container has the code at `workdir`, and `python` on its PATH (or as configured)
        return [app.python, "manage.py", *args]
    return [app.python, str(code_root / app.path / "manage.py"), *args]


def manage(app, code_root, *args, env=None, check=True):
    """Run `manage.py ARGS` for `app`; return the Result. Raise CommandError (if check) naming the app."""
    host = host_for(app)
    host.label = f"{app.name} manage.py"
    return host.run(manage_argv(app, code_root, *args), env={**app.env, **(env or {})}, check=check)


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


def create_superuser(app, code_root, credentials):
    """Create or update the superuser of `app` (password set through the environment, never argv); return 'created'/'updated'."""
    out = manage(app, code_root, "shell", "-c", CREATE_SUPERUSER, env=credentials).stdout.strip().splitlines()
    return out[-1] if out else "updated"


MIGRATION_GAPS = """
import json, os
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
connection = connections[DEFAULT_DB_ALIAS]
loader = MigrationLoader(connection)
applied = set(loader.applied_migrations)
missing = set()
for key in applied:
    if key not in loader.graph.nodes:
        continue
    for parent in loader.graph.forwards_plan(key):
        if parent in applied:
            continue
        replaced = loader.replacements.get(parent)
        if replaced and all(m in applied for m in replaced.replaces):
            continue
        missing.add(parent)
insert = json.loads(os.environ.get("PRODMIRROR_INSERT") or "[]")
recorder = MigrationRecorder(connection)
for app_label, name in insert:
    recorder.record_applied(app_label, name)
print(json.dumps(sorted(missing)))
"""


def migration_gaps(app, code_root, insert=()):
    """Return [(app_label, migration)] that applied migrations depend on but django_migrations lacks
    (what makes Django raise InconsistentMigrationHistory). Record `insert` first, if given."""
    env = {"PRODMIRROR_INSERT": json.dumps([list(m) for m in insert])} if insert else {}
    out = manage(app, code_root, "shell", "-c", MIGRATION_GAPS, env=env).stdout.strip().splitlines()
    try:
        return [tuple(m) for m in json.loads(out[-1])]
    except (IndexError, ValueError):
        raise ProdmirrorError(f"{app.name}: could not read the migration history ({out[-1] if out else 'no output'})") from None
