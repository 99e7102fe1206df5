"""SQL migrations (seed 002): each file applied in one transaction together with its record in a
migrations table, so a file is never applied twice to one database and a failing one leaves nothing."""

import hashlib
import re

from .engines.postgres import execute, query, quote_ident, quote_literal
from .errors import CommandError, ProdmirrorError, last_line

TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|START\s+TRANSACTION|END)\s*;", re.I | re.M)


def natural_key(name):
    """Sort key that puts migrate_v9.sql before migrate_v10.sql."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def ensure_table(host, db, table):
    execute(host, db, f"CREATE TABLE IF NOT EXISTS public.{quote_ident(table)} (name text PRIMARY KEY, "
                      "sha256 text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());\n", dbname=db.name)


def applied(host, db, table):
    """Return {migration name: sha256} recorded in the database (empty if the table does not exist yet)."""
    exists = query(host, db, f"SELECT to_regclass('public.{table}') IS NOT NULL")[0][0] == "t"
    if not exists:
        return {}
    return {name: digest for name, digest in query(host, db, f"SELECT name, sha256 FROM public.{quote_ident(table)}")}


def check_file(name, sql):
    """Raise ProdmirrorError if a migration controls its own transaction (prodmirror wraps each in one)."""
    if TRANSACTION_CONTROL.search(sql):
        raise ProdmirrorError(f"{name}: holds its own BEGIN/COMMIT; prodmirror runs each migration in one "
                              "transaction with its record: remove them")


def apply(host, db, name, sql, table, done=None):
    """Apply migration `name` to `db` unless recorded. Return 'applied' or 'already applied'.

    Raise ProdmirrorError if it was recorded with other contents, or if it fails (then rolled back).
    """
    digest = hashlib.sha256(sql.encode()).hexdigest()
    done = applied(host, db, table) if done is None else done
    if name in done:
        if done[name] != digest:
            raise ProdmirrorError(f"{name} was applied to {db.name} with other contents; write a new migration file")
        return "already applied"
    check_file(name, sql)
    ensure_table(host, db, table)
    script = (f"BEGIN;\n{sql}\n;\nINSERT INTO public.{quote_ident(table)} (name, sha256) "
              f"VALUES ({quote_literal(name)}, {quote_literal(digest)});\nCOMMIT;\n")
    try:
        execute(host, db, script, dbname=db.name)
    except CommandError as exc:
        raise ProdmirrorError(f"{name} failed on {db.name} and was rolled back: {last_line(exc.stderr)}") from None
    return "applied"
