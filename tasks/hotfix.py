"""hotfix.*: ephemeral bugfix environments (seed 002): a clone of the production database, a PostgREST
container on it, SQL migrations, the deploy to production, and teardown."""

from invoke import Collection

from .actions import deploy as deploy_action, hotfix
from .config import hotfix as hotfix_config
from .cli import echo, one_line_errors, project, task
from .ui import print_table

DRY = "print the plan and change nothing"
FORCE = "skip the confirmation (or set FORCE=true)"


@task(help={"name": "bugfix database name (default: hotfix.clone)", "strategy": "auto | template | dump",
            "ttl": "lifetime such as 24h, 90m, 2d (default: hotfix.ttl)", "replace": "drop an existing bugfix database first",
            "terminate": "end the other sessions on the production database, then clone with TEMPLATE (with "
                         "--strategy template or auto, which then always takes TEMPLATE; refused with dump)",
            "dry_run": DRY,
            "force": FORCE})
@one_line_errors
def create(c, name=None, strategy=None, ttl=None, replace=False, terminate=False, dry_run=False, force=False):
    """Clone the production database into the bugfix database and start the ephemeral PostgREST."""
    hotfix.create(project(c), name=name, strategy=strategy, ttl=ttl, replace=replace, terminate=terminate,
                     dry_run=dry_run, force=force, echo=echo(c))


@task(help={"file": "the SQL migration file", "dry_run": DRY})
@one_line_errors
def migrate(c, file, dry_run=False):
    """Apply a SQL migration to the bugfix database (and dev), each in one transaction, recorded once."""
    hotfix.migrate(project(c), file, dry_run=dry_run, echo=echo(c))


@task(help={"dry_run": "say exactly what would happen; change nothing", "migrate_only": "only apply pending migrations",
            "force": FORCE})
@one_line_errors
def deploy(c, dry_run=False, migrate_only=False, force=False):
    """Promote to production: backup, merge dev, sync served files, pending migrations, reload PostgREST."""
    deploy_action.deploy(project(c), dry_run=dry_run, migrate_only=migrate_only, force=force, echo=echo(c))


@task(help={"name": "bugfix database name (default: hotfix.clone)", "expired": "tear down every environment past its TTL",
            "force": FORCE})
@one_line_errors
def teardown(c, name=None, expired=False, force=False):
    """Stop and remove the PostgREST container and drop the bugfix database (idempotent; only clones prodmirror made)."""
    hotfix.teardown(project(c), name=name, expired=expired, force=force, echo=echo(c))


@task
@one_line_errors
def status(c):
    """Ephemeral environments: database, container, created, TTL, expired or not."""
    rows = [(r["name"], "yes" if r["exists"] else "gone", f"{r['container'] or '—'} ({r['container_state'] or 'absent'})",
             r["created"] or "—", r["ttl"], r["expires"] or "—", "EXPIRED" if r["expired"] else "no")
            for r in hotfix.status(project(c), echo=echo(c))]
    print_table("hotfix environments", ["name", "database", "container", "created", "ttl", "expires", "expired"], rows)


ns = Collection("hotfix", create, migrate, deploy, teardown, status)
ns.configure({"hotfix": hotfix_config.DEFAULTS})
