"""What a push keeps of the target's own. A portable restore (`--no-owner --no-acl`: the source's roles
need not exist) leaves out every owner and grant; the database itself is new (prodmirror creates it),
so its owner, comment, settings (`ALTER DATABASE … SET`, `ALTER ROLE … IN DATABASE … SET`), connection
limit and grants are the defaults; user mappings arrive without their options (archive.py); and large
objects come back owned by the restoring role. All of that is read from the target just before the
restore and re-applied to the database swapped in.

The statements come from the table of contents of a schema-only custom-format dump of the target,
field by field (pg_dump wrote them; nothing is parsed out of SQL text, so no text inside a function
body or a comment is ever taken for a statement), and large objects' owners and grants from the
catalog (a schema-only dump has none).
"""

from . import archive
from .client import client_env, connection_args, query, quote_ident

# pg_restore's rule (_getObjectDescription): these types' ALTER … OWNER TO names them "TYPE schema.tag";
# those that need their arguments are named by their DROP statement instead.
NAMED_BY_TAG = {"COLLATION", "CONVERSION", "DOMAIN", "FOREIGN TABLE", "MATERIALIZED VIEW", "SEQUENCE", "STATISTICS",
                "TABLE", "TEXT SEARCH DICTIONARY", "TEXT SEARCH CONFIGURATION", "TYPE", "VIEW", "DATABASE",
                "PROCEDURAL LANGUAGE", "SCHEMA", "EVENT TRIGGER", "FOREIGN DATA WRAPPER", "SERVER", "PUBLICATION",
                "SUBSCRIPTION"}
NAMED_BY_DROP = {"AGGREGATE", "FUNCTION", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY", "PROCEDURE"}

LARGE_OBJECTS_SQL = """
SELECT 1, m.oid, format('ALTER LARGE OBJECT %s OWNER TO %I;', m.oid, pg_get_userbyid(m.lomowner))
  FROM pg_largeobject_metadata m
UNION ALL
SELECT 2, m.oid, format('REVOKE ALL ON LARGE OBJECT %s FROM %I;', m.oid, pg_get_userbyid(m.lomowner))
  FROM pg_largeobject_metadata m WHERE m.lomacl IS NOT NULL
UNION ALL
SELECT 3, m.oid, format('GRANT %s ON LARGE OBJECT %s TO %s%s;', a.privilege_type, m.oid,
                        CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                        CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
  FROM pg_largeobject_metadata m CROSS JOIN aclexplode(m.lomacl) a
ORDER BY 1, 2
"""


def owner_statement(entry):
    """Given a TOC entry, return the ALTER … OWNER TO that pg_restore would run for it, or None."""
    if not entry.owner or not entry.drop:
        return None
    if entry.desc in NAMED_BY_TAG:
        schema = f"{quote_ident(entry.namespace)}." if entry.namespace else ""
        what = f"{entry.desc} {schema}{quote_ident(entry.tag)}"
    elif entry.desc in NAMED_BY_DROP:
        what = entry.drop[len("DROP "):].rstrip("\n;")
    else:
        return None
    return f"ALTER {what} OWNER TO {quote_ident(entry.owner)};"


def on_database(entry):
    """Given a TOC entry, return whether it is about the database itself (its owner, properties, comment, grants)."""
    return entry.desc in ("DATABASE", "DATABASE PROPERTIES") or (entry.desc in ("COMMENT", "ACL")
                                                                 and entry.tag.startswith("DATABASE "))


def kept_statements(entries, database_only=False):
    """Given the TOC entries of a schema-only dump, return what a push re-applies, in pg_restore's order:
    owners, the database's comment and settings, user mappings (with their options), then grants.
    With `database_only`, only what is about the database itself."""
    owners, database, mappings, grants = [], [], [], []
    for entry in entries:
        if database_only and not on_database(entry):
            continue
        if statement := owner_statement(entry):
            owners.append(statement)
        if entry.desc in ("ACL", "DEFAULT ACL"):
            grants.append(entry.defn)
        elif entry.desc == "DATABASE PROPERTIES" or (entry.desc == "COMMENT" and entry.tag.startswith("DATABASE ")):
            database.append(entry.defn)
        elif entry.desc == "USER MAPPING":  # the restored one (no options) makes way for the target's own
            mappings += [entry.drop.replace("DROP USER MAPPING ", "DROP USER MAPPING IF EXISTS ", 1), entry.defn]
    return owners + database + mappings + grants


def privileges(host, db, dump_argv, database_only=False):
    """Return the statements (module docstring) that give database `db` on `host` back what a portable
    restore leaves out, read from it now; `dump_argv` is the schema-only pg_dump to run. With
    `database_only`, only the database's own properties: what even a restore that keeps owners and
    grants (a backup of the same environment) leaves out, since the database itself is new."""
    _, entries = archive.read_toc(host.run(dump_argv, env=client_env(db), binary=True).stdout)
    if database_only:
        return kept_statements(entries, database_only=True)
    objects = [statement for _, _, statement in query(host, db, LARGE_OBJECTS_SQL)]
    return kept_statements(entries) + objects


def apply_privileges(host, db, statements):
    """Run the statements one by one in the database, each on its own (one on an object that is gone
    fails alone); return how many failed. They may hold credentials (user mappings): they travel on
    stdin, and psql's messages are counted, never shown."""
    if not statements:
        return 0
    argv = ("psql", "-X", "-q", "-o", "/dev/null", "-f", "-") + connection_args(db, db.name)
    res = host.run(argv, input="\n".join(statements) + "\n", env=client_env(db), check=False)
    return res.stderr.count("ERROR:")
