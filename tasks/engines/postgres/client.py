"""Talking to PostgreSQL with its client tools on a host: quoting, connection options, psql queries.
The password (if any) travels in PGPASSWORD, never argv."""

import re

from ...errors import CommandError, HostError

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
    """Return the version text of a client tool on `host` (e.g. '15.18'), or raise HostError if it is
    missing. Asked once per host and run (a preflight and the backup's manifest both want it)."""
    known = host.__dict__.setdefault("_tool_versions", {})
    if tool not in known:
        known[tool] = _tool_version(host, tool)
    return known[tool]


def _tool_version(host, tool):
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
