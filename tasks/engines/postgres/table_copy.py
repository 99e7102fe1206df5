"""Copying tables rather than whole databases: a user's name for a table resolved against the catalog,
the table's whole tree (partitions, inheritance children), its rows dumped as plain SQL, and one or
several trees replaced on the target in a single transaction.

A name is never put into SQL or a shell as given: it only selects a (schema, table) that exists in
the catalog, which is then quoted.
"""

import difflib
import re

from ...errors import ProdmirrorError, last_line
from ...transfer import End
from ..base import Restore
from .client import client_env, connection_args, psql_argv, query, quote_ident, quote_literal
from .database import _lock_hint
from .tables import label, tables

# The table and every table below it (partitions of partitions, inheritance children), parents first.
TREE_SQL = """
WITH RECURSIVE tree(oid, depth) AS (
  SELECT c.oid, 0 FROM pg_class c WHERE c.oid = ANY(ARRAY[{tables}]::regclass[])
  UNION SELECT i.inhrelid, tree.depth + 1 FROM pg_inherits i JOIN tree ON i.inhparent = tree.oid)
SELECT n.nspname, c.relname FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace
GROUP BY n.nspname, c.relname ORDER BY min(tree.depth), 1, 2
"""

# search_path '' makes regclass and pg_get_constraintdef print schema-qualified names, which stay
# right inside the dump's session (pg_dump output also empties search_path). Foreign keys into a
# partition are clones of one on the partitioned table (conparentid): that root is what is dropped.
REFERENCING_SQL = """
SET search_path = '';
WITH RECURSIVE up(oid, conparentid) AS (
  SELECT c.oid, c.conparentid FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = ANY(ARRAY[{tables}]::regclass[])
  UNION SELECT p.oid, p.conparentid FROM pg_constraint p JOIN up ON p.oid = up.conparentid)
SELECT DISTINCT c.conrelid::regclass::text, quote_ident(c.conname), pg_get_constraintdef(c.oid)
FROM up JOIN pg_constraint c ON c.oid = up.oid WHERE c.conparentid = 0 ORDER BY 1, 2
"""
# User triggers defined on the tables themselves (a partition's clones follow their parent's).
TRIGGERS_SQL = """
SET search_path = '';
SELECT tgrelid::regclass::text, quote_ident(tgname) FROM pg_trigger
WHERE tgrelid = ANY(ARRAY[{tables}]::regclass[]) AND NOT tgisinternal AND tgparentid = 0 AND tgenabled <> 'D'
ORDER BY 1, 2
"""
# Every sequence the tables' integer columns draw from: owned (serial), identity, or only named in a
# DEFAULT nextval(...). After the copy each is moved at least past the highest value copied.
SEQUENCES_SQL = """
SET search_path = '';
SELECT DISTINCT seq::regclass::text, tbl::regclass::text, quote_ident(att.attname) FROM (
  SELECT d.refobjid AS seq, ad.adrelid AS tbl, ad.adnum AS num FROM pg_depend d
  JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid
  WHERE d.refclassid = 'pg_class'::regclass
  UNION
  SELECT d.objid, d.refobjid, d.refobjsubid FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
) used
JOIN pg_class s ON s.oid = used.seq AND s.relkind = 'S'
JOIN pg_attribute att ON att.attrelid = used.tbl AND att.attnum = used.num
WHERE used.tbl = ANY(ARRAY[{tables}]::regclass[]) AND att.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype)
ORDER BY 1, 2, 3
"""


def qualified(schema, table):
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def _array(objs):
    return ", ".join(quote_literal(qualified(s, t)) for s, t in objs)


def parse_name(name):
    """Given a name as SQL writes it (`"Order Items"`, `"Sales".orders`, `public.users`), return its
    parts with unquoted ones folded to lower case. Raise ProdmirrorError if it is not such a name."""
    parts, pos = [], 0
    token = re.compile(r'\s*(?:"((?:[^"]|"")+)"|([^".\s]+))\s*')
    while True:
        match = token.match(name, pos)
        if not match:
            raise ProdmirrorError(f"cannot read {name!r} as a table name")
        parts.append(match.group(1).replace('""', '"') if match.group(1) is not None else match.group(2).lower())
        pos = match.end()
        if pos == len(name):
            return parts
        if name[pos] != ".":
            raise ProdmirrorError(f"cannot read {name!r} as a table name")
        pos += 1


def resolve_table(host, db, name):
    """Given a user's name for a table, return its (schema, table). Raise ProdmirrorError (naming close
    matches) if no table has that name, or several do.

    Accepted: `users`, `billing.invoices`, `Order Items` (spaces, capitals and any letters as they
    are), and SQL's quoted forms (`"MixedCase"`, `"Sales"."Order Items"`); a bare name is looked for
    as written, then as SQL would fold it (lower case); without a schema, `public` wins a tie."""
    found = tables(host, db)
    if not name or len(name) > 300 or any(ord(ch) < 32 for ch in name):
        raise ProdmirrorError(f"invalid table name {name[:60]!r}")
    candidates = []
    if '"' in name:
        parts = parse_name(name)
        candidates = [(s, t) for s, t in found if [s, t][-len(parts):] == parts] if len(parts) <= 2 else []
    else:
        for wanted in (name, name.lower()):
            candidates = [(s, t) for s, t in found if t == wanted or f"{s}.{t}" == wanted]
            if candidates:
                break
    if len(candidates) > 1:
        candidates = [(s, t) for s, t in candidates if s == "public"] or candidates
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise ProdmirrorError(f"table {name!r} exists in several schemas ({', '.join(label(*c) for c in candidates)}): "
                              "write schema.table")
    known = sorted({label(s, t) for s, t in found})
    close = difflib.get_close_matches(name, known + [t for _, t in found], n=3, cutoff=0.5)
    hint = f"; closest: {', '.join(close)}" if close else f"; tables: {', '.join(known[:10]) or 'none'}"
    raise ProdmirrorError(f"no table {name!r} in {db.env} database {db.name}{hint}")


def excluded(host, db, patterns):
    """Given exclude_data's glob patterns, return [(schema, table)] of the tables whose label
    (`public.sessions`, `"Sales".orders`) or own name (`sessions`, in any schema) one of them matches,
    each with its partitions and children (their rows are the table's), parents first."""
    from ...exclude_data import matches

    found = [(s, t) for s, t in tables(host, db) if matches(patterns, label(s, t), t)] if patterns else []
    return tree(host, db, found) if found else []


def copy_rows(host, db, into, objs):
    """Replace the rows of tables `objs` ([(schema, table)], each with its tree) in database `into`, on
    the same server as `db`, with `db`'s current rows of them, in one transaction (TablesReplace:
    foreign keys checked, triggers held, sequences moved past the copied values). Tables `db` lacks
    are skipped. Return the labels of those copied; raise CommandError if the copy failed (`into`
    then has none of it)."""
    import dataclasses

    from ...transfer import stream_into

    present = set(tables(host, db))
    carry = [tuple(obj) for obj in objs if tuple(obj) in present]
    if carry:
        stream_into(dump_tables(host, db, carry), TablesReplace(host, dataclasses.replace(db, name=into), carry),
                    f"{db.key}: {db.env}'s own rows of {len(carry)} excluded table(s)")
    return [label(s, t) for s, t in carry]


def tree(host, db, objs):
    """Given [(schema, table)], return those tables and all tables below them (partitions, inheritance
    children), parents first."""
    return [tuple(row) for row in query(host, db, TREE_SQL.format(tables=_array(objs)))]


def dump_tables(host, db, objs):
    """Start pg_dump of the rows of the given tables and every table below them, as plain SQL; return the
    Proc. (`--table` names each one: a table's pattern does not take its partitions or children.)"""
    wait = (f"--lock-wait-timeout={int(host.limits.lock_wait * 1000)}",) if host.limits.lock_wait else ()
    names = tuple(f"--table={qualified(s, t)}" for s, t in tree(host, db, objs))
    argv = ("pg_dump", "--data-only", "--format=plain", "--strict-names") + names + wait + connection_args(db, db.name)
    proc = host.stream(argv, env=client_env(db))
    proc.hints = _lock_hint(host, db)
    return proc


READY = "prodmirror: ready to commit"


class TablesReplace(Restore):
    """Replace the rows of some tables (each with its partitions and children) in a single transaction:
    the old rows stay until everything succeeded, and the target never shows half a copy.

    Foreign keys from other tables into these are dropped and re-added inside the transaction, so
    PostgreSQL itself checks they still hold; if they do not, the whole transaction rolls back and the
    error names the constraint. The tables' own user triggers are suspended while the copied rows
    (which already carry what the triggers computed) go in. Every sequence the tables draw from is
    then moved past the highest value copied, so the next insert cannot collide; the dump's own
    `setval` calls (which no rollback undoes) are held back until every check passed.

    With `expect` ({label: [rows, mark]}, what the drift guard saw), the tables are locked first and
    compared with it: a write that landed since the check refuses the copy, and is not overwritten.
    The COMMIT waits for commit(), so that several of these (and whole-database swaps) are all
    checked before any of them becomes visible.
    """

    def __init__(self, host, db, objs, expect=None):
        super().__init__(host, db)
        self.objs = [tuple(obj) for obj in objs]
        self.expect = expect or {}
        self.session = None

    def begin(self):
        from .marks import mark_sql
        from .tables import SETTINGS, label

        members = tree(self.host, self.db, self.objs)
        tables = _array(members)
        fks = query(self.host, self.db, REFERENCING_SQL.format(tables=tables))
        triggers = query(self.host, self.db, TRIGGERS_SQL.format(tables=tables))
        sequences = query(self.host, self.db, SEQUENCES_SQL.format(tables=tables))
        names = ", ".join(qualified(s, t) for s, t in members)
        prologue = ["BEGIN;", f"SET LOCAL lock_timeout = '{int(self.host.limits.lock_wait)}s';",
                    f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE;"]
        checks = [(label(s, t), s, t) for s, t in members if label(s, t) in self.expect]
        if checks:  # under the same settings and with the same expression as tables.snapshot
            prologue.append(SETTINGS.replace("SET ", "SET LOCAL ").strip())
            prologue += [f"DO $pm$ BEGIN IF (SELECT array[c::text, h::text] FROM (SELECT {mark_sql(qualified(s, t))}) AS x(c, h)) "
                         f"IS DISTINCT FROM array[{quote_literal(str(self.expect[name][0]))}, "
                         f"{quote_literal(str(self.expect[name][1]))}] THEN RAISE EXCEPTION '%', "
                         f"{quote_literal(f'prodmirror: {name} changed in {self.db.env} since it was checked; nothing was written')}; "
                         "END IF; END $pm$;" for name, s, t in checks]
        prologue += [f"ALTER TABLE {rel} DROP CONSTRAINT {con};" for rel, con, _ in fks]
        prologue += [f"ALTER TABLE {rel} DISABLE TRIGGER {trigger};" for rel, trigger in triggers]
        prologue.append(f"TRUNCATE {names};")
        self.epilogue = [f"ALTER TABLE {rel} ENABLE TRIGGER {trigger};" for rel, trigger in triggers]
        self.epilogue += [f"ALTER TABLE {rel} ADD CONSTRAINT {con} {definition};" for rel, con, definition in fks]
        self.sequences = [f"SELECT pg_catalog.setval({quote_literal(seq)}, v, true) FROM (SELECT greatest("
                          f"(SELECT last_value FROM {seq}), (SELECT max({col}) FROM {rel})) AS v) AS top WHERE v IS NOT NULL;"
                          for seq, rel, col in sequences]
        argv = psql_argv(self.db, self.db.name) + ("-o", "/dev/null")
        self.session = _Session(self.host.stream(argv, env=client_env(self.db)))
        self.session.proc.write(("\n".join(prologue) + "\n").encode())
        return self.session

    def finish(self):
        """Called once the rows went in: re-enable, re-check foreign keys, then the held-back and the
        moved-past sequence values; psql then says it is ready (the sink's check waits for that)."""
        held = [line.decode() for line in self.session.held]
        self.session.proc.write(("\n" + "\n".join(self.epilogue + held + self.sequences)
                                 + f"\n\\echo {READY}\n").encode())

    def commit(self):
        self.session.proc.write(b"COMMIT;\n")
        self.session.proc.check()

    def abort(self):
        if self.session:
            self.session.proc.kill()  # no COMMIT was sent: PostgreSQL rolls the transaction back


class _Session(End):
    """The psql session a TablesReplace feeds. The dump's lines pass through, except its `setval`
    calls outside COPY data, which are held back; check() waits until psql has run everything but
    the COMMIT (it echoes READY) and raises with psql's reason if it stopped before."""

    def __init__(self, proc):
        self.proc, self.held, self._rest, self._in_copy = proc, [], b"", False

    def write(self, data):
        lines = (self._rest + data).split(b"\n")
        self._rest = lines.pop()
        out = []
        for line in lines:
            if self._in_copy:
                self._in_copy = line != b"\\."
            elif line.startswith(b"COPY ") and line.endswith(b" FROM stdin;"):
                self._in_copy = True
            elif line.startswith(b"SELECT pg_catalog.setval("):
                self.held.append(line)
                continue
            out.append(line)
        if out:
            self.proc.write(b"\n".join(out) + b"\n")

    def check(self):
        if self._rest:
            try:
                self.proc.write(self._rest)
            except OSError:
                self.proc.check()  # psql is gone: its exit code and stderr say why
                raise
            self._rest = b""
        seen = b""
        for chunk in iter(self.proc.read, b""):
            seen = (seen + chunk)[-4096:]
            if READY.encode() in seen:
                return
        self.proc.check()  # psql ended before READY: its exit code and stderr say why
        raise ProdmirrorError(f"{self.proc.where}: psql ended before the copy was complete")

    def kill(self):
        self.proc.kill()


def explain_table_failure(exc, name):
    """Given the CommandError of a failed TablesReplace, return a one-line reason (foreign keys named)."""
    text = getattr(exc, "stderr", "") or ""
    match = re.search(r'violates foreign key constraint "([^"]+)"', text)
    if match:
        return (f"{name} was left as it was: its new rows would break foreign key {match.group(1)} "
                f"({last_line(text)}); sync the referencing table too, or fix the data")
    return f"{name} was left as it was: {last_line(text) or exc}"  # killed psql: no stderr, the exit says why


# The engine contract's names for one table (engines/base.py).
resolve_object = resolve_table
explain_object_failure = explain_table_failure


def _several(obj):
    """Given one table (schema, table) or several [(schema, table), …] (a backup of the tables a
    --changed pull replaced), return the list of tables."""
    return [tuple(o) for o in obj] if obj and isinstance(obj[0], (list, tuple)) else [tuple(obj)]


def object_label(obj):
    return ", ".join(label(*o) for o in _several(obj))


def object_parts(host, db, obj):
    """Return the labels of what a copy of `obj` moves: the table, then its partitions or children."""
    return [label(s, t) for s, t in tree(host, db, _several(obj))]


def dump_object(host, db, obj):
    return dump_tables(host, db, _several(obj))


def ObjectReplace(host, db, obj):  # noqa: N802 - a factory standing where engines put a class
    return TablesReplace(host, db, _several(obj))


def object_jobs(src_host, src, dst_host, dst, objs, label, expect=None):
    """Return the transfer.restore_all jobs that copy these tables: one, so that they all land in one
    transaction and the target never shows half of them (`expect`: see TablesReplace)."""
    return [(lambda: dump_tables(src_host, src, objs), TablesReplace(dst_host, dst, objs, expect), label)]
