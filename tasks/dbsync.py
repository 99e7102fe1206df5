"""The library behind db.sync.* and db.backup.*: copy databases (or one table/collection) between
environments, back them up, restore them, compare them. Every function takes a Project and plain
options, so tests call them directly; the invoke tasks only parse options and print.

A copy = plan → confirm → lock → drift check (protected target) → back up the target → stream `dump`
on the source into a restore on the target (a temporary database swapped in once complete, or one
transaction for a single table) → re-apply the target's grants → after-sync hooks → record → audit.
"""

import re

from . import backups, guard, hooks, syncstate
from .engines import engine_for
from .errors import CommandError, ProdmirrorError
from .hosts import ContainerHost, Hosts
from .transfer import FileSource, pump
from .ui import Progress, human_bytes, print_plan, say

# A table/collection name never needs these; rejecting them up front keeps names out of shells and SQL.
UNSAFE = re.compile(r"""[\s;&|`$<>\\'"(){}\[\]*?!#~,=%^]""")


def check_object_name(name):
    """Raise ProdmirrorError unless `name` is a plain table/collection name (optionally schema-qualified)."""
    if not name or UNSAFE.search(name) or name.startswith(("-", ".")) or ".." in name or len(name) > 120:
        raise ProdmirrorError(f"invalid table or collection name {name!r}: letters, digits, '_', '-' and '.' only")


def check_containers(*hosts):
    """Raise HostError (one line) if a container host among `hosts` is not running."""
    for host in hosts:
        if isinstance(host, ContainerHost):
            host.check_running()


def stream_into(source, restore, label):
    """Pump `source` (a Proc or FileSource) into `restore` (AtomicRestore or ObjectReplace) and commit.

    A source that fails (killed dump, lost connection) or a restore that fails leaves the target as it
    was: the restore is aborted and nothing is swapped in or committed.
    """
    sink = restore.begin()
    try:
        with Progress(label) as progress:
            moved = pump(source, [sink], progress)
        if moved.broken_sink and hasattr(source, "kill"):
            source.kill()
        if hasattr(source, "check"):
            source.check()
        if not moved.broken_sink and hasattr(restore, "finish"):
            restore.finish()
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


def _plan_or_stop(title, steps, dry_run, project, record):
    print_plan(title, steps, dry_run)
    if dry_run:
        guard.audit(project.state_dir, {**record, "result": "dry-run"})
    return dry_run


def copy(project, source, target, keys=None, force=False, dry_run=False, task=None, echo=False):
    """Copy the databases paired by key from environment `source` into `target`; return the audit record.

    The target's existing databases are backed up first and replaced atomically. Into a protected
    target (production) the copy also refuses on drift unless forced, and keeps the target's grants.
    """
    task = task or f"copy {source} -> {target}"
    pairs = project.pairs(source, target, keys)
    dst_env = project.env(target)
    keys = [a.key for a, _ in pairs]
    record = {"task": task, "direction": f"{source} -> {target}", "databases": keys}
    steps = [f"lock {source} and {target}"]
    if dst_env.protected:
        steps.append(f"refuse if {target} changed since the last sync (drift guard){' — overridden by --force' if guard.forced(force) else ''}")
    steps += [f"back up {target}: {', '.join(keys)} (those that exist there), verified",
              *[f"{a.key}: stream {source} {a.name} into a new {target} database, swap it in for {b.name} when complete"
                for a, b in pairs]]
    if dst_env.protected:
        steps.append(f"re-apply {target}'s owners and grants")
    steps += [f"{b.key}: after-sync hooks ({', '.join(b.after_sync)})" for _, b in pairs if b.after_sync]
    steps.append(f"record the sync; audit log {project.state_dir / 'audit.jsonl'}")
    if _plan_or_stop(f"{task}: {source} → {target}", steps, dry_run, project, record):
        return None
    hosts = Hosts(project, echo)
    try:
        with guard.operation(project, task, [source, target], direction=record["direction"], databases=keys) as rec:
            plan = []
            for a, b in pairs:
                src_host, dst_host = hosts.for_db(a), hosts.for_db(b)
                check_containers(src_host, dst_host)
                engine = engine_for(a)
                facts = engine.preflight(src_host, a, dst_host, b)
                if dst_env.protected and facts["target_exists"]:
                    overridden = guard.check_drift(syncstate.read(project).get(a.key), target,
                                                   engine.counters(dst_host, b), force, a.key)
                    if overridden:
                        rec.setdefault("drift_overridden", {})[a.key] = overridden
                plan.append((engine, a, b, src_host, dst_host, facts))
            guard.confirm(dst_env, task, force)  # asked once the checks passed: nobody confirms a doomed run
            existing = [b for _, _, b, _, _, facts in plan if facts["target_exists"]]
            if existing:
                taken = backups.take(project, hosts, target, existing, reason=f"before {task}")
                rec["backup"] = taken.name
                say(f"backup of {target} taken: {taken.name}")
            for engine, a, b, src_host, dst_host, facts in plan:
                # Restores drop owners and grants (the source's roles may not exist here); a protected
                # target gets its own back afterwards, for every object that still exists.
                kept = engine.privileges(dst_host, b) if dst_env.protected and facts["target_exists"] else []
                moved = stream_into(engine.dump(src_host, a), engine.AtomicRestore(dst_host, b, portable=True),
                                    f"{a.key}: {source} → {target}")
                rec.setdefault("bytes", {})[a.key] = moved.bytes
                if kept:
                    failed = engine.apply_privileges(dst_host, b, kept)
                    say(f"{b.key}: re-applied {len(kept) - failed} of {len(kept)} owner/grant statements of {target}")
                if b.after_sync:
                    rec.setdefault("after_sync", {})[b.key] = hooks.run_after_sync(project, hosts, b)
                # Only a protected side's counters are ever compared (the drift guard): read just those.
                syncstate.record(project, a.key, source, target, task, {
                    env.name: engine.counters(host, db) for env, host, db in
                    ((project.env(source), src_host, a), (dst_env, dst_host, b)) if env.protected})
            say(f"{task}: done ({', '.join(keys)})"
                + (f"; previous {target} data is in backup {rec['backup']}" if rec["backup"] else ""))
            return rec
    finally:
        hosts.close()


def copy_object(project, source, target, name, key=None, force=False, dry_run=False, task=None, echo=False):
    """Copy one table (Postgres) or collection (MongoDB) `name` from `source` into `target`.

    The target's copy of it is backed up first; into a protected target the copy refuses if that
    table changed there since the last sync, unless forced.
    """
    check_object_name(name)
    task = task or f"copy {name} {source} -> {target}"
    pairs = project.pairs(source, target, [key] if key else None)
    if len(pairs) > 1:
        raise ProdmirrorError(f"several databases are configured ({', '.join(a.key for a, _ in pairs)}): "
                              "pass --db KEY to say which one holds " + repr(name))
    a, b = pairs[0]
    dst_env = project.env(target)
    record = {"task": task, "direction": f"{source} -> {target}", "databases": [a.key], "object": name}
    steps = [f"lock {source} and {target}", f"find {name!r} in {source} {a.name} and {target} {b.name}"]
    if dst_env.protected:
        steps.append(f"refuse if {name} changed in {target} since the last sync (drift guard)")
    steps += [f"back up {target}'s {name}", f"replace {target}'s {name} with {source}'s in one transaction"]
    steps += [f"{b.key}: after-sync hooks ({', '.join(b.after_sync)})"] if b.after_sync else []
    if _plan_or_stop(f"{task}: {source} → {target}", steps, dry_run, project, record):
        return None
    hosts = Hosts(project, echo)
    try:
        with guard.operation(project, task, [source, target], direction=record["direction"], databases=[a.key],
                             object=name) as rec:
            src_host, dst_host = hosts.for_db(a), hosts.for_db(b)
            check_containers(src_host, dst_host)
            engine = engine_for(a)
            obj = engine.resolve_object(src_host, a, name)
            if engine.resolve_object(dst_host, b, engine.object_label(obj)) != obj:
                raise ProdmirrorError(f"{name!r} is not the same object in {target}; run a full sync")
            label = engine.object_label(obj)
            if dst_env.protected:
                overridden = guard.check_drift(syncstate.read(project).get(a.key), target,
                                               engine.counters(dst_host, b), force, a.key, tables={label})
                if overridden:
                    rec["drift_overridden"] = overridden
            guard.confirm(dst_env, task, force)
            writer = backups.BackupWriter(project, target, reason=f"before {task}")
            try:
                writer.add(dst_host, b, obj)
                rec["backup"] = writer.commit().name
            except BaseException:
                writer.abort()
                raise
            say(f"backup of {target}'s {label} taken: {rec['backup']}")
            try:
                moved = stream_into(engine.dump_object(src_host, a, obj), engine.ObjectReplace(dst_host, b, obj),
                                    f"{label}: {source} → {target}")
            except CommandError as exc:
                raise ProdmirrorError(f"{target}: {engine.explain_object_failure(exc, label)}") from None
            rec["bytes"] = {a.key: moved.bytes}
            if b.after_sync:
                rec["after_sync"] = {b.key: hooks.run_after_sync(project, hosts, b)}
            syncstate.record_object(project, a.key, label, {
                env.name: engine.counters(host, db) for env, host, db in
                ((project.env(source), src_host, a), (dst_env, dst_host, b)) if env.protected})
            say(f"{task}: {label} done; previous {target} rows are in backup {rec['backup']}")
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
                check_containers(host)
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


def restore_backup(project, name, target, keys=None, force=False, dry_run=False, task=None, echo=False,
                   folder=None):
    """Restore databases (or the one table) of backup `name` into `target`, backing up the target first.

    `folder` selects another store of the same shape (mirror snapshots). Return the audit record.
    """
    task = task or f"db.backup.restore-{target}"
    taken = backups.get(project, name, folder)
    dst_env = project.env(target)
    chosen = list(keys) if keys else list(taken.databases)
    dbs = [dst_env.database(k) for k in chosen]
    paths = {key: taken.verify(key) for key in chosen}  # hashed once, before anything runs
    project.check(f"environments.{target}.ssh", *[db.path for db in dbs])
    steps = [f"lock {target}", f"back up {target}: {', '.join(chosen)} (those that exist there)"]
    for k, db in zip(chosen, dbs):
        entry = taken.databases[k]
        what = f"table {entry['object']}" if entry.get("object") else "database"
        steps.append(f"{k}: restore {what} from {entry['file']} ({human_bytes(entry['size'])}, sha256 verified) "
                     f"into {target} {db.name}, atomically")
    steps += [f"{db.key}: after-sync hooks ({', '.join(db.after_sync)})" for db in dbs if db.after_sync]
    record = {"task": task, "direction": f"backup {name} -> {target}", "databases": chosen}
    if _plan_or_stop(f"{task}: backup {name} ({taken.env}, {taken.created}) → {target}", steps, dry_run, project, record):
        return None
    hosts = Hosts(project, echo)
    try:
        with guard.operation(project, task, [target], direction=record["direction"], databases=chosen) as rec:
            restore_into(project, hosts, taken, target, dbs, task, rec, force=force, paths=paths)
            return rec
    finally:
        hosts.close()


def restore_into(project, hosts, taken, target, dbs, task, rec, force=False, paths=None):
    """Within a locked operation: back up `target`'s existing databases, then restore each of `dbs` from
    backup `taken` atomically and run its after-sync hooks. Fills `rec` (backup taken, hooks).

    `paths` ({key: file}) are files the caller already verified; the others are verified here first."""
    paths = {db.key: (paths or {}).get(db.key) or taken.verify(db.key) for db in dbs}
    dst_env = project.env(target)
    portable = taken.env != target  # a backup of this very environment keeps its owners and grants
    targets = [(db, hosts.for_db(db)) for db in dbs]
    check_containers(*[h for _, h in targets])
    guard.confirm(dst_env, task, force)
    existing = [db for db, h in targets if engine_for(db).exists(h, db)]
    if existing:
        before = backups.take(project, hosts, target, existing, reason=f"before {task} {taken.name}")
        rec["backup"] = before.name
        say(f"backup of {target} taken: {before.name}")
    for db, host in targets:
        engine, entry = engine_for(db), taken.databases[db.key]
        if entry.get("object"):
            ref = entry["object_ref"]
            restore = engine.ObjectReplace(host, db, tuple(ref) if isinstance(ref, list) else ref)
        else:
            restore = engine.AtomicRestore(host, db, portable)
        source = FileSource(paths[db.key])
        try:
            stream_into(source, restore, f"{db.key}: {taken.name} → {target}")
        finally:
            source.close()
        if db.after_sync:
            rec.setdefault("after_sync", {})[db.key] = hooks.run_after_sync(project, hosts, db)


def status(project, source="production", target="local", keys=None, echo=False):
    """Return [{key, source, target, last, drift}] comparing both sides (fingerprints, and what changed
    in `source` since the last sync)."""
    pairs = project.pairs(source, target, keys)
    state = syncstate.read(project)
    hosts = Hosts(project, echo)
    report = []
    try:
        for a, b in pairs:
            engine = engine_for(a)
            sides, drift = [], None
            for db in (a, b):
                host = hosts.for_db(db)
                check_containers(host)
                sides.append(engine.fingerprint(host, db) if engine.exists(host, db) else None)
            last = state.get(a.key)
            if sides[0] is not None and last and source in last.get("counters", {}):
                drift = guard.drift(last["counters"][source], engine.counters(hosts.for_db(a), a))
            report.append({"key": a.key, "source": sides[0], "target": sides[1], "last": last, "drift": drift})
    finally:
        hosts.close()
    return report
