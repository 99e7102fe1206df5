"""What prodmirror remembers of each database between runs: when it last synced, which way, and the
change counters of both sides at that moment (what the drift guard compares against)."""

import json
import os
from datetime import datetime, timezone


def _path(project):
    return project.state_dir / "sync-state.json"


def read(project):
    """Return {db key: last sync record}; empty when nothing was ever synced."""
    try:
        return json.loads(_path(project).read_text())
    except FileNotFoundError:
        return {}


def record(project, key, source, target, task, counters):
    """Remember a completed sync of database `key` (written atomically: a crash leaves the old state)."""
    state = read(project)
    state[key] = {"time": _now(), "task": task, "source": source, "target": target, "counters": counters}
    _write(project, state)


def record_object(project, key, label, counters):
    """Remember a one-table/collection sync: only that object's counters move, so drift elsewhere stays visible."""
    state = read(project)
    entry = state.setdefault(key, {"counters": {}})
    for env, current in counters.items():
        recorded = entry["counters"].get(env)
        if recorded is not None and label in current:
            recorded[label] = current[label]
    entry.setdefault("objects", {})[label] = _now()
    _write(project, state)


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write(project, state):
    project.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = _path(project).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(tmp, _path(project))
