"""hotfix.* (seed 002): an ephemeral bugfix database cloned from production on the production server,
an ephemeral PostgREST container pointed at it, SQL migrations on it, and its teardown. The deploy to
production is deploy.py.

What exists is remembered in `.prodmirror/hotfix.json` (and on the containers' labels), so status and
teardown --expired know each environment's age and TTL.
"""

import dataclasses
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .. import containers, guard, migrations
from ..config.hotfix import create_options
from ..config.validate import timespan
from ..engines import postgres
from ..errors import CommandError, ConfigError, GuardError, ProdmirrorError, last_line
from ..statefile import StateError, read_json, write_json
from ..ui import say
from .run import Run

STRATEGY_PLAN = {"auto": "TEMPLATE if nobody is connected to the source, else an online pg_dump | pg_restore",
                 "template": "CREATE DATABASE … TEMPLATE",
                 "dump": "online pg_dump | pg_restore on the server"}
TERMINATE_PLAN = "CREATE DATABASE … TEMPLATE after ending every other session on {source} (--terminate)"


def settings(project):
    """Return the Hotfix section; raise ConfigError if hotfix.* is not configured."""
    if not project.hotfix:
        raise ConfigError("hotfix: not configured (environment, database, clone, postgrest…)")
    return project.hotfix


def source_of(project, cfg):
    """Return (environment, Database) of the production database hotfix.* clones."""
    env = project.env(cfg.environment)
    db = env.database(cfg.database)
    if db.engine != "postgres":
        raise ConfigError(f"{db.path}.engine: hotfix clones need postgres")
    project.check(f"environments.{env.name}.ssh", db.path, "hotfix")
    return env, db


def clone_name(cfg, source, name=None):
    """Return the bugfix database's name: `name` (--name), else hotfix.clone's. Raise ConfigError naming the
    option unless it is one (letters, digits, _; at most 63; not the source's)."""
    clone = name or cfg.clone.replace("{name}", source.name.removesuffix("_prod"))
    if not clone or clone == source.name or len(clone) > 63 or not all(c.isalnum() or c == "_" for c in clone):
        raise ConfigError(f"{'--name' if name else 'hotfix.clone'}: invalid bugfix database name {clone!r} "
                          "(letters, digits and _, at most 63, not the source's)")
    return clone


def _state_path(project):
    return project.state_dir / "hotfix.json"


def read_state(project):
    state = read_json(_state_path(project), {}, shape=dict)
    for name, entry in state.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("database"), str) or not _ttl_of(entry):
            raise StateError(f"{_state_path(project)} is corrupt (entry {name!r}); nothing was changed. Fix or move it "
                             "aside (then `inv hotfix.status` no longer knows the clones it lists)")
    return state


def _ttl_of(entry):
    """Given a state entry, return its TTL as a Duration ('24h'; seconds in a state written before), or None."""
    try:
        return timespan(entry.get("ttl", 0), "ttl")
    except ConfigError:
        return None


def _write_state(project, state):
    write_json(_state_path(project), state)


def check_clone(project, env, source, state, clone, exists):
    """Raise GuardError unless `clone` is one hotfix.* may drop: recorded in the state as a clone of `source`
    on `env`, or not there at all (`exists` False). Production's configured databases, and the source of
    any recorded clone, never are."""
    production = {e.get("source"): f"the source of {name}" for name, e in state.items()}
    production.update({db.name: db.path for db in env.databases.values() if db.name})
    entry = state.get(clone)
    if clone in production:
        raise GuardError(f"{clone} is a production database ({production[clone]}): hotfix.* never replaces or drops it")
    if entry is None and exists:
        raise GuardError(f"{clone} exists on {env.name} but is not a clone prodmirror made (none is recorded in "
                         f"{_state_path(project)}): hotfix.* never drops it; pick another --name")
    if entry is not None and (entry.get("source"), entry.get("environment")) != (source.name, env.name):
        raise GuardError(f"{clone} is recorded as a clone of {entry.get('source')} on {entry.get('environment')}, "
                         f"not of {source.name} on {env.name}: tear it down with the configuration that made it")


def create(project, name=None, strategy=None, ttl=None, replace=False, terminate=False, dry_run=False, force=False,
           echo=False):
    """Clone production's database into the bugfix database and start PostgREST on it. Return the record.

    Asks to confirm (production is protected) once the checks passed; --replace drops only a recorded clone.
    """
    cfg = settings(project)
    strategy, ttl = create_options(cfg, strategy, ttl, terminate)
    env, source = source_of(project, cfg)
    clone = clone_name(cfg, source, name)
    check_clone(project, env, source, read_state(project), clone, exists=False)
    pg = cfg.postgrest
    how = TERMINATE_PLAN.format(source=source.name) if terminate else STRATEGY_PLAN[strategy]
    steps = [f"lock {env.name}", f"clone {source.name} into {clone} on {env.name} ({strategy}: {how})"]
    if replace:
        steps.insert(1, f"drop the existing {clone} (and its container)")
    if pg:
        steps.append(f"start container {pg.name} ({pg.image}) on {env.name}'s Docker, network {pg.network}, "
                     f"PGRST_DB_URI → {clone} (secrets masked), schemas {','.join(pg.schemas)}; wait until it is ready "
                     f"(at most {project.limits.container_ready:g} s, limits.container_ready)")
    steps.append(f"remember it: expires in {ttl}")
    with Run(project, "hotfix.create", [env.name], dry_run=dry_run, echo=echo, database=clone, ttl=str(ttl)) as run:
        if not run.proceed("hotfix.create", steps):
            return None
        rec, host = run.record, run.hosts.for_db(source)
        facts = postgres.clone_facts(host, source, clone)
        if facts["new_exists"]:
            check_clone(project, env, source, read_state(project), clone, exists=True)
            if not replace:
                raise ProdmirrorError(f"{clone} already exists on {env.name}: use it, `inv hotfix.teardown`, or --replace")
        if pg:
            containers.check_image(run.docker(env).client, pg.image, env.name)  # before the clone: it would stay
        guard.confirm(env, "hotfix.create", force)  # asked once the checks passed: nobody confirms a doomed run
        if facts["new_exists"]:
            if pg and containers.serves(run.docker(env).client, pg.name) == clone:
                containers.remove(run.docker(env).client, pg.name)
            postgres.drop(host, source, clone)
        used = _clone(host, source, clone, facts, strategy, terminate)
        rec.update(strategy=used, clone=clone)
        say(f"{clone}: cloned from {source.name} ({used})")
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        state = read_state(project)
        state[clone] = {"database": clone, "source": source.name, "environment": env.name, "created": created,
                        "ttl": str(ttl), "container": pg.name if pg else None, "strategy": used}
        _write_state(project, state)
        if pg:
            kwargs, secrets = containers.postgrest_spec(pg, clone, clone, created, ttl)
            try:
                box, how = containers.start(run.docker(env), kwargs, secrets, wait=project.limits.container_ready)
            except BaseException:
                say(f"{clone} stays (see hotfix.status); the container did not start")
                raise
            say(f"{pg.name} ready ({box.short_id}: {how}); PostgREST answers at "
                f"{pg.url or f'port {pg.port} on {env.name}'}")
            rec["container"] = pg.name
        return rec


def _clone(host, source, clone, facts, strategy, terminate):
    """Clone `source` into `clone` by `strategy` (auto picks TEMPLATE when the source is idle, or when `terminate`
    ends its sessions); return the one used."""
    used = strategy
    if strategy == "auto":
        used = "template" if terminate or not facts["sessions"] else "dump"
        if facts["sessions"]:
            say(f"{source.name} has {facts['sessions']} other session(s): " + (
                "ending them for TEMPLATE (--terminate)" if terminate else
                "cloning online (pg_dump | pg_restore), no session is terminated"))
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
    return used


def _migration_targets(cfg, env, source):
    """Return the databases a hotfix migration goes to: the bugfix clone, and the dev database if configured."""
    targets = [dataclasses.replace(source, name=clone_name(cfg, source))]
    if cfg.dev_database:
        targets.append(env.database(cfg.dev_database))
    return targets


def migrate(project, file, dry_run=False, echo=False):
    """Apply a SQL migration file to the bugfix database (and dev), each in one transaction, recorded once."""
    cfg = settings(project)
    env, source = source_of(project, cfg)
    path = Path(file)
    if not path.is_file():
        raise ProdmirrorError(f"no migration file {file!r}")
    sql = migrations.decode(path.name, path.read_bytes())
    migrations.check_file(path.name, sql)
    targets = _migration_targets(cfg, env, source)
    table = cfg.migrations.table
    with Run(project, "hotfix.migrate", [env.name], dry_run=dry_run, echo=echo, migration=path.name) as run:
        host = run.hosts.for_db(source)
        for db in targets:
            if not postgres.exists(host, db):
                raise ProdmirrorError(f"{db.name} does not exist on {env.name}" +
                                      (" (run hotfix.create first)" if db.key == source.key else ""))
        plan = []
        for db in targets:
            done = migrations.applied(host, db, table)
            stale = migrations.edited(path.name, sql, done, db)  # "already applied" only when the checksum matches
            plan.append((db, done, stale, stale or ("already applied" if path.name in done else "apply")))
        if not run.proceed(f"hotfix.migrate {path.name}", [f"{db.name}: {what}" for db, _, _, what in plan]):
            return {db.name: what for db, _, _, what in plan}
        stale = [stale for _, _, stale, _ in plan if stale]
        if stale:  # before any database changes: an edited file stops them all
            raise ProdmirrorError(stale[0])
        results = {}
        for db, done, _, _ in plan:
            results[db.name] = migrations.apply(host, db, path.name, sql, table, done)
            say(f"{db.name}: {path.name} {results[db.name]}")
        run.record["results"] = results
        return results


def teardown(project, name=None, expired=False, force=False, echo=False):
    """Stop and remove the container, drop the bugfix database (idempotent). With `expired`, every
    environment past its TTL. Return the names torn down.

    Only clones prodmirror made are dropped (check_clone), and only containers labelled as serving them.
    Asks to confirm (production is protected) when there is something to remove.
    """
    cfg = settings(project)
    env, source = source_of(project, cfg)
    state = read_state(project)
    now = datetime.now(timezone.utc)
    names = [n for n, e in state.items() if _expires(e) <= now] if expired else [name or clone_name(cfg, source)]
    with Run(project, "hotfix.teardown", [env.name], echo=echo, databases=names) as run:
        run.lock()
        host, plan = run.hosts.for_db(source), []
        for clone in names:
            exists = postgres.exists(host, dataclasses.replace(source, name=clone))
            check_clone(project, env, source, state, clone, exists)
            box = state.get(clone, {}).get("container") or (cfg.postgrest.name if cfg.postgrest else None)
            if box and containers.serves(run.docker(env).client, box) != clone:
                box = None  # absent, or not the container of this clone: never ours to remove
            plan.append((clone, exists, box))
        if any(exists or box for _, exists, box in plan):
            guard.confirm(env, "hotfix.teardown", force)
        for clone, exists, box in plan:
            if box:
                containers.remove(run.docker(env).client, box)
                say(f"{box}: stopped and removed")
            if exists:
                postgres.drop(host, source, clone)
            say(f"{clone}: {'dropped' if exists else 'not there'}")
            state.pop(clone, None)
            _write_state(project, state)
        run.record["torn_down"] = names
        if not names:
            say("no ephemeral environment is past its TTL")
        return names


def _expires(entry):
    return datetime.fromisoformat(entry["created"]) + timedelta(seconds=_ttl_of(entry).seconds)


def status(project, echo=False):
    """Return [{name, database, exists, container, container_state, created, ttl, expires, expired}]."""
    cfg = settings(project)
    env, source = source_of(project, cfg)
    state = read_state(project)
    with Run(project, "hotfix.status", echo=echo, audit=False) as run:
        host = run.hosts.for_db(source)
        docker = None
        if cfg.postgrest or any(e.get("container") for e in state.values()):
            docker = run.docker(env).client
            for box in docker.containers.list(all=True, filters={"label": containers.LABEL}):
                name = box.labels[containers.LABEL]
                state.setdefault(name, {"database": box.labels.get("prodmirror.database", name), "container": box.name,
                                        "created": box.labels.get("prodmirror.created"),
                                        "ttl": box.labels.get("prodmirror.ttl", "0")})
        now, rows = datetime.now(timezone.utc), []
        for name, entry in sorted(state.items()):
            expires = _expires(entry) if entry.get("created") else None
            rows.append({"name": name, "database": entry["database"],
                         "exists": postgres.exists(host, dataclasses.replace(source, name=entry["database"])),
                         "container": entry.get("container"),
                         "container_state": containers.state(docker, entry["container"])
                         if docker and entry.get("container") else None,
                         "created": entry.get("created"), "ttl": str(_ttl_of(entry) or "?"),
                         "expires": expires.isoformat(timespec="seconds") if expires else None,
                         "expired": bool(expires and expires <= now)})
        return rows
