"""The drift guard: what changed in a protected environment since prodmirror last synced it, and the
refusal to overwrite it. Engines give the change counters (`counters()`); sync state (syncstate.py)
keeps what they were at the last sync."""

from .errors import GuardError
from .guard import forced
from .ui import say


def drift(recorded, current):
    """Given change counters {table: [changes, rows]} at the last sync and now, return what changed:
    [(table, rows then, rows now, changes since)] — a table added or dropped counts as changed.

    Only the write counter decides (ANALYZE may refresh the row estimate without any write)."""
    changed = []
    for table in sorted(set(recorded) | set(current)):
        then, now = recorded.get(table), current.get(table)
        if (then and then[0]) != (now and now[0]) or (then is None) != (now is None):
            counted = then and now and isinstance(then[0], int) and isinstance(now[0], int)
            changes = (now[0] - then[0]) if counted else None  # MongoDB keeps content hashes, not counts
            changed.append((table, then[1] if then else None, now[1] if now else None, changes))
    return changed


def describe_drift(changed, limit=5):
    def one(table, rows_then, rows_now, changes):
        if rows_then is None:
            return f"{table} (new, {rows_now} rows)"
        if rows_now is None:
            return f"{table} (dropped, had {rows_then} rows)"
        if changes is None:
            return f"{table} ({rows_then} → {rows_now} documents, contents changed)"
        what = f"{changes} rows written" if changes > 0 else "statistics reset"
        return f"{table} ({rows_then} → {rows_now} rows, {what})"

    text = "; ".join(one(*c) for c in changed[:limit])
    return text + (f"; and {len(changed) - limit} more" if len(changed) > limit else "")


def check_drift(last, env, current, force, key, tables=None):
    """Refuse (GuardError) to overwrite `env` if it changed since the last recorded sync, unless forced.

    `last` is the sync-state record of database `key` (or None); `tables` limits the check to some tables.
    Return the drift that was overridden (empty when none).
    """
    recorded = (last or {}).get("counters", {}).get(env)
    if recorded is None:
        if forced(force):
            say(f"warning: {key}: no sync with {env} is recorded; going on because of --force/FORCE")
            return ["no sync recorded"]
        raise GuardError(f"{key}: no sync with {env} is recorded, so edits made there cannot be ruled out: "
                         f"run db.sync.from-production first, or pass --force")
    if tables is not None:
        recorded = {t: v for t, v in recorded.items() if t in tables}
        current = {t: v for t, v in current.items() if t in tables}
    changed = drift(recorded, current)
    if changed and not forced(force):
        raise GuardError(f"{key}: {env} changed since the last sync ({last.get('time')}): {describe_drift(changed)}. "
                         f"Pull it first (db.sync.from-production), or pass --force to overwrite those changes")
    if changed:
        say(f"warning: {key}: overwriting changes made in {env} since the last sync: {describe_drift(changed)}")
    return [c[0] for c in changed]
