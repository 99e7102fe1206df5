"""The engine contract, written once. An engine is one module or package in this folder (postgres/,
mongo.py; a MySQL engine would be mysql.py) that gives every name of `Engine` below; `engines.engine_for` checks
it and names what is missing in one line, before anything runs. Config validation reads what an
engine needs from the module itself (REQUIRED_KEYS, OBJECT_WORD), so adding an engine is one file.

Restores (`AtomicRestore`, `ObjectReplace`) subclass `Restore`: begin() returns the sink that the
dump is pumped into, then finish() (optional), before_commit() (optional) and commit(); on a failure
before commit, abort(); on a failure of another restore's commit after this one's, undo(); once every
restore of a run is live, cleanup() (transfer.restore_all drives several together).
"""

from typing import Protocol


class Restore:
    """Data arriving into a target, all or nothing.

    begin() prepares the target side (e.g. a temporary database) and returns the sink (an End) to
    pump the dump into; finish() runs once every byte went in (optional: closing statements);
    commit() makes the data live (e.g. the swap), keeping what it replaced aside until cleanup();
    undo() puts that back after a commit; abort() leaves the target as it was; cleanup() drops what
    commit() kept aside. abort(), undo() and cleanup() never raise. before_commit() runs once every
    restore of the run has arrived (and the run's own last check passed), just before the commits:
    last work on the arrived data (it raises to abort them all).
    `portable` drops the source's owners and grants (they may not exist on the target) and what
    carries the source's credentials (Postgres: user mappings' options);
    `keep_privileges` re-applies the target's own owners and grants after the swap (a push), and
    whatever else of the target's own the restore replaced (Postgres: the database's properties).
    Engines without owners or grants accept both and have nothing to do for them.
    """

    def __init__(self, host, db, *, portable=True, keep_privileges=False):
        self.host, self.db, self.portable, self.keep_privileges = host, db, portable, keep_privileges

    def begin(self):
        raise NotImplementedError

    def finish(self):
        """Optional: called after the last byte went in, before the sink is checked."""

    def before_commit(self):
        """Optional: once every restore of the run has arrived, before any commit (raise to abort all)."""

    def commit(self):
        """Optional for restores whose sink commits by itself (its check() says whether it did)."""

    def abort(self):
        """Optional for restores that leave nothing behind when their sink fails."""

    def undo(self):
        """Optional: put back what commit() replaced (restores that commit in their sink cannot)."""

    def cleanup(self):
        """Optional: drop what commit() kept aside, once every restore of the run is live."""


class Engine(Protocol):
    """What every engine module gives. `host` is where its tools run (hosts.py), `db` a config Database,
    `obj` what resolve_object() returned for one table or collection."""

    REQUIRED_KEYS: tuple   # database keys config validation requires, e.g. ("name", "user")
    OBJECT_WORD: str       # what one object is called: "table", "collection"
    SUFFIX: str            # file suffix of a whole-database dump in a backup
    OBJECT_SUFFIX: str     # file suffix of a one-object dump
    DUMP_TOOL: str         # the tool named in a backup's manifest
    KEEPS_DATABASES: bool  # a previous database can be kept, renamed, as a backup (then kept_facts,
    #                        swap_kept, drop_kept, and AtomicRestore's keep_as are given too)
    EXCLUDES_DEFINITIONS: bool  # exclude_data leaves an object out whole (MongoDB), or only its data (Postgres)

    def tool_version(self, host) -> str:
        """Return the dump tool's version on `host`; raise HostError naming what to install."""

    def preflight(self, src_host, src, dst_host, dst) -> dict:
        """Check both sides before anything moves; return facts, at least {'target_exists': bool}."""

    def exists(self, host, db) -> bool:
        """Return whether the database exists."""

    def dump(self, host, db, snapshot=False, exclude=()):
        """Start a dump of the whole database; return the source End whose output is the archive. With
        `snapshot`, its `seen` is, after check(), the snapshot of exactly what it dumped, when the
        engine can tell (else None: the flow then takes the target's as both sides' base). `exclude`
        (objects from excluded()) are left out: their data (Postgres), or whole (MongoDB)."""

    def AtomicRestore(self, host, db, *, portable=True, keep_privileges=False, exclude=()) -> Restore:  # noqa: N802
        """Return the Restore that replaces the whole database atomically. `exclude`: the objects the
        dump left out; the target keeps its own of them (Postgres: their rows, with `keep_privileges`,
        a push; MongoDB: the whole collections, always). Engines that keep databases also take
        `keep_as`: the name the replaced database keeps, as a backup, instead of being dropped."""

    def excluded(self, host, db, patterns) -> list:
        """Given exclude_data's glob patterns, return the objects (as resolve_object() gives them) of
        the database whose label or own name one of them matches (exclude_data.matches)."""

    def fingerprint(self, host, db, only=None) -> dict:
        """Return {'tables': {name: [rows, content hash]}, 'sequences': {name: value}}: contents that compare
        across servers (status, parity, a table changed on both sides); with `only`, those alone."""

    def schema(self, host, db) -> dict:
        """Return {object: {'kind name': definition}}: what defines each table/collection (columns, indexes,
        constraints, triggers, policies… no owners, no grants), for status to compare besides the rows."""

    def snapshot(self, host, db, only=None, skip=()) -> dict:
        """Return what the drift guard and the three-way push compare, exactly: {'tables': {label:
        [rows, mark]}, 'schema': {label: signature}, 'sequences': {label: [value, owner label]}}, and
        optionally 'xid' (what marks are valid within: drift.comparable). A mark proves a table
        unchanged against an earlier mark of the same database (a content hash, or Postgres's change
        marks: engines/postgres/marks.py); with `only` (a set of labels), those tables alone; the rows of
        the `skip` labels are not read (their entries may be absent)."""

    def landed(self, host, db, seen) -> dict:
        """Return the snapshot of a database a whole-database restore just filled from a dump that saw
        `seen` (its `seen`): what snapshot() would return, possibly derived without reading the rows."""

    def resolve_object(self, host, db, name):
        """Given a user's name for one table/collection, return the engine's reference to it (JSON-able;
        a tuple is stored as a list); raise ProdmirrorError naming close matches."""

    def object_label(self, obj) -> str:
        """Return the name under which `obj` is shown, recorded and compared."""

    def object_parts(self, host, db, obj) -> list:
        """Return the labels of everything a copy of `obj` moves: itself first, then what belongs to it
        (a table's partitions or inheritance children)."""

    def dump_object(self, host, db, obj):
        """Start a dump of one object; return the Proc."""

    def ObjectReplace(self, host, db, obj) -> Restore:  # noqa: N802
        """Return the Restore that replaces one object's data atomically."""

    def object_jobs(self, src_host, src, dst_host, dst, objs, label, expect=None) -> list:
        """Return the transfer.restore_all jobs [(start_source, restore, label)] that copy several objects
        as one step: in one transaction where the engine has them, else each swapped with undo.
        `expect` ({label: snapshot entry}) is what the target held when checked: an engine that can
        lock the objects refuses the copy if they no longer match."""

    def explain_object_failure(self, exc, label) -> str:
        """Given the CommandError of a failed ObjectReplace, return one line saying why."""

    def reset_passwords(self, host, db, where, match, field, users, hashed) -> list:
        """Set `field` to hashed[user] where `match` equals user in table/collection `where`; return the users found."""


CONTRACT = tuple(sorted(set(Engine.__annotations__) | {
    name for name, value in vars(Engine).items() if callable(value) and not name.startswith("_")}))


def missing(module):
    """Given an engine module, return the names of the contract it lacks (empty when it satisfies it)."""
    return [name for name in CONTRACT if not hasattr(module, name)]
