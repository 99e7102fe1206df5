"""What prodmirror remembers of each database between runs: when it last synced, which way, and, per
environment, the exact snapshot (content, schema, sequences) it ended with: the base the drift guard
and the three-way push compare against (drift.py)."""

from datetime import datetime, timezone

from .statefile import StateError, read_json, write_json


def _path(project):
    return project.state_dir / "sync-state.json"


def read(project):
    """Return {db key: last sync record}; empty when nothing was ever synced. Raise StateError (one
    line) for a file that is not what prodmirror writes."""
    state = read_json(_path(project), {}, shape=dict)
    for key, entry in state.items():
        base = entry.get("base", {}) if isinstance(entry, dict) else None
        if not isinstance(base, dict) or not all(_is_snapshot(snap) for snap in base.values()):
            raise StateError(f"{_path(project)} is corrupt (entry {key!r}); nothing was changed. "
                             "Move it aside to start afresh (prodmirror then knows no earlier sync)")
    return state


def _is_snapshot(snap):
    return isinstance(snap, dict) and isinstance(snap.get("tables"), dict) and isinstance(snap.get("schema", {}), dict) \
        and isinstance(snap.get("sequences", {}), dict)


def record(project, key, source, target, task, bases, diverged=()):
    """Remember a completed sync of database `key`: `bases` {env: snapshot} is the state each side
    ended with (written atomically: a crash leaves the old state). `diverged` names the tables whose
    two recorded states differ on purpose (a push kept production's version): an incremental pull
    must copy them although neither side changed since."""
    state = read(project)
    old = state.get(key, {}).get("base", {})
    state[key] = {"time": _now(), "task": task, "source": source, "target": target, "base": {**old, **bases},
                  "diverged": sorted(diverged)}
    write_json(_path(project), state)


def record_objects(project, key, labels, bases):
    """Remember a sync of some tables/collections: only their entries in each side's base move (given
    in `bases` {env: snapshot of just those}), so what changed elsewhere stays visible."""
    state = read(project)
    entry = state.setdefault(key, {})
    entry.setdefault("base", {})  # an entry written by an older prodmirror has counters only
    for env, snap in bases.items():
        recorded = entry["base"].get(env)
        if recorded is None:
            continue  # no full sync recorded on that side: nothing exact to update
        for part in ("tables", "schema"):
            for name in labels:
                if name in snap.get(part, {}):
                    recorded.setdefault(part, {})[name] = snap[part][name]
                else:
                    recorded.get(part, {}).pop(name, None)
        owned = {name: value for name, value in snap.get("sequences", {}).items() if value[1] in labels}
        recorded["sequences"] = {**recorded.get("sequences", {}), **owned}
    entry["diverged"] = sorted(set(entry.get("diverged", [])) - set(labels))  # now equal on both sides
    entry.setdefault("objects", {}).update({name: _now() for name in labels})
    entry["time"] = _now()
    write_json(_path(project), state)


def forget(project, keys, env):
    """Forget what `env` held for these database keys (it was restored from a backup: what it holds now
    is no longer what the last sync left, so a push must not take it for local work)."""
    state = read(project)
    changed = False
    for key in keys:
        if env in state.get(key, {}).get("base", {}):
            del state[key]["base"][env]
            changed = True
    if changed:
        write_json(_path(project), state)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
