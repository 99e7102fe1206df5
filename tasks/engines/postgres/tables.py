"""Tables: listing, the names they are shown and recorded under, fingerprints and change counters, and
the after-sync password reset. Copying tables is table_copy.py."""

import re

from .client import query, quote_ident, quote_literal

PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


def label(schema, table):
    """Given a schema and table name, return how prodmirror shows and records it: `public.users`,
    `public."Order Items"`, `"Sales".orders` (quoted where SQL would need quotes)."""
    return f"{_shown(schema)}.{_shown(table)}"


def _shown(name):
    return name if PLAIN.match(name) else quote_ident(name)

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
    """Return {'tables': {label: [rows, hash]}, 'sequences': {label: value}} for the database.

    The hash is an order-independent sum of per-row md5 prefixes: equal data gives equal hashes on any
    server, and the database never has to sort or hold the rows.
    """
    names = tables(host, db)
    result = {"tables": {}, "sequences": {}}
    if names:
        parts = [
            f"SELECT {quote_literal(label(s, t))}, count(*), "
            "coalesce(sum(('x' || left(md5(_pm_row::text), 16))::bit(64)::bigint::numeric), 0) "
            f"FROM {quote_ident(s)}.{quote_ident(t)} AS _pm_row"
            for s, t in names
        ]
        for name, rows, digest in query(host, db, "\nUNION ALL\n".join(parts)):
            result["tables"][name] = [int(rows), digest]
    for schema, seq, value in query(host, db, SEQUENCES_SQL):
        result["sequences"][label(schema, seq)] = value
    return result


COUNTERS_SQL = ("SELECT schemaname, relname, n_tup_ins + n_tup_upd + n_tup_del, n_live_tup "
                "FROM pg_stat_user_tables ORDER BY 1, 2")


def counters(host, db):
    """Return {label: [changes, live rows]} from the statistics collector: a cheap change signal.

    Rows inserted, updated or deleted since the database was created move `changes`; reading moves nothing.
    """
    return {label(s, t): [int(changes), int(live)] for s, t, changes, live in query(host, db, COUNTERS_SQL)}


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
