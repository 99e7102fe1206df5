"""JSON files prodmirror keeps (sync state, hotfix environments, manifests): read, and written atomically
so that a crash leaves the previous version, never half a file."""

import json
import os


def read_json(path, default=None):
    """Return the JSON in `path`, or `default` if the file does not exist."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def write_json(path, data):
    """Write `data` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
