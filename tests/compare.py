"""The comparer of exact copies: a database described from its catalogs (independently of prodmirror's
own code, so that it can judge it), and the readable differences of two descriptions.

`describe` covers rows of every table (each partition, inheritance parent and child FROM ONLY, and
materialized views: count and md5 of the rows in order), large objects' contents, sequences (value,
is_called, definition) and schema objects: schemas, relations (kind, persistence, row-level
security), columns (position, type, NOT NULL, default or generation expression, identity,
collation, inherited or not), constraints, indexes, triggers (and whether enabled), rules,
policies, partition keys and bounds, inheritance, views and materialized views, functions and
procedures, aggregates, types (enum values in order, domains and their checks, composites),
extensions, foreign servers (options), foreign tables, user mappings (which exist), and comments.
Not owners, grants or user mappings' options: a pull drops those by design; `privileges` describes
them (and the database's own properties), for what a push keeps.
"""

import json

# Options (of servers, foreign tables, user mappings) and grants in a fixed order: their order means
# nothing, and pg_dump sorts options while grants come back in the order they are re-applied.
OPTIONS = ("CREATE FUNCTION pg_temp.options(text[]) RETURNS text LANGUAGE sql "
           "AS $$ SELECT coalesce(string_agg(o, ',' ORDER BY o), '') FROM unnest($1) o $$;\n"
           "CREATE FUNCTION pg_temp.acl(aclitem[]) RETURNS text LANGUAGE sql "
           "AS $$ SELECT coalesce(string_agg(a::text, ',' ORDER BY a::text), 'default') FROM unnest($1) a $$;")

SCHEMA_SQL = r"""
SET search_path = '';  -- every name qualified, whatever the database's own setting
{options}WITH ns AS (SELECT oid, nspname FROM pg_namespace
            WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)'),
ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
rel AS (SELECT c.*, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name FROM pg_class c
        JOIN ns n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND (c.tableoid, c.oid) NOT IN (SELECT * FROM ext)),
fn AS (SELECT p.*, quote_ident(n.nspname) || '.' || quote_ident(p.proname)
                   || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name
       FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace WHERE (p.tableoid, p.oid) NOT IN (SELECT * FROM ext)),
typ AS (SELECT t.*, quote_ident(n.nspname) || '.' || quote_ident(t.typname) AS name FROM pg_type t
        JOIN ns n ON n.oid = t.typnamespace WHERE (t.tableoid, t.oid) NOT IN (SELECT * FROM ext)),
facts(k, v) AS (
  SELECT 'schema ' || quote_ident(nspname), coalesce(obj_description(oid, 'pg_namespace'), '') FROM ns
  UNION ALL SELECT 'relation ' || name, concat_ws(' ', relkind::text, relpersistence::text,
      CASE WHEN relrowsecurity THEN 'rls' END, CASE WHEN relforcerowsecurity THEN 'forced' END,
      'comment: ' || obj_description(oid, 'pg_class')) FROM rel
  UNION ALL SELECT 'column ' || r.name || '.' || quote_ident(a.attname), concat_ws(' ',
      '#' || row_number() OVER (PARTITION BY r.oid ORDER BY a.attnum), format_type(a.atttypid, a.atttypmod),
      CASE WHEN a.attnotnull THEN 'NOT NULL' END, 'DEFAULT ' || pg_get_expr(d.adbin, d.adrelid),
      CASE a.attidentity WHEN 'a' THEN 'IDENTITY ALWAYS' WHEN 'd' THEN 'IDENTITY BY DEFAULT' END,
      CASE a.attgenerated WHEN 's' THEN 'GENERATED STORED' END,
      CASE WHEN a.attcollation <> t.typcollation THEN 'COLLATE ' || a.attcollation::regcollation END,
      CASE WHEN NOT a.attislocal THEN 'inherited' END, 'comment: ' || col_description(r.oid, a.attnum))
    FROM rel r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_attrdef d ON d.adrelid = r.oid AND d.adnum = a.attnum
    WHERE r.relkind <> 'S'
  UNION ALL SELECT 'constraint ' || coalesce(r.name, y.name) || ' ' || quote_ident(c.conname),
      c.contype::text || ' ' || pg_get_constraintdef(c.oid) || CASE WHEN c.convalidated THEN '' ELSE ' NOT VALID' END
    FROM pg_constraint c LEFT JOIN rel r ON r.oid = c.conrelid LEFT JOIN typ y ON y.oid = c.contypid
    WHERE r.oid IS NOT NULL OR y.oid IS NOT NULL
  UNION ALL SELECT 'index ' || r.name || ' ' || quote_ident(i.relname), pg_get_indexdef(x.indexrelid)
    FROM pg_index x JOIN rel r ON r.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
  UNION ALL SELECT 'trigger ' || r.name || ' ' || quote_ident(g.tgname), pg_get_triggerdef(g.oid) || ' ' || g.tgenabled::text
    FROM pg_trigger g JOIN rel r ON r.oid = g.tgrelid WHERE NOT g.tgisinternal
  UNION ALL SELECT 'rule ' || r.name || ' ' || quote_ident(w.rulename), pg_get_ruledef(w.oid)
    FROM pg_rewrite w JOIN rel r ON r.oid = w.ev_class WHERE w.rulename <> '_RETURN'
  UNION ALL SELECT 'policy ' || r.name || ' ' || quote_ident(p.polname), concat_ws(' ', p.polcmd::text,
      CASE WHEN p.polpermissive THEN 'permissive' ELSE 'restrictive' END,
      'to ' || (SELECT string_agg(CASE WHEN u = 0 THEN 'public' ELSE pg_get_userbyid(u) END, ',' ORDER BY 1)
                FROM unnest(p.polroles) u),
      'using ' || pg_get_expr(p.polqual, p.polrelid), 'check ' || pg_get_expr(p.polwithcheck, p.polrelid))
    FROM pg_policy p JOIN rel r ON r.oid = p.polrelid
  UNION ALL SELECT 'partition key ' || name, pg_get_partkeydef(oid) FROM rel WHERE relkind = 'p'
  UNION ALL SELECT 'partition ' || r.name, i.inhparent::regclass || ' ' || pg_get_expr(r.relpartbound, r.oid)
    FROM rel r JOIN pg_inherits i ON i.inhrelid = r.oid WHERE r.relispartition
  UNION ALL SELECT 'inherits ' || r.name, string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno)
    FROM rel r JOIN pg_inherits i ON i.inhrelid = r.oid WHERE NOT r.relispartition
    GROUP BY r.name
  UNION ALL SELECT 'view ' || name, pg_get_viewdef(oid) FROM rel WHERE relkind IN ('v', 'm')
  UNION ALL SELECT 'sequence ' || quote_ident(schemaname) || '.' || quote_ident(sequencename),
      concat_ws(' ', data_type, start_value, min_value, max_value, increment_by, cycle, cache_size) FROM pg_sequences
    WHERE schemaname IN (SELECT nspname FROM ns)
  UNION ALL SELECT 'function ' || name, CASE WHEN prokind = 'a' THEN 'aggregate' ELSE pg_get_functiondef(oid) END FROM fn
  UNION ALL SELECT 'enum ' || y.name, string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder)
    FROM typ y JOIN pg_enum e ON e.enumtypid = y.oid GROUP BY y.name
  UNION ALL SELECT 'domain ' || name, format_type(typbasetype, typtypmod) || CASE WHEN typnotnull THEN ' NOT NULL' ELSE '' END
    || coalesce(' DEFAULT ' || typdefault, '') FROM typ WHERE typtype = 'd'
  UNION ALL SELECT 'composite ' || y.name, string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', '
                                                     ORDER BY a.attnum)
    FROM typ y JOIN pg_class c ON c.oid = y.typrelid AND c.relkind = 'c' JOIN pg_attribute a ON a.attrelid = c.oid
    GROUP BY y.name
  UNION ALL SELECT 'extension ' || extname, extversion || ' in ' || extnamespace::regnamespace FROM pg_extension
  UNION ALL SELECT 'server ' || quote_ident(s.srvname), w.fdwname || ' ' || pg_temp.options(s.srvoptions)
    FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw
  UNION ALL SELECT 'foreign table ' || r.name, s.srvname || ' ' || pg_temp.options(f.ftoptions)
    FROM pg_foreign_table f JOIN rel r ON r.oid = f.ftrelid JOIN pg_foreign_server s ON s.oid = f.ftserver
  UNION ALL SELECT 'user mapping ' || usename || ' server ' || srvname, 'exists' FROM pg_user_mappings
)
SELECT jsonb_object_agg(k, v) FROM facts
""".replace("{options}", OPTIONS + "\n")

TABLES_SQL = r"""
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
ORDER BY 1
"""

SEQUENCES_SQL = r"""
SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) FROM pg_sequences
WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1
"""

# Owners, grants and the database's own properties: what a pull drops and a push must keep. Not those of
# an extension's own objects: pg_dump does not dump them (they belong to whoever creates the extension).
PRIVILEGES_SQL = r"""
SET search_path = '';
{options}WITH ns AS (SELECT oid, nspname FROM pg_namespace
            WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp)'),
ext AS (SELECT classid, objid FROM pg_depend WHERE deptype = 'e'),
facts(k, v) AS (
  SELECT 'owner of ' || c.oid::regclass, pg_get_userbyid(c.relowner) || ' ' || pg_temp.acl(c.relacl)
    FROM pg_class c JOIN ns n ON n.oid = c.relnamespace WHERE (c.tableoid, c.oid) NOT IN (SELECT * FROM ext)
  UNION ALL SELECT 'column grants of ' || a.attrelid::regclass || '.' || a.attname, pg_temp.acl(a.attacl)
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns n ON n.oid = c.relnamespace
    WHERE a.attacl IS NOT NULL
  UNION ALL SELECT 'owner of function ' || p.oid::regprocedure, pg_get_userbyid(p.proowner) || ' ' || pg_temp.acl(p.proacl)
    FROM pg_proc p JOIN ns n ON n.oid = p.pronamespace WHERE (p.tableoid, p.oid) NOT IN (SELECT * FROM ext)
  UNION ALL SELECT 'owner of type ' || t.oid::regtype, pg_get_userbyid(t.typowner) || ' ' || pg_temp.acl(t.typacl)
    FROM pg_type t JOIN ns n ON n.oid = t.typnamespace
    WHERE t.typtype IN ('e', 'd') AND (t.tableoid, t.oid) NOT IN (SELECT * FROM ext)
  UNION ALL SELECT 'owner of schema ' || nspname, pg_get_userbyid(nspowner) || ' ' || pg_temp.acl(nspacl)
    FROM pg_namespace WHERE oid IN (SELECT oid FROM ns)
  UNION ALL SELECT 'owner of server ' || srvname, pg_get_userbyid(srvowner) || ' ' || pg_temp.acl(srvacl)
    FROM pg_foreign_server
  UNION ALL SELECT 'owner of large object ' || oid, pg_get_userbyid(lomowner) || ' ' || pg_temp.acl(lomacl)
    FROM pg_largeobject_metadata
  UNION ALL SELECT 'default privileges ' || pg_get_userbyid(defaclrole) || ' ' || defaclobjtype::text,
      pg_temp.acl(defaclacl) FROM pg_default_acl
  UNION ALL SELECT 'user mapping ' || usename || ' server ' || srvname, pg_temp.options(umoptions)
    FROM pg_user_mappings
  UNION ALL SELECT 'database', concat_ws(' | ', pg_get_userbyid(datdba), 'connection limit ' || datconnlimit,
                                          pg_temp.acl(datacl), shobj_description(oid, 'pg_database'))
    FROM pg_database WHERE datname = current_database()
  UNION ALL SELECT 'database setting ' || coalesce(pg_get_userbyid(NULLIF(setrole, 0)), '(all roles)'),
      array_to_string(setconfig, ', ')
    FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
)
SELECT jsonb_object_agg(k, v) FROM facts
""".replace("{options}", OPTIONS + "\n")


def _json(cluster, sql, db):
    return json.loads(cluster.psql(sql, db=db).strip() or "null") or {}


def describe(cluster, db):
    """Given a cluster (tasks.sandbox.postgres.Cluster) and a database, return {what: fact}: the rows,
    sequences and schema objects of the module docstring."""
    facts = _json(cluster, SCHEMA_SQL, db)
    tables = cluster.psql(TABLES_SQL, db=db).splitlines()
    if tables:
        counts = " UNION ALL ".join(
            f"SELECT {_literal(t)} || chr(31) || count(*) || ' rows ' "
            f"|| coalesce(md5(string_agg(r::text, E'\\n' ORDER BY r::text)), '') "
            f"FROM ONLY {t} r" for t in tables)
        facts.update({f"rows of {name}": value for name, value in _pairs(cluster.psql(counts, db=db))})
    for seq in cluster.psql(SEQUENCES_SQL, db=db).splitlines():
        facts[f"value of {seq}"] = cluster.psql(f"SELECT last_value || ' called ' || is_called FROM {seq}", db=db).strip()
    objects = cluster.psql("SELECT oid || chr(31) || md5(lo_get(oid)) FROM pg_largeobject_metadata ORDER BY oid", db=db)
    facts.update({f"large object {oid}": digest for oid, digest in _pairs(objects)})
    return facts


def privileges(cluster, db):
    """Given a cluster and a database, return {what: owner and grants} of its objects, large objects and
    user mappings (with options), and its own owner, connection limit, grants, comment and settings."""
    return _json(cluster, PRIVILEGES_SQL, db)


def differences(a, b, names=("production", "local")):
    """Given two descriptions, return readable lines for what differs (empty when equal)."""
    out = []
    for key in sorted(set(a) | set(b)):
        if key not in b:
            out.append(f"{key}: only in {names[0]} ({_short(a[key])})")
        elif key not in a:
            out.append(f"{key}: only in {names[1]} ({_short(b[key])})")
        elif a[key] != b[key]:
            out.append(f"{key}: {names[0]} {_short(a[key])!r}, {names[1]} {_short(b[key])!r}")
    return out


def assert_equal(a, b, names=("production", "local")):
    """Assert two descriptions are equal; the failure lists every difference, one per line."""
    diff = differences(a, b, names)
    assert not diff, f"{len(diff)} differences:\n" + "\n".join(diff)


def assert_same(cluster_a, cluster_b, db, names=("production", "local")):
    """Assert that `db` is the same on both clusters by `describe`."""
    assert_equal(describe(cluster_a, db), describe(cluster_b, db), names)


def _literal(text):
    return "'" + text.replace("'", "''") + "'"


def _pairs(text):
    return [line.split("\x1f", 1) for line in text.splitlines() if line]


def _short(value, limit=160):
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[:limit] + "…"
