"""db.sync.*: copy databases, or some tables/collections, between environments (seed 001), and compare them.

Into an unprotected target (a pull) a copy replaces whole databases: lock → checks → back up the
target → stream `dump` on the source into a temporary database → swap every database in once all
arrived → after-sync hooks → record the exact state both sides now hold → audit.

Into a protected target (a push) a copy is three-way (drift.py): it compares both sides with the
state recorded at the last sync and writes only what changed locally, all of it in one transaction;
what changed only in production keeps its edits; what changed on both sides is a conflict, refused
unless --overwrite-production-changes. `--full` replaces the whole database instead, guarded over
every table. `--force` (or FORCE=true) only ever skips the confirmation.
"""

from .. import backup_store, drift, guard, hooks, syncstate
from ..engines import engine_for
from ..errors import CommandError, GuardError, ProdmirrorError
from ..exclude_data import Excluded
from ..hosts import check_containers
from ..parallel import together
from ..transfer import restore_all
from ..ui import say
from .run import Run

OVERWRITE = "--overwrite-production-changes"


def check_object_name(name):
    """Raise ProdmirrorError for a name no table or collection can have (empty, control characters,
    over-long). Any other name is only ever looked up in the catalog (engine.resolve_object), never
    put into SQL or a shell as given: a hostile name resolves to nothing and runs nothing."""
    if not name or len(name) > 300 or any(ord(ch) < 32 for ch in name):
        raise ProdmirrorError(f"invalid table or collection name {name[:60]!r}")


def copy(project, source, target, keys=None, force=False, dry_run=False, task=None, echo=False, full=False,
         overwrite=False, changed=False):
    """Copy the databases paired by key from environment `source` into `target`; return the audit record.

    Into a protected target, a three-way push table by table unless `full` (then the whole database,
    refused if the target changed since the last sync unless `overwrite`); otherwise whole databases,
    replaced atomically. The target is backed up first. With `changed` (into an unprotected
    target), only the tables that changed on either side since the last sync, in one transaction,
    when that makes the target equal to the source; else (it says why) whole databases.
    """
    task = task or f"copy {source} -> {target}"
    pairs = project.pairs(source, target, keys)
    keys = [a.key for a, _ in pairs]
    three_way = project.env(target).protected and not full
    with Run(project, task, [source, target], dry_run=dry_run, echo=echo,
             direction=f"{source} -> {target}", databases=keys) as run:
        if not dry_run:
            run.lock()  # before anything is compared: what the plan says must still hold when it runs
        state = syncstate.read(project)  # a corrupt state file stops the run before anything moves
        work = [_Copy(run, state, a, b, three_way, overwrite, changed and not three_way) for a, b in pairs]
        steps = [f"lock {source} and {target}"] + [step for item in work for step in item.steps]
        steps.append(f"record the state both sides hold; audit log {project.state_dir / 'audit.jsonl'}")
        if not run.proceed(f"{task}: {source} → {target}", steps):
            return None
        if not any(item.moves for item in work):
            say(f"{task}: nothing to do: no table changed since the last sync")
            return run.record
        guard.confirm(project.env(target), task, force)  # asked once the checks passed: nobody confirms a doomed run
        existing = [item for item in work if item.facts["target_exists"] and item.moves]
        dumped = [item.b for item in existing if not item.keeps]
        if dumped:
            objects = {item.b.key: item.backup_objects for item in existing if item.backup_objects}
            taken = backup_store.take(project, run.hosts, target, dumped, reason=f"before {task}", objects=objects)
            run.record["backup"] = taken.name
            say(f"backup of {target} taken: {taken.name}")
        keeper = backup_store.KeptDatabases(project, target, reason=f"before {task}")
        for item in existing:
            if item.keeps:
                item.keep_as = keeper.name_for(item.b)
        jobs, owners = [], []
        for item in work:
            if item.moves:
                made = item.jobs()
                jobs += made
                owners += [item] * len(made)
        recheck = lambda: [item.recheck() for item in work if item.moves]  # noqa: E731
        # While the data streams, retention makes room for the database backup this run keeps (a DROP
        # DATABASE of a large one takes a while): the oldest kept databases beyond keep_databases - 1 go.
        room = (lambda: backup_store.retain_databases(project, run.hosts, target, list(keeper.kept), room=1)) \
            if keeper.kept else None
        try:
            arrived, _ = together(lambda: restore_all(jobs, before_commit=recheck),  # none swapped in until all arrived
                                  room or (lambda: None))
        except BaseException:
            keeper.salvage(run.hosts)  # what a swap did keep is listed, never lost
            raise
        for item, moved in zip(owners, arrived):
            moved_bytes = run.record.setdefault("bytes", {})
            moved_bytes[item.a.key] = moved_bytes.get(item.a.key, 0) + moved.bytes
        kept = keeper.commit(run.hosts, retain=False) if keeper.kept else None  # retention made room above
        run.record["backup"] = ", ".join(filter(None, [run.record["backup"], kept and kept.name])) or None
        for item in work:
            if item.moves:
                item.finish(run)
        say(f"{task}: done ({', '.join(keys)})"
            + (f"; previous {target} data is in backup {run.record['backup']}" if run.record["backup"] else ""))
        return run.record


class _Copy:
    """One database of a copy: what it will move, its plan lines, its jobs, and what to record after.

    What exclude_data keeps out (`self.excluded`) is resolved once here, against both sides: the
    dump leaves it out, and every snapshot this copy compares or records goes through _snapshot()
    (the recorded base through strip_record), so its rows are never anybody's change."""

    def __init__(self, run, state, a, b, three_way, overwrite, changed=False):
        self.run, self.a, self.b, self.engine = run, a, b, engine_for(a)
        self.src_host, self.dst_host = run.hosts.for_db(a), run.hosts.for_db(b)
        self.overwrite, self.steps = overwrite, []
        check_containers(self.src_host, self.dst_host)
        self.facts = self.engine.preflight(self.src_host, a, self.dst_host, b)
        self.excluded = Excluded(self.engine, a, b, self.src_host, self.dst_host if self.facts["target_exists"] else None)
        self.last = self.excluded.strip_record(state.get(a.key))
        self.tables = None  # None: the whole database; else the labels of the tables pushed
        self.checked = None  # the protected target's snapshot the whole-database guard passed
        self.moves = True
        self.keep_as = None  # the name the replaced database keeps, as a database backup
        self.keeps = False
        self.backup_objects = None  # the tables a table-by-table copy backs up (None: the whole database)
        self.plan = None  # a three-way push's PushPlan
        if three_way and self.facts["target_exists"]:
            self._plan_three_way()
        elif changed and self.facts["target_exists"] and self._plan_changed():
            pass
        else:
            self._plan_whole()

    def _plan_changed(self):
        """Plan an incremental pull: return True with the tables that changed on either side since the
        last sync, or False (having said why) when only a whole-database copy can be exact."""
        a, b, engine = self.a, self.b, self.engine
        base = (self.last or {}).get("base", {})
        if a.env not in base or b.env not in base:
            why = "no exact record of the last sync"
        else:
            self.source_now, self.target_now = together(lambda: self._snapshot(self.src_host, a),
                                                        lambda: self._snapshot(self.dst_host, b))
            tables, why = drift.plan_changed(base[a.env], self.source_now, base[b.env], self.target_now,
                                             (a.env, b.env), diverged=self.last.get("diverged", ()))
        if why:
            self.steps.append(f"{a.key}: --changed cannot be exact here ({why}): the whole database is copied")
            return False
        self.tables, self.moves = tables, bool(tables)
        if not tables:
            self.steps.append(f"{a.key}: no table changed on either side since the last sync; {b.env} is left as it is")
            return True
        self.backup_objects = [engine.resolve_object(self.dst_host, b, name) for name in tables]
        self.steps.append(f"{a.key}: changed since the last sync: {', '.join(tables)}")
        self.steps.append(f"{a.key}: back up {b.env}'s copy of those {len(tables)} table(s); then replace them with "
                          f"{a.env}'s in one transaction (the other tables stay as they are)")
        return True

    def _snapshot(self, host, db, only=None):
        """Return the engine's snapshot without the data exclude_data keeps out: what this copy compares
        and records."""
        return self.excluded.strip(self.engine.snapshot(host, db, only=only, skip=self.excluded.labels))

    def _plan_whole(self):
        a, b, env = self.a, self.b, self.run.project.env(self.b.env)
        if env.protected and self.facts["target_exists"]:
            now = self.checked = self._snapshot(self.dst_host, b)
            overwritten = drift.guard(self.last, b.env, now, self.overwrite, a.key)
            if overwritten:
                self.run.record.setdefault("overwritten", {})[a.key] = overwritten
                self.steps.append(f"{a.key}: OVERWRITE {b.env}'s changes since the last sync ({OVERWRITE}): "
                                  f"{', '.join(overwritten)}")
            else:
                self.steps.append(f"{a.key}: {b.env} unchanged since the last sync (rows, schema and sequences compared)")
        self.keeps = self.facts["target_exists"] and backup_store.keeps_database(self.run.project, b)
        if self.keeps:
            self.steps.append(f"{a.key}: keep {b.env}'s {b.name} as a database backup (renamed aside by the swap: "
                              "nothing is dumped; backups.keep_databases)")
        else:
            self.steps.append(f"{a.key}: back up {b.env} {b.name}" if self.facts["target_exists"] else
                              f"{a.key}: {b.env} has no {b.name} yet: nothing to back up")
        if self.excluded.objects:
            self.steps.append(self.excluded.step(keeps_target=env.protected and self.facts["target_exists"]))
        self.steps.append(f"{a.key}: stream {a.env} {a.name} into a new {b.env} database, swap it in for {b.name} "
                          "once every database has arrived")
        if env.protected:
            self.steps.append(f"{a.key}: re-apply {b.env}'s owners and grants")
        if b.after_sync:
            self.steps.append(f"{a.key}: after-sync hooks ({', '.join(b.after_sync)})")

    def _plan_three_way(self):
        a, b, engine = self.a, self.b, self.engine
        base = (self.last or {}).get("base", {})
        if b.env not in base or a.env not in base:
            raise GuardError(f"{a.key}: no exact record of the last sync, so what changed on either side is unknown: "
                             f"run db.sync.from-production first, or push the whole database with --full")
        self.target_now, self.source_now = together(lambda: self._snapshot(self.dst_host, b),
                                                    lambda: self._snapshot(self.src_host, a))
        plan = drift.plan_push(base[b.env], self.target_now, base[a.env], self.source_now, same=self._same)
        if plan.blockers:
            raise GuardError(f"{a.key}: a table-by-table push cannot carry these changes since the last sync "
                             f"({'; '.join(plan.blockers)}); push the whole database with --full "
                             "(guarded over every table)")
        for name in list(plan.push):  # a table moves with its children: none of them may be production's
            parts = set(engine.object_parts(self.src_host, a, engine.resolve_object(self.src_host, a, name)))
            if parts & self.excluded.labels:
                raise GuardError(f"{a.key}: {name} changed locally, but a table-by-table push would move "
                                 f"{', '.join(sorted(parts & self.excluded.labels))} with it, whose data exclude_data "
                                 f"keeps out; exclude {name} too, or push the whole database with --full "
                                 f"({b.env}'s own rows of those are kept)")
            if parts & set(plan.keep + plan.conflicts) - {name}:
                plan.push.remove(name)
                plan.conflicts.append(name)
        self.plan = plan
        if plan.conflicts and not self.overwrite:
            raise GuardError(f"{a.key}: changed both locally and in {b.env} since the last sync: "
                             f"{', '.join(sorted(plan.conflicts))}. Pull them first "
                             f"(db.sync.collection-from-production), or pass {OVERWRITE} to overwrite "
                             f"{b.env}'s version")
        self.tables = sorted(plan.push + (plan.conflicts if self.overwrite else []))
        self.moves = bool(self.tables)
        if self.excluded.objects:
            self.steps.append(self.excluded.step(keeps_target=True))
        for name in plan.push:
            self.steps.append(f"{a.key}: {name}: push local's (changed locally only)")
        for name in plan.keep:
            self.steps.append(f"{a.key}: {name}: keep {b.env}'s (changed there only; its edits stay)")
        for name in plan.conflicts:
            self.steps.append(f"{a.key}: {name}: CONFLICT, changed on both sides: OVERWRITE {b.env}'s ({OVERWRITE})")
        if plan.conflicts:
            self.run.record.setdefault("overwritten", {})[a.key] = sorted(plan.conflicts)
        if self.moves:
            self.steps.append(f"{a.key}: back up {b.env} {b.name}; then replace those {len(self.tables)} table(s) "
                              "in one transaction")
        else:
            self.steps.append(f"{a.key}: nothing changed locally since the last sync; {b.env} is left as it is")

    def _same(self, name):
        """Whether both sides hold the same rows of table `name` now (contents compared)."""
        mine = self.engine.fingerprint(self.src_host, self.a, only={name})["tables"].get(name)
        return mine is not None and mine == self.engine.fingerprint(self.dst_host, self.b, only={name})["tables"].get(name)

    def recheck(self):
        """Once the new database has arrived, and just before it is swapped in: refuse if the protected
        target changed since it was checked (a write during the transfer would otherwise be lost)."""
        if self.tables is None and self.checked is not None:
            now = self._snapshot(self.dst_host, self.b)
            found = drift.changes(self.checked, now)
            if found:
                raise GuardError(f"{self.a.key}: {self.b.env} changed while the new database was arriving: "
                                 f"{drift.describe(found, self.checked, now)}; nothing was swapped in")

    def jobs(self):
        """Return this database's restore_all jobs (and note in the audit record what they move)."""
        if self.tables is None:
            keep = self.run.project.env(self.b.env).protected and self.facts["target_exists"]
            exclude = self.excluded.objects
            kept = {"keep_as": self.keep_as} if self.keep_as else {}
            jobs = [(lambda: self._dumping(self.engine.dump(self.src_host, self.a, snapshot=True, exclude=exclude)),
                     self.engine.AtomicRestore(self.dst_host, self.b, portable=True, keep_privileges=keep,
                                               exclude=exclude, **kept),
                     f"{self.a.key}: {self.a.env} → {self.b.env}")]
        else:
            objs = [self.engine.resolve_object(self.src_host, self.a, name) for name in self.tables]
            protected = self.run.project.env(self.b.env).protected
            jobs = self.engine.object_jobs(self.src_host, self.a, self.dst_host, self.b, objs,
                                           f"{self.a.key}: {len(objs)} table(s) {self.a.env} → {self.b.env}",
                                           expect=self.target_now["tables"] if protected else None)
        self.run.record.setdefault("tables", {})[self.a.key] = self.tables or "all"
        return jobs

    def _dumping(self, source):
        self.source = source  # after the transfer, its `seen` is the source's state the dump read
        return source

    def finish(self, run):
        """After the data landed: hooks, then record what each side now holds."""
        a, b, project = self.a, self.b, run.project
        if self.tables is None:
            seen = self.source.seen  # the source's, read in the dump's own snapshot
            # exactly what the dump saw, as the target holds it
            landed = self.excluded.strip(self.engine.landed(self.dst_host, b, seen)) if seen \
                else self._snapshot(self.dst_host, b)
            if b.after_sync:
                run.record.setdefault("after_sync", {})[b.key] = hooks.run_after_sync(project, run.hosts, b)
            seen = self.excluded.strip(seen)
            bases = {a.env: seen or landed, b.env: self._snapshot(self.dst_host, b) if b.after_sync else landed}
        else:
            moved = self._snapshot(self.dst_host, b, only=set(self.tables))
            target = {part: {**self.target_now[part], **moved[part]} for part in ("tables", "schema", "sequences")}
            target.update(xid=moved.get("xid"), large_objects=moved.get("large_objects"))
            if b.after_sync:
                run.record.setdefault("after_sync", {})[b.key] = hooks.run_after_sync(project, run.hosts, b)
                target = self._snapshot(self.dst_host, b)
            bases = {a.env: self.source_now, b.env: target}
        # tables whose two records now differ on purpose: production's kept by a push (the others were
        # copied, so they agree; a whole-database copy makes them all agree)
        diverged = set()
        if self.tables is not None:
            kept = set(self.plan.keep) & set(self.target_now["tables"]) if self.plan else set()
            diverged = (set((self.last or {}).get("diverged", ())) - set(self.tables)) | kept
        syncstate.record(project, a.key, a.env, b.env, run.task, bases, diverged=diverged)



def copy_object(project, source, target, name, key=None, force=False, dry_run=False, task=None, echo=False,
                overwrite=False):
    """Copy one table (Postgres: with its partitions or children) or collection (MongoDB) `name` from
    `source` into `target`, in one transaction. The target's copy is backed up first; into a protected
    target it is refused if it changed there since the last sync, unless `overwrite`."""
    check_object_name(name)
    task = task or f"copy {name} {source} -> {target}"
    pairs = project.pairs(source, target, [key] if key else None)
    if len(pairs) > 1:
        raise ProdmirrorError(f"several databases are configured ({', '.join(a.key for a, _ in pairs)}): "
                              "pass --db KEY to say which one holds " + repr(name))
    a, b = pairs[0]
    dst_env = project.env(target)
    with Run(project, task, [source, target], dry_run=dry_run, echo=echo,
             direction=f"{source} -> {target}", databases=[a.key], object=name) as run:
        if not dry_run:
            run.lock()
        rec = run.record
        state = syncstate.read(project)  # a corrupt state file stops the run before anything moves
        src_host, dst_host = run.hosts.for_db(a), run.hosts.for_db(b)
        check_containers(src_host, dst_host)
        engine = engine_for(a)
        obj = engine.resolve_object(src_host, a, name)
        label = engine.object_label(obj)
        if engine.resolve_object(dst_host, b, label) != obj:
            raise ProdmirrorError(f"{name!r} is not the same object in {target}; run a full sync")
        parts = engine.object_parts(src_host, a, obj)
        theirs = engine.object_parts(dst_host, b, obj)
        if theirs != parts:
            raise ProdmirrorError(f"{label} is not made of the same tables in {target} "
                                  f"({', '.join(sorted(set(parts) ^ set(theirs)))} differ); run a full sync")
        Excluded(engine, a, b, src_host, dst_host).refuse(label, parts)  # before the plan: no backup, no prompt
        steps = [f"lock {source} and {target}"]
        if len(parts) > 1:
            steps.append(f"{label} comes with {len(parts) - 1} partition(s) or child table(s): {', '.join(parts[1:])}")
        if dst_env.protected:
            now = engine.snapshot(dst_host, b, only=set(parts))
            overwritten = drift.guard(state.get(a.key), target, now, overwrite, a.key, only=set(parts))
            if overwritten:
                rec["overwritten"] = overwritten
                steps.append(f"OVERWRITE {target}'s changes since the last sync ({OVERWRITE}): {', '.join(overwritten)}")
            else:
                steps.append(f"{label} unchanged in {target} since the last sync (rows, schema and sequences compared)")
        steps += [f"back up {target}'s {label}", f"replace {target}'s {label} with {source}'s in one transaction"]
        steps += [f"{b.key}: after-sync hooks ({', '.join(b.after_sync)})"] if b.after_sync else []
        if not run.proceed(f"{task}: {source} → {target}", steps):
            return None
        if len(parts) > 1:
            say(steps[1])
        guard.confirm(dst_env, task, force)
        rec["backup"] = backup_store.take(project, run.hosts, target, [b], reason=f"before {task}",
                                          objects={b.key: obj}).name
        say(f"backup of {target}'s {label} taken: {rec['backup']}")
        # The source's state taken before its dump: a write in between makes it look changed next time
        # (copied again, or kept), never unchanged.
        before = engine.snapshot(src_host, a, only=set(parts))
        try:
            moved = restore_all(engine.object_jobs(src_host, a, dst_host, b, [obj], f"{label}: {source} → {target}",
                                                   expect=now["tables"] if dst_env.protected else None))
        except CommandError as exc:
            raise ProdmirrorError(f"{target}: {engine.explain_object_failure(exc, label)}") from None
        rec["bytes"] = {a.key: sum(m.bytes for m in moved)}
        landed = engine.snapshot(dst_host, b, only=set(parts))
        bases = {source: before, target: landed}
        if b.after_sync:
            rec["after_sync"] = {b.key: hooks.run_after_sync(project, run.hosts, b)}
            bases[target] = engine.snapshot(dst_host, b, only=set(parts))
        syncstate.record_objects(project, a.key, parts, bases)
        say(f"{task}: {label} done; previous {target} rows are in backup {rec['backup']}")
        return rec


def status(project, source="production", target="local", keys=None, echo=False):
    """Return [{key, source, target, schema_diff, last, drift, base, excluded}] comparing both sides
    (snapshots, with the tables' 'contents' that compare across servers: rows, content, schema,
    sequences; the schema differences worded by `schema_differences`), saying what changed in
    `source` since the last sync (None when no exact record; the rows of the `excluded` labels,
    exclude_data's, never count)."""
    pairs = project.pairs(source, target, keys)
    state = syncstate.read(project)
    report = []
    with Run(project, "db.sync.status", echo=echo, audit=False) as run:
        for a, b in pairs:
            engine = engine_for(a)
            sides, schemas, hosts = [], [], []
            for db in (a, b):
                host = run.hosts.for_db(db)
                check_containers(host)
                present = engine.exists(host, db)
                hosts.append(host if present else None)
                # contents: what compares across the two servers; the snapshot: what drift compares
                sides.append({**engine.snapshot(host, db), "contents": engine.fingerprint(host, db)["tables"]}
                             if present else None)
                schemas.append(engine.schema(host, db) if present else None)
            excluded = Excluded(engine, a, b, *hosts)
            last = state.get(a.key)
            base = excluded.strip((last or {}).get("base", {}).get(source))
            changed = drift.changes(base, excluded.strip(sides[0])) if base is not None and sides[0] is not None else None
            differ = schema_differences(*schemas, names=(source, target)) if None not in schemas else []
            report.append({"key": a.key, "source": sides[0], "target": sides[1], "schema_diff": differ, "last": last,
                           "drift": changed, "base": base, "excluded": sorted(excluded.labels)})
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
