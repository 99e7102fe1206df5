"""db.backup.*: take backups now, list them, restore from them (seed 001's rake db:sync:backup:*).

The store itself (folders, manifests, verification, retention) is backup_store.py; restoring into an
environment is also what mirror.restore-db and mirror.production do with snapshots (`restore_into`).
"""

import shutil

from .. import backup_store, guard, hooks, syncstate
from ..engines import engine_for
from ..errors import BackupError, ProdmirrorError
from ..hosts import check_containers
from ..transfer import FileSource, restore_all
from ..ui import human_bytes, say
from .run import Run


def backup(project, env, keys=None, echo=False):
    """Back up the databases of `env` (all, or `keys`) that exist; return the Backup."""
    environment = project.env(env)
    dbs = [environment.database(k) for k in keys] if keys else list(environment.databases.values())
    if not dbs:
        raise ProdmirrorError(f"environment {env!r} has no databases configured")
    project.check(f"environments.{env}.ssh", *[db.path for db in dbs])
    with Run(project, f"db.backup.{env}", [env], echo=echo, databases=[db.key for db in dbs]) as run:
        run.lock()
        present = []
        for db in dbs:
            host = run.hosts.for_db(db)
            check_containers(host)
            if engine_for(db).exists(host, db):
                present.append(db)
            else:
                say(f"{env}/{db.key}: database {db.name} does not exist; nothing to back up")
        if not present:
            raise ProdmirrorError(f"none of the databases of {env} exist; no backup taken")
        taken = backup_store.take(project, run.hosts, env, present, reason="on request")
        run.record["backup"] = taken.name
        say(f"backup {taken.name} taken ({', '.join(taken.databases)})")
        return taken


def list_rows(project):
    """Return one row per database of every backup, newest first: (name, env, db, engine, size, age,
    verified). A one-table backup names its table, a database backup the database kept; `verified`
    says when the file last matched its sha256 (re-hashed now if it changed since), or that it is
    missing or no longer matches; a kept database is looked up on its server now. Backups whose
    manifest is invalid are skipped with one line each."""
    rows = []
    backups = backup_store.list_backups(project, warn=True)
    with Run(project, "db.backup.list", audit=False) as run:  # hosts open only if a kept database is looked up
        for b in backups:
            for key, entry in b.databases.items():
                if entry.get("kept_as"):
                    state, when = _kept_state(run, b, key), None
                    what = f"{key} (database {entry['kept_as']})"
                else:
                    state, when = b.check_entry(key)
                    what = f"{key} ({entry['object']} only)" if entry.get("object") else key
                rows.append((b.name, b.env, what, entry["engine"], human_bytes(entry["size"]),
                             backup_store.age(b.created), f"yes, {backup_store.age(when)} ago" if when else state))
    return rows


def _kept_state(run, backup, key):
    """'yes, now' when the kept database is still there (the same oid), else 'MISSING' or why not."""
    try:
        db = run.project.env(backup.env).database(key)
    except ProdmirrorError:
        return "not configured"
    return "yes, now" if backup.kept_state(key, run.hosts.for_db(db), db) == "yes" else "MISSING"


def restore_backup(project, name, target, keys=None, force=False, dry_run=False, task=None, echo=False):
    """Restore databases (or the one table) of backup `name` into `target`, backing up the target first.
    Return the audit record."""
    task = task or f"db.backup.restore-{target}"
    taken = backup_store.get(project, name)
    dst_env = project.env(target)
    chosen = list(keys) if keys else list(taken.databases)
    dbs = [dst_env.database(k) for k in chosen]
    project.check(f"environments.{target}.ssh", *[db.path for db in dbs])
    with Run(project, task, [target], dry_run=dry_run, echo=echo, direction=f"backup {name} -> {target}",
             databases=chosen) as run:
        if taken.kind == "database" and taken.env != target:
            raise BackupError(f"backup {name} keeps {taken.env}'s previous databases on {taken.env}'s server; "
                              f"it can only be restored into {taken.env}")
        # hashed (or looked up) once, before anything runs
        paths = {key: taken.verify(key, run.hosts.for_db(db), db) for key, db in zip(chosen, dbs)}
        steps = [f"lock {target}", f"back up {target}: {', '.join(chosen)} (those that exist there)"]
        for k, db in zip(chosen, dbs):
            entry = taken.databases[k]
            if entry.get("kept_as"):
                steps.append(f"{k}: swap database {entry['kept_as']} in for {target} {db.name} (a rename: instant), "
                             f"keeping the current one as a database backup")
                continue
            what = f"table {entry['object']}" if entry.get("object") else "database"
            steps.append(f"{k}: restore {what} from {entry['file']} ({human_bytes(entry['size'])}, sha256 verified) "
                         f"into {target} {db.name}, atomically")
        steps += [f"{db.key}: after-sync hooks ({', '.join(db.after_sync)})" for db in dbs if db.after_sync]
        if not run.proceed(f"{task}: backup {name} ({taken.env}, {taken.created}) → {target}", steps):
            return None
        restore_into(run, taken, target, dbs, force=force, paths=paths)
        return run.record


def restore_into(run, taken, target, dbs, force=False, paths=None):
    """Within a locked run: back up `target`'s existing databases, then restore each of `dbs` from
    backup (or snapshot) `taken` atomically and run its after-sync hooks. Fills run.record.

    `paths` ({key: file}) are files the caller already verified; the others are verified here first."""
    project, hosts = run.project, run.hosts
    for db in dbs:
        engine = taken.databases.get(db.key, {}).get("engine")
        if engine is not None and engine != db.engine:
            raise BackupError(f"{taken.name}: {db.key} is a {engine} backup; {db.path} is a {db.engine} database")
    if taken.kind == "database":
        return _swap_kept_in(run, taken, target, dbs, force)
    paths = {db.key: (paths or {}).get(db.key) or taken.verify(db.key) for db in dbs}
    portable = taken.env != target  # a backup of this very environment keeps its owners and grants
    targets = [(db, hosts.for_db(db)) for db in dbs]
    check_containers(*[h for _, h in targets])
    guard.confirm(project.env(target), run.task, force)
    existing = [db for db, h in targets if engine_for(db).exists(h, db)]
    keeper = backup_store.KeptDatabases(project, target, reason=f"before {run.task} {taken.name}")
    kept = {db.key: keeper.name_for(db) for db in existing
            if not taken.databases[db.key].get("object") and backup_store.keeps_database(project, db)}
    existing = [db for db in existing if db.key not in kept]
    if existing:
        # Retention must not remove the backup being restored, whatever backups.keep says.
        before = backup_store.take(project, hosts, target, existing, reason=f"before {run.task} {taken.name}",
                                   protect={taken.name})
        run.record["backup"] = before.name
        say(f"backup of {target} taken: {before.name}")
    jobs = []
    for db, host in targets:
        engine, entry = engine_for(db), taken.databases[db.key]
        if entry.get("object"):
            ref = entry["object_ref"]
            restore = engine.ObjectReplace(host, db, ref if isinstance(ref, str) or isinstance(ref[0], list) else tuple(ref))
        else:
            restore = engine.AtomicRestore(host, db, portable=portable,
                                           **({"keep_as": kept[db.key]} if db.key in kept else {}))
        jobs.append((lambda path=paths[db.key]: FileSource(path), restore, f"{db.key}: {taken.name} → {target}"))
    _forget(run, target, dbs)
    try:
        restore_all(jobs)  # none is swapped in until all have arrived
    except BaseException:
        keeper.salvage(hosts)
        raise
    if kept:
        aside = keeper.commit(hosts, protect={taken.name})
        run.record["backup"] = ", ".join(filter(None, [run.record["backup"], aside and aside.name]))
        if aside:
            say(f"previous {target} databases kept as database backup {aside.name}")
    _after_restore(run, target, dbs)


def _swap_kept_in(run, taken, target, dbs, force):
    """Restore a database backup: each kept database is renamed back into place, the current one
    renamed aside as a new database backup, one rename transaction per database (instant at any
    size); a later failure puts the earlier ones back. The restored backup is used up."""
    project, hosts = run.project, run.hosts
    for db in dbs:
        taken.verify(db.key, hosts.for_db(db), db)
    guard.confirm(project.env(target), run.task, force)
    _forget(run, target, dbs)
    keeper = backup_store.KeptDatabases(project, target, reason=f"before {run.task} {taken.name}")
    done = []
    try:
        for db in dbs:
            engine, host = engine_for(db), hosts.for_db(db)
            aside = keeper.name_for(db) if engine.exists(host, db) else None
            engine.swap_kept(host, db, taken.databases[db.key]["kept_as"], aside)
            done.append((db, aside))
    except BaseException:
        try:
            for db, aside in reversed(done):
                if aside:  # the kept database goes back under its kept name, the replaced one into place
                    engine_for(db).swap_kept(hosts.for_db(db), db, aside, taken.databases[db.key]["kept_as"])
        finally:
            keeper.salvage(hosts)  # what could not be put back is listed, never lost
        raise
    for db, _ in done:
        del taken.databases[db.key]  # now live again: no longer a backup
    if taken.databases:
        backup_store.save_manifest(taken)
    else:
        shutil.rmtree(taken.path, ignore_errors=True)
    aside = keeper.commit(hosts, protect={taken.name})  # what is left of it, after a partial --db restore
    run.record["backup"] = aside.name if aside else None
    if aside:
        say(f"previous {target} databases kept as database backup {aside.name}")
    _after_restore(run, target, dbs)


def _forget(run, target, dbs):
    """What the target is about to hold is the backup's state, not what the last sync left: a later push
    must not take the difference for work done there. Forgotten before anything is replaced, so that
    no failure after it can leave the old record standing."""
    syncstate.forget(run.project, [db.key for db in dbs], target)


def _after_restore(run, target, dbs):
    project, hosts = run.project, run.hosts
    for db in dbs:
        if db.after_sync:
            run.record.setdefault("after_sync", {})[db.key] = hooks.run_after_sync(project, hosts, db)
