"""Django's migration history (mirror.fix-migrations): the django_migrations rows that applied
migrations depend on but that are missing, which makes Django raise InconsistentMigrationHistory."""

import json

from .django_apps import manage
from .errors import ProdmirrorError

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


def migration_gaps(site, insert=()):
    """Return [(app_label, migration)] that applied migrations depend on but django_migrations lacks
    (what makes Django raise InconsistentMigrationHistory). Record `insert` first, if given."""
    env = {"PRODMIRROR_INSERT": json.dumps([list(m) for m in insert])} if insert else {}
    out = manage(site, "shell", "-c", MIGRATION_GAPS, env=env).stdout.strip().splitlines()
    try:
        return [tuple(m) for m in json.loads(out[-1])]
    except (IndexError, ValueError):
        raise ProdmirrorError(f"{site.app.name}: could not read the migration history ({out[-1] if out else 'no output'})") from None
