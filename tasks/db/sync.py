"""db.sync.*: move databases, or one table/collection, between production and local (seed 001)."""

from invoke import Collection

from .. import drift
from ..actions import sync
from ..cli import echo, one_line_errors, project, split_keys, task
from ..ui import print_table

DB_HELP = "only these database keys (comma-separated); default: every key configured on both sides"
FORCE_HELP = "skip the confirmation (or set FORCE=true); nothing else"
OVERWRITE_HELP = ("overwrite production's changes since the last sync (and tables changed on both sides); "
                  "the plan lists exactly which, the audit log records them")
FULL_HELP = "replace whole databases instead of pushing only the tables changed locally (guarded over every table)"
DRY_HELP = "print the plan and change nothing"


CHANGED_HELP = ("copy only the tables that changed on either side since the last sync, in one transaction "
                "(a whole-database pull when that cannot be exact, saying why)")


@task(help={"db": DB_HELP, "force": FORCE_HELP, "dry_run": DRY_HELP, "changed": CHANGED_HELP})
@one_line_errors
def from_production(c, db=None, force=False, dry_run=False, changed=False):
    """Pull production databases into local (local is backed up first; swapped in atomically)."""
    sync.copy(project(c), "production", "local", split_keys(db), force=force, dry_run=dry_run,
              task="db.sync.from-production", echo=echo(c), changed=changed)


@task(help={"db": DB_HELP, "force": FORCE_HELP, "dry_run": DRY_HELP, "full": FULL_HELP,
            "overwrite_production_changes": OVERWRITE_HELP})
@one_line_errors
def to_production(c, db=None, force=False, dry_run=False, full=False, overwrite_production_changes=False):
    """Push what changed locally to production, table by table in one transaction (production backed up first)."""
    sync.copy(project(c), "local", "production", split_keys(db), force=force, dry_run=dry_run,
              task="db.sync.to-production", echo=echo(c), full=full, overwrite=overwrite_production_changes)


NAME_HELP = "table (Postgres: table or schema.table) or collection (MongoDB)"
ONE_DB_HELP = "database key holding it (needed when several are configured)"


@task(help={"name": NAME_HELP, "db": ONE_DB_HELP, "force": FORCE_HELP, "dry_run": DRY_HELP})
@one_line_errors
def collection_from_production(c, name, db=None, force=False, dry_run=False):
    """Pull one table or collection from production into local (local's copy backed up first)."""
    sync.copy_object(project(c), "production", "local", name, db, force=force, dry_run=dry_run,
                       task="db.sync.collection-from-production", echo=echo(c))


@task(help={"name": NAME_HELP, "db": ONE_DB_HELP, "force": FORCE_HELP, "dry_run": DRY_HELP,
            "overwrite_production_changes": OVERWRITE_HELP})
@one_line_errors
def collection_to_production(c, name, db=None, force=False, dry_run=False, overwrite_production_changes=False):
    """Push one table or collection from local to production (guarded; production's copy backed up first)."""
    sync.copy_object(project(c), "local", "production", name, db, force=force, dry_run=dry_run,
                     task="db.sync.collection-to-production", echo=echo(c), overwrite=overwrite_production_changes)


SCHEMA_LINES = 20  # schema differences shown per database; the count of the rest follows


@task(help={"db": DB_HELP})
@one_line_errors
def status(c, db=None):
    """Compare production and local: per table, rows on both sides, equal or not, schema, last sync, drift since."""
    for entry in sync.status(project(c), "production", "local", split_keys(db), echo=echo(c)):
        src, dst, last = entry["source"] or {}, entry["target"] or {}, entry["last"]
        a_tables, b_tables = src.get("contents", {}), dst.get("contents", {})
        a_schema, b_schema = src.get("schema", {}), dst.get("schema", {})
        excluded = set(entry["excluded"])
        rows = []
        for name in sorted(set(a_tables) | set(b_tables)):
            a, b = a_tables.get(name), b_tables.get(name)
            equal = "no (schema)" if a_schema.get(name) != b_schema.get(name) else \
                "yes" if a and b and a == b else "data not copied (exclude_data)" if name in excluded else "no"
            rows.append((name, a[0] if a else "—", b[0] if b else "—", equal))
        a_seqs, b_seqs = src.get("sequences", {}), dst.get("sequences", {})
        seq_diff = sorted(s for s in set(a_seqs) | set(b_seqs) if a_seqs.get(s) != b_seqs.get(s)
                          and (a_seqs.get(s) or b_seqs.get(s))[1] not in excluded)
        if entry["source"] is None:
            verdict = "production database absent"
        elif entry["target"] is None:
            verdict = "local database absent"
        else:
            same = all(r[3] in ("yes", "data not copied (exclude_data)") for r in rows) and not seq_diff \
                and not entry["schema_diff"]
            verdict = "in sync" if same else "differs"
        way = f" ({last['source']} → {last['target']})" if last and last.get("source") else " (some tables)"
        when = f"last sync {last['time']}{way}" if last and last.get("time") else "never synced"
        print_table(f"{entry['key']}: {verdict} · {when}", ["table", "production rows", "local rows", "equal"], rows)
        if seq_diff:
            print(f"sequences that differ: {', '.join(seq_diff)}")
        for line in entry["schema_diff"][:SCHEMA_LINES]:
            print(f"schema: {line}")
        if len(entry["schema_diff"]) > SCHEMA_LINES:
            print(f"schema: and {len(entry['schema_diff']) - SCHEMA_LINES} more differences")
        if entry["drift"]:
            print(f"production changed since the last sync: "
                  f"{drift.describe(entry['drift'], entry['base'], entry['source'])}")
        elif entry["drift"] is not None:
            print("production unchanged since the last sync")


ns = Collection("sync", from_production, to_production, collection_from_production, collection_to_production, status)
