"""The backup store: one folder per backup (`<env>_<YYYYmmdd_HHMMSS>`) with a dump per database and a
manifest.json (env, db, engine, size, sha256, created, tool version; validated on every read by
manifest.py). A backup is written into a `.partial-…` folder and renamed into place only once every
dump completed and was re-read and verified, so `list` never shows half a backup. Retention keeps the
newest `backups.keep` per environment and kind (whole databases, one-table backups), and never a
backup it is told to protect: the one just taken, the one being restored.
"""

import json
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

from . import manifest as manifests
from .engines import engine_for
from .errors import BackupError
from .manifest import check_name  # noqa: F401 (the store's name rule; tasks and tests use it from here)
from .statefile import write_json
from .transfer import FileSink, pump, sha256_file
from .ui import Progress, say

class Backup:
    def __init__(self, path, manifest):
        self.path, self.manifest = Path(path), manifest

    name = property(lambda self: self.manifest["name"])
    env = property(lambda self: self.manifest["env"])
    created = property(lambda self: self.manifest["created"])
    databases = property(lambda self: self.manifest["databases"])

    @property
    def kind(self):
        """'table' for a backup of single tables/collections, 'database' for previous databases kept
        on their server (KeptDatabases), 'full' for dumps of whole databases."""
        if any(e.get("kept_as") for e in self.databases.values()):
            return "database"
        return "table" if any(e.get("object") for e in self.databases.values()) else "full"

    def file(self, key):
        return self.path / self.databases[key]["file"]

    def verify(self, key, host=None, db=None):
        """Re-hash the dump of database `key`; return its path (a kept database: check on `host`, db's
        server, that it is still the one kept; return its name). Raise BackupError if it does not match."""
        if key not in self.databases:
            raise BackupError(f"backup {self.name} holds no database {key!r} (it has: {', '.join(self.databases)})")
        entry = self.databases[key]
        if entry.get("kept_as"):
            if self.kept_state(key, host, db) != "yes":
                raise BackupError(f"backup {self.name}: database {entry['kept_as']} is no longer the one kept "
                                  "(dropped or replaced); not using it")
            return entry["kept_as"]
        return self.verify_entry(entry)

    def kept_state(self, key, host, db):
        """'yes' when the kept database of `key` is still on db's server with the oid it was kept with."""
        entry = self.databases[key]
        facts = engine_for(db).kept_facts(host, db, entry["kept_as"])
        return "yes" if facts and facts[0] == entry["oid"] else "MISSING"

    def verify_entry(self, entry):
        """Given a manifest entry {file, size, sha256}, re-hash that file; return its path or raise BackupError."""
        path = self.path / entry["file"]
        if not path.is_file():
            raise BackupError(f"backup {self.name}: {path.name} is missing")
        if path.stat().st_size != entry["size"] or sha256_file(path) != entry["sha256"]:
            raise BackupError(f"backup {self.name}: {path.name} does not match its manifest (sha256); not using it")
        return path

    def check_entry(self, key):
        """Return the state of database `key`'s file for a listing: ('yes', when last verified) when it
        still matches, ('MISSING' | 'NO: changed', None) otherwise. A file whose size or modification
        time moved since it was last verified is re-hashed now (and the new verification recorded)."""
        entry = self.databases[key]
        path = self.path / entry["file"]
        try:
            st = path.stat()
        except FileNotFoundError:
            return "MISSING", None
        if st.st_size != entry["size"]:
            return "NO: changed", None
        if entry.get("mtime_ns") != st.st_mtime_ns:
            if sha256_file(path) != entry["sha256"]:
                return "NO: changed", None
            entry.update(mtime_ns=st.st_mtime_ns, verified_at=_now())
            save_manifest(self)
        return "yes", entry.get("verified_at") or self.created


def list_backups(project, folder=None, warn=False):
    """Return every complete backup (or snapshot, given their folder) whose manifest is valid, newest
    first. With `warn`, say one line for each folder skipped because its manifest is not."""
    found = []
    folder = folder or project.backups_dir
    if folder.is_dir():
        for child in folder.iterdir():
            if child.is_dir() and not child.name.startswith(".") and (child / "manifest.json").exists():
                try:
                    found.append(Backup(child, manifests.read(child)))
                except BackupError as exc:
                    if warn:
                        say(f"skipping {exc}")
    # (created to the microsecond: a name freed by retention may be given again within the same second)
    return sorted(found, key=lambda b: (datetime.fromisoformat(b.created), b.name), reverse=True)


def get(project, name, folder=None):
    """Given a backup name, return the Backup. Raise BackupError if the name is invalid, the backup
    absent, or its manifest invalid."""
    check_name(name)
    folder = folder or project.backups_dir
    path = folder / name
    if not (path / "manifest.json").exists():
        raise BackupError(f"no backup named {name!r} in {folder} (see `inv db.backup.list`)")
    return Backup(path, manifests.read(path))


def save_manifest(backup):
    """Rewrite a complete backup's manifest atomically (to add facts learnt later, such as a restore)."""
    write_json(backup.path / "manifest.json", backup.manifest)


def _partial(folder, name):
    """Create and return the `.partial-NAME-PID` folder a backup is written into before it is moved into
    place. Raise BackupError (one line) when the backups folder cannot be written: found before anything
    is changed."""
    work = folder / f".partial-{name}-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_dead_partials(folder)
        work.mkdir()
    except OSError as exc:
        raise BackupError(f"cannot write backups into {folder} ({exc.strerror or exc}): check backups.dir; "
                          "nothing was changed") from None
    return work


def _new_name(folder, env, stamp):
    """Return a backup name `<env>_<YYYYmmdd_HHMMSS>[_n]` that no folder in `folder` has yet."""
    name, n = f"{env}_{stamp:%Y%m%d_%H%M%S}", 2
    while (folder / name).exists() or any(folder.glob(f".partial-{name}-*")):  # one being written is taken too
        name, n = f"{env}_{stamp:%Y%m%d_%H%M%S}_{n}", n + 1
    return name


class BackupWriter:
    """Take a backup of some databases of one environment: add() each, then commit() (or abort())."""

    def __init__(self, project, env, reason, folder=None, keep=None):
        self.project, self.env, self.reason = project, env, reason
        self.folder = folder or project.backups_dir
        self.keep = project.backups_keep if keep is None else keep
        stamp = datetime.now(timezone.utc)
        self.name = _new_name(self.folder, env, stamp)
        self.work = _partial(self.folder, self.name)
        self.manifest = {"name": self.name, "env": env, "created": stamp.isoformat(timespec="microseconds"),
                         "reason": reason, "databases": {}}

    def add(self, host, db, obj=None):
        """Dump database `db` (or only its table/collection `obj`) from `host` into the backup, then
        re-read the file to verify the sha256."""
        engine = engine_for(db)
        if obj is None:
            filename, proc = f"{db.key}{engine.SUFFIX}", engine.dump(host, db)
        else:
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", engine.object_label(obj))[:120]
            filename, proc = f"{db.key}.{safe}{engine.OBJECT_SUFFIX}", engine.dump_object(host, db, obj)
        entry = self.add_stream(filename, proc, f"{self.env}/{db.key}")
        self.manifest["databases"][db.key] = {
            "engine": db.engine, "database": db.name, **entry,
            "tool": f"{engine.DUMP_TOOL} {engine.tool_version(host)}",
        }
        if obj is not None:
            # a collection name, (schema, table), or several tables [(schema, table), …]
            ref = obj if isinstance(obj, str) else [list(o) if isinstance(o, (list, tuple)) else o for o in obj]
            self.manifest["databases"][db.key].update(object=engine.object_label(obj), object_ref=ref)

    def add_stream(self, filename, proc, label, also=()):
        """Pump `proc`'s output into `filename` of this backup (and into the sinks `also`), then re-read
        the file to verify it; return the manifest entry {file, size, sha256, verified}."""
        sink = FileSink(str(self.work / filename))
        try:
            with Progress(f"{'backup' if self.folder == self.project.backups_dir else 'snapshot'} {label}") as progress:
                moved = pump(proc, [sink, *also], progress)
            if moved.broken_sink:
                # Stop the dump before anything waits on it: it is blocked writing to us (disk full).
                proc.kill()
                reason = getattr(moved.error, "strerror", None) or moved.error
                raise BackupError(f"{label}: writing {self.work.parent / filename} failed ({reason}); "
                                  "the partial backup was removed, nothing else was changed")
            proc.check()
            sink.check()
        except BaseException:
            proc.kill()
            sink.kill()
            raise
        if sha256_file(self.work / filename) != moved.sha256:
            raise BackupError(f"{label}: {filename} on disk does not match what was received")
        mtime = os.stat(self.work / filename).st_mtime_ns
        return {"file": filename, "size": moved.bytes, "sha256": moved.sha256, "verified": True,
                "verified_at": _now(), "mtime_ns": mtime}

    def commit(self, protect=()):
        """Write the manifest, move the backup into place, apply retention (never to this backup nor to
        those named in `protect`); return the Backup."""
        try:
            (self.work / "manifest.json").write_text(json.dumps(self.manifest, indent=2) + "\n")
        except OSError as exc:
            raise BackupError(f"writing the manifest of {self.name} failed ({exc.strerror}); the partial backup "
                              "was removed, nothing else was changed") from None
        final = self.folder / self.name
        os.replace(self.work, final)
        backup = Backup(final, self.manifest)
        retain(self.project, self.env, backup.kind, protect={self.name, *protect}, folder=self.folder, keep=self.keep)
        return backup

    def abort(self):
        shutil.rmtree(self.work, ignore_errors=True)


def take(project, hosts, env, dbs, reason, objects=None, protect=()):
    """Given databases of one environment, back them all up into one new backup; return it.

    `objects` ({db key: obj}) limits a database's backup to that one table or collection; retention
    never removes the backups named in `protect` (say, the one about to be restored)."""
    writer = BackupWriter(project, env, reason)
    try:
        for db in dbs:
            writer.add(hosts.for_db(db), db, (objects or {}).get(db.key))
        return writer.commit(protect)
    except BaseException:
        writer.abort()
        raise


def keeps_database(project, db):
    """Whether a whole-database restore into `db` keeps the database it replaces, renamed on its
    server, as the backup (a database backup: instant to take and to restore, at any size) instead of
    dumping it first: for unprotected environments (local) whose engine can, with
    backups.keep_databases above 0. Protected environments always get file backups."""
    return project.backups.keep_databases > 0 and not project.env(db.env).protected \
        and engine_for(db).KEEPS_DATABASES


class KeptDatabases:
    """A database backup: the previous databases themselves, which the swap renames aside instead of
    dropping (AtomicRestore's `keep_as`). name_for() gives each its name before the restore; once
    they are swapped, commit() records the backup (manifest: each database's kept name, oid and
    size) and applies retention, dropping the oldest kept databases beyond backups.keep_databases."""

    def __init__(self, project, env, reason):
        self.project, self.env, self.reason = project, env, reason
        self.stamp = datetime.now(timezone.utc)
        self.name = _new_name(project.backups_dir, env, self.stamp)
        self.kept = {}  # db key: (Database, kept name)
        self.work = None  # the manifest's folder, made by name_for(): an unwritable backups.dir stops the run there

    def abort(self):
        """Nothing was kept: remove the manifest's folder."""
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)

    def salvage(self, hosts):
        """The run failed or was interrupted: record whichever previous databases were kept all the same
        (a swap made before the failure, an undo that failed), so that none is left unlisted; remove
        the folder when none was. Never raises."""
        from .ui import say

        try:
            return self.commit(hosts, retain=False)
        except BaseException as exc:  # noqa: BLE001 - the run's own error is the one that counts
            names = ", ".join(kept for _, kept in self.kept.values())
            say(f"warning: could not record database backup {self.name} ({exc}); if they exist, the previous "
                f"databases are {names}")
            self.abort()
            return None

    def name_for(self, db):
        """Return the name database `db` is kept under (≤ 63 bytes, unique per backup)."""
        if self.work is None:
            self.work = _partial(self.project.backups_dir, self.name)
        suffix = "__pm_" + self.name[len(self.env) + 1:].replace("_", "")
        kept = engine_for(db).side_name(db.name, suffix)
        self.kept[db.key] = (db, kept)
        return kept

    def commit(self, hosts, protect=(), retain=True):
        """Record the kept databases as one backup, then (with `retain`; else the caller calls
        retain_databases) apply retention; return the Backup (None if none was kept: no previous
        database existed)."""
        entries = {}
        for key, (db, kept) in self.kept.items():
            facts = engine_for(db).kept_facts(hosts.for_db(db), db, kept)
            if facts:
                entries[key] = {"engine": db.engine, "database": db.name, "kept_as": kept, "oid": facts[0],
                                "size": facts[1]}
        if not entries:
            self.abort()
            return None
        manifest = {"name": self.name, "env": self.env, "created": self.stamp.isoformat(timespec="microseconds"),
                    "reason": self.reason, "databases": entries}
        folder = self.project.backups_dir / self.name
        try:
            write_json(self.work / "manifest.json", manifest)
            os.replace(self.work, folder)
        except OSError as exc:
            raise BackupError(f"recording database backup {self.name} failed ({exc.strerror or exc}); the previous "
                              f"databases are kept as {', '.join(k for _, k in self.kept.values())}") from None
        backup = Backup(folder, manifest)
        if retain:
            retain_databases(self.project, hosts, self.env, list(entries), protect={self.name, *protect})
        return backup


def retain_databases(project, hosts, env, keys, protect=(), room=0):
    """For each database key in `keys`, drop its kept databases beyond the newest
    backups.keep_databases of `env` (less `room`: the one a run is about to keep; never in a backup
    named in `protect`). Counted per key: keeping one database never drops another's. A backup whose
    every kept database went is forgotten; one with others left keeps those."""
    from .ui import say

    mine = [b for b in list_backups(project) if b.env == env and b.kind == "database"]
    for key in keys:
        holding = [b for b in mine if b.databases.get(key, {}).get("kept_as")]
        for old in holding[max(project.backups.keep_databases - room, 0):]:
            if old.name in protect:
                continue
            try:
                db = project.env(env).database(key)
                if old.kept_state(key, hosts.for_db(db), db) == "yes":
                    engine_for(db).drop_kept(hosts.for_db(db), db, old.databases[key]["kept_as"])
            except Exception as exc:  # noqa: BLE001 - retention is best effort; the backup stays listed
                say(f"warning: retention could not drop {key} of database backup {old.name} ({exc}); it stays")
                continue
            del old.databases[key]
            if old.databases:
                save_manifest(old)
            else:
                shutil.rmtree(old.path, ignore_errors=True)


def retain(project, env, kind="full", protect=(), folder=None, keep=None):
    """Delete the oldest backups of `env` of this kind ('full' or 'table') beyond the newest `keep`
    (default backups.keep), but never one named in `protect`."""
    mine = [b for b in list_backups(project, folder) if b.env == env and b.kind == kind]
    for old in mine[project.backups_keep if keep is None else keep:]:
        if old.name not in protect:
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


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def age(created, now=None):
    """Given an ISO time, return a short age such as '3m', '5h', '2d'."""
    then = datetime.fromisoformat(created)
    seconds = ((now or datetime.now(timezone.utc)) - then).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(max(seconds, 0))}s"
