"""The audit log: one JSON line per run in `.prodmirror/audit.jsonl` (who, when, task, direction, result,
backup taken…). The run context (actions/run.py) writes it for every run, dry runs and refusals included."""

import getpass
import json
import os
import socket
from datetime import datetime, timezone


def who():
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def write(state_dir, record):
    """Append one JSON line to the audit log: who, when, and whatever the run says of itself."""
    state_dir.mkdir(parents=True, exist_ok=True)
    line = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "user": who(),
            "host": socket.gethostname(), **record}
    with open(state_dir / "audit.jsonl", "a") as f:
        f.write(json.dumps(line, sort_keys=False) + "\n")


def read(state_dir):
    """Return the audit log's records, oldest first."""
    path = state_dir / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
