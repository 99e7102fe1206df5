"""Change marks: what proves that a table is unchanged since a sync without reading its rows' data.

A table's mark is its row count and an order-independent sum of hashes of each visible row's `xmin`
(the transaction that wrote that row version). Any write makes new row versions (INSERT, UPDATE),
or removes some (DELETE, TRUNCATE): a row version written after the mark was taken has an xmin of a
transaction that committed after it, which no row counted then has, so either the count or the sum
moves. VACUUM, VACUUM FULL and CLUSTER keep xmin: they do not count as changes; a no-op UPDATE does
(the mark errs towards "changed", never towards "unchanged"). Scanning `xmin` reads no column data:
about 4x cheaper than hashing each row's text (`tables.content_sql`, still used where two servers'
contents are compared).

Marks compare only with marks of the same database on the same server: the snapshot carries the
database's oid and the next transaction id, and `drift.changes` counts every table as changed when
the database was replaced, the transaction counter went back (a restore to an earlier point), or
it moved on by more than 2^31 (xid wraparound: an old xmin could come again).

`DumpSnapshot` opens a REPEATABLE READ transaction on the source, hands its snapshot to pg_dump
(`--snapshot`) and, while the dump streams, takes the marks of exactly what the dump sees.
"""

from ...errors import ProdmirrorError
from ...transfer import End
from .client import SEP, client_env, psql_argv

PREFIX = "xmin:"  # a mark never equals a content hash (a state file written by an older prodmirror)

# Each user table's mark, one statement per table (psql \gexec), in the session's snapshot.
MARKS_GEXEC = (
    "SELECT format('SELECT ''table'', %L, %L, count(*), ''" + PREFIX + "'' || "
    "coalesce(sum(hashint8extended(xmin::text::bigint, 0)), 0) FROM ONLY %I.%I', n, c, n, c) FROM ({tables}) AS t(n, c) \\gexec\n")

# The identity the marks are only valid within: the database's oid and the next transaction id; and
# how many large objects there are (their contents have no marks: a --changed pull does not rely on them).
XID_SQL = ("SELECT 'xid', (SELECT oid FROM pg_database WHERE datname = current_database()), "
           "pg_snapshot_xmax(pg_current_snapshot()), (SELECT count(*) FROM pg_largeobject_metadata);\n")

# After a restore: one row version's xmin hash per table (pg_restore loads each table in one COPY,
# one transaction), from which landed_marks() derives the marks without reading the rows.
FIRST_GEXEC = (
    "SELECT format('SELECT ''first'', %L, %L, (SELECT hashint8extended(xmin::text::bigint, 0) FROM ONLY %I.%I LIMIT 1)', "
    "n, c, n, c) FROM ({tables}) AS t(n, c) \\gexec\n")

END = "prodmirror: marks done"


def matview_sql(listed):
    """Return the psql lines giving each materialized view's mark, tagged 'matview' (their contents
    change by REFRESH only; `listed` is the SQL that lists them as (schema, name))."""
    return MARKS_GEXEC.replace("''table''", "''matview''").format(tables=listed.strip())


def mark_sql(qualified_name):
    """Return the select list that gives a table's own rows and mark (as the snapshot takes it)."""
    return (f"count(*), '{PREFIX}' || coalesce(sum(hashint8extended(_pm_row.xmin::text::bigint, 0)), 0) "
            f"FROM ONLY {qualified_name} AS _pm_row")


def landed_sql(catalog_sql, tables_sql):
    """Return the SQL whose rows, with the counts the dump saw, give the snapshot of a database
    pg_restore just filled: the catalog parts, the identity and one 'first' row per table."""
    return catalog_sql + XID_SQL + FIRST_GEXEC.format(tables=tables_sql.strip())


def landed_marks(firsts, seen):
    """Given {label: hash of one row version's xmin, or None when empty} of a just-restored database
    and `seen` ({label: [rows, mark]}, the dump's), return {label: [rows, mark]}, or None for a
    label it cannot derive (then that table is read). Every row of a restored table was written by
    the one COPY transaction that loaded it, so its mark is rows x that hash; were it otherwise, the
    derived mark would differ from the real one, and the table only ever look changed."""
    out = {}
    for name, first in firsts.items():
        rows = (seen.get(name) or [None])[0]
        if first is None:
            out[name] = [0, PREFIX + "0"]  # nothing landed (its rows were excluded, or there were none)
        elif rows:
            out[name] = [rows, f"{PREFIX}{rows * int(first)}"]
        else:
            out[name] = None
    return out


def snapshot_sql(catalog_sql, tables_sql):
    """Return the SQL (for psql) whose output rows make a snapshot: the catalog parts (`catalog_sql`,
    rows tagged 'sequence', 'owner', 'schema'), the identity ('xid') and one 'table' row per table."""
    return catalog_sql + XID_SQL + MARKS_GEXEC.format(tables=tables_sql.strip())


class DumpSnapshot(End):
    """A dump that also tells what it saw: pg_dump reads in a snapshot exported by a REPEATABLE READ
    transaction held open here, in which the snapshot SQL runs while the dump streams.

    read() is pg_dump's output; check() checks pg_dump, then reads the snapshot into `seen` and
    ends the transaction; kill() stops both.

    The transaction first takes ACCESS SHARE on `tables` (qualified names), within `lock_wait`
    seconds, and only then its snapshot: a TRUNCATE (which is not MVCC-safe) cannot slip in between
    the snapshot and the reads, neither this session's nor pg_dump's, which imports the snapshot
    while these locks are held. The role's own statement and idle-in-transaction timeouts are lifted
    for this transaction, as pg_dump lifts them for its own."""

    def __init__(self, host, db, start_dump, sql, build, tables=(), lock_wait=60, hints=()):
        self.host, self.db, self.build, self.seen, self._rest = host, db, build, None, b""
        self.session = host.stream(psql_argv(db, db.name), env=client_env(db))
        self.session.hints = hints
        lock = f"LOCK TABLE {', '.join(tables)} IN ACCESS SHARE MODE;\n" if tables else ""
        try:
            self.session.write(("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY;\n"
                                "SET LOCAL statement_timeout = 0; SET LOCAL idle_in_transaction_session_timeout = 0;\n"
                                f"SET LOCAL lock_timeout = '{max(int(lock_wait * 1000), 1)}ms';\n{lock}"
                                "SELECT pg_export_snapshot();\n").encode())
            snapshot_id = self._line()
            self.dump = start_dump(snapshot_id)
            self.session.write((sql + f"\\echo {END}\n").encode())
        except BaseException:
            self.session.kill()
            raise
        self.hints = self.dump.hints

    def _line(self):
        while b"\n" not in self._rest:
            chunk = self.session.read()
            if not chunk:
                self.session.check()
                raise ProdmirrorError(f"{self.session.where}: psql ended before the dump's snapshot was read")
            self._rest += chunk
        line, self._rest = self._rest.split(b"\n", 1)
        return line.decode()  # (not strip(): the field separator \x1f counts as white space)

    def read(self, n=1 << 20):
        return self.dump.read(n)

    def check(self):
        self.dump.check()
        rows = []
        while True:
            line = self._line()
            if line == END:
                break
            if line:
                rows.append(line.split(SEP))
        self.session.write(b"COMMIT;\n")
        self.session.check()
        self.seen = self.build(rows)

    def kill(self):
        self.dump.kill()
        self.session.kill()
