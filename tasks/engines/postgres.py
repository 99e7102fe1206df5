"""PostgreSQL: pg_dump/pg_restore/psql driven on whichever host the database's tools run on.

The same functions exist in every engine module: preflight, dump, AtomicRestore, exists, fingerprint,
tool_version. A database is reached with the configured user/host/port; the password (if any) travels
in PGPASSWORD, never argv.
"""

import re

from ..errors import CommandError, HostError, ProdmirrorError

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


def dump_argv(db):
    return ("pg_dump", "--format=custom") + connection_args(db, db.name)


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


def server_major(host, db):
    """Return the server's major version (e.g. 15), asking the maintenance database."""
    num = int(query(host, db, "SHOW server_version_num", dbname=MAINTENANCE_DB)[0][0])
    return num // 10000


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


def preflight(src_host, src, dst_host, dst):
    """Check both servers answer and the tools can read each other; return facts for the plan.

    Raise ProdmirrorError (one line) when pg_dump is older than the source server or pg_restore older
    than pg_dump: the two mismatches that otherwise fail half way.
    """
    dump_v, restore_v = tool_version(src_host, "pg_dump"), tool_version(dst_host, "pg_restore")
    server = server_major(src_host, src)
    if not exists(src_host, src):
        raise ProdmirrorError(f"{src.path}: database {src.name!r} does not exist on {src_host.label}")
    if _major(dump_v) < server:
        raise ProdmirrorError(f"{src_host.label}: pg_dump {dump_v} cannot dump a PostgreSQL {server} server; "
                              f"install postgresql-client-{server} where pg_dump runs")
    if _major(restore_v) < _major(dump_v):
        raise ProdmirrorError(f"{dst_host.label}: pg_restore {restore_v} cannot read an archive from pg_dump {dump_v}; "
                              f"install postgresql-client-{_major(dump_v)} there")
    server_major(dst_host, dst)  # the target server answers
    return {"server": server, "pg_dump": dump_v, "pg_restore": restore_v,
            "target_exists": exists(dst_host, dst)}


def dump(host, db):
    """Start pg_dump (custom format) on `host`; return the Proc whose stdout is the archive."""
    return host.stream(dump_argv(db), env=client_env(db))


def _side_name(name, suffix):
    return name[: 63 - len(suffix)] + suffix


class AtomicRestore:
    """Restore into a temporary database, then swap it in for the real one in one transaction.

    begin() returns the pg_restore Proc to feed; commit() swaps (terminating sessions on the old
    database, as `DROP DATABASE … WITH (FORCE)` does); abort() drops the temporary database. Until
    commit() the target database is untouched, so a failed or interrupted restore loses nothing.
    """

    def __init__(self, host, db, portable=True):
        self.host, self.db, self.portable = host, db, portable
        self.tmp = _side_name(db.name, "__pm_new")
        self.old = _side_name(db.name, "__pm_old")

    def begin(self):
        tmp, old, owner = quote_ident(self.tmp), quote_ident(self.old), quote_ident(self.db.user)
        # Leftovers of a run that was killed: the lock guarantees no other run owns them.
        execute(self.host, self.db, f"DROP DATABASE IF EXISTS {tmp} WITH (FORCE);\n"
                                    f"DROP DATABASE IF EXISTS {old} WITH (FORCE);\n"
                                    f"CREATE DATABASE {tmp} TEMPLATE template0 OWNER {owner};\n")
        return self.host.stream(restore_argv(self.db, self.tmp, self.portable), env=client_env(self.db))

    def commit(self):
        name, tmp, old = quote_ident(self.db.name), quote_ident(self.tmp), quote_ident(self.old)
        if exists(self.host, self.db):
            execute(self.host, self.db,
                    "BEGIN;\n"
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = {quote_literal(self.db.name)} AND pid <> pg_backend_pid();\n"
                    f"ALTER DATABASE {name} RENAME TO {old};\n"
                    f"ALTER DATABASE {tmp} RENAME TO {name};\n"
                    "COMMIT;\n"
                    f"DROP DATABASE {old} WITH (FORCE);\n")
        else:
            execute(self.host, self.db, f"ALTER DATABASE {tmp} RENAME TO {name};\n")

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
