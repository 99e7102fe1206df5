"""A backup's or snapshot's manifest.json, read as untrusted input: anyone can edit or plant one in the
backups folder, and its file names end up in paths prodmirror opens. `read(folder)` returns it only
if every field has the expected shape; otherwise it raises BackupError with one line saying what is
wrong, before anything runs."""

import json
import re
from datetime import datetime

from .errors import BackupError

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 100
SHA256 = re.compile(r"^[0-9a-f]{64}$")


def check_name(name):
    """Raise BackupError unless `name` is a plain backup name (no '/', no '..', no leading dot, not too long)."""
    if not isinstance(name, str) or not NAME.match(name) or ".." in name or len(name) > MAX_NAME:
        shown = name if not isinstance(name, str) or len(name) <= 60 else name[:60] + "…"
        raise BackupError(f"invalid backup name {shown!r}: expected a name as shown by `inv db.backup.list`")


def read(folder):
    """Given a backup folder, return its validated manifest (a dict). Raise BackupError naming the problem."""
    path = folder / "manifest.json"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{folder.name}: no manifest.json") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BackupError(f"{folder.name}: manifest.json is not valid JSON ({str(exc).splitlines()[0][:60]})") from None
    except OSError as exc:
        raise BackupError(f"{folder.name}: cannot read manifest.json: {exc.strerror}") from None
    _check(data, folder)
    return data


def _check(data, folder):
    def bad(what):
        raise BackupError(f"{folder.name}: manifest.json {what}; not using this backup")

    if not isinstance(data, dict):
        bad("is not a JSON object")
    if data.get("name") != folder.name:
        bad(f"names another backup ({str(data.get('name'))[:60]!r})")
    check_name(folder.name)
    if not isinstance(data.get("env"), str) or not NAME.match(data["env"]):
        bad("has no valid env")
    try:
        datetime.fromisoformat(data.get("created"))
    except (TypeError, ValueError):
        bad("has no valid created time")
    databases = data.get("databases")
    if not isinstance(databases, dict) or not databases and "code" not in data:
        bad("lists no databases")
    for key, entry in databases.items():
        if isinstance(entry, dict) and "kept_as" in entry:
            _check_kept(entry, f"entry {str(key)[:40]!r}", bad)
        else:
            _check_entry(entry, f"entry {str(key)[:40]!r}", bad)
        _check_database(entry, f"entry {str(key)[:40]!r}", bad)
    if "code" in data:
        _check_entry(data["code"], "code entry", bad)


def _check_database(entry, what, bad):
    """A database's entry also says which engine wrote it, and, for one table or collection, which."""
    from .engines import names

    if entry.get("engine") not in names():
        bad(f"{what} names no known engine ({str(entry.get('engine'))[:20]!r})")
    if "object" in entry or "object_ref" in entry:
        ref = entry.get("object_ref")
        plain = isinstance(ref, str) and ref
        pair = lambda r: isinstance(r, list) and len(r) == 2 and all(isinstance(p, str) and p for p in r)  # noqa: E731
        pairs = isinstance(ref, list) and ref and all(pair(r) for r in ref)  # several tables (a --changed pull)
        if not isinstance(entry.get("object"), str) or not (plain or pair(ref) or pairs):
            bad(f"{what} names its table or collection in no form prodmirror wrote")


def _check_kept(entry, what, bad):
    """A database backup's entry: the kept database's name, oid and size (no file)."""
    name = entry.get("kept_as")
    if not isinstance(name, str) or not name or len(name.encode()) > 63 or any(ord(ch) < 32 for ch in name):
        bad(f"{what} names no database that can have been kept ({str(name)[:60]!r})")
    for field in ("oid", "size"):
        if not isinstance(entry.get(field), int) or isinstance(entry[field], bool) or entry[field] < 0:
            bad(f"{what} has no valid {field}")


def _check_entry(entry, what, bad):
    if not isinstance(entry, dict):
        bad(f"{what} is not an object")
    name = entry.get("file")
    if not isinstance(name, str) or not NAME.match(name) or ".." in name or len(name) > 255:
        bad(f"{what} names a file outside the backup's folder ({str(name)[:60]!r})")
    if not isinstance(entry.get("size"), int) or isinstance(entry["size"], bool) or entry["size"] < 0:
        bad(f"{what} has no valid size")
    if not isinstance(entry.get("sha256"), str) or not SHA256.match(entry["sha256"]):
        bad(f"{what} has no valid sha256")
