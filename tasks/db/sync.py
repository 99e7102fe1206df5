"""db.sync.*: move databases between production and local (seed 001)."""

from invoke import Collection, task

from .. import dbsync
from ..cli import echo, one_line_errors, project, split_keys
from ..ui import print_table

DB_HELP = "only these database keys (comma-separated); default: every key configured on both sides"


@task(help={"db": DB_HELP, "force": "skip the confirmation (or set FORCE=true)",
            "dry_run": "print the plan and change nothing"})
@one_line_errors
def from_production(c, db=None, force=False, dry_run=False):
    """Pull production databases into local (local is backed up first; swapped in atomically)."""
    dbsync.copy(project(c), "production", "local", split_keys(db), force=force, dry_run=dry_run,
                task="db.sync.from-production", echo=echo(c))


@task(help={"db": DB_HELP})
@one_line_errors
def status(c, db=None):
    """Compare production and local: per table, row counts on both sides, equal or not, last sync."""
    for entry in dbsync.status(project(c), "production", "local", split_keys(db), echo=echo(c)):
        src, dst, last = entry["source"], entry["target"], entry["last"]
        names = sorted(set((src or {}).get("tables", {})) | set((dst or {}).get("tables", {})))
        rows = []
        for name in names:
            a = (src or {}).get("tables", {}).get(name)
            b = (dst or {}).get("tables", {}).get(name)
            same = "yes" if a and b and a == b else "no"
            rows.append((name, a[0] if a else "—", b[0] if b else "—", same))
        seq_diff = [s for s in set((src or {}).get("sequences", {})) | set((dst or {}).get("sequences", {}))
                    if (src or {}).get("sequences", {}).get(s) != (dst or {}).get("sequences", {}).get(s)]
        title = f"{entry['key']}: " + ("production database absent" if src is None else
                                       "local database absent" if dst is None else
                                       "in sync" if all(r[3] == "yes" for r in rows) and not seq_diff else "differs")
        title += f" · last sync {last['time']} ({last['source']} → {last['target']})" if last else " · never synced"
        print_table(title, ["table", "production rows", "local rows", "equal"], rows)
        if seq_diff:
            print(f"sequences that differ: {', '.join(sorted(seq_diff))}")


ns = Collection("sync", from_production, status)
