"""Tables: listing, fingerprints and change counters, and one table replaced in a single transaction."""

import re

from ...errors import ProdmirrorError, last_line
from ..base import Restore
from .client import client_env, connection_args, psql_argv, query, quote_ident, quote_literal
from .database import _lock_hint

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


resolve_object = resolve_table
explain_object_failure = explain_table_failure


def object_label(obj):
    return f"{obj[0]}.{obj[1]}"


def dump_object(host, db, obj):
    return dump_table(host, db, *obj)


def ObjectReplace(host, db, obj):  # noqa: N802 - a factory standing where engines put a class
    return TableReplace(host, db, *obj)


