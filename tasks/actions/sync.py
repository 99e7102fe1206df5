"""db.sync.*: copy databases, or one table/collection, between environments (seed 001), and compare them.

A copy = plan → lock → checks (tools, containers, drift guard on a protected target) → confirm →
back up the target → stream `dump` on the source into a Restore on the target (a temporary database
swapped in once complete, or one transaction for a single table) → after-sync hooks → record → audit.
"""

import re

from .. import backup_store, drift, guard, hooks, syncstate
from ..engines import engine_for
from ..errors import CommandError, ProdmirrorError
from ..hosts import check_containers
from ..transfer import restore_all, stream_into
from ..ui import say
from .run import Run

# A table/collection name never needs these; rejecting them up front keeps names out of shells and SQL.
UNSAFE = re.compile(r"""[\s;&|`$<>\\'"(){}\[\]*?!#~,=%^]""")


def check_object_name(name):
    """Raise ProdmirrorError unless `name` is a plain table/collection name (optionally schema-qualified)."""
    if not name or UNSAFE.search(name) or name.startswith(("-", ".")) or ".." in name or len(name) > 120:
        raise ProdmirrorError(f"invalid table or collection name {name!r}: letters, digits, '_', '-' and '.' only")


def _protected_counters(project, sides):
    """Given [(env name, host, db)], return {env: counters} of the protected ones (only those are ever compared)."""
    return {env: engine_for(db).counters(host, db) for env, host, db in sides if project.env(env).protected}


def copy(project, source, target, keys=None, force=False, dry_run=False, task=None, echo=False):
    """Copy the databases paired by key from environment `source` into `target`; return the audit record.

    The target's existing databases are backed up first and replaced atomically. Into a protected
    target (production) the copy also refuses on drift unless forced, and keeps the target's grants.
    """
    task = task or f"copy {source} -> {target}"
    pairs = project.pairs(source, target, keys)
    dst_env = project.env(target)
    keys = [a.key for a, _ in pairs]
    steps = [f"lock {source} and {target}"]
    if dst_env.protected:
        steps.append(f"refuse if {target} changed since the last sync (drift guard)"
                     f"{' — overridden by --force' if guard.forced(force) else ''}")
    steps += [f"back up {target}: {', '.join(keys)} (those that exist there), verified",
              *[f"{a.key}: stream {source} {a.name} into a new {target} database, swap it in for {b.name} when complete"
                for a, b in pairs]]
    if dst_env.protected:
        steps.append(f"re-apply {target}'s owners and grants")
    steps += [f"{b.key}: after-sync hooks ({', '.join(b.after_sync)})" for _, b in pairs if b.after_sync]
    steps.append(f"record the sync; audit log {project.state_dir / 'audit.jsonl'}")
    with Run(project, task, [source, target], dry_run=dry_run, echo=echo,
             direction=f"{source} -> {target}", databases=keys) as run:
        if not run.proceed(f"{task}: {source} → {target}", steps):
            return None
        rec, plan = run.record, []
        state = syncstate.read(project)  # read first: a corrupt state file stops the run before anything moves
        for a, b in pairs:
            src_host, dst_host = run.hosts.for_db(a), run.hosts.for_db(b)
            check_containers(src_host, dst_host)
            engine = engine_for(a)
            facts = engine.preflight(src_host, a, dst_host, b)
            if dst_env.protected and facts["target_exists"]:
                overridden = drift.check_drift(state.get(a.key), target, engine.counters(dst_host, b), force, a.key)
                if overridden:
                    rec.setdefault("drift_overridden", {})[a.key] = overridden
            plan.append((engine, a, b, src_host, dst_host, facts))
        guard.confirm(dst_env, task, force)  # asked once the checks passed: nobody confirms a doomed run
        existing = [b for _, _, b, _, _, facts in plan if facts["target_exists"]]
        if existing:
            taken = backup_store.take(project, run.hosts, target, existing, reason=f"before {task}")
            rec["backup"] = taken.name
            say(f"backup of {target} taken: {taken.name}")
        # Restores drop owners and grants (the source's roles may not exist here); a protected target
        # gets its own back afterwards, for every object that still exists. None is swapped in until
        # every database has arrived.
        jobs = [(lambda engine=engine, a=a, host=src_host: engine.dump(host, a),
                 engine.AtomicRestore(dst_host, b, portable=True,
                                      keep_privileges=dst_env.protected and facts["target_exists"]),
                 f"{a.key}: {source} → {target}") for engine, a, b, src_host, dst_host, facts in plan]
        for (_, a, _, _, _, _), moved in zip(plan, restore_all(jobs)):
            rec.setdefault("bytes", {})[a.key] = moved.bytes
        for engine, a, b, src_host, dst_host, facts in plan:
            if b.after_sync:
                rec.setdefault("after_sync", {})[b.key] = hooks.run_after_sync(project, run.hosts, b)
            syncstate.record(project, a.key, source, target, task,
                             _protected_counters(project, [(source, src_host, a), (target, dst_host, b)]))
        say(f"{task}: done ({', '.join(keys)})"
            + (f"; previous {target} data is in backup {rec['backup']}" if rec["backup"] else ""))
        return rec


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
    steps = [f"lock {source} and {target}", f"find {name!r} in {source} {a.name} and {target} {b.name}"]
    if dst_env.protected:
        steps.append(f"refuse if {name} changed in {target} since the last sync (drift guard)")
    steps += [f"back up {target}'s {name}", f"replace {target}'s {name} with {source}'s in one transaction"]
    steps += [f"{b.key}: after-sync hooks ({', '.join(b.after_sync)})"] if b.after_sync else []
    with Run(project, task, [source, target], dry_run=dry_run, echo=echo,
             direction=f"{source} -> {target}", databases=[a.key], object=name) as run:
        if not run.proceed(f"{task}: {source} → {target}", steps):
            return None
        rec = run.record
        state = syncstate.read(project)  # read first: a corrupt state file stops the run before anything moves
        src_host, dst_host = run.hosts.for_db(a), run.hosts.for_db(b)
        check_containers(src_host, dst_host)
        engine = engine_for(a)
        obj = engine.resolve_object(src_host, a, name)
        if engine.resolve_object(dst_host, b, engine.object_label(obj)) != obj:
            raise ProdmirrorError(f"{name!r} is not the same object in {target}; run a full sync")
        label = engine.object_label(obj)
        if dst_env.protected:
            overridden = drift.check_drift(state.get(a.key), target, engine.counters(dst_host, b), force, a.key,
                                           tables={label})
            if overridden:
                rec["drift_overridden"] = overridden
        guard.confirm(dst_env, task, force)
        rec["backup"] = backup_store.take(project, run.hosts, target, [b], reason=f"before {task}",
                                          objects={b.key: obj}).name
        say(f"backup of {target}'s {label} taken: {rec['backup']}")
        try:
            moved = stream_into(engine.dump_object(src_host, a, obj), engine.ObjectReplace(dst_host, b, obj),
                                f"{label}: {source} → {target}")
        except CommandError as exc:
            raise ProdmirrorError(f"{target}: {engine.explain_object_failure(exc, label)}") from None
        rec["bytes"] = {a.key: moved.bytes}
        if b.after_sync:
            rec["after_sync"] = {b.key: hooks.run_after_sync(project, run.hosts, b)}
        syncstate.record_object(project, a.key, label,
                                _protected_counters(project, [(source, src_host, a), (target, dst_host, b)]))
        say(f"{task}: {label} done; previous {target} rows are in backup {rec['backup']}")
        return rec


def status(project, source="production", target="local", keys=None, echo=False):
    """Return [{key, source, target, schema, last, drift}] comparing both sides: fingerprints, the
    schema differences (`schema_differences`), and what changed in `source` since the last sync."""
    pairs = project.pairs(source, target, keys)
    state = syncstate.read(project)
    report = []
    with Run(project, "db.sync.status", echo=echo, audit=False) as run:
        for a, b in pairs:
            engine = engine_for(a)
            sides, schemas, changed = [], [], None
            for db in (a, b):
                host = run.hosts.for_db(db)
                check_containers(host)
                present = engine.exists(host, db)
                sides.append(engine.fingerprint(host, db) if present else None)
                schemas.append(engine.schema(host, db) if present else None)
            last = state.get(a.key)
            if sides[0] is not None and last and source in last.get("counters", {}):
                changed = drift.drift(last["counters"][source], engine.counters(run.hosts.for_db(a), a))
            differ = schema_differences(*schemas, names=(source, target)) if None not in schemas else []
            report.append({"key": a.key, "source": sides[0], "target": sides[1], "schema": differ, "last": last,
                           "drift": changed})
    return report


def schema_differences(a, b, names=("production", "local")):
    """Given two schema signatures ({object: {'kind name': definition}}, engines' schema()), return one
    readable line per difference, e.g. 'public.users: index users_email_key only in production'."""
    lines = []
    for obj in sorted(set(a) | set(b)):
        if obj not in a or obj not in b:
            lines.append(f"{obj}: only in {names[0] if obj in a else names[1]}")
            continue
        for key in sorted(set(a[obj]) | set(b[obj])):
            mine, theirs = a[obj].get(key), b[obj].get(key)
            if mine == theirs:
                continue
            if mine is None or theirs is None:
                lines.append(f"{obj}: {key} only in {names[0] if theirs is None else names[1]}")
            else:
                lines.append(f"{obj}: {key} differs ({names[0]}: {_short(mine)}; {names[1]}: {_short(theirs)})")
    return lines


def _short(text, limit=80):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
