"""db.backup.*: take, list and restore backups (seed 001's rake db:sync:backup:*)."""

from invoke import Collection

from ..actions import backup
from ..cli import echo, one_line_errors, project, split_keys, task
from ..ui import print_table

DB_HELP = "only these database keys (comma-separated); default: all"


@task(help={"db": DB_HELP})
@one_line_errors
def local(c, db=None):
    """Back up the local databases now."""
    backup.backup(project(c), "local", split_keys(db), echo=echo(c))


@task(help={"db": DB_HELP})
@one_line_errors
def production(c, db=None):
    """Back up the production databases now (streamed here; production is only read)."""
    backup.backup(project(c), "production", split_keys(db), echo=echo(c))


@task(name="list")
@one_line_errors
def list_(c):
    """List backups: name, environment, database, size, age, verified."""
    print_table("backups (newest first)", ["name", "env", "db", "engine", "size", "age", "verified"],
                backup.list_rows(project(c)))


@task(help={"name": "backup name, as shown by db.backup.list", "db": DB_HELP,
            "force": "skip the confirmation (or set FORCE=true)", "dry_run": "print the plan and change nothing"})
@one_line_errors
def restore_local(c, name, db=None, force=False, dry_run=False):
    """Restore local databases from a backup (local's current state is backed up first)."""
    backup.restore_backup(project(c), name, "local", split_keys(db), force=force, dry_run=dry_run,
                          task="db.backup.restore-local", echo=echo(c))


@task(help={"name": "backup name, as shown by db.backup.list", "db": DB_HELP,
            "force": "skip the confirmation (or set FORCE=true)", "dry_run": "print the plan and change nothing"})
@one_line_errors
def restore_production(c, name, db=None, force=False, dry_run=False):
    """Restore production from a backup (guarded like a push: confirmation, production backed up first)."""
    backup.restore_backup(project(c), name, "production", split_keys(db), force=force, dry_run=dry_run,
                          task="db.backup.restore-production", echo=echo(c))


ns = Collection("backup", local, production, list_, restore_local, restore_production)
