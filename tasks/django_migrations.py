"""Django's migration history against the schema it describes (mirror.fix-migrations).

A database restored from production can hold a migration's tables and columns while django_migrations
lacks its row (then `migrate` fails with `column … already exists`, or Django raises
InconsistentMigrationHistory), or the other way round. Rows are compared with the schema the way
`migrate --fake-initial` does (MigrationExecutor.detect_soft_applied: a CreateModel's table, an
AddField's column), extended to AddIndex/AddConstraint and to every migration, not only initial ones,
and judged against the state the recorded migrations leave (a later migration may rename or drop
what an earlier one made). A row is inserted only for a migration whose schema is there.
"""

import json

from .django_apps import manage
from .errors import ProdmirrorError

STATE = r'''
import json, os
from django.core.exceptions import FieldDoesNotExist
from django.db import DEFAULT_DB_ALIAS, connections, migrations, router
from django.db.migrations.executor import MigrationExecutor

connection = connections[DEFAULT_DB_ALIAS]
_described = {}


def introspect(kind, table):
    if (kind, table) not in _described:
        with connection.cursor() as cursor:
            if kind == "tables":
                _described[kind, table] = set(connection.introspection.table_names(cursor))
            elif kind == "columns":
                _described[kind, table] = {c.name for c in connection.introspection.get_table_description(cursor, table)}
            else:
                _described[kind, table] = set(connection.introspection.get_constraints(cursor, table))
    return _described[kind, table]


def managed_model(state, label, name):
    """The model as `state` has it, or None where migrate makes no table for it (as detect_soft_applied skips)."""
    try:
        model = state.apps.get_model(label, name)
    except LookupError:
        return None  # deleted (or renamed) by a later migration: nothing of it to look for
    meta = model._meta
    if meta.proxy or not meta.managed or meta.swapped or not router.allow_migrate(
            connection.alias, label, model_name=meta.model_name):
        return None
    return model


def effects(migration, state):
    """[(what, present in the database)] for the operations whose effect the schema shows, and the others' names."""
    found, other = [], []
    tables = introspect("tables", None)
    for op in migration.operations:
        if isinstance(op, migrations.CreateModel):
            model = managed_model(state, migration.app_label, op.name)
            if model:
                found.append((f"table {model._meta.db_table}", model._meta.db_table in tables))
        elif isinstance(op, migrations.AddField):
            model = managed_model(state, migration.app_label, op.model_name)
            try:
                field = model._meta.get_field(op.name) if model else None
            except FieldDoesNotExist:
                field = None
            if field is not None and field.many_to_many:
                through = field.remote_field.through._meta
                if through.auto_created:
                    found.append((f"table {through.db_table}", through.db_table in tables))
            elif field is not None and field.column:
                table = model._meta.db_table
                found.append((f"column {table}.{field.column}",
                              table in tables and field.column in introspect("columns", table)))
        elif isinstance(op, (migrations.AddIndex, migrations.AddConstraint)):
            model = managed_model(state, migration.app_label, op.model_name)
            index = isinstance(op, migrations.AddIndex)
            item = op.index if index else op.constraint
            if model and item.name in {i.name for i in (model._meta.indexes if index else model._meta.constraints)}:
                table = model._meta.db_table
                found.append((f"{'index' if index else 'constraint'} {item.name} on {table}",
                              table in tables and item.name in introspect("constraints", table)))
        else:
            other.append(type(op).__name__)
    return found, other


def recorded_heads(loader):
    """The recorded migrations, and those of them no recorded one depends on (their plans hold all the others)."""
    recorded = {key for key in loader.applied_migrations if key in loader.graph.nodes}
    return recorded, sorted(k for k in recorded if not any(c.key in recorded for c in loader.graph.node_map[k].children))


def history():
    """Compare every migration with the schema: rows to insert, and what is wrong, as JSON-ready lists."""
    executor = MigrationExecutor(connection)
    loader, graph = executor.loader, executor.loader.graph
    recorded, heads = recorded_heads(loader)
    needed = set()  # unrecorded migrations that recorded ones depend on: InconsistentMigrationHistory
    for key in heads:
        for parent in graph.forwards_plan(key):
            replaced = loader.replacements.get(parent)
            if parent not in recorded and not (replaced and all(m in recorded for m in replaced.replaces)):
                needed.add(parent)
    out = {"insert": [], "problems": [], "pending": []}
    state = loader.project_state(nodes=heads, at_end=True) if heads else None
    order = dict.fromkeys(key for leaf in sorted(graph.leaf_nodes()) for key in graph.forwards_plan(leaf))
    for key in order:
        if key in recorded:
            absent = [what for what, present in effects(graph.nodes[key], state)[0] if not present]
            if absent:
                out["problems"].append(["missing", ".".join(key), ", ".join(absent)])
    inserting = set()
    # every unrecorded migration, in the order migrate runs them (its own plan skips those under a
    # recorded leaf: it raises InconsistentMigrationHistory for them instead)
    for key in (key for key in order if key not in recorded):
        migration = graph.nodes[key]
        found, other = effects(migration, loader.project_state(nodes=[*heads, key], at_end=True))
        absent = [what for what, present in found if not present]
        name = ".".join(key)
        if found and not absent:
            # Migrations run in one transaction on PostgreSQL: one effect present means the whole ran.
            if all(p.key in recorded or p.key in inserting for p in graph.node_map[key].parents):
                inserting.add(key)
                out["insert"].append([name, ", ".join(what for what, _ in found)])
            else:
                out["problems"].append(["blocked", name, "depends on a migration that is not recorded"])
        elif absent and len(absent) < len(found):
            out["problems"].append(["partly", name, ", ".join(absent) + " missing"])
        elif key in needed:
            out["problems"].append(["needed", name, ", ".join(absent) + " missing" if found
                                    else "its operations leave no trace: " + (", ".join(other) or "none")])
        else:
            out["pending"].append(name)
    return executor, out


def record_one(executor, key):
    """Record migration `key` unless it is unknown, recorded or absent from the schema; return an error or None."""
    loader = executor.loader
    name = ".".join(key)
    if key not in loader.graph.nodes:
        return f"no migration {name} in the code"
    if key in loader.applied_migrations:
        return f"{name} is already recorded; nothing changed"
    found, _ = effects(loader.graph.nodes[key], loader.project_state(nodes=[*recorded_heads(loader)[1], key], at_end=True))
    if found and not any(present for _, present in found):
        return f"{name} is not in the schema ({', '.join(what for what, _ in found)} missing); its row was not inserted"
    executor.record_migration(loader.graph.nodes[key])
    return None


executor, before = history()
wanted = os.environ.get("PRODMIRROR_RECORD")
done, error = [], None
if wanted == "present":
    done = [row[0] for row in before["insert"]]
    for name in done:  # executor.record_migration: what `migrate --fake` does, squashed migrations included
        executor.record_migration(executor.loader.graph.nodes[tuple(name.split(".", 1))])
elif wanted:
    key = tuple(json.loads(wanted))
    error = record_one(executor, key)
    done = [] if error else [".".join(key)]
print(json.dumps({"recorded": done, "error": error, "present": before["insert"], **(history()[1] if done else before)}))
'''


def fix(site, migration=None):
    """Given a Site (and optionally one (label, name) to record), insert the django_migrations rows of the
    unrecorded migrations whose schema is present (or of that one, unless its schema is missing).

    Return the history afterwards: {'recorded': ['label.name'], 'insert': …, 'problems': [[kind,
    'label.name', detail]], 'pending': ['label.name']}. Raise ProdmirrorError naming the app if the
    given migration is unknown, already recorded or not in the schema."""
    want = json.dumps(list(migration)) if migration else "present"
    out = manage(site, "shell", "-c", STATE, env={"PRODMIRROR_RECORD": want}).stdout.strip().splitlines()
    try:
        state = json.loads(out[-1])
    except (IndexError, ValueError):
        raise ProdmirrorError(f"{site.app.name}: could not read the migration history ({out[-1] if out else 'no output'})") from None
    if state["error"]:
        raise ProdmirrorError(f"{site.app.name}: {state['error']}")
    return state


PROBLEMS = {  # kind -> what it means; the rows of one kind are one line per app
    "missing": "recorded, but missing from the schema (left as is, never faked)",
    "partly": "not recorded and only partly in the schema (left as is: `migrate` would fail on what is there)",
    "needed": "not recorded although recorded migrations depend on it, and the schema cannot show it ran "
              "(if it did: --app LABEL --migration NAME records it)",
    "blocked": "in the schema, but left unrecorded",
}


def report(name, state):
    """Given an app name and fix()'s result, return (lines to print, the problems among them)."""
    lines, problems = [], []
    if state["recorded"]:
        present = dict(state["present"])
        lines.append(f"{name}: inserted {len(state['recorded'])} django_migrations row(s), schema present: "
                     + ", ".join(f"{m} ({present[m]})" if present.get(m) else m for m in state["recorded"]))
    for kind, meaning in PROBLEMS.items():
        rows = [f"{migration} ({detail})" for k, migration, detail in state["problems"] if k == kind]
        if rows:
            problems.append(f"{name}: {meaning}: {', '.join(rows)}")
    if state["pending"]:
        lines.append(f"{name}: pending, not in the schema (`manage.py migrate` applies them): {', '.join(state['pending'])}")
    if not lines and not problems:
        lines.append(f"{name}: migration history matches the schema; nothing changed")
    return lines + problems, problems
