"""hotfix.deploy (seed 002 step 5, deploy-prod.sh): promote to production. Back up production's database,
merge dev into the production branch (git merge-tree: the dry run is exact), sync the served files
with rsync, apply pending migrations in order, reload PostgREST's schema cache.
"""

import fnmatch
import posixpath

from .. import backup_store, guard, migrations
from ..engines import postgres
from ..errors import CommandError, ConfigError, ProdmirrorError, last_line
from ..ui import say
from .hotfix import settings, source_of
from .run import Run

# The tree goes one level below mktemp's folder, into one made with the umask like every folder tar makes:
# rsync -a gives the target the mode of the source's top, and mktemp's 0700 would close the served folder.
EXPORT = 'd=$(mktemp -d) && mkdir "$d/tree" && git -C "$1" archive "$2" "$3" | tar -x -C "$d/tree" && echo "$d"'


def _export(host, repo, tree, subdir):
    """Export `subdir` of a git tree into a fresh temporary folder on the host; return (that folder, the
    exported subdir in it)."""
    folder = host.run(["sh", "-c", EXPORT, "sh", repo, tree, subdir]).stdout.strip()
    return folder, posixpath.normpath(posixpath.join(folder, "tree", subdir))


def _rsync(host, src, dep, dry_run):
    """rsync src/ onto the target (with --delete and the excludes); return {added, changed, deleted: [paths]}."""
    argv = ["rsync", "-a", "--delete", "--itemize-changes", *[f"--exclude={e}" for e in dep.exclude],
            *(["--dry-run"] if dry_run else []), src.rstrip("/") + "/", dep.target.rstrip("/") + "/"]
    try:
        out = host.run(argv).stdout
    except CommandError as exc:
        if exc.code == 127:
            raise ProdmirrorError(f"{host.label}: rsync is not installed there") from None
        raise
    changes = {"added": [], "changed": [], "deleted": []}
    for line in out.splitlines():
        item, path = line[:11], line[12:]  # "%i %n%L": 11 letters (YXcstpoguax), a space, the path
        if not path or (item[1:2] == "d" and not set(item[2:]) - set(".tT")):
            continue  # a folder whose times alone change is no change of what is served
        kind = "deleted" if item.startswith("*deleting") else "added" if item[2:] == "+" * 9 else "changed"
        changes[kind].append(path)
    return changes


def _describe(changes):
    """Given {added, changed, deleted: [paths]}, return 'added: a.html, b.js; changed: index.html; deleted: old.css'."""
    return "; ".join(f"{kind}: {', '.join(paths)}" for kind, paths in changes.items() if paths) or "nothing to change"


def _commits(ahead):
    """Given commits ('a1b2c3d subject'), return them as the plan's continuation lines, one a line."""
    return "".join(f"\n       {commit}" for commit in ahead)


def _merge_tree(host, repo, dep):
    """Return (tree id or None, conflicted paths, commits dev has that the branch lacks as 'a1b2c3d subject')
    without changing anything."""
    git = ["git", "-C", repo]
    ahead = host.run(git + ["log", "--format=%h %s", f"{dep.branch}..{dep.dev_branch}"]).stdout.splitlines()
    res = host.run(git + ["merge-tree", "--write-tree", "--name-only", dep.branch, dep.dev_branch], check=False)
    if res.code not in (0, 1):
        raise ProdmirrorError(f"git on {host.label} cannot compute the merge: {last_line(res.stderr)} (needs git 2.38+)")
    lines = res.stdout.splitlines()
    conflicts = []
    if res.code == 1:
        for line in lines[1:]:
            if not line.strip():
                break
            conflicts.append(line.strip())
    return (lines[0].strip() if res.code == 0 else None), conflicts, ahead


def _pending(host, repo, tree, cfg, db_host, db, table):
    """Return ([(path, sql)] of the migration files in `tree` not yet recorded in `db`, in natural order,
    [lines naming those recorded with other contents]): an edited migration is never skipped as applied.

    Raise ProdmirrorError naming the first pending one that is not UTF-8 or would leave its transaction
    (migrations.check_file).
    """
    folder = cfg.migrations.dir.strip("/")
    listing = host.run(["git", "-C", repo, "ls-tree", "-r", "-z", "--name-only", tree, "--", folder]).stdout
    names = sorted((p for p in listing.split("\0") if fnmatch.fnmatch(posixpath.basename(p), cfg.migrations.pattern)),
                   key=migrations.natural_key)
    done = migrations.applied(db_host, db, table)
    pending, edited = [], []
    for path, data in _blobs(host, repo, tree, names).items():
        sql = migrations.decode(path, data)
        if posixpath.basename(path) in done:
            edited.append(migrations.edited(posixpath.basename(path), sql, done, db))
            continue
        migrations.check_file(path, sql)
        pending.append((path, sql))
    return pending, [line for line in edited if line]


def _blobs(host, repo, tree, paths):
    """Given paths in a git tree, return {path: its bytes} in their order, read in one round trip (git cat-file)."""
    if any("\n" in path for path in paths):
        raise ProdmirrorError(f"{host.label}: a migration file name holds a line break; rename it")
    request = "".join(f"{tree}:{path}\n" for path in paths)
    out = host.run(["git", "-C", repo, "cat-file", "--batch"], input=request, binary=True).stdout if paths else b""
    blobs, at = {}, 0
    for path in paths:
        header_end = out.index(b"\n", at)
        size = int(out[at:header_end].split()[2])
        blobs[path] = out[header_end + 1:header_end + 1 + size]
        at = header_end + 1 + size + 1  # the content, then a line feed
    return blobs


def _record_merge(host, repo, dep, tree):
    """Make the branch point at a merge commit of `tree` (dev merged in), without touching a dev checkout."""
    git = ["git", "-C", repo]
    identity = []
    if not host.run(git + ["config", "user.email"], check=False).stdout.strip():
        identity = ["-c", "user.name=prodmirror", "-c", "user.email=prodmirror@localhost"]
    current = host.run(git + ["symbolic-ref", "--quiet", "--short", "HEAD"], check=False).stdout.strip()
    if current == dep.branch:
        host.run(["git", *identity, "-C", repo, "merge", "--no-edit", dep.dev_branch])
        return
    old = host.run(git + ["rev-parse", f"refs/heads/{dep.branch}"]).stdout.strip()
    dev = host.run(git + ["rev-parse", f"refs/heads/{dep.dev_branch}"]).stdout.strip()
    commit = host.run(["git", *identity, "-C", repo, "commit-tree", tree, "-p", old, "-p", dev, "-m",
                         f"Merge {dep.dev_branch} into {dep.branch} (prodmirror hotfix.deploy)"]).stdout.strip()
    host.run(git + ["update-ref", f"refs/heads/{dep.branch}", commit, old])


def deploy(project, dry_run=False, migrate_only=False, force=False, echo=False):
    """Promote to production (seed's deploy-prod.sh): back up, merge dev → branch, sync files, migrate, reload.

    --dry-run says exactly what would happen and changes nothing (database, files, git); --migrate-only
    applies pending migrations only. Migrations stop at the first failure, those before it staying
    applied and recorded.
    """
    cfg = settings(project)
    env, source = source_of(project, cfg)
    dep = cfg.deploy
    if not dep:
        raise ConfigError("hotfix.deploy: not configured (repo, target, branch, dev_branch, source, exclude)")
    table = cfg.migrations.table
    with Run(project, "hotfix.deploy", [env.name], dry_run=dry_run, echo=echo, migrate_only=migrate_only) as run:
        host, db_host, repo = run.hosts.for_env(env), run.hosts.for_db(source), dep.repo
        if migrate_only:
            tree, conflicts, ahead, changes = dep.branch, [], [], {}
        else:
            tree, conflicts, ahead = _merge_tree(host, repo, dep)
            changes = {}
            if tree:
                folder, src = _export(host, repo, tree, dep.source)
                run.on_exit(lambda: host.run(["rm", "-rf", folder], check=False))
                changes = _rsync(host, src, dep, dry_run=True)
        pending, edited = _pending(host, repo, tree, cfg, db_host, source, table) if tree else ([], [])
        steps = [f"back up {env.name} {source.name}"]
        if not migrate_only:
            steps.append(f"merge {dep.dev_branch} into {dep.branch} in {repo}: {len(ahead)} commit(s)"
                         + (f"; CONFLICTS in {', '.join(conflicts)}: refusing" if conflicts else ", merges cleanly")
                         + _commits(ahead))
            steps.append(f"sync {dep.source} → {dep.target} (excluding {', '.join(dep.exclude) or 'nothing'}): "
                         + _describe(changes))
        steps.append(f"apply {len(pending)} pending migration(s) to {source.name} in order, each in one transaction: "
                     f"{', '.join(p for p, _ in pending) or 'none'}" + "".join(f"; REFUSING: {line}" for line in edited))
        steps.append(f"reload PostgREST's schema cache: NOTIFY pgrst, 'reload schema' on {source.name}")
        summary = {"commits": ahead, "conflicts": conflicts, "changes": changes, "pending": [p for p, _ in pending],
                   "edited": edited}
        if not run.proceed("hotfix.deploy" + (" --migrate-only" if migrate_only else ""), steps):
            return summary
        if conflicts:
            raise ProdmirrorError(f"merging {dep.dev_branch} into {dep.branch} conflicts in "
                                  f"{', '.join(conflicts)}; nothing was changed")
        if edited:
            raise ProdmirrorError(edited[0])
        guard.confirm(env, "hotfix.deploy", force)
        rec = run.record
        taken = backup_store.take(project, run.hosts, env.name, [source], reason="before hotfix.deploy")
        rec["backup"] = taken.name
        say(f"backup of {env.name} taken: {taken.name}")
        if not migrate_only:
            if ahead:
                _record_merge(host, repo, dep, tree)
            say(f"{dep.branch}: {len(ahead)} commit(s) merged" + _commits(ahead))
            synced = _rsync(host, src, dep, dry_run=False)
            rec.update(merged=ahead, synced={kind: len(paths) for kind, paths in synced.items()})
            say(f"{dep.target}: {_describe(synced)}")
        rec["migrations"] = []
        for path, sql in pending:
            result = migrations.apply(db_host, source, posixpath.basename(path), sql, table)
            rec["migrations"].append(path)
            say(f"{source.name}: {path} {result}")
        postgres.execute(db_host, source, "NOTIFY pgrst, 'reload schema';\n", dbname=source.name)
        say("PostgREST schema cache reload sent")
        return rec
