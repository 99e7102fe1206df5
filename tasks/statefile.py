"""JSON files prodmirror keeps (sync state, hotfix environments, manifests): read, and written atomically
so that a crash leaves the previous version, never half a file."""

import json
import os

from .errors import ProdmirrorError


class StateError(ProdmirrorError):
    """A state file is unreadable: corrupt, torn by hand, not UTF-8, or of the wrong shape."""


def read_json(path, default=None, shape=None):
    """Return the JSON in `path`, or `default` if the file does not exist. Raise StateError (one line,
    naming the file) if it is not valid UTF-8 JSON, or not of type `shape` (e.g. dict) when given."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return default
    except (ValueError, UnicodeDecodeError) as exc:
        raise StateError(f"{path} is corrupt ({str(exc).splitlines()[0][:80]}); nothing was changed. "
                         "Move it aside to start afresh (prodmirror then knows no earlier sync)") from None
    if shape is not None and not isinstance(data, shape):
        raise StateError(f"{path} is corrupt (expected a JSON {shape.__name__}); nothing was changed. "
                         "Move it aside to start afresh")
    return data


def write_json(path, data):
    """Write `data` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)
