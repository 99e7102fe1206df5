"""The drift guard and the three-way push: what changed, in production and in local, since prodmirror
last synced them, proved from content and schema.

At every sync prodmirror records, per environment, a `snapshot` (engines/base.py) of the state both
ended with: each table's rows and mark (Postgres: a change mark, engines/postgres/marks.py; MongoDB: a
content hash), its schema signature, every sequence's value. The source's is taken in the dump's own
snapshot (or before the dump: a write in between then counts as a change), the target's on what
landed, so each is exactly the state the dump saw, whatever was written in production meanwhile. Comparing a fresh snapshot with it finds every change: inserts,
updates, deletes, TRUNCATE, DDL (a column, an index, a table added or dropped), sequence moves, and
writes that statistics counters have not seen yet (a session that stays open, a stats reset, a
restart). Counters are never used to prove "unchanged".
"""

from dataclasses import dataclass, field

from .errors import GuardError


OBJECTS = "(database objects)"  # views, functions, types, schemas, extensions, rules, materialized views' rows


def changes(base, now):
    """Given a recorded snapshot and a current one, return {label: what changed} for every table (and
    every sequence that belongs to no table): 'rows' (content), 'schema', 'new', 'dropped', 'sequence'.
    A sequence that belongs to a table counts as a change of that table."""
    found = {}
    tables = set(base["tables"]) | set(now["tables"]) | set(base.get("schema", {})) | set(now.get("schema", {}))
    if not comparable(base, now):
        return {name: "rows" for name in sorted(tables)}
    for name in sorted(tables):
        then_rows, now_rows = base["tables"].get(name), now["tables"].get(name)
        if name not in base["tables"] and name not in base.get("schema", {}):
            found[name] = "new"
        elif name not in now["tables"] and name not in now.get("schema", {}):
            found[name] = "dropped"
        elif base.get("schema", {}).get(name) != now.get("schema", {}).get(name):
            found[name] = "schema"
        elif then_rows != now_rows or (then_rows and len(then_rows) > 1 and then_rows[1] is None):
            found[name] = "rows"  # a missing content hash (MongoDB without dbHash) can never prove "unchanged"
    if base.get("objects") and now.get("objects") and base["objects"] != now["objects"]:
        found[OBJECTS] = "schema"  # a view, function, type, rule…: only a whole-database copy carries it
    for name in sorted(set(base.get("sequences", {})) | set(now.get("sequences", {}))):
        then, current = base.get("sequences", {}).get(name), now.get("sequences", {}).get(name)
        if (then or [None])[0] != (current or [None])[0]:
            owner = (current or then)[1]
            if owner and owner not in found:
                found[owner] = "sequence"
            elif not owner:
                found[name] = "sequence"
    return found


XID_SPAN = 1 << 31  # beyond this many transactions an old xmin could come again (wraparound)


def comparable(base, now):
    """Whether the change marks in `now` can be compared with `base`'s (engines/postgres/marks.py):
    the same database (its oid), a transaction counter that moved forward by less than XID_SPAN.
    Snapshots without an 'xid' (content-hashed, MongoDB) always compare."""
    then, current = base.get("xid"), now.get("xid")
    if then is None or current is None:
        return True
    return then[0] == current[0] and 0 <= current[1] - then[1] < XID_SPAN


def describe(found, base=None, now=None, limit=6):
    """Given changes() output, return one readable line: `public.users (rows: 200 → 201)`, …"""
    def one(name, what):
        if what == "rows" and base and now and name in base["tables"] and name in now["tables"]:
            return f"{name} (rows: {base['tables'][name][0]} → {now['tables'][name][0]}, contents changed)"
        return {"new": f"{name} (new)", "dropped": f"{name} (dropped)", "schema": f"{name} (schema changed)",
                "sequence": f"{name} (sequence moved)"}.get(what, f"{name} (contents changed)")

    items = sorted(found.items())
    text = "; ".join(one(name, what) for name, what in items[:limit])
    return text + (f"; and {len(items) - limit} more" if len(items) > limit else "")


def guard(last, env, now, overwrite, key, only=None):
    """Refuse (GuardError) to overwrite `env` if it changed since the last recorded sync, unless
    `overwrite` (the explicit --overwrite-production-changes, never --force). `last` is the sync-state
    record of database `key`; `only` limits the check to some tables. Return what is overwritten."""
    base = (last or {}).get("base", {}).get(env)
    if base is None:
        if overwrite:
            return ["(no sync recorded)"]
        raise GuardError(f"{key}: no exact record of the last sync with {env}, so edits made there cannot be ruled out: "
                         "run db.sync.from-production first, or pass --overwrite-production-changes")
    if only is not None:
        base = _only(base, only)
        now = _only(now, only)
    found = changes(base, now)
    if found and not overwrite:
        raise GuardError(f"{key}: {env} changed since the last sync ({last.get('time')}): "
                         f"{describe(found, base, now)}. Pull it first (db.sync.from-production), or pass "
                         "--overwrite-production-changes to overwrite exactly those changes")
    return sorted(found)


def _only(snap, labels):
    return {"tables": {k: v for k, v in snap["tables"].items() if k in labels}, "xid": snap.get("xid"),
            "schema": {k: v for k, v in snap.get("schema", {}).items() if k in labels},
            "sequences": {k: v for k, v in snap.get("sequences", {}).items() if v[1] in labels}}


@dataclass
class PushPlan:
    """What a three-way push does with each table: push local's, keep production's, or a conflict;
    `blockers` say why it cannot go table by table (then only --full can carry it)."""

    push: list = field(default_factory=list)
    keep: list = field(default_factory=list)
    conflicts: list = field(default_factory=list)
    blockers: list = field(default_factory=list)


def plan_push(base_target, target_now, base_source, source_now, same=None):
    """Given the recorded and current snapshots of both sides, return the PushPlan of a three-way push
    from source (local) into target (production). A table changed on both sides is a conflict unless
    `same(name)` says both now hold the same (default: equal snapshot entries; change marks of two
    servers never are, so the flow passes a comparison of contents)."""
    same = same or (lambda name: source_now["tables"].get(name) == target_now["tables"].get(name))
    theirs, mine = changes(base_target, target_now), changes(base_source, source_now)
    plan = PushPlan()
    for name, what in sorted(mine.items()):
        if what in ("new", "dropped", "schema"):
            plan.blockers.append(f"{name}: {what} locally")
        elif theirs.get(name) in ("dropped", "schema", "new"):
            plan.blockers.append(f"{name}: changed locally, {theirs[name]} in production")
        elif what == "sequence" and name not in source_now["tables"]:
            plan.blockers.append(f"{name}: a sequence that belongs to no table moved locally")
    blocked = {line.split(":")[0] for line in plan.blockers}
    for name in sorted((set(mine) | set(theirs)) - blocked):
        if name in mine and name in theirs:
            if source_now.get("schema", {}).get(name) != target_now.get("schema", {}).get(name) or not same(name):
                plan.conflicts.append(name)
        elif name in mine and name in source_now["tables"]:
            plan.push.append(name)
        elif name in theirs:
            plan.keep.append(name)
    return plan


def plan_changed(base_source, source_now, base_target, target_now, sides=("production", "local"), diverged=()):
    """For an incremental pull (--changed): return (tables to copy, None), every table whose rows or
    sequences changed on either side since the last sync; or (None, why) when copying tables cannot
    make the target equal to the source. `diverged` (tables a push left different on purpose) are
    copied too. Why not (a schema change, a table added or dropped, a sequence of no
    table, large objects, a database replaced or restored, an engine without change marks)."""
    if source_now.get("xid") is None or target_now.get("xid") is None:
        return None, "this engine has no change marks that prove a table unchanged"
    if (source_now.get("large_objects") or 0) or (target_now.get("large_objects") or 0):
        return None, "the database has large objects, which change marks do not cover"
    tables = set()
    for side, base, now in ((sides[0], base_source, source_now), (sides[1], base_target, target_now)):
        if not comparable(base, now):
            return None, f"{side}'s database was replaced or restored since the last sync"
        for name, what in sorted(changes(base, now).items()):
            if what in ("new", "dropped", "schema"):
                return None, f"{name}: {what} in {side} since the last sync"
            if name not in now["tables"]:
                return None, f"{name}: a sequence that belongs to no table moved in {side}"
            tables.add(name)
    return sorted(tables | (set(diverged) & set(source_now["tables"]))), None
