"""Clones on the same server, for hotfix.*: CREATE DATABASE … TEMPLATE, or an online pg_dump | pg_restore."""

import shlex

from ...errors import ProdmirrorError
from .client import MAINTENANCE_DB, client_env, connection_args, execute, query, quote_ident, quote_literal

# --- clones on the same server (hotfix) ------------------------------------------------------------

def clone_facts(host, db, new):
    """Return {'new_exists', 'sessions' (other sessions on db), 'owner' (of db)} in one round trip."""
    src, dst = quote_literal(db.name), quote_literal(new)
    row = query(host, db, f"SELECT (SELECT count(*) FROM pg_database WHERE datname = {dst}), "
                          f"(SELECT count(*) FROM pg_stat_activity WHERE datname = {src} AND pid <> pg_backend_pid()), "
                          f"(SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {src})",
                dbname=MAINTENANCE_DB)[0]
    if not row[2]:
        raise ProdmirrorError(f"{db.path}: database {db.name!r} does not exist on {host.label}")
    return {"new_exists": row[0] != "0", "sessions": int(row[1]), "owner": row[2]}


def clone_template(host, db, new, owner, terminate=False):
    """CREATE DATABASE new TEMPLATE db (a file-level copy; needs the source without other sessions).

    With `terminate`, sessions on the source are ended first. Raise CommandError if the source is busy.
    """
    sql = ""
    if terminate:
        sql += ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = {quote_literal(db.name)} AND pid <> pg_backend_pid();\n")
    sql += f"CREATE DATABASE {quote_ident(new)} TEMPLATE {quote_ident(db.name)} OWNER {quote_ident(owner)};\n"
    execute(host, db, sql)


def online_clone_argv(db, new, lock_wait=None):
    """Return the argv that copies db into `new` on its own server with `pg_dump | pg_restore` (owners and
    grants kept: the roles are the same server's), failing if either side fails; `lock_wait` seconds
    bound pg_dump's wait for a table someone holds locked."""
    wait = (f"--lock-wait-timeout={int(lock_wait * 1000)}",) if lock_wait else ()
    dump = " ".join(shlex.quote(a) for a in ("pg_dump", "--format=custom") + wait + connection_args(db, db.name))
    restore = " ".join(shlex.quote(a) for a in ("pg_restore", "--exit-on-error") + connection_args(db, new))
    return ("bash", "-o", "pipefail", "-c", f"{dump} | {restore}")


def clone_dump(host, db, new, owner):
    """Create `new` and fill it from a live pg_dump of db on the same host; drop it again on failure."""
    execute(host, db, f"CREATE DATABASE {quote_ident(new)} TEMPLATE template0 OWNER {quote_ident(owner)};\n")
    try:
        host.run(online_clone_argv(db, new, host.limits.lock_wait), env=client_env(db))
    except BaseException:
        drop(host, db, new)
        raise


def drop(host, db, name):
    """DROP DATABASE name WITH (FORCE), if it exists."""
    execute(host, db, f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE);\n")
