"""MongoDB: mongodump/mongorestore (MongoDB Database Tools) on the database's host, pymongo for status,
fingerprints, swaps and password resets.

The URI holds the password, so it never goes into argv: a two-line `sh` wrapper writes it into a
private temporary `--config` file (the tools' own way to take secrets) and removes it on exit; the
URI reaches the wrapper in its environment (or on stdin over SSH/docker exec, see hosts.py).

A restore goes into `<collection>__pm_new` collections of the target database, and only once every
one is complete are they renamed over the live ones (same-database renames: metadata only). A swap
that fails half way renames the previous collections back.

pymongo connects to the URI from this machine (as the seed's tasks do with Heroku's MONGODB_URI); the
dump/restore tools run where the environment says (this machine, an SSH host, a container).
"""

import difflib
import functools
import json
from urllib.parse import urlsplit

from ..errors import CommandError, ConfigError, HostError, ProdmirrorError, last_line
from .base import Restore

REQUIRED_KEYS = ("uri",)
OBJECT_WORD = "collection"
SUFFIX = ".archive"
OBJECT_SUFFIX = ".archive"
DUMP_TOOL = "mongodump"
KEEPS_DATABASES = False  # a previous database is backed up by mongodump (renaming a database is a copy)
EXCLUDES_DEFINITIONS = True  # exclude_data: a collection is left out of dump and restore entirely
NEW, OLD = "__pm_new", "__pm_old"
URI_VAR = "PRODMIRROR_MONGO_URI"
CONFIG_WRAPPER = ("umask 077; f=$(mktemp) || exit 1; trap 'rm -f \"$f\"' EXIT; "
                  f"printf \"uri: '%s'\\n\" \"${URI_VAR}\" > \"$f\"; \"$@\" --config=\"$f\"")
INSTALL_HINT = "install the MongoDB Database Tools (mongodb-database-tools) there"


def database_name(db):
    """Return the database name: `name`, else the path of the URI. Raise ConfigError if neither gives one."""
    if db.name:
        return db.name
    path = urlsplit(db.uri.reveal()).path.lstrip("/") if db.uri else ""
    if not path:
        raise ConfigError(f"{db.path}: give `name`, or a database in the uri (mongodb://host/NAME)")
    return path


def tool_argv(tool, *args):
    """Given a tool and its options, return the argv that runs it with the URI from a private config file."""
    return ("sh", "-c", CONFIG_WRAPPER, "sh", tool) + tuple(args)


def tool_uri(uri):
    """Given a URI, return it without a database path (the tools get --db/--nsTo instead, and refuse both),
    keeping the path as authSource so authentication does not change."""
    from urllib.parse import parse_qsl, urlencode, urlunsplit

    parts = urlsplit(uri)
    path = parts.path.lstrip("/")
    if not path:
        return uri
    query = dict(parse_qsl(parts.query))
    query.setdefault("authSource", path)
    return urlunsplit((parts.scheme, parts.netloc, "/", urlencode(query), parts.fragment))


def tool_env(db):
    if "'" in db.uri.reveal():
        raise ConfigError(f"{db.path}.uri: a quote (') cannot be passed to the MongoDB tools; percent-encode it (%27)")
    return {URI_VAR: tool_uri(db.uri.reveal())}


def dump_argv(db, collection=None, gzip=False, exclude=()):
    """Return the mongodump argv writing an archive of the database (or one `collection`) to stdout,
    without the `exclude` collections (--excludeCollection, which needs --db: it is always given)."""
    args = ("--archive", f"--db={database_name(db)}")
    if collection:
        args += (f"--collection={collection}",)
    args += tuple(f"--excludeCollection={name}" for name in exclude)
    return tool_argv("mongodump", *(args + (("--gzip",) if gzip else ())))


def restore_argv(db, collection=None, gzip=False, exclude=()):
    """Return the mongorestore argv that reads an archive on stdin into `<name>.<coll>__pm_new` collections.

    `$db$`/`$coll$` are mongorestore namespace variables: whatever the source database was called, its
    collections land in this database under the temporary names. The `exclude` collections are left
    out (--nsExclude) even if the archive has them; the archive's namespaces carry the source's
    database name, which a restore does not know, hence `*.` (as the one-collection --nsInclude).
    """
    name = database_name(db)
    args = ("--archive", "--drop", "--nsFrom=$db$.$coll$", f"--nsTo={name}.$coll${NEW}")
    if collection:
        args = ("--archive", "--drop", f"--nsInclude=*.{collection}", f"--nsFrom=$db$.{collection}",
                f"--nsTo={name}.{collection}{NEW}")
    args += tuple(f"--nsExclude=*.{namespace_literal(coll)}" for coll in exclude)
    return tool_argv("mongorestore", *(args + (("--gzip",) if gzip else ())))


def namespace_literal(name):
    """Given a collection name, return it as a namespace pattern that matches it alone: the tools read
    `*` as a wildcard and `\\` as an escape, so both are escaped with a backslash."""
    return name.replace("\\", "\\\\").replace("*", "\\*")


def client(db):
    """Return the pymongo client for the database's URI, one per URI for the whole run (short timeouts:
    a dead server is one clear line)."""
    return _client(db.uri.reveal())


@functools.lru_cache(maxsize=None)
def _client(uri):
    import pymongo

    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)


def _where(db):
    parts = urlsplit(db.uri.reveal())
    return f"{db.env}/{db.key} ({parts.hostname or 'mongodb'})"  # never the userinfo (password)


def _database(db):
    import pymongo.errors

    try:
        mongo = client(db)
        mongo.admin.command("ping")
        return mongo[database_name(db)]
    except pymongo.errors.PyMongoError as exc:
        raise HostError(f"{_where(db)}: cannot reach MongoDB: {type(exc).__name__}") from None


def tool_version(host, tool="mongodump"):
    """Return the version of a MongoDB tool on `host`; raise HostError naming what to install if it is missing."""
    try:
        out = host.run([tool, "--version"]).stdout
    except CommandError as exc:
        if exc.code in (126, 127) or "not found" in exc.stderr:
            raise HostError(f"{host.label}: {tool} is not installed; {INSTALL_HINT}") from None
        raise
    except HostError as exc:
        if "not installed" in str(exc):
            raise HostError(f"{host.label}: {tool} is not installed; {INSTALL_HINT}") from None
        raise
    first = out.splitlines()[0] if out else ""
    return first.split(":")[-1].strip() or "unknown"


def preflight(src_host, src, dst_host, dst):
    """Check the tools exist on both sides and both servers answer; return facts for the plan."""
    tool_version(src_host, "mongodump")
    tool_version(dst_host, "mongorestore")
    if database_name(src) not in _database(src).client.list_database_names():
        raise ProdmirrorError(f"{src.path}: database {database_name(src)!r} does not exist")
    return {"target_exists": exists(dst_host, dst)}


def exists(host, db):
    return database_name(db) in _database(db).client.list_database_names()


def dump(host, db, snapshot=False, exclude=()):
    """Start mongodump of the whole database (without the `exclude` collections); return the Proc."""
    return host.stream(dump_argv(db, exclude=exclude), env=tool_env(db))


def excluded(host, db, patterns):
    """Given exclude_data's glob patterns, return the names of the collections one of them matches."""
    from ..exclude_data import matches

    return [name for name in collections(_database(db)) if matches(patterns, name)] if patterns else []


def collections(database):
    """Return the user collections of a pymongo Database (GridFS fs.files/fs.chunks included)."""
    return sorted(n for n in database.list_collection_names() if not n.startswith("system.")
                  and not n.endswith((NEW, OLD)))


def swap_in(database, names, keep_old=False):
    """Rename `<c>__pm_new` over `<c>` for each name, as one step: on any failure, put the old ones back.

    The previous collections are dropped once every rename succeeded, or with `keep_old` left as
    `<c>__pm_old` and returned (for swap_back or drop_old)."""
    admin, db_name = database.client.admin, database.name
    existing = set(database.list_collection_names())
    moved, placed = [], []
    try:
        for name in names:
            if name in existing:
                admin.command("renameCollection", f"{db_name}.{name}", to=f"{db_name}.{name}{OLD}", dropTarget=True)
                moved.append(name)
            admin.command("renameCollection", f"{db_name}.{name}{NEW}", to=f"{db_name}.{name}")
            placed.append(name)
    except Exception:
        swap_back(database, moved, [n for n in placed if n not in moved])
        raise
    if keep_old:
        return moved
    drop_old(database, moved)
    return []


def swap_back(database, moved, added=()):
    """Undo swap_in: put `<c>__pm_old` back over `<c>` for `moved`, drop the `added` collections."""
    admin, db_name = database.client.admin, database.name
    for name in moved:
        admin.command("renameCollection", f"{db_name}.{name}{OLD}", to=f"{db_name}.{name}", dropTarget=True)
    for name in added:
        database.drop_collection(name)


def drop_old(database, moved):
    for name in moved:
        database.drop_collection(f"{name}{OLD}")


def _drop_new(database, only=None):
    """Drop the `__pm_new` (and `__pm_old`) leftovers of a run that was killed, of one collection or all."""
    for name in database.list_collection_names():
        if name.endswith((NEW, OLD)) and (only is None or name in (f"{only}{NEW}", f"{only}{OLD}")):
            database.drop_collection(name)


class _Swapping(Restore):
    """A restore whose commit() swapped `<c>__pm_new` in with swap_in(keep_old=True): undo() puts the
    previous collections back, cleanup() drops them (and the collections the source no longer has)."""

    moved, added, gone = (), (), ()

    def undo(self):
        try:
            swap_back(_database(self.db), self.moved, self.added)
        except Exception:  # noqa: BLE001 - best effort; the old data stays in <c>__pm_old
            pass

    def cleanup(self):
        try:
            database = _database(self.db)
            drop_old(database, self.moved)
            for name in self.gone:
                database.drop_collection(name)
        except Exception:  # noqa: BLE001 - best effort; leftovers are dropped by the next run's begin()
            pass


class AtomicRestore(_Swapping):
    """mongorestore into `__pm_new` collections, then swap them in (see swap_in); abort drops them.
    MongoDB databases carry no owners or grants: `portable` and `keep_privileges` have nothing to do.
    The `exclude` collections (exclude_data) are not restored, and the target's own are left as they are."""

    def __init__(self, host, db, *, portable=True, keep_privileges=False, exclude=()):
        super().__init__(host, db, portable=portable, keep_privileges=keep_privileges)
        self.exclude = list(exclude)

    def begin(self):
        _drop_new(_database(self.db))  # leftovers of a killed run; the lock says no other run owns them
        return self.host.stream(restore_argv(self.db, exclude=self.exclude), env=tool_env(self.db))

    def commit(self):
        database = _database(self.db)
        new = sorted(n[: -len(NEW)] for n in database.list_collection_names() if n.endswith(NEW)
                     and n[: -len(NEW)] not in self.exclude)
        before = set(collections(database))
        # the source no longer has them: dropped in cleanup (not the excluded ones: they stay as they are)
        self.gone = [n for n in before if n not in new and n not in self.exclude]
        self.added = [n for n in new if n not in before]
        self.moved = swap_in(database, new, keep_old=True)

    def abort(self):
        try:
            _drop_new(_database(self.db))
        except ProdmirrorError:
            pass


def fingerprint(host, db, only=None):
    """Return {'tables': {collection: [documents, md5 or None]}, 'sequences': {}} (dbHash where the server
    allows it; with `only`, a set of names, those collections alone)."""
    import pymongo.errors

    database = _database(db)
    names = [n for n in collections(database) if only is None or n in only]
    try:
        hashes = database.command("dbHash", collections=names).get("collections", {})
    except pymongo.errors.OperationFailure:
        hashes = {}  # e.g. Atlas shared tiers refuse dbHash: counts still compare
    return {"tables": {n: [database[n].estimated_document_count(), hashes.get(n)] for n in names}, "sequences": {}}


def schema(host, db):
    """Return {collection: {'index NAME': spec, 'options': options}}: what defines each collection
    besides its documents (its indexes, and creation options such as a validator or capped size)."""
    database = _database(db)
    out = {}
    for name in collections(database):
        coll = database[name]
        # `v` (index format version) and `ns` say how, not what, and differ between server versions.
        entry = {f"index {index}": json.dumps({k: v for k, v in spec.items() if k not in ("v", "ns")},
                                              sort_keys=True, default=str)
                 for index, spec in coll.index_information().items()}
        options = coll.options()
        if options:
            entry["options"] = json.dumps(options, sort_keys=True, default=str)
        out[name] = entry
    return out


# --- one collection ----------------------------------------------------------------------------------

def resolve_object(host, db, name):
    """Given a collection name, return it if it exists; raise ProdmirrorError naming close matches."""
    names = collections(_database(db))
    if name in names:
        return name
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else f"; collections: {', '.join(names[:10]) or 'none'}"
    raise ProdmirrorError(f"no collection {name!r} in {db.env} database {database_name(db)}{hint}")


def object_label(obj):
    return obj


def object_parts(host, db, obj):
    return [obj]  # a collection stands alone


def snapshot(host, db, only=None, skip=()):
    """Return {'tables': {collection: [documents, dbHash]}, 'schema': {collection: hash of its indexes},
    'sequences': {}} (with `only`, those collections alone)."""
    import hashlib
    import json

    database = _database(db)
    content = {name: value for name, value in fingerprint(host, db)["tables"].items()
               if (only is None or name in only) and name not in skip}
    schema = {name: hashlib.md5(json.dumps(database[name].index_information(), sort_keys=True, default=str)
                                .encode()).hexdigest() for name in content}
    return {"tables": content, "schema": schema, "sequences": {}}


def landed(host, db, seen):
    """The snapshot of a database just restored (MongoDB's dump never tells what it saw: read it)."""
    return snapshot(host, db)


def object_jobs(src_host, src, dst_host, dst, objs, label, expect=None):
    """Return one job per collection: each is swapped in with undo (transfer.restore_all), MongoDB having
    no transaction that spans renames. (`expect` is not re-checked here: MongoDB cannot lock a
    collection against writes for the time of a restore.)"""
    return [(lambda obj=obj: dump_object(src_host, src, obj), ObjectReplace(dst_host, dst, obj), obj) for obj in objs]


def dump_object(host, db, obj):
    return host.stream(dump_argv(db, collection=obj), env=tool_env(db))


class ObjectReplace(_Swapping):
    """mongorestore one collection into `<c>__pm_new`, then rename it over `<c>` (one atomic rename)."""

    def __init__(self, host, db, obj):
        super().__init__(host, db)
        self.name = obj

    def begin(self):
        _drop_new(_database(self.db), only=self.name)
        return self.host.stream(restore_argv(self.db, collection=self.name), env=tool_env(self.db))

    def commit(self):
        database = _database(self.db)
        if f"{self.name}{NEW}" not in database.list_collection_names():
            raise ProdmirrorError(f"{self.name}: mongorestore wrote nothing; left as it was")
        self.added = [] if self.name in database.list_collection_names() else [self.name]
        self.moved = swap_in(database, [self.name], keep_old=True)

    def abort(self):
        try:
            _drop_new(_database(self.db), only=self.name)
        except ProdmirrorError:
            pass


def explain_object_failure(exc, label):
    return f"{label} was left as it was: {last_line(getattr(exc, 'stderr', '') or str(exc))}"


# --- after-sync password resets -------------------------------------------------------------------

def reset_passwords(host, db, collection, match, field, users, hashed):
    """Set `field` to each user's hash in documents whose `match` field is that user; return those found."""
    coll = _database(db)[collection]
    found = []
    for user in users:
        if coll.update_one({match: user}, {"$set": {field: hashed[user]}}).matched_count:
            found.append(user)
    return found
