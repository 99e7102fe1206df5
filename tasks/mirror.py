"""mirror.*: production → local mirror of Django apps, code, media and databases (seed 000)."""

from invoke import Collection

from .actions import mirror
from .config import mirror as mirror_config
from .cli import echo, one_line_errors, project, split_keys, task
from .ui import print_table

FORCE = "go on even if local app folders hold uncommitted changes (or set FORCE=true)"
DRY = "print the plan and change nothing"
SNAPSHOT = "snapshot name (default: the newest)"


@task(help={"download_only": "stop once the snapshot is stored", "force": FORCE, "dry_run": DRY})
@one_line_errors
def production(c, download_only=False, force=False, dry_run=False):
    """Snapshot production (code tar + every database), then restore DBs, sync code, localize, superuser."""
    mirror.production(project(c), download_only=download_only, force=force, dry_run=dry_run, echo=echo(c))


@task(help={"snapshot": SNAPSHOT, "force": FORCE, "dry_run": DRY})
@one_line_errors
def force_sync_code(c, snapshot=None, force=False, dry_run=False):
    """Nuke & pave: replace local app folders with the snapshot's (safe extraction), then collectstatic."""
    mirror.force_sync_code(project(c), snapshot=snapshot, force=force, dry_run=dry_run)


@task
@one_line_errors
def localize_settings(c):
    """Patch every app's settings.py for local use, its database included (a managed block; idempotent)."""
    mirror.localize_settings(project(c))


@task(help={"db": "only these database keys (comma-separated)", "snapshot": SNAPSHOT,
            "force": "skip confirmations (or set FORCE=true)", "dry_run": DRY})
@one_line_errors
def restore_db(c, db=None, snapshot=None, force=False, dry_run=False):
    """Drop & create & restore local databases from a snapshot (atomic; local backed up first), then the superuser."""
    mirror.restore_db(project(c), split_keys(db), snapshot=snapshot, force=force, dry_run=dry_run, echo=echo(c))


@task
@one_line_errors
def create_superuser(c):
    """Create or update the superuser in each app from DJANGO_SUPERUSER_USERNAME/EMAIL/PASSWORD (.env)."""
    for app, what in mirror.create_superuser(project(c)).items():
        print(f"{app}: superuser {what}")


@task(help={"project": "only this app of mirror.django (by name)", "app": "Django app label of the row to insert",
            "migration": "migration name of the row to insert"})
@one_line_errors
def fix_migrations(c, project_=None, app=None, migration=None):
    """Insert the django_migrations rows of migrations whose schema is present; report the others."""
    mirror.fix_migrations(project(c), project_, app, migration)


@task
@one_line_errors
def checkpoint(c):
    """Tag the ops repo stable-mirror-YYYYMMDD with the newest snapshot's manifest."""
    mirror.checkpoint(project(c))


@task
@one_line_errors
def status(c):
    """Code parity (ghost, missing, changed files per app) and data parity, without changing anything."""
    report = mirror.status(project(c), echo=echo(c))
    rows = []
    for path, diff in report["code"].items():
        for kind in ("ghost", "missing", "changed"):
            for name in diff[kind]:
                rows.append((path, kind, name))
    verdict = "code parity confirmed" if not rows else f"{len(rows)} file(s) differ"
    print_table(f"code: {verdict} (local vs production)", ["app folder", "kind", "file"], rows)
    for key, what in report["data"].items():
        restored = report["restored"][key]
        newest = "the newest" if restored == report["snapshot"] else f"the newest is {report['snapshot']}"
        print(f"data {key}: {what} ({restored}, restored last; {newest})")
    if not report["data"]:
        print("data: no database was restored from a snapshot yet")


ns = Collection("mirror", production, force_sync_code, localize_settings, restore_db, create_superuser,
                fix_migrations, checkpoint, status)
ns.configure({"mirror": mirror_config.DEFAULTS})
