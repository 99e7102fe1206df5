"""PostgreSQL: pg_dump/pg_restore/psql driven on whichever host the database's tools run on.

This module satisfies the engine contract (engines/base.py); the clone functions at the end serve
hotfix.*, which needs Postgres. A database is reached with the configured user/host/port; the
password (if any) travels in PGPASSWORD, never argv.
"""

import re
import time

from ..errors import CommandError, HostError, ProdmirrorError, last_line
from .base import Restore

REQUIRED_KEYS = ("name", "user")
OBJECT_WORD = "table"
SUFFIX = ".pgdump"
DUMP_TOOL = "pg_dump"
MAGIC = b"PGDMP"
MAINTENANCE_DB = "postgres"
SEP = "\x1f"


def quote_ident(name):
    """Given an identifier, return it double-quoted for SQL."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text):
    """Given text, return it as a single-quoted SQL literal."""
    return "'" + text.replace("'", "''") + "'"


def client_env(db):
    return {"PGPASSWORD": db.password.reveal()} if db.password else {}


def connection_args(db, dbname):
    """Given a Database and the database name to open, return the libpq options as an argv tuple."""
    args = ("--no-password", "--username", db.user, "--dbname", dbname)
    if db.host:
        args += ("--host", db.host)
    if db.port:
        args += ("--port", str(db.port))
    return args


def dump_argv(db, lock_wait=None):
    """Return the pg_dump argv (custom format). `lock_wait` (seconds) bounds the wait for the shared
    locks pg_dump takes at its start: a table held ACCESS EXCLUSIVE then fails the dump in one line
    instead of blocking it forever."""
    wait = (f"--lock-wait-timeout={int(lock_wait * 1000)}",) if lock_wait else ()
    return ("pg_dump", "--format=custom") + wait + connection_args(db, db.name)


def restore_argv(db, into, portable=True):
    """Return the pg_restore argv that reads an archive on stdin into database `into`.

    `portable` drops ownership and grants (restoring into local, where production's roles do not exist).
    """
    argv = ("pg_restore", "--exit-on-error")
    if portable:
        argv += ("--no-owner", "--no-acl")
    return argv + connection_args(db, into)


def psql_argv(db, dbname):
    return ("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", SEP, "-f", "-") + connection_args(db, dbname)


def query(host, db, sql, dbname=None):
    """Given SQL, run it with psql on `host` and return the rows as lists of strings."""
    res = host.run(psql_argv(db, dbname or db.name), input=sql, env=client_env(db))
    return [line.split(SEP) for line in res.stdout.splitlines() if line]


def execute(host, db, sql, dbname=MAINTENANCE_DB):
    """Run SQL statements (each in its own transaction unless the SQL says BEGIN) in `dbname`."""
    host.run(psql_argv(db, dbname), input=sql, env=client_env(db))


def exists(host, db, name=None):
    rows = query(host, db, f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(name or db.name)}",
                 dbname=MAINTENANCE_DB)
    return bool(rows)


def tool_version(host, tool="pg_dump"):
    """Return the version text of a client tool on `host` (e.g. '15.18'), or raise HostError if it is missing."""
    try:
        out = host.run([tool, "--version"]).stdout
    except CommandError as exc:
        if exc.code == 127 or "not found" in exc.stderr or "executable file not found" in exc.stderr:
            raise HostError(f"{host.label}: {tool} is not installed (install the PostgreSQL client tools)") from None
        raise
    match = re.search(r"(\d+)(?:\.(\d+))?", out)
    if not match:
        raise HostError(f"{host.label}: cannot read the version of {tool} from {out.strip()!r}")
    return match.group(0)


def _major(version):
    return int(version.split(".")[0])


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
    than pg_dump: the two mismatches that otherwise fail half way.
    """
    dump_v, restore_v = tool_version(src_host, "pg_dump"), tool_version(dst_host, "pg_restore")
    server, src_exists, _ = server_facts(src_host, src)
    if not src_exists:
        raise ProdmirrorError(f"{src.path}: database {src.name!r} does not exist on {src_host.label}")
    if _major(dump_v) < server:
        raise ProdmirrorError(f"{src_host.label}: pg_dump {dump_v} cannot dump a PostgreSQL {server} server; "
                              f"install postgresql-client-{server} where pg_dump runs")
    if _major(restore_v) < _major(dump_v):
        raise ProdmirrorError(f"{dst_host.label}: pg_restore {restore_v} cannot read an archive from pg_dump {dump_v}; "
                              f"install postgresql-client-{_major(dump_v)} there")
    _, dst_exists, stuck = server_facts(dst_host, dst)
    if stuck:  # found before any data moves: the swap at the end could not take the database
        raise _stuck_sessions(dst_host, dst, stuck)
    return {"server": server, "pg_dump": dump_v, "pg_restore": restore_v, "target_exists": dst_exists}


def dump(host, db):
    """Start pg_dump (custom format) on `host`; return the Proc whose stdout is the archive."""
    proc = host.stream(dump_argv(db, host.limits.lock_wait), env=client_env(db))
    proc.hints = _lock_hint(host, db)
    return proc


def _lock_hint(host, db):
    # pg_dump's --lock-wait-timeout surfaces as a statement timeout: say what it means.
    return (("canceling statement due to statement timeout",
             f"another session holds a lock on a table of {db.name}; gave up after {host.limits.lock_wait:g} s "
             "(limits.lock_wait)"),)


def _side_name(name, suffix):
    return name[: 63 - len(suffix)] + suffix


class AtomicRestore(Restore):
    """Restore into a temporary database, then swap it in for the real one in one transaction.

    begin() returns the pg_restore Proc to feed; commit() swaps (terminating sessions on the old
    database, as `DROP DATABASE … WITH (FORCE)` does); abort() drops the temporary database. Until
    commit() the target database is untouched, so a failed or interrupted restore loses nothing.
    With `keep_privileges`, the target's owner and grant statements are read before the restore and
    re-applied after the swap, for every object that still exists.
    """

    def __init__(self, host, db, *, portable=True, keep_privileges=False):
        super().__init__(host, db, portable=portable, keep_privileges=keep_privileges)
        self.tmp = _side_name(db.name, "__pm_new")
        self.old = _side_name(db.name, "__pm_old")
        self.kept = []

    def begin(self):
        if self.keep_privileges and exists(self.host, self.db):
            self.kept = privileges(self.host, self.db)
        tmp, old, owner = quote_ident(self.tmp), quote_ident(self.old), quote_ident(self.db.user)
        # Leftovers of a run that was killed: the lock guarantees no other run owns them.
        execute(self.host, self.db, f"DROP DATABASE IF EXISTS {tmp} WITH (FORCE);\n"
                                    f"DROP DATABASE IF EXISTS {old} WITH (FORCE);\n"
                                    f"CREATE DATABASE {tmp} TEMPLATE template0 OWNER {owner};\n")
        return self.host.stream(restore_argv(self.db, self.tmp, self.portable), env=client_env(self.db))

    def commit(self):
        """Swap in one round trip: end the sessions this role may end, and rename the live database
        aside and the new one into its place in one transaction. Sessions that hold on (someone
        reconnecting, a superuser's) are waited out for `limits.lock_wait` seconds, then the restore
        is refused in one line: the live database stays as it was."""
        name, tmp, old = quote_ident(self.db.name), quote_ident(self.tmp), quote_ident(self.old)
        literal = quote_literal(self.db.name)  # (the previous run's `old`, if any, was dropped by begin())
        swap = ("DO $$ BEGIN\n"
                f"  IF EXISTS (SELECT 1 FROM pg_database WHERE datname = {literal}) THEN\n"
                f"    PERFORM pg_terminate_backend(a.pid) FROM pg_stat_activity a WHERE {OTHER_CLIENTS.format(name=literal)}"
                f" AND {CAN_END};\n"
                f"    ALTER DATABASE {name} RENAME TO {old};\n"
                "  END IF;\n"
                f"  ALTER DATABASE {tmp} RENAME TO {name};\n"
                "END $$;\n")
        deadline = time.monotonic() + self.host.limits.lock_wait
        while True:
            try:
                execute(self.host, self.db, swap)
                self.swapped = True
                return
            except CommandError as exc:
                if "being accessed by other users" not in exc.stderr or time.monotonic() > deadline:
                    _, _, stuck = server_facts(self.host, self.db)
                    if stuck:
                        raise _stuck_sessions(self.host, self.db, stuck) from None
                    raise
            time.sleep(0.5)

    def undo(self):
        """Put the previous database back (another database of the same run failed to swap)."""
        if not getattr(self, "swapped", False):
            return self.abort()
        name, tmp, old = quote_ident(self.db.name), quote_ident(self.tmp), quote_ident(self.old)
        try:
            execute(self.host, self.db, f"ALTER DATABASE {name} RENAME TO {tmp};\nALTER DATABASE {old} RENAME TO {name};\n"
                                        f"DROP DATABASE IF EXISTS {tmp} WITH (FORCE);\n")
        except ProdmirrorError as exc:
            from ..ui import say

            say(f"warning: {self.db.key}: could not put the previous database back ({exc}); it is kept as {self.old}")

    def cleanup(self):
        """Drop the previous database, then re-apply the kept owners and grants (both best effort)."""
        from ..ui import say

        try:
            execute(self.host, self.db, f"DROP DATABASE IF EXISTS {quote_ident(self.old)} WITH (FORCE);\n")
        except ProdmirrorError as exc:
            say(f"warning: {self.db.key}: the previous database is left as {self.old} ({exc}); drop it when convenient")
        if self.kept:
            failed = apply_privileges(self.host, self.db, self.kept)
            say(f"{self.db.key}: re-applied {len(self.kept) - failed} of {len(self.kept)} owner/grant statements "
                f"of {self.db.env}")

    def abort(self):
        try:
            execute(self.host, self.db, f"DROP DATABASE IF EXISTS {quote_ident(self.tmp)} WITH (FORCE);\n")
        except ProdmirrorError:
            pass  # best effort: the next run drops it before it starts


TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""

SEQUENCES_SQL = "SELECT schemaname, sequencename, coalesce(last_value::text, '') FROM pg_sequences ORDER BY 1, 2"


def tables(host, db):
    """Return [(schema, table)] of the user tables in the database."""
    return [tuple(row) for row in query(host, db, TABLES_SQL)]


def fingerprint(host, db):
    """Return {'tables': {'schema.table': [rows, hash]}, 'sequences': {'schema.seq': value}} for the database.

    The hash is an order-independent sum of per-row md5 prefixes: equal data gives equal hashes on any
    server, and the database never has to sort or hold the rows.
    """
    names = tables(host, db)
    result = {"tables": {}, "sequences": {}}
    if names:
        parts = [
            f"SELECT {quote_literal(s + '.' + t)}, count(*), "
            "coalesce(sum(('x' || left(md5(_pm_row::text), 16))::bit(64)::bigint::numeric), 0) "
            f"FROM {quote_ident(s)}.{quote_ident(t)} AS _pm_row"
            for s, t in names
        ]
        for name, rows, digest in query(host, db, "\nUNION ALL\n".join(parts)):
            result["tables"][name] = [int(rows), digest]
    for schema, seq, value in query(host, db, SEQUENCES_SQL):
        result["sequences"][f"{schema}.{seq}"] = value
    return result


COUNTERS_SQL = ("SELECT schemaname || '.' || relname, n_tup_ins + n_tup_upd + n_tup_del, n_live_tup "
                "FROM pg_stat_user_tables ORDER BY 1")


def counters(host, db):
    """Return {'schema.table': [changes, live rows]} from the statistics collector: a cheap change signal.

    Rows inserted, updated or deleted since the database was created move `changes`; reading moves nothing.
    """
    return {name: [int(changes), int(live)] for name, changes, live in query(host, db, COUNTERS_SQL)}


# --- one table -----------------------------------------------------------------------------------

def table_names(found):
    """Given [(schema, table)], return the names a user may give: 'schema.table', and 'table' alone for public."""
    return [f"{s}.{t}" for s, t in found] + [t for s, t in found if s == "public"]


def resolve_table(host, db, name):
    """Given 'table' or 'schema.table', return (schema, table). Raise ProdmirrorError naming close matches."""
    import difflib

    found = tables(host, db)
    schema, _, table = name.rpartition(".")
    matches = [(s, t) for s, t in found if t == table and (s == schema if schema else True)]
    if not schema and len(matches) > 1:
        matches = [(s, t) for s, t in matches if s == "public"] or matches
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ProdmirrorError(f"table {name!r} exists in several schemas ({', '.join(s for s, _ in matches)}): "
                              "write schema.table")
    known = sorted(set(table_names(found)))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else f"; tables: {', '.join(known[:10]) or 'none'}"
    raise ProdmirrorError(f"no table {name!r} in {db.env} database {db.name}{hint}")


def qualified(schema, table):
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def dump_table(host, db, schema, table):
    """Start pg_dump of one table's rows (and its owned sequences' values) as plain SQL; return the Proc."""
    wait = (f"--lock-wait-timeout={int(host.limits.lock_wait * 1000)}",) if host.limits.lock_wait else ()
    argv = ("pg_dump", "--data-only", "--format=plain", f"--table={qualified(schema, table)}") + wait \
        + connection_args(db, db.name)
    proc = host.stream(argv, env=client_env(db))
    proc.hints = _lock_hint(host, db)
    return proc


# search_path '' makes regclass and pg_get_constraintdef print schema-qualified names, which stay
# right inside the dump's session (pg_dump output also empties search_path).
REFERENCING_SQL = """
SET search_path = '';
SELECT conrelid::regclass::text, quote_ident(conname), pg_get_constraintdef(oid) FROM pg_constraint
WHERE contype = 'f' AND confrelid = '{table}'::regclass ORDER BY 1, 2
"""
TRIGGERS_SQL = """
SELECT quote_ident(tgname) FROM pg_trigger WHERE tgrelid = '{table}'::regclass AND NOT tgisinternal AND tgenabled <> 'D'
ORDER BY 1
"""


class TableReplace(Restore):
    """Replace one table's rows in a single transaction: the old rows stay until everything succeeded.

    Foreign keys from other tables to this one are dropped and re-added inside the transaction, so
    PostgreSQL itself checks they still hold; if they do not, the whole transaction rolls back and the
    error names the constraint. The table's own user triggers are suspended while the copied rows
    (which already carry what the triggers computed) go in.
    """

    def __init__(self, host, db, schema, table):
        super().__init__(host, db)
        self.schema, self.table = schema, table
        self.name = qualified(schema, table)

    def begin(self):
        literal = quote_literal(self.name)[1:-1]
        self.fks = query(self.host, self.db, REFERENCING_SQL.format(table=literal))
        triggers = [row[0] for row in query(self.host, self.db, TRIGGERS_SQL.format(table=literal))]
        prologue = ["BEGIN;", f"SET LOCAL lock_timeout = '{int(self.host.limits.lock_wait)}s';"]
        prologue += [f"ALTER TABLE {rel} DROP CONSTRAINT {con};" for rel, con, _ in self.fks]
        prologue += [f"ALTER TABLE {self.name} DISABLE TRIGGER {t};" for t in triggers]
        prologue.append(f"TRUNCATE ONLY {self.name};")
        self.epilogue = [f"ALTER TABLE {self.name} ENABLE TRIGGER {t};" for t in triggers]
        self.epilogue += [f"ALTER TABLE {rel} ADD CONSTRAINT {con} {definition};" for rel, con, definition in self.fks]
        self.epilogue.append("COMMIT;")
        argv = psql_argv(self.db, self.db.name) + ("-o", "/dev/null")
        self.proc = self.host.stream(argv, env=client_env(self.db))
        self.proc.write(("\n".join(prologue) + "\n").encode())
        return self.proc

    def finish(self):
        """Called once the rows went in: re-enable, re-check foreign keys, commit."""
        self.proc.write(("\n" + "\n".join(self.epilogue) + "\n").encode())

    # commit(): psql committed as the last statement; its exit code (the sink's check) says whether.
    # abort(): psql exits on the first error without COMMIT, so PostgreSQL rolls the transaction back.


def explain_table_failure(exc, name):
    """Given the CommandError of a failed TableReplace, return a one-line reason (foreign keys named)."""
    text = getattr(exc, "stderr", "") or ""
    match = re.search(r'violates foreign key constraint "([^"]+)"', text)
    if match:
        return (f"{name} was left as it was: its new rows would break foreign key {match.group(1)} "
                f"({last_error(text)}); sync the referencing table too, or fix the data")
    return f"{name} was left as it was: {last_error(text) or exc}"  # killed psql: no stderr, the exit says why


def last_error(text):
    return last_line(text)


# --- after-sync password resets and grants ---------------------------------------------------------

def reset_passwords(host, db, table, match, field, users, hashed):
    """Set `field` to the hash for rows whose `match` column is one of `users`; return the values found."""
    target = ".".join(quote_ident(part) for part in table.split("."))
    sql = ["BEGIN;"]
    for user in users:
        sql.append(f"UPDATE {target} SET {quote_ident(field)} = {quote_literal(hashed[user])} "
                   f"WHERE {quote_ident(match)} = {quote_literal(user)} RETURNING {quote_ident(match)};")
    sql.append("COMMIT;")
    return [row[0] for row in query(host, db, "\n".join(sql))]


OWNER_OR_GRANT = re.compile(r"^(GRANT |REVOKE |ALTER DEFAULT PRIVILEGES |ALTER [A-Z ]+ .* OWNER TO )")


def privileges(host, db):
    """Return the database's ownership and GRANT/REVOKE/default-privilege statements (to re-apply after a push)."""
    argv = ("pg_dump", "--schema-only") + connection_args(db, db.name)
    out = host.run(argv, env=client_env(db)).stdout
    return [line for line in out.splitlines() if OWNER_OR_GRANT.match(line)]


def apply_privileges(host, db, statements):
    """Run grant statements one by one, each on its own (a grant on an object that is gone is skipped); return failures."""
    if not statements:
        return 0
    argv = ("psql", "-X", "-q", "-o", "/dev/null", "-f", "-") + connection_args(db, db.name)
    res = host.run(argv, input="\n".join(statements) + "\n", env=client_env(db), check=False)
    return res.stderr.count("ERROR:")


# The engine-neutral names the flows use for "one table or collection".
resolve_object = resolve_table
explain_object_failure = explain_table_failure


def object_label(obj):
    return f"{obj[0]}.{obj[1]}"


def dump_object(host, db, obj):
    return dump_table(host, db, *obj)


def ObjectReplace(host, db, obj):  # noqa: N802 - a factory standing where engines put a class
    return TableReplace(host, db, *obj)


OBJECT_SUFFIX = ".sql"


# --- clones on the same server (hotfix) ------------------------------------------------------------

def clone_facts(host, db, new):
    """Return {'new_exists', 'sessions' (other sessions on db), 'owner' (of db)} in one round trip."""
    src, dst = quote_literal(db.name), quote_literal(new)
    row = query(host, db, f"SELECT (SELECT count(*) FROM pg_database WHERE datname = {dst}), "
                          f"(SELECT count(*) FROM pg_stat_activity WHERE datname = {src} AND pid <> pg_backend_pid()), "
                          f"(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {src})",
                dbname=MAINTENANCE_DB)[0]
    if not row[2]:
        raise ProdmirrorError(f"{db.path}: database {db.name!r} does not exist on {host.label}")
    return {"new_exists": row[0] != "0", "sessions": int(row[1]), "owner": row[2]}


def clone_template(host, db, new, owner, terminate=False):
    """CREATE DATABASE new TEMPLATE db (a file-level copy; needs the source without other sessions).

    With `terminate`, sessions on the source are ended first. Raise CommandError if the source is busy.
    """
    sql = ""
    if terminate:
        sql += ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = {quote_literal(db.name)} AND pid <> pg_backend_pid();\n")
    sql += f"CREATE DATABASE {quote_ident(new)} TEMPLATE {quote_ident(db.name)} OWNER {quote_ident(owner)};\n"
    execute(host, db, sql)


def online_clone_argv(db, new):
    """Return the argv that copies db into `new` on its own server with `pg_dump | pg_restore` (owners and
    grants kept: the roles are the same server's), failing if either side fails."""
    dump = " ".join(shlex_quote(a) for a in ("pg_dump", "--format=custom") + connection_args(db, db.name))
    restore = " ".join(shlex_quote(a) for a in ("pg_restore", "--exit-on-error") + connection_args(db, new))
    return ("bash", "-o", "pipefail", "-c", f"{dump} | {restore}")


def clone_dump(host, db, new, owner):
    """Create `new` and fill it from a live pg_dump of db on the same host; drop it again on failure."""
    execute(host, db, f"CREATE DATABASE {quote_ident(new)} TEMPLATE template0 OWNER {quote_ident(owner)};\n")
    try:
        host.run(online_clone_argv(db, new), env=client_env(db))
    except BaseException:
        drop(host, db, new)
        raise


def drop(host, db, name):
    """DROP DATABASE name WITH (FORCE), if it exists."""
    execute(host, db, f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);\n")


def shlex_quote(text):
    import shlex

    return shlex.quote(text)
