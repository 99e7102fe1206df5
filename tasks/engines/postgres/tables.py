"""Tables: listing, the names they are shown and recorded under, content fingerprints (which compare
across servers), snapshots (what the drift guard compares: change marks, marks.py, with schema
signatures and sequences), and the after-sync password reset. Copying tables is table_copy.py."""

import hashlib
import re

from . import marks
from .client import query, quote_ident, quote_literal

PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


def label(schema, table):
    """Given a schema and table name, return how prodmirror shows and records it: `public.users`,
    `public."Order Items"`, `"Sales".orders` (quoted where SQL would need quotes)."""
    return f"{_shown(schema)}.{_shown(table)}"


def _shown(name):
    return name if PLAIN.match(name) else quote_ident(name)


# Every table's own rows, partitions included (each counts once: FROM ONLY), so that a change to any
# of them is seen on its own, and a partition pushed alone is guarded alone.
TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""

SEQUENCES_SQL = "SELECT schemaname, sequencename, coalesce(last_value::text, '') FROM pg_sequences ORDER BY 1, 2"


def tables(host, db):
    """Return [(schema, table)] of the user tables in the database, partitions included."""
    return [tuple(row) for row in query(host, db, TABLES_SQL)]


def fingerprint(host, db, only=None):
    """Return {'tables': {label: [rows, hash]}, 'sequences': {label: value}} for the database (with
    `only`, a set of labels, for those tables alone).

    The hash is an order-independent sum of 64-bit hashes of each row's text (hashtextextended, twice
    as fast as md5), computed under fixed output settings (SETTINGS) so that two servers set up
    differently (time zone, date style) give equal hashes for equal data; the database never has to
    sort or hold the rows.
    """
    sequences = {label(schema, seq): value for schema, seq, value in query(host, db, SEQUENCES_SQL)}
    return {"tables": _contents(host, db, only), "sequences": sequences}


def _contents(host, db, only=None):
    """Return {label: [rows, hash]} of every table (or those labelled in `only`), in one query."""
    names = [(s, t) for s, t in tables(host, db) if only is None or label(s, t) in only]
    if not names:
        return {}
    parts = [f"SELECT {quote_literal(label(s, t))}, {content_sql(s, t)}" for s, t in names]
    return {name: [int(rows), digest] for name, rows, digest in query(host, db, SETTINGS + "\nUNION ALL\n".join(parts))}


# Row text depends on these session settings: fixed, it is the same on every server. row_security off
# (as pg_dump sets it): a role that a policy would hide rows from gets an error, never a short count.
SETTINGS = ("SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'; "
            "SET extra_float_digits = 3; SET bytea_output = 'hex'; SET search_path = ''; SET row_security = off;\n")


def content_sql(schema, table):
    """Return the select list that gives a table's own rows and content hash (under SETTINGS)."""
    from .table_copy import qualified

    return (f"count(*), coalesce(sum(hashtextextended(_pm_row::text, 0)), 0) "
            f"FROM ONLY {qualified(schema, table)} AS _pm_row")


# One signature per table (a partitioned table's covers its partitions): columns with their types,
# defaults, generation and identity; constraints; indexes; triggers; row-level security and its
# policies. Owners and grants are left out: a pull drops them by design.
SCHEMA_SQL = """
SELECT n.nspname, c.relname, md5(concat_ws(' | ',
  (SELECT string_agg(format('%I %s %s %s %s %s', a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                            coalesce(pg_get_expr(d.adbin, d.adrelid), ''), a.attgenerated, a.attidentity), ', '
                     ORDER BY a.attnum)
     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(def, ', ' ORDER BY def) FROM (SELECT format('%s %I %s', k.conrelid::regclass, k.conname,
                                                                pg_get_constraintdef(k.oid)) AS def
     FROM pg_constraint k WHERE (k.conrelid = c.oid OR k.conrelid IN (SELECT t.relid FROM pg_partition_tree(c.oid) t))) ks),
  (SELECT string_agg(pg_get_indexdef(i.indexrelid), ', ' ORDER BY pg_get_indexdef(i.indexrelid))
     FROM pg_index i WHERE (i.indrelid = c.oid OR i.indrelid IN (SELECT t.relid FROM pg_partition_tree(c.oid) t))),
  (SELECT string_agg(pg_get_triggerdef(g.oid), ', ' ORDER BY pg_get_triggerdef(g.oid))
     FROM pg_trigger g WHERE (g.tgrelid = c.oid OR g.tgrelid IN (SELECT t.relid FROM pg_partition_tree(c.oid) t)) AND NOT g.tgisinternal),
  (SELECT string_agg(format('%I %s %s %s %s', p.polname, p.polcmd, p.polpermissive,
                            coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
                            coalesce(pg_get_expr(p.polwithcheck, p.polrelid), '')), ', ' ORDER BY p.polname)
     FROM pg_policy p WHERE p.polrelid = c.oid),
  c.relrowsecurity::text, c.relforcerowsecurity::text))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')
ORDER BY 1, 2
"""
# Which table a sequence belongs to (serial, identity: OWNED BY; else the table whose DEFAULT names it),
# so that a move of it is that table's change.
SEQUENCE_OWNERS_SQL = """
SELECT DISTINCT ON (seq) sn.nspname, s.relname, tn.nspname, t.relname FROM (
  SELECT d.objid AS seq, d.refobjid AS tbl, 0 AS rank FROM pg_depend d
  WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  UNION ALL
  SELECT d.refobjid, ad.adrelid, 1 FROM pg_depend d JOIN pg_attrdef ad ON d.classid = 'pg_attrdef'::regclass
    AND d.objid = ad.oid WHERE d.refclassid = 'pg_class'::regclass
) used
JOIN pg_class s ON s.oid = used.seq AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_class t ON t.oid = used.tbl JOIN pg_namespace tn ON tn.oid = t.relnamespace
ORDER BY seq, rank, tn.nspname, t.relname
"""


# What defines the database besides its tables' own signatures: views and materialized views,
# functions and procedures, enums, domains and composite types, schemas, extensions, rules, sequences'
# definitions (objects of extensions left out). Any change is a change of "(database objects)", which
# only a whole-database copy carries (drift.changes).
OBJECTS_SQL = """
SELECT 'objects', md5(concat_ws(' | ',
  (SELECT string_agg(format('%s %s %s', c.oid::regclass, c.relkind, pg_get_viewdef(c.oid)), ', ' ORDER BY c.oid::regclass::text)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid AND e.deptype = 'e')),
  (SELECT string_agg(format('%s(%s) %s %s %s %s %s', p.oid::regproc, pg_get_function_identity_arguments(p.oid), p.prokind, p.prorettype::regtype, p.provolatile, md5(p.prosrc), coalesce(array_to_string(p.proconfig, ','), '')), ', ' ORDER BY 1)
     FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e')),
  (SELECT string_agg(format('%s %s %s %s', t.oid::regtype, t.typtype, coalesce(t.typbasetype::regtype::text, ''),
            coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
            || coalesce((SELECT string_agg(pg_get_constraintdef(k.oid), ',' ORDER BY k.conname) FROM pg_constraint k WHERE k.contypid = t.oid), '')
            || coalesce((SELECT string_agg(format('%I %s', a.attname, format_type(a.atttypid, a.atttypmod)), ',' ORDER BY a.attnum) FROM pg_attribute a WHERE a.attrelid = t.typrelid AND t.typtype = 'c' AND (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c' AND a.attnum > 0 AND NOT a.attisdropped), '')), ', ' ORDER BY 1)
     FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('e', 'd', 'c') AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass AND e.objid = t.oid AND e.deptype = 'e')),
  (SELECT string_agg(format('%I', nspname), ',' ORDER BY nspname) FROM pg_namespace WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'),
  (SELECT string_agg(format('%I %s', extname, extversion), ',' ORDER BY extname) FROM pg_extension),
  (SELECT string_agg(pg_get_ruledef(r.oid), ', ' ORDER BY 1) FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE r.rulename <> '_RETURN' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'),
  (SELECT string_agg(format('%s %s %s %s %s %s', s.seqrelid::regclass, s.seqtypid::regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqcycle), ', ' ORDER BY 1)
     FROM pg_sequence s)))
"""
# Materialized views' contents (REFRESH), as marks: folded into the "(database objects)" signature.
MATVIEWS_SQL = ("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind = 'm' ORDER BY 1, 2")

# The catalog parts of a snapshot, each row tagged with what it is.
CATALOG_SQL = (SETTINGS + f"SELECT 'sequence', q.* FROM ({SEQUENCES_SQL}) AS q;\n"
                          f"SELECT 'owner', o.* FROM ({SEQUENCE_OWNERS_SQL}) AS o;\n"
                          f"SELECT 'schema', x.* FROM ({SCHEMA_SQL}) AS x;\n"
                          f"{OBJECTS_SQL.strip()};\n" + marks.matview_sql(MATVIEWS_SQL))


def snapshot(host, db, only=None, skip=()):
    """Return what the drift guard and the three-way push compare: {'tables': {label: [rows, mark]},
    'schema': {label: signature}, 'sequences': {label: [value, owning table's label or None]},
    'xid': [database oid, next transaction id]} (marks.py says what a mark proves; with `only`, a
    set of labels, the tables' parts for those tables alone; sequences always all; the rows of the
    `skip` labels are not read: exclude_data's), in one psql run."""
    return build_snapshot(query(host, db, snapshot_sql(host, db, only, skip)), only)


def _label_sql(name):
    """The SQL expression of label()'s half for the name in column `name`."""
    return f"CASE WHEN {name} ~ '^[a-z_][a-z0-9_]*$' THEN {name}::text ELSE '\"' || replace({name}, '\"', '\"\"') || '\"' END"


def snapshot_sql(host, db, only=None, skip=()):
    """Return the SQL whose rows build_snapshot() reads (with `only`, the table list is read first)."""
    if only is None and skip:
        left_out = ", ".join(quote_literal(name) for name in sorted(skip))
        listed = (f"SELECT n, c FROM ({TABLES_SQL}) AS t(n, c) "
                  f"WHERE {_label_sql('n')} || '.' || {_label_sql('c')} <> ALL(ARRAY[{left_out}]::text[])")
    elif only is None:
        listed = TABLES_SQL
    else:
        names = [(s, t) for s, t in tables(host, db) if label(s, t) in only and label(s, t) not in skip]
        listed = ("VALUES " + ", ".join(f"({quote_literal(s)}::name, {quote_literal(t)}::name)" for s, t in names)
                  if names else "SELECT NULL::name, NULL::name WHERE false")
    return marks.snapshot_sql(CATALOG_SQL, listed)


def landed(host, db, seen):
    """Return the snapshot of a database pg_restore just filled from a dump that saw `seen` (its
    snapshot, from marks.DumpSnapshot), without reading the rows: marks.landed_marks (any table it
    cannot derive is read)."""
    rows = query(host, db, marks.landed_sql(CATALOG_SQL, TABLES_SQL))
    snap = build_snapshot(rows)
    derived = marks.landed_marks({label(r[1], r[2]): r[3] or None for r in rows if r[0] == "first"}, seen["tables"])
    unknown = {name for name, mark in derived.items() if mark is None}
    if unknown:
        derived.update(snapshot(host, db, only=unknown)["tables"])
    snap["tables"] = derived
    return snap


def build_snapshot(rows, only=None):
    """Given the output rows of snapshot_sql(), return the snapshot (see snapshot())."""
    values = {label(row[1], row[2]): row[3] for row in rows if row[0] == "sequence"}
    owners = {label(row[1], row[2]): label(row[3], row[4]) for row in rows if row[0] == "owner"}
    schema = {label(row[1], row[2]): row[3] for row in rows if row[0] == "schema"
              and (only is None or label(row[1], row[2]) in only)}
    contents = {label(row[1], row[2]): [int(row[3]), row[4]] for row in rows if row[0] == "table"}
    xid = next((row for row in rows if row[0] == "xid"), None)
    objects = next((row[1] for row in rows if row[0] == "objects"), None)
    if objects is not None:  # with the materialized views' contents
        objects = hashlib.md5("\n".join([objects] + sorted("|".join(row[1:]) for row in rows if row[0] == "matview"))
                              .encode()).hexdigest()
    return {"tables": contents, "schema": schema, "xid": [xid[1], int(xid[2])] if xid else None, "objects": objects,
            "large_objects": int(xid[3]) if xid else 0,
            "sequences": {name: [value, owners.get(name)] for name, value in values.items()}}


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
