"""What prodmirror remembers of each database between runs: when it last synced, which way, and the
change counters of both sides at that moment (what the drift guard compares against)."""

from datetime import datetime, timezone

from .statefile import StateError, read_json, write_json


def _path(project):
    return project.state_dir / "sync-state.json"


def read(project):
    """Return {db key: last sync record}; empty when nothing was ever synced."""
    state = read_json(_path(project), {}, shape=dict)
    for key, entry in state.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("counters", {}), dict):
            raise StateError(f"{_path(project)} is corrupt (entry {key!r}); nothing was changed. "
                             "Move it aside to start afresh (prodmirror then knows no earlier sync)")
    return state


def record(project, key, source, target, task, counters):
    """Remember a completed sync of database `key` (written atomically: a crash leaves the old state)."""
    state = read(project)
    state[key] = {"time": _now(), "task": task, "source": source, "target": target, "counters": counters}
    write_json(_path(project), state)


def record_object(project, key, label, counters):
    """Remember a one-table/collection sync: only that object's counters move, so drift elsewhere stays visible."""
    state = read(project)
    entry = state.setdefault(key, {"counters": {}})
    for env, current in counters.items():
        recorded = entry["counters"].get(env)
        if recorded is not None and label in current:
            recorded[label] = current[label]
    entry.setdefault("objects", {})[label] = _now()
    write_json(_path(project), state)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
