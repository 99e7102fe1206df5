"""What a restore needs on the target that the archive cannot bring, found before any data moves.

`pg_restore --no-owner --no-acl` drops owners and grants, but not the other places a schema names a
role: a policy `TO role`, a user mapping `FOR role`, a function's `SET role`. Restoring one whose
role is missing fails half way with `role "…" does not exist`. And an extension the target may not
create (not installed there, or not trusted while the target's role is no superuser) fails the same
way. Both are asked of the two catalogs before the backup; missing roles are created (NOLOGIN, no
password: they only make the names resolve) when the target's role may, and the environment is not
protected; anything else is refused in one line that says what to run.
"""

from ...errors import ProdmirrorError
from ...ui import say
from .client import MAINTENANCE_DB, execute, query, quote_ident, quote_literal

# Roles named by the schema (PUBLIC, oid 0, is no role), and extensions (plpgsql is in every database).
SOURCE_SQL = """
SELECT 'role', r.rolname FROM pg_policy p CROSS JOIN unnest(p.polroles) AS u(oid) JOIN pg_roles r ON r.oid = u.oid
UNION SELECT 'role', m.usename FROM pg_user_mappings m WHERE m.umuser <> 0
UNION SELECT 'role', substr(c, strpos(c, '=') + 1) FROM pg_proc CROSS JOIN unnest(proconfig) AS c
      WHERE c LIKE 'role=%' OR c LIKE 'session\\_authorization=%'
UNION SELECT 'extension', extname FROM pg_extension WHERE extname <> 'plpgsql'
ORDER BY 1, 2
"""

# On the target: may the role create roles; which roles are missing; which extensions it cannot create
# (`superuser` and `trusted` of the version CREATE EXTENSION installs, its default).
TARGET_SQL = """
WITH me AS (SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user),
     roles(name) AS (VALUES {roles}), extensions(name) AS (VALUES {extensions})
SELECT 'may create roles', (SELECT (rolsuper OR rolcreaterole)::text FROM me)
UNION ALL SELECT 'missing role', name FROM roles WHERE name IS NOT NULL AND name NOT IN (SELECT rolname FROM pg_roles)
UNION ALL SELECT 'missing extension', e.name FROM extensions e
  WHERE e.name IS NOT NULL AND e.name NOT IN (SELECT name FROM pg_available_extensions)
UNION ALL SELECT 'superuser extension', e.name FROM extensions e
  JOIN pg_available_extensions a ON a.name = e.name
  JOIN pg_available_extension_versions v ON v.name = a.name AND v.version = a.default_version
  WHERE v.superuser AND NOT v.trusted AND NOT (SELECT rolsuper FROM me)
"""


def _values(names):
    return ", ".join(f"({quote_literal(n)})" for n in names) or "(NULL::name)"


def create_role_sql(roles):
    """Given role names, return the statements that create them without login or password."""
    return " ".join(f"CREATE ROLE {quote_ident(r)} NOLOGIN;" for r in roles)


def problems(src, dst, found):
    """Given the source and target Databases and the target's answers [(kind, name)], return the
    one-line reasons the restore cannot go on (empty: it can, once the missing roles are created)."""
    kinds = {}
    for kind, name in found:
        kinds.setdefault(kind, []).append(name)
    out, roles = [], kinds.get("missing role", [])
    if kinds.get("missing extension"):
        out.append(f"extension {', '.join(kinds['missing extension'])} is not installed on {dst.env}'s server "
                   "(install its package there)")
    if kinds.get("superuser extension"):
        out.append(f"only a superuser may create extension {', '.join(kinds['superuser extension'])}, and {dst.user} "
                   f"is none (configure a superuser as {dst.path}.user)")
    if roles and (dst.protected or kinds.get("may create roles") != ["true"]):
        why = (f"prodmirror creates no roles in {dst.env}, a protected environment" if dst.protected
               else f"{dst.user} may not create roles")
        out.append(f"{src.env}'s schema names roles {dst.env} lacks ({', '.join(roles)}: policies, user mappings or "
                   f"functions use them) and {why}; run there as a role with CREATEROLE: {create_role_sql(roles)}")
    return out


def ensure(src_host, src, dst_host, dst):
    """Find what restoring `src` into `dst` needs on the target (module docstring); create missing roles
    when allowed, saying so in one line. Raise ProdmirrorError (one line, nothing changed) otherwise."""
    wanted = query(src_host, src, SOURCE_SQL)
    if not wanted:
        return
    roles = [name for kind, name in wanted if kind == "role"]
    extensions = [name for kind, name in wanted if kind == "extension"]
    sql = TARGET_SQL.format(roles=_values(roles), extensions=_values(extensions))
    found = [tuple(row) for row in query(dst_host, dst, sql, dbname=MAINTENANCE_DB)]
    reasons = problems(src, dst, found)
    if reasons:
        raise ProdmirrorError(f"{dst_host.label}: cannot restore {src.env}'s {src.name} there: {'; '.join(reasons)}; "
                              "nothing was changed")
    missing = [name for kind, name in found if kind == "missing role"]
    if missing:
        execute(dst_host, dst, create_role_sql(missing) + "\n")
        say(f"{dst.env}: created roles {', '.join(missing)} (NOLOGIN, no password): {src.env}'s schema names them")
