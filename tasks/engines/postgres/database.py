"""A whole database: pg_dump, and the atomic restore into a temporary database swapped in for the live
one (what a push keeps of the target's own is privileges.py; what a restore needs on the target
besides the data is needs.py)."""

import time

from ...errors import CommandError, ProdmirrorError, last_line
from ...parallel import together
from ..base import Restore
from . import needs
from .archive import TocRewrite, without_credentials
from .client import (MAINTENANCE_DB, _major, client_env, connection_args, execute, exists, query, quote_ident,
                     quote_literal, tool_version)
from .marks import DumpSnapshot
from .privileges import apply_privileges, privileges
from .tables import build_snapshot, label, snapshot_sql, tables


def dump_argv(db, lock_wait=None, schema_only=False, exclude=(), snapshot=None):
    """Return the pg_dump argv (custom format; `schema_only`: no data; `snapshot`: an exported
    snapshot's id to dump in). `lock_wait` (seconds) bounds the wait for the shared locks pg_dump
    takes at its start: a table held ACCESS EXCLUSIVE then fails the dump in one line instead of
    blocking it forever. `exclude` ([(schema, table)]): tables whose definitions come but not their
    rows, each named exactly (quoted, a pg_dump pattern would otherwise fold case and read `*`, `?`
    and `.` as wildcards and separators)."""
    from .table_copy import qualified

    wait = (f"--lock-wait-timeout={int(lock_wait * 1000)}",) if lock_wait else ()
    skip = tuple(f"--exclude-table-data={qualified(schema, table)}" for schema, table in exclude)
    return ("pg_dump", "--format=custom") + (("--schema-only",) if schema_only else ()) + wait + skip \
        + ((f"--snapshot={snapshot}",) if snapshot else ()) + connection_args(db, db.name)


def restore_argv(db, into, portable=True):
    """Return the pg_restore argv that reads an archive on stdin into database `into`.

    `portable` drops ownership and grants (restoring into local, where production's roles do not exist).
    """
    argv = ("pg_restore", "--exit-on-error")
    if portable:
        argv += ("--no-owner", "--no-acl")
    return argv + connection_args(db, into)


# Whether the configured role may end session `a` (a row of pg_stat_activity): a superuser may end
# any; anyone else only non-superusers' sessions of roles it is a member of (or with pg_signal_backend).
CAN_END = ("((SELECT rolsuper FROM pg_roles WHERE rolname = current_user) OR "
           "(NOT coalesce((SELECT rolsuper FROM pg_roles WHERE oid = a.usesysid), false) AND "
           "(pg_has_role(current_user, a.usesysid, 'MEMBER') OR pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'))))")
# Client sessions only: autovacuum workers (no user) are not ours to end (that takes a superuser), and
# the rename ends them itself (PostgreSQL signals them and waits up to 5 s). A non-superuser sees
# other roles' backend_type as NULL, hence the coalesce.
OTHER_CLIENTS = ("a.datname = {name} AND a.pid <> pg_backend_pid() AND a.usesysid IS NOT NULL "
                 "AND coalesce(a.backend_type, 'client backend') = 'client backend'")


def server_facts(host, db):
    """Return (server major version, whether the database exists, the sessions on it this role may
    not end as 'pid (user)' text) in one round trip."""
    name = quote_literal(db.name)
    major, present, stuck = query(
        host, db, "SELECT current_setting('server_version_num'), "
                  f"(SELECT count(*) FROM pg_database WHERE datname = {name}), "
                  "(SELECT coalesce(string_agg(a.pid || ' (' || coalesce(a.usename, '?') || ')', ', '), '') "
                  f"FROM pg_stat_activity a WHERE {OTHER_CLIENTS.format(name=name)} AND NOT {CAN_END})",
        dbname=MAINTENANCE_DB)[0]
    return int(major) // 10000, present != "0", stuck


def _stuck_sessions(host, db, stuck):
    return ProdmirrorError(f"{host.label}: database {db.name} has sessions that {db.user} may not end: {stuck}; "
                           "close them (or configure a superuser) and run again; nothing was changed")


def preflight(src_host, src, dst_host, dst):
    """Check both servers answer and the tools can read each other; return facts for the plan.

    Raise ProdmirrorError (one line) when pg_dump is older than the source server or pg_restore older
    than pg_dump, or when the target lacks roles or extensions the source's schema needs (needs.py):
    the mismatches that otherwise fail half way.
    """
    (dump_v, (server, src_exists, _)), (restore_v, (_, dst_exists, stuck)) = together(
        lambda: (tool_version(src_host, "pg_dump"), server_facts(src_host, src)),
        lambda: (tool_version(dst_host, "pg_restore"), server_facts(dst_host, dst)))  # each side's at once
    if not src_exists:
        raise ProdmirrorError(f"{src.path}: database {src.name!r} does not exist on {src_host.label}")
    if _major(dump_v) < server:
        raise ProdmirrorError(f"{src_host.label}: pg_dump {dump_v} cannot dump a PostgreSQL {server} server; "
                              f"install postgresql-client-{server} where pg_dump runs")
    if _major(restore_v) < _major(dump_v):
        raise ProdmirrorError(f"{dst_host.label}: pg_restore {restore_v} cannot read an archive from pg_dump {dump_v}; "
                              f"install postgresql-client-{_major(dump_v)} there")
    if stuck:  # found before any data moves: the swap at the end could not take the database
        raise _stuck_sessions(dst_host, dst, stuck)
    needs.ensure(src_host, src, dst_host, dst)  # last: it may create roles, once nothing else refuses
    return {"server": server, "pg_dump": dump_v, "pg_restore": restore_v, "target_exists": dst_exists}


def dump(host, db, snapshot=False, exclude=()):
    """Start pg_dump (custom format) on `host`; return the source End whose output is the archive
    (without the rows of the `exclude` tables, [(schema, table)]). With `snapshot`, its `seen` is,
    once check() passed, the snapshot (tables.snapshot) of exactly the state it dumped
    (marks.DumpSnapshot), taken while it streams."""
    def start(snapshot_id=None):
        proc = host.stream(dump_argv(db, host.limits.lock_wait, exclude=exclude, snapshot=snapshot_id),
                           env=client_env(db))
        proc.hints = _lock_hint(host, db)
        return proc

    if not snapshot:
        return start()
    from .table_copy import qualified

    listed = [qualified(s, t) for s, t in tables(host, db)]
    hints = (("canceling statement due to lock timeout", _lock_hint(host, db)[0][1]),)
    skipped = {label(*obj) for obj in exclude}  # their rows are not read for marks either
    return DumpSnapshot(host, db, start, snapshot_sql(host, db, skip=skipped), build_snapshot, tables=listed,
                        lock_wait=host.limits.lock_wait, hints=hints)


def _lock_hint(host, db):
    # pg_dump's --lock-wait-timeout surfaces as a statement timeout: say what it means.
    return (("canceling statement due to statement timeout",
             f"another session holds a lock on a table of {db.name}; gave up after {host.limits.lock_wait:g} s "
             "(limits.lock_wait)"),)


def side_name(name, suffix):
    """Return database `name` with `suffix`, within PostgreSQL's 63-byte limit: a name that must be
    shortened keeps a hash of its whole self, so that two long names sharing their start never give
    the same side name."""
    if len((name + suffix).encode()) <= 63:
        return name + suffix
    import hashlib

    tag = "_" + hashlib.md5(name.encode()).hexdigest()[:8]
    while len((name + tag + suffix).encode()) > 63:
        name = name[:-1]
    return name + tag + suffix


class AtomicRestore(Restore):
    """Restore into a temporary database, then swap it in for the real one in one transaction.

    begin() returns the pg_restore Proc to feed (a portable restore's through TocRewrite, which
    leaves user mappings' options out on the way: no credentials of the source land here); commit()
    swaps (terminating sessions on the old database, as `DROP DATABASE … WITH (FORCE)` does); abort()
    drops the temporary database. Until commit() the target database is untouched, so a failed or
    interrupted restore loses nothing. With `keep_privileges`, what the target has of its own
    (privileges.py: owners, grants, database properties, user mappings, large objects' owners) is
    read before the restore and re-applied after the swap, for every object that still exists; a
    restore that is not portable (a backup of the same environment, owners and grants included)
    keeps the target's database properties that way. `exclude` ([(schema, table)]) are the tables
    whose rows the dump left out (exclude_data): with `keep_privileges` (a push) before_commit()
    copies the live database's current rows of them into the new one, in one transaction, so that
    the swap never empties them; a failure there aborts the restore like any other.
    """

    def __init__(self, host, db, *, portable=True, keep_privileges=False, exclude=(), keep_as=None):
        super().__init__(host, db, portable=portable, keep_privileges=keep_privileges)
        self.tmp = side_name(db.name, "__pm_new")
        self.old = keep_as or side_name(db.name, "__pm_old")
        self.keep_as = keep_as  # the swap renames the live database to this, and cleanup() keeps it
        self.kept = []
        self.exclude = [tuple(obj) for obj in exclude]

    def begin(self):
        if (self.keep_privileges or not self.portable) and exists(self.host, self.db):
            self.kept = privileges(self.host, self.db, dump_argv(self.db, self.host.limits.lock_wait, schema_only=True),
                                   database_only=not self.keep_privileges)
        tmp, owner = quote_ident(self.tmp), quote_ident(self.db.user)
        # Leftovers of a run that was killed: the lock guarantees no other run owns them.
        leftover = quote_ident(side_name(self.db.name, "__pm_old"))
        execute(self.host, self.db, f"DROP DATABASE IF EXISTS {tmp} WITH (FORCE);\n"
                                    f"DROP DATABASE IF EXISTS {leftover} WITH (FORCE);\n"
                                    f"CREATE DATABASE {tmp} TEMPLATE template0 OWNER {owner};\n")
        sink = self.host.stream(restore_argv(self.db, self.tmp, self.portable), env=client_env(self.db))
        return TocRewrite(sink, without_credentials) if self.portable else sink

    def before_commit(self):
        """With `keep_privileges` (a push), copy the live database's current rows of the excluded tables
        into the new one (table_copy.copy_rows), as late as possible: just before the swaps."""
        if not (self.keep_privileges and self.exclude):
            return
        from .table_copy import copy_rows

        try:
            carried = copy_rows(self.host, self.db, self.tmp, self.exclude)
        except CommandError as exc:
            raise ProdmirrorError(f"{self.db.key}: {self.db.env}'s own rows of the tables exclude_data keeps out do "
                                  f"not fit the new database ({last_line(exc.stderr) or exc}); nothing was swapped in, "
                                  f"{self.db.env} is as it was") from None
        if carried:
            from ...ui import say

            say(f"{self.db.key}: kept {self.db.env}'s own rows of {', '.join(carried)} (exclude_data)")

    def commit(self):
        """Swap in one round trip (swap_in): the live database renamed aside, the new one into its place."""
        swap_in(self.host, self.db, self.tmp, self.old)  # (the previous run's `old`, if any, was dropped by begin())
        self.swapped = True

    def undo(self):
        """Put the previous database back (another database of the same run failed to swap)."""
        if not getattr(self, "swapped", False):
            return self.abort()
        name, tmp, old = quote_ident(self.db.name), quote_ident(self.tmp), quote_ident(self.old)
        try:
            execute(self.host, self.db, f"ALTER DATABASE {name} RENAME TO {tmp};\nALTER DATABASE {old} RENAME TO {name};\n"
                                        f"DROP DATABASE IF EXISTS {tmp} WITH (FORCE);\n")
        except ProdmirrorError as exc:
            from ...ui import say

            say(f"warning: {self.db.key}: could not put the previous database back ({exc}); it is {self.old} now: "
                f"rename it to {self.db.name} by hand" + ("" if self.keep_as else " before the next run, which would drop it"))

    def cleanup(self):
        """Drop the previous database, then re-apply the kept owners and grants (both best effort)."""
        from ...ui import say

        try:
            if not self.keep_as:  # else it stays: a database backup (backup_store.KeptDatabases)
                execute(self.host, self.db, f"DROP DATABASE IF EXISTS {quote_ident(self.old)} WITH (FORCE);\n")
        except ProdmirrorError as exc:
            say(f"warning: {self.db.key}: the previous database is left as {self.old} ({exc}); drop it when convenient")
        if self.kept:
            failed = apply_privileges(self.host, self.db, self.kept)
            what = "owners, grants, database settings and user mappings" if self.keep_privileges else "database settings"
            say(f"{self.db.key}: re-applied {self.db.env}'s own {what}"
                + (f" ({failed} statements failed, e.g. for objects the push removed)" if failed else ""))

    def abort(self):
        try:
            execute(self.host, self.db, f"DROP DATABASE IF EXISTS {quote_ident(self.tmp)} WITH (FORCE);\n")
        except ProdmirrorError:
            pass  # best effort: the next run drops it before it starts


# --- databases kept as backups (backup_store.KeptDatabases) -------------------------------------------

KEEPS_DATABASES = True  # a previous database can be kept, renamed, as a backup


def kept_facts(host, db, name):
    """Return (oid, size in bytes) of database `name` on db's server, or None if there is none."""
    rows = query(host, db, f"SELECT oid, pg_database_size(oid) FROM pg_database WHERE datname = {quote_literal(name)}",
                 dbname=MAINTENANCE_DB)
    return (int(rows[0][0]), int(rows[0][1])) if rows else None


def swap_in(host, db, new, aside=None):
    """Put database `new` in the place of db's live one in one transaction: the live one (if any) is
    first renamed to `aside`, after ending the sessions this role may end (with no `aside`, a live
    one refuses the swap). Instant at any size: nothing is copied. Sessions that hold on (someone
    reconnecting, a superuser's) are waited out for `limits.lock_wait` seconds, then it is refused in
    one line, the live database as it was. The swap of every whole-database restore, and the restore
    of a database backup (swap_kept)."""
    name, literal = quote_ident(db.name), quote_literal(db.name)
    rename_aside = (f"    PERFORM pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE {OTHER_CLIENTS.format(name=literal)}"
                    f" AND {CAN_END};\n    ALTER DATABASE {name} RENAME TO {quote_ident(aside)};\n") \
        if aside else f"    RAISE EXCEPTION 'database % exists', {literal};\n"
    swap = ("DO $$ BEGIN\n"
            f"  IF EXISTS (SELECT 1 FROM pg_database WHERE datname = {literal}) THEN\n{rename_aside}  END IF;\n"
            f"  ALTER DATABASE {quote_ident(new)} RENAME TO {name};\nEND $$;\n")
    deadline = time.monotonic() + host.limits.lock_wait
    while True:
        try:
            return execute(host, db, swap)
        except CommandError as exc:
            if "being accessed by other users" not in exc.stderr or time.monotonic() > deadline:
                _, _, stuck = server_facts(host, db)
                if stuck:
                    raise _stuck_sessions(host, db, stuck) from None
                raise
        time.sleep(0.5)


swap_kept = swap_in  # the engine's name for putting a kept database back (backup_store.KeptDatabases)


def drop_kept(host, db, name):
    """Drop database `name` (a kept previous database that retention let go)."""
    execute(host, db, f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);\n")


# The engine-neutral names the flows use for "one table or collection".
