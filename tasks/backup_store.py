"""The backup store: one folder per backup (`<env>_<YYYYmmdd_HHMMSS>`) with a dump per database and a
manifest.json (env, db, engine, size, sha256, created, tool version). A backup is written into a
`.partial-…` folder and renamed into place only once every dump completed and was re-read and
verified, so `list` never shows half a backup. Retention keeps the newest `backups.keep` per
environment and never the one just taken.
"""

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from .engines import engine_for
from .errors import BackupError
from .statefile import write_json
from .transfer import FileSink, pump, sha256_file
from .ui import Progress

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def check_name(name):
    """Raise BackupError unless `name` is a plain backup name (no '/', no '..', no leading dot)."""
    if not NAME.match(name or "") or ".." in name:
        raise BackupError(f"invalid backup name {name!r}: expected a name as shown by `inv db.backup.list`")


class Backup:
    def __init__(self, path, manifest):
        self.path, self.manifest = Path(path), manifest

    name = property(lambda self: self.manifest["name"])
    env = property(lambda self: self.manifest["env"])
    created = property(lambda self: self.manifest["created"])
    databases = property(lambda self: self.manifest["databases"])

    def file(self, key):
        return self.path / self.databases[key]["file"]

    def verify(self, key):
        """Re-hash the dump of database `key`; return its path. Raise BackupError if it does not match."""
        if key not in self.databases:
            raise BackupError(f"backup {self.name} holds no database {key!r} (it has: {', '.join(self.databases)})")
        return self.verify_entry(self.databases[key])

    def verify_entry(self, entry):
        """Given a manifest entry {file, size, sha256}, re-hash that file; return its path or raise BackupError."""
        path = self.path / entry["file"]
        if not path.exists():
            raise BackupError(f"backup {self.name}: {path.name} is missing")
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise BackupError(f"backup {self.name}: {path.name} does not match its manifest (sha256); not using it")
        return path


def list_backups(project, folder=None):
    """Return every complete backup (or snapshot, given their folder), newest first."""
    found = []
    folder = folder or project.backups_dir
    if folder.is_dir():
        for child in folder.iterdir():
            manifest = child / "manifest.json"
            if child.is_dir() and not child.name.startswith(".") and manifest.exists():
                try:
                    found.append(Backup(child, json.loads(manifest.read_text())))
                except (ValueError, OSError):
                    continue  # an unreadable manifest is not a backup we can vouch for
    return sorted(found, key=lambda b: (b.created, b.name), reverse=True)


def get(project, name, folder=None):
    """Given a backup name, return the Backup. Raise BackupError if invalid or absent."""
    check_name(name)
    folder = folder or project.backups_dir
    path = folder / name
    if not (path / "manifest.json").exists():
        raise BackupError(f"no backup named {name!r} in {folder} (see `inv db.backup.list`)")
    return Backup(path, json.loads((path / "manifest.json").read_text()))


def save_manifest(backup):
    """Rewrite a complete backup's manifest atomically (to add facts learnt later, such as a restore)."""
    write_json(backup.path / "manifest.json", backup.manifest)


class BackupWriter:
    """Take a backup of some databases of one environment: add() each, then commit() (or abort())."""

    def __init__(self, project, env, reason, folder=None, keep=None):
        self.project, self.env, self.reason = project, env, reason
        self.folder = folder or project.backups_dir
        self.keep = project.backups_keep if keep is None else keep
        stamp = datetime.now(timezone.utc)
        self.name = f"{env}_{stamp:%Y%m%d_%H%M%S}"
        n = 2
        while (self.folder / self.name).exists():
            self.name, n = f"{env}_{stamp:%Y%m%d_%H%M%S}_{n}", n + 1
        self.folder.mkdir(parents=True, exist_ok=True)
        _remove_dead_partials(self.folder)
        self.work = self.folder / f".partial-{self.name}-{os.getpid()}"
        self.work.mkdir()
        self.manifest = {"name": self.name, "env": env, "created": stamp.isoformat(timespec="seconds"),
                         "reason": reason, "databases": {}}

    def add(self, host, db, obj=None):
        """Dump database `db` (or only its table/collection `obj`) from `host` into the backup, then
        re-read the file to verify the sha256."""
        engine = engine_for(db)
        if obj is None:
            filename, proc = f"{db.key}{engine.SUFFIX}", engine.dump(host, db)
        else:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", engine.object_label(obj))
            filename, proc = f"{db.key}.{safe}{engine.OBJECT_SUFFIX}", engine.dump_object(host, db, obj)
        entry = self.add_stream(filename, proc, f"{self.env}/{db.key}")
        self.manifest["databases"][db.key] = {
            "engine": db.engine, "database": db.name, **entry,
            "tool": f"{engine.DUMP_TOOL} {engine.tool_version(host)}",
        }
        if obj is not None:
            ref = obj if isinstance(obj, str) else list(obj)  # a collection name, or (schema, table)
            self.manifest["databases"][db.key].update(object=engine.object_label(obj), object_ref=ref)

    def add_stream(self, filename, proc, label, also=()):
        """Pump `proc`'s output into `filename` of this backup (and into the sinks `also`), then re-read
        the file to verify it; return the manifest entry {file, size, sha256, verified}."""
        sink = FileSink(str(self.work / filename))
        try:
            with Progress(f"{'backup' if self.folder == self.project.backups_dir else 'snapshot'} {label}") as progress:
                moved = pump(proc, [sink, *also], progress)
            proc.check()
            if moved.broken_sink:
                raise BackupError(f"{label}: writing {filename} failed")
            sink.check()
        except BaseException:
            proc.kill()
            sink.kill()
            raise
        if sha256_file(self.work / filename) != moved.sha256:
            raise BackupError(f"{label}: {filename} on disk does not match what was received")
        return {"file": filename, "size": moved.bytes, "sha256": moved.sha256, "verified": True}

    def commit(self):
        """Write the manifest, move the backup into place, apply retention; return the Backup."""
        (self.work / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n")
        final = self.folder / self.name
        os.replace(self.work, final)
        retain(self.project, self.env, keep_also=self.name, folder=self.folder, keep=self.keep)
        return Backup(final, self.manifest)

    def abort(self):
        shutil.rmtree(self.work, ignore_errors=True)


def take(project, hosts, env, dbs, reason, objects=None):
    """Given databases of one environment, back them all up into one new backup; return it.

    `objects` ({db key: obj}) limits a database's backup to that one table or collection."""
    writer = BackupWriter(project, env, reason)
    try:
        for db in dbs:
            writer.add(hosts.for_db(db), db, (objects or {}).get(db.key))
        return writer.commit()
    except BaseException:
        writer.abort()
        raise


def retain(project, env, keep_also=None, folder=None, keep=None):
    """Delete the oldest backups of `env` beyond `keep` (default backups.keep), never `keep_also` (the one just taken)."""
    mine = [b for b in list_backups(project, folder) if b.env == env]
    for old in mine[project.backups_keep if keep is None else keep:]:
        if old.name != keep_also:
            shutil.rmtree(old.path, ignore_errors=True)


def _remove_dead_partials(folder):
    for child in folder.glob(".partial-*"):
        pid = child.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _alive(int(pid)):
            shutil.rmtree(child, ignore_errors=True)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def age(created, now=None):
    """Given an ISO time, return a short age such as '3m', '5h', '2d'."""
    then = datetime.fromisoformat(created)
    seconds = ((now or datetime.now(timezone.utc)) - then).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"
