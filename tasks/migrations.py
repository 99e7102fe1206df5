"""SQL migrations (seed 002): each file applied in one transaction together with its record in a
migrations table, so a file is never applied twice to one database and a failing one leaves nothing.

A migration never leaves that transaction. check_file refuses, before anything runs, a statement that
ends or opens one (COMMIT, COMMIT AND CHAIN, END, ROLLBACK, ABORT, BEGIN, START TRANSACTION, PREPARE
TRANSACTION), COPY … FROM STDIN, and any backslash outside literals and comments: a psql meta-command
(`\\!` runs a shell on the server's host, `\\c` opens another database). Beyond that check, the file
never meets psql's command parser: apply hands it over as one dollar-quoted literal that `\\gexec`
sends to the server as it is, so a backslash the check missed is a syntax error, not a command.
A function or procedure body may say COMMIT: called inside prodmirror's transaction, PostgreSQL
itself refuses it ("invalid transaction termination").
"""

import hashlib
import re

from . import sqlscan
from .engines.postgres import execute, query, quote_ident
from .errors import CommandError, ProdmirrorError, last_line

TRANSACTION_CONTROL = {"begin", "start", "commit", "end", "rollback", "abort"}  # first words that end or open one


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


def checksum(sql):
    """Given a migration's text, return the sha256 it is recorded with."""
    return hashlib.sha256(sql.encode()).hexdigest()


def edited(name, sql, done, db):
    """Given a migration and the {name: sha256} recorded in `db` (applied()), return the line saying it was
    applied there with other contents, or None (not applied yet, or applied as it is now)."""
    recorded, now = done.get(name), checksum(sql)
    if recorded is None or recorded == now:
        return None
    return (f"{name} was applied to {db.name} with other contents (sha256 {recorded[:12]}… recorded, {now[:12]}… "
            "now); write a new migration file")


def decode(name, data):
    """Given a migration file's bytes, return its text. Raise ProdmirrorError naming the file unless it is UTF-8."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProdmirrorError(f"{name}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                              "save it as UTF-8") from None


def check_file(name, sql):
    """Raise ProdmirrorError naming the line if migration `name` would end or leave the transaction it runs in."""
    words, line, parens, atomic, previous = [], 1, 0, False, None
    for kind, text, at in sqlscan.tokens(sql):
        if kind == "\\":
            raise ProdmirrorError(f"{name}: line {at}: {text} is a psql meta-command; a migration is SQL only: remove it")
        if kind == ";":
            _check_statement(name, words, line, atomic)
            atomic = atomic and words[:1] != ["end"]
            words, parens = [], 0
        elif kind == "symbol":
            parens += (text == "(") - (text == ")")
        elif kind == "word":
            line = line if words else at
            words.append(text)
            # A SQL-standard body (CREATE FUNCTION … BEGIN ATOMIC stmt; … END) holds statements of its own.
            if previous == "begin" and text == "atomic" and not parens and _creates_routine(words):
                atomic = True
            elif previous == "atomic" and text == "end":
                atomic = False
        previous = text if kind == "word" else None
    _check_statement(name, words, line, atomic)


def _creates_routine(words):
    return words[0] == "create" and bool({"function", "procedure"} & set(words[1:4]))


def _check_statement(name, words, line, atomic):
    first = words[0] if words else ""
    if first == "end" and atomic:
        return  # the END of a BEGIN ATOMIC body
    if (first in TRANSACTION_CONTROL and not (first == "rollback" and "to" in words[1:3])) \
            or words[:2] == ["prepare", "transaction"]:
        raise ProdmirrorError(f"{name}: line {line}: {' '.join(words[:3]).upper()} ends or opens a transaction, and "
                              "prodmirror runs each migration in one transaction with its record: remove it")
    if first == "copy" and "stdin" in words:
        raise ProdmirrorError(f"{name}: line {line}: COPY … FROM STDIN needs psql's input, which a migration "
                              "does not have: use INSERT")


def dollar_quote(text):
    """Given text, return it as a dollar-quoted SQL literal whose tag it does not hold (nor end with)."""
    n = 0
    while f"$pm{n}" in text:
        n += 1
    return f"$pm{n}${text}$pm{n}$"


def apply(host, db, name, sql, table, done=None):
    """Apply migration `name` to `db` unless recorded. Return 'applied' or 'already applied'.

    Raise ProdmirrorError if it was recorded with other contents (edited), or if it fails (then rolled back).
    """
    digest = checksum(sql)
    done = applied(host, db, table) if done is None else done
    stale = edited(name, sql, done, db)
    if stale:
        raise ProdmirrorError(stale)
    if name in done:
        return "already applied"
    check_file(name, sql)
    ensure_table(host, db, table)
    # The file goes to the server as one literal, run by \gexec: psql never reads it as its own input.
    script = (f"BEGIN;\nSET LOCAL standard_conforming_strings = on;\nSET LOCAL client_encoding = 'UTF8';\n"
              f"SELECT {dollar_quote(sql)} \\gexec\n"
              f"INSERT INTO public.{quote_ident(table)} (name, sha256) "
              f"VALUES ({dollar_quote(name)}, {dollar_quote(digest)});\nCOMMIT;\n")
    try:
        execute(host, db, script, dbname=db.name)
    except CommandError as exc:
        raise ProdmirrorError(f"{name} failed on {db.name} and was rolled back: {last_line(exc.stderr)}") from None
    if applied(host, db, table).get(name) != digest:
        raise ProdmirrorError(f"{name}: psql ended without committing it on {db.name}; nothing was applied")
    return "applied"
