"""The library behind hotfix.* (seed 002): an ephemeral bugfix database cloned from production on the
production server, an ephemeral PostgREST container pointed at it, SQL migrations, and the deploy
(merge dev → production branch, sync served files, pending migrations, schema-cache reload).

What exists is remembered in `.prodmirror/hotfix.json` (and on the containers' labels), so status and
teardown --expired know each environment's age and TTL.
"""

import dataclasses
import fnmatch
import posixpath
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import backups, containers, guard, migrations
from .engines import postgres
from .errors import CommandError, ConfigError, ProdmirrorError, last_line
from .hosts import Hosts
from .statefile import read_json, write_json
from .ui import print_plan, say


def _config(project):
    if not project.hotfix:
        raise ConfigError("hotfix: not configured (environment, database, clone, postgrest…)")
    return project.hotfix


def _source(project, cfg):
    env = project.env(cfg["environment"])
    db = env.database(cfg["database"])
    if db.engine != "postgres":
        raise ConfigError(f"{db.path}.engine: hotfix clones need postgres")
    project.check(f"environments.{env.name}.ssh", db.path, "hotfix")
    return env, db


def clone_name(cfg, source, name=None):
    clone = name or cfg["clone"].replace("{name}", source.name.removesuffix("_prod"))
    if not clone or clone == source.name or len(clone) > 63 or not all(c.isalnum() or c == "_" for c in clone):
        raise ProdmirrorError(f"invalid bugfix database name {clone!r}")
    return clone


def _state_path(project):
    return project.state_dir / "hotfix.json"


def read_state(project):
    return read_json(_state_path(project), {})


def _write_state(project, state):
    write_json(_state_path(project), state)


def create(project, name=None, strategy=None, ttl=None, replace=False, terminate=False, dry_run=False, echo=False):
    """Clone production's database into the bugfix database and start PostgREST on it. Return the record."""
    cfg = _config(project)
    env, source = _source(project, cfg)
    clone = clone_name(cfg, source, name)
    strategy = strategy or cfg["strategy"]
    if strategy not in ("auto", "template", "dump"):
        raise ProdmirrorError(f"--strategy: expected auto, template or dump, got {strategy!r}")
    seconds = cfg["ttl"] if ttl is None else _duration(ttl)
    pg = cfg["postgrest"]
    steps = [f"lock {env.name}",
             f"clone {source.name} into {clone} on {env.name} ({strategy}: "
             + {"auto": "TEMPLATE if nobody is connected to the source, else an online pg_dump | pg_restore",
                "template": "CREATE DATABASE … TEMPLATE" + (", terminating sessions on the source" if terminate else ""),
                "dump": "online pg_dump | pg_restore on the server"}[strategy] + ")"]
    if replace:
        steps.insert(1, f"drop the existing {clone} (and its container)")
    if pg:
        steps.append(f"start container {pg['name']} ({pg['image']}) on {env.name}'s Docker, network {pg['network']}, "
                     f"PGRST_DB_URI → {clone} (secrets masked), schemas {','.join(pg['schemas'])}")
    steps.append(f"remember it: expires in {_human(seconds)}")
    print_plan("hotfix.create", steps, dry_run)
    if dry_run:
        return None
    hosts = Hosts(project, echo)
    docker = None
    try:
        with guard.operation(project, "hotfix.create", [env.name], database=clone) as rec:
            host = hosts.for_db(source)
            facts = postgres.clone_facts(host, source, clone)
            if facts["new_exists"]:
                if not replace:
                    raise ProdmirrorError(f"{clone} already exists on {env.name}: use it, `inv hotfix.teardown`, or --replace")
                if pg:
                    docker = docker or containers.Docker(hosts.for_env(env))
                    containers.remove(docker.client, pg["name"])
                postgres.drop(host, source, clone)
            used = strategy
            if strategy == "auto":
                used = "template" if not facts["sessions"] else "dump"
                if facts["sessions"]:
                    say(f"{source.name} has {facts['sessions']} other session(s): cloning online "
                        "(pg_dump | pg_restore), no session is terminated")
            if used == "template":
                try:
                    postgres.clone_template(host, source, clone, facts["owner"], terminate=terminate)
                except CommandError as exc:
                    if strategy == "auto" and "being accessed by other users" in exc.stderr:
                        used = "dump"  # someone connected between the check and the CREATE
                    else:
                        raise ProdmirrorError(f"CREATE DATABASE {clone} TEMPLATE {source.name} failed: "
                                              f"{last_line(exc.stderr)}; use --strategy dump (online) or --terminate") from None
            if used == "dump":
                postgres.clone_dump(host, source, clone, facts["owner"])
            rec.update(strategy=used, clone=clone)
            say(f"{clone}: cloned from {source.name} ({used})")
            created = datetime.now(timezone.utc).isoformat(timespec="seconds")
            entry = {"database": clone, "source": source.name, "environment": env.name, "created": created,
                     "ttl": seconds, "container": pg["name"] if pg else None, "strategy": used}
            state = read_state(project)
            state[clone] = entry
            _write_state(project, state)
            if pg:
                docker = docker or containers.Docker(hosts.for_env(env))
                kwargs, secrets = containers.postgrest_spec(pg, clone, clone, created, seconds)
                try:
                    box = containers.start(docker.client, kwargs, secrets)
                except BaseException:
                    say(f"{clone} stays (see hotfix.status); the container did not start")
                    raise
                where = pg.get("url") or f"port {pg['port']} on {env.name}"
                say(f"{pg['name']} running ({box.short_id}); PostgREST answers at {where}")
                rec["container"] = pg["name"]
            return rec
    finally:
        if docker:
            docker.close()
        hosts.close()


def _duration(text):
    from .config import parse_duration

    return parse_duration(text, "--ttl")


def _human(seconds):
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _migration_targets(project, cfg, env, source, state_clone=None):
    """Return the databases a hotfix migration goes to: the bugfix clone, and the dev database if configured."""
    targets = [dataclasses.replace(source, name=state_clone or clone_name(cfg, source))]
    if cfg.get("dev_database"):
        targets.append(env.database(cfg["dev_database"]))
    return targets


def migrate(project, file, dry_run=False, echo=False):
    """Apply a SQL migration file to the bugfix database (and dev), each in one transaction, recorded once."""
    cfg = _config(project)
    env, source = _source(project, cfg)
    path = Path(file)
    if not path.is_file():
        raise ProdmirrorError(f"no migration file {file!r}")
    sql = path.read_text()
    migrations.check_file(path.name, sql)
    targets = _migration_targets(project, cfg, env, source)
    table = cfg["migrations"]["table"]
    hosts = Hosts(project, echo)
    try:
        host = hosts.for_db(source)
        for db in targets:
            if not postgres.exists(host, db):
                raise ProdmirrorError(f"{db.name} does not exist on {env.name}" +
                                      (" (run hotfix.create first)" if db.key == source.key else ""))
        plan = []
        for db in targets:
            done = migrations.applied(host, db, table)
            plan.append((db, done, "already applied" if path.name in done else "apply"))
        print_plan(f"hotfix.migrate {path.name}", [f"{db.name}: {what}" for db, _, what in plan], dry_run)
        if dry_run:
            return {db.name: what for db, _, what in plan}
        with guard.operation(project, "hotfix.migrate", [env.name], migration=path.name) as rec:
            results = {}
            for db, done, _ in plan:
                results[db.name] = migrations.apply(host, db, path.name, sql, table, done)
                say(f"{db.name}: {path.name} {results[db.name]}")
            rec["results"] = results
            return results
    finally:
        hosts.close()


EXPORT = 'd=$(mktemp -d) && git -C "$1" archive "$2" "$3" | tar -x -C "$d" && echo "$d"'


def _export(host, repo, tree, subdir):
    """Export `subdir` of a git tree into a fresh temporary folder on the host; return the folder holding it."""
    folder = host.run(["sh", "-c", EXPORT, "sh", repo, tree, subdir]).stdout.strip()
    return folder, posixpath.normpath(posixpath.join(folder, subdir))


def _rsync(host, src, dep, dry_run):
    """rsync src/ onto the target (with --delete and the excludes); return the itemized changes."""
    argv = ["rsync", "-a", "--delete", "--itemize-changes", *[f"--exclude={e}" for e in dep["exclude"]],
            *(["--dry-run"] if dry_run else []), src.rstrip("/") + "/", dep["target"].rstrip("/") + "/"]
    try:
        out = host.run(argv).stdout
    except CommandError as exc:
        if exc.code == 127:
            raise ProdmirrorError(f"{host.label}: rsync is not installed there") from None
        raise
    return [line.split(" ", 1)[1] for line in out.splitlines() if " " in line and not line.startswith(".d..t")]


def _merge_tree(host, repo, dep):
    """Return (tree id or None, conflicted paths, commits dev has that the branch lacks) without changing anything."""
    git = ["git", "-C", repo]
    ahead = host.run(git + ["log", "--oneline", f"{dep['branch']}..{dep['dev_branch']}"]).stdout.splitlines()
    res = host.run(git + ["merge-tree", "--write-tree", "--name-only", dep["branch"], dep["dev_branch"]], check=False)
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
    """Return [(path, sql)] of the migration files in `tree` not yet recorded in `db`, in natural order."""
    folder = cfg["migrations"]["dir"].strip("/")
    listing = host.run(["git", "-C", repo, "ls-tree", "-r", "--name-only", tree, "--", folder]).stdout.splitlines()
    names = sorted((p for p in listing if fnmatch.fnmatch(posixpath.basename(p), cfg["migrations"]["pattern"])),
                   key=migrations.natural_key)
    done = migrations.applied(db_host, db, table)
    return [(p, host.run(["git", "-C", repo, "show", f"{tree}:{p}"]).stdout)
            for p in names if posixpath.basename(p) not in done]


def _record_merge(host, repo, dep, tree):
    """Make the branch point at a merge commit of `tree` (dev merged in), without touching a dev checkout."""
    git = ["git", "-C", repo]
    identity = []
    if not host.run(git + ["config", "user.email"], check=False).stdout.strip():
        identity = ["-c", "user.name=prodmirror", "-c", "user.email=prodmirror@localhost"]
    current = host.run(git + ["symbolic-ref", "--quiet", "--short", "HEAD"], check=False).stdout.strip()
    if current == dep["branch"]:
        host.run(["git", *identity, "-C", repo, "merge", "--no-edit", dep["dev_branch"]])
        return
    old = host.run(git + ["rev-parse", f"refs/heads/{dep['branch']}"]).stdout.strip()
    dev = host.run(git + ["rev-parse", f"refs/heads/{dep['dev_branch']}"]).stdout.strip()
    commit = host.run(["git", *identity, "-C", repo, "commit-tree", tree, "-p", old, "-p", dev, "-m",
                         f"Merge {dep['dev_branch']} into {dep['branch']} (prodmirror hotfix.deploy)"]).stdout.strip()
    host.run(git + ["update-ref", f"refs/heads/{dep['branch']}", commit, old])


def deploy(project, dry_run=False, migrate_only=False, force=False, echo=False):
    """Promote to production (seed's deploy-prod.sh): back up, merge dev → branch, sync files, migrate, reload.

    --dry-run says exactly what would happen and changes nothing (database, files, git); --migrate-only
    applies pending migrations only. Migrations stop at the first failure, those before it staying
    applied and recorded.
    """
    cfg = _config(project)
    env, source = _source(project, cfg)
    dep = cfg["deploy"]
    if not dep:
        raise ConfigError("hotfix.deploy: not configured (repo, target, branch, dev_branch, source, exclude)")
    table = cfg["migrations"]["table"]
    hosts = Hosts(project, echo)
    exported = []
    try:
        host, db_host, repo = hosts.for_env(env), hosts.for_db(source), dep["repo"]
        if migrate_only:
            tree, conflicts, ahead, changes = dep["branch"], [], [], []
        else:
            tree, conflicts, ahead = _merge_tree(host, repo, dep)
            changes = []
            if tree:
                folder, src = _export(host, repo, tree, dep["source"])
                exported.append(folder)
                changes = _rsync(host, src, dep, dry_run=True)
        pending = _pending(host, repo, tree, cfg, db_host, source, table) if tree else []
        steps = [f"back up {env.name} {source.name}"]
        if not migrate_only:
            steps.append(f"merge {dep['dev_branch']} into {dep['branch']} in {repo}: {len(ahead)} commit(s)"
                         + (f"; CONFLICTS in {', '.join(conflicts)}: refusing" if conflicts else ", merges cleanly"))
            steps.append(f"sync {dep['source']} → {dep['target']} (excluding {', '.join(dep['exclude']) or 'nothing'}): "
                         + (f"{len(changes)} change(s): {', '.join(changes[:8])}{' …' if len(changes) > 8 else ''}"
                            if changes else "nothing to change"))
        steps.append(f"apply {len(pending)} pending migration(s) to {source.name} in order, each in one transaction: "
                     f"{', '.join(p for p, _ in pending) or 'none'}")
        steps.append(f"reload PostgREST's schema cache: NOTIFY pgrst, 'reload schema' on {source.name}")
        print_plan("hotfix.deploy" + (" --migrate-only" if migrate_only else ""), steps, dry_run)
        summary = {"commits": ahead, "conflicts": conflicts, "changes": changes, "pending": [p for p, _ in pending]}
        if dry_run:
            return summary
        if conflicts:
            raise ProdmirrorError(f"merging {dep['dev_branch']} into {dep['branch']} conflicts in "
                                  f"{', '.join(conflicts)}; nothing was changed")
        guard.confirm(env, "hotfix.deploy", force)
        with guard.operation(project, "hotfix.deploy", [env.name], migrate_only=migrate_only) as rec:
            taken = backups.take(project, hosts, env.name, [source], reason="before hotfix.deploy")
            rec["backup"] = taken.name
            say(f"backup of {env.name} taken: {taken.name}")
            if not migrate_only:
                if ahead:
                    _record_merge(host, repo, dep, tree)
                _rsync(host, posixpath.normpath(posixpath.join(exported[0], dep["source"])), dep, dry_run=False)
                rec.update(merged=len(ahead), synced=len(changes))
                say(f"{dep['branch']}: {len(ahead)} commit(s) merged; {len(changes)} change(s) synced to {dep['target']}")
            rec["migrations"] = []
            for path, sql in pending:
                result = migrations.apply(db_host, source, posixpath.basename(path), sql, table)
                rec["migrations"].append(path)
                say(f"{source.name}: {path} {result}")
            postgres.execute(db_host, source, "NOTIFY pgrst, 'reload schema';\n", dbname=source.name)
            say("PostgREST schema cache reload sent")
            return rec
    finally:
        for folder in exported:
            hosts.for_env(env).run(["rm", "-rf", folder], check=False)
        hosts.close()


def teardown(project, name=None, expired=False, echo=False):
    """Stop and remove the container, drop the bugfix database (idempotent). With `expired`, every
    environment past its TTL. Return the names torn down."""
    cfg = _config(project)
    env, source = _source(project, cfg)
    state = read_state(project)
    now = datetime.now(timezone.utc)
    if expired:
        names = [n for n, e in state.items() if _expires(e) <= now]
    else:
        names = [name or clone_name(cfg, source)]
    hosts = Hosts(project, echo)
    docker = None
    try:
        with guard.operation(project, "hotfix.teardown", [env.name], databases=names) as rec:
            host = hosts.for_db(source)
            for clone in names:
                if clone == source.name:
                    raise ProdmirrorError(f"refusing to drop {clone}: it is the production database")
                entry = state.get(clone, {})
                box = entry.get("container") or (cfg["postgrest"] or {}).get("name")
                if box:
                    docker = docker or containers.Docker(hosts.for_env(env))
                    gone = containers.remove(docker.client, box)
                    say(f"{box}: {'stopped and removed' if gone else 'not there'}")
                existed = postgres.exists(host, dataclasses.replace(source, name=clone))
                postgres.drop(host, source, clone)
                say(f"{clone}: {'dropped' if existed else 'not there'}")
                state.pop(clone, None)
                _write_state(project, state)
            rec["torn_down"] = names
            if not names:
                say("no ephemeral environment is past its TTL")
            return names
    finally:
        if docker:
            docker.close()
        hosts.close()


def _expires(entry):
    return datetime.fromisoformat(entry["created"]) + timedelta(seconds=entry["ttl"])


def status(project, echo=False):
    """Return [{name, database, exists, container, container_state, created, ttl, expires, expired}]."""
    cfg = _config(project)
    env, source = _source(project, cfg)
    state = read_state(project)
    hosts = Hosts(project, echo)
    docker = None
    try:
        host = hosts.for_db(source)
        if cfg["postgrest"] or any(e.get("container") for e in state.values()):
            docker = containers.Docker(hosts.for_env(env))
            for box in docker.client.containers.list(all=True, filters={"label": containers.LABEL}):
                name = box.labels[containers.LABEL]
                state.setdefault(name, {"database": box.labels.get("prodmirror.database", name), "container": box.name,
                                        "created": box.labels.get("prodmirror.created"),
                                        "ttl": int(box.labels.get("prodmirror.ttl", "0"))})
        now, rows = datetime.now(timezone.utc), []
        for name, entry in sorted(state.items()):
            expires = _expires(entry) if entry.get("created") else None
            rows.append({"name": name, "database": entry["database"],
                         "exists": postgres.exists(host, dataclasses.replace(source, name=entry["database"])),
                         "container": entry.get("container"),
                         "container_state": containers.state(docker.client, entry["container"])
                         if docker and entry.get("container") else None,
                         "created": entry.get("created"), "ttl": _human(entry.get("ttl", 0)),
                         "expires": expires.isoformat(timespec="seconds") if expires else None,
                         "expired": bool(expires and expires <= now)})
        return rows
    finally:
        if docker:
            docker.close()
        hosts.close()
