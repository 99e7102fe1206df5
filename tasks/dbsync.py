"""The library behind db.sync.* and db.backup.*: copy databases between environments, back them up,
restore them, and compare them. Every function takes a Project and plain options, so tests call them
directly; the invoke tasks only parse options and print.

A copy = plan → confirm → lock → back up the target → stream `dump` on the source into `restore` on the
target (into a temporary database, swapped in only once complete) → record the sync → audit → unlock.
"""

from . import backups, guard, syncstate
from .engines import engine_for
from .errors import ProdmirrorError
from .hosts import ContainerHost, Hosts
from .transfer import FileSource, pump
from .ui import Progress, human_bytes, print_plan, say


def _preflight_hosts(*hosts):
    for host in hosts:
        if isinstance(host, ContainerHost):
            host.check_running()


def stream_into(engine, source, restore, label):
    """Pump `source` (a Proc or FileSource) into a new AtomicRestore and commit it; abort on any failure.

    A source that fails (killed pg_dump, lost connection) or a restore that fails leaves the target as
    it was: the temporary database is dropped and nothing is swapped.
    """
    sink = restore.begin()
    try:
        with Progress(label) as progress:
            moved = pump(source, [sink], progress)
        if moved.broken_sink and hasattr(source, "kill"):
            source.kill()
        if hasattr(source, "check"):
            source.check()
        sink.check()
        if moved.broken_sink:
            raise ProdmirrorError(f"{label}: the restore stopped reading before the end")
        restore.commit()
        return moved
    except BaseException:
        for proc in (source, sink):
            if hasattr(proc, "kill"):
                proc.kill()
        restore.abort()
        raise


def copy(project, source, target, keys=None, force=False, dry_run=False, task=None, echo=False):
    """Copy the databases paired by key from environment `source` into `target`; return the audit record.

    The target's existing databases are backed up first; each database is replaced atomically.
    """
    task = task or f"copy {source} -> {target}"
    pairs = project.pairs(source, target, keys)
    dst_env = project.env(target)
    portable = target != "production"  # production keeps owners and grants; elsewhere its roles may not exist
    print_plan(f"{task}: {source} → {target}", [
        f"lock {source} and {target}",
        f"back up {target}: {', '.join(b.key for _, b in pairs)} (those that exist there)",
        *[f"{a.key}: stream {source} {a.name} into a new {target} database, swap it in for {b.name} when complete"
          for a, b in pairs],
        f"record the sync; audit log {project.state_dir / 'audit.jsonl'}",
    ], dry_run)
    if dry_run:
        guard.audit(project.state_dir, {"task": task, "direction": f"{source} -> {target}",
                                        "databases": [a.key for a, _ in pairs], "result": "dry-run"})
        return None
    guard.confirm(dst_env, task, force)
    hosts = Hosts(project, echo)
    try:
        with guard.operation(project, task, [source, target], direction=f"{source} -> {target}",
                             databases=[a.key for a, _ in pairs]) as rec:
            plan = []
            for a, b in pairs:
                src_host, dst_host = hosts.for_db(a), hosts.for_db(b)
                _preflight_hosts(src_host, dst_host)
                engine = engine_for(a)
                plan.append((engine, a, b, src_host, dst_host, engine.preflight(src_host, a, dst_host, b)))
            existing = [b for _, _, b, _, _, facts in plan if facts["target_exists"]]
            if existing:
                taken = backups.take(project, hosts, target, existing, reason=f"before {task}")
                rec["backup"] = taken.name
                say(f"backup of {target} taken: {taken.name}")
            for engine, a, b, src_host, dst_host, _ in plan:
                moved = stream_into(engine, engine.dump(src_host, a), engine.AtomicRestore(dst_host, b, portable),
                                    f"{a.key}: {source} → {target}")
                rec.setdefault("bytes", {})[a.key] = moved.bytes
                syncstate.record(project, a.key, source, target, task, {
                    source: engine.counters(src_host, a), target: engine.counters(dst_host, b)})
            say(f"{task}: done ({', '.join(a.key for a, _ in pairs)})"
                + (f"; previous {target} data is in backup {rec['backup']}" if rec["backup"] else ""))
            return rec
    finally:
        hosts.close()


def backup(project, env, keys=None, echo=False):
    """Back up the databases of `env` (all, or `keys`) that exist; return the Backup."""
    environment = project.env(env)
    dbs = [environment.database(k) for k in keys] if keys else list(environment.databases.values())
    if not dbs:
        raise ProdmirrorError(f"environment {env!r} has no databases configured")
    project.check(f"environments.{env}.ssh", *[db.path for db in dbs])
    hosts = Hosts(project, echo)
    try:
        with guard.operation(project, f"db.backup.{env}", [env], databases=[db.key for db in dbs]) as rec:
            present = []
            for db in dbs:
                host = hosts.for_db(db)
                _preflight_hosts(host)
                if engine_for(db).exists(host, db):
                    present.append(db)
                else:
                    say(f"{env}/{db.key}: database {db.name} does not exist; nothing to back up")
            if not present:
                raise ProdmirrorError(f"none of the databases of {env} exist; no backup taken")
            taken = backups.take(project, hosts, env, present, reason="on request")
            rec["backup"] = taken.name
            say(f"backup {taken.name} taken ({', '.join(taken.databases)})")
            return taken
    finally:
        hosts.close()


def restore_backup(project, name, target, keys=None, force=False, dry_run=False, task=None, echo=False):
    """Restore databases of backup `name` into environment `target`, backing up the target's current state first."""
    task = task or f"db.backup.restore-{target}"
    taken = backups.get(project, name)
    dst_env = project.env(target)
    chosen = list(keys) if keys else list(taken.databases)
    dbs = [dst_env.database(k) for k in chosen]
    for key in chosen:
        taken.verify(key)
    project.check(f"environments.{target}.ssh", *[db.path for db in dbs])
    print_plan(f"{task}: backup {name} ({taken.env}, {taken.created}) → {target}", [
        f"lock {target}",
        f"back up {target}: {', '.join(chosen)} (those that exist there)",
        *[f"{k}: restore {taken.databases[k]['file']} ({human_bytes(taken.databases[k]['size'])}, sha256 verified) "
          f"into a new {target} database, swap it in for {db.name}" for k, db in zip(chosen, dbs)],
    ], dry_run)
    if dry_run:
        return None
    guard.confirm(dst_env, task, force)
    hosts = Hosts(project, echo)
    try:
        with guard.operation(project, task, [target], direction=f"backup {name} -> {target}", databases=chosen) as rec:
            targets = [(db, hosts.for_db(db)) for db in dbs]
            _preflight_hosts(*[h for _, h in targets])
            existing = [db for db, h in targets if engine_for(db).exists(h, db)]
            if existing:
                before = backups.take(project, hosts, target, existing, reason=f"before {task} {name}")
                rec["backup"] = before.name
                say(f"backup of {target} taken: {before.name}")
            for db, host in targets:
                engine = engine_for(db)
                source = FileSource(taken.verify(db.key))
                try:
                    stream_into(engine, source, engine.AtomicRestore(host, db, portable=target != "production"),
                                f"{db.key}: {name} → {target}")
                finally:
                    source.close()
            return rec
    finally:
        hosts.close()


def status(project, source="production", target="local", keys=None, echo=False):
    """Return [{key, tables: [(name, src rows, dst rows, equal)], sequences_differ, last}] comparing both sides."""
    pairs = project.pairs(source, target, keys)
    state = syncstate.read(project)
    hosts = Hosts(project, echo)
    report = []
    try:
        for a, b in pairs:
            engine = engine_for(a)
            sides = []
            for db in (a, b):
                host = hosts.for_db(db)
                _preflight_hosts(host)
                sides.append(engine.fingerprint(host, db) if engine.exists(host, db) else None)
            report.append({"key": a.key, "source": sides[0], "target": sides[1], "last": state.get(a.key)})
    finally:
        hosts.close()
    return report
