"""migrations.check_file: a migration that would end or leave its transaction is refused naming the line;
comments, literals and function bodies that merely say COMMIT are not."""

import re

import pytest

from tasks import migrations, sqlscan
from tasks.errors import ProdmirrorError


@pytest.mark.parametrize("sql, message", [
    ("CREATE TABLE a (x int);\nCOMMIT;\n", "line 2: COMMIT ends or opens a transaction"),
    ("CREATE TABLE a (x int); commit and chain; SELECT 1;", "line 1: COMMIT AND CHAIN ends"),
    ("SELECT 1;\n\n  END;", "line 3: END ends"),
    ("END TRANSACTION", "line 1: END TRANSACTION ends"),
    ("SELECT 1;\nROLLBACK;", "line 2: ROLLBACK ends"),
    ("ROLLBACK AND CHAIN;", "ROLLBACK AND CHAIN ends"),
    ("ABORT;", "ABORT ends"),
    ("BEGIN;\nSELECT 1;", "line 1: BEGIN ends"),
    ("begin isolation level serializable;", "BEGIN ISOLATION LEVEL ends"),
    ("START TRANSACTION;", "START TRANSACTION ends"),
    ("PREPARE TRANSACTION 'x';", "PREPARE TRANSACTION ends"),
    ("COMMIT PREPARED 'x';", "COMMIT PREPARED ends"),
    ("SELECT 1; /* a comment */ COMMIT", "line 1: COMMIT ends"),
    ("CREATE TABLE begin (atomic int); COMMIT;", "COMMIT ends"),  # table `begin`, column `atomic`: no body
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; END;", "END ends"),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC END; END;", "END ends"),
    ("COPY t FROM STDIN;\n1\n\\.\n", "COPY … FROM STDIN needs psql's input"),
    ("\\! rm -rf /\n", r"line 1: \! is a psql meta-command"),
    ("SELECT 1; \\c postgres\nDROP TABLE t;", r"line 1: \c is a psql meta-command"),
    ("SELECT 1;\nSELECT 'a' \\gexec", r"line 2: \gexec is a psql meta-command"),
    ("SELECT 'it''s' \\o |sh", r"\o is a psql meta-command"),
    ("SELECT '\\' \\! id\n", r"\! is a psql meta-command"),  # a plain '…' ends at the second quote
    ("SELECT E'\\'' \\! id\n", r"\! is a psql meta-command"),  # E'\'' is one quote
    ("SELECT \"a\"\"b\" \\set x 1", r"\set is a psql meta-command"),
])
def test_escapes_are_refused_naming_the_line(sql, message):
    with pytest.raises(ProdmirrorError, match=re.escape(message)) as refused:
        migrations.check_file("m.sql", sql)
    assert re.match(r"m\.sql: line \d+: ", str(refused.value)) and "\n" not in str(refused.value)


@pytest.mark.parametrize("sql", [
    "-- COMMIT; the rows stay committed\nSELECT 1;",
    "/* END; /* nested */ COMMIT; */ SELECT 1;",
    "INSERT INTO log VALUES ('\nCOMMIT;\nEND;\n');",
    "INSERT INTO log VALUES (E'it\\'s\\n; COMMIT', 'C:\\path\\');",
    'CREATE TABLE "commit" ("end" int);\nSELECT "end" FROM "commit";',
    "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN NEW;\nEND;\n$$;",
    "DO $body$ BEGIN RAISE NOTICE '\\! not psql'; END $body$;",
    "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$ BEGIN COMMIT; END $$;",  # refused by the server when called
    "CREATE FUNCTION f(x int) RETURNS int LANGUAGE sql\nBEGIN ATOMIC\n  SELECT CASE WHEN x > 0 THEN 1 END;\nEND;",
    "SAVEPOINT s; UPDATE t SET x = 1; ROLLBACK TO SAVEPOINT s; RELEASE s; ROLLBACK WORK TO s;",
    "SELECT a$b$c FROM t; SELECT $1;",
    "SELECT 1 /* unterminated",
])
def test_comments_literals_and_bodies_are_not_false_positives(sql):
    migrations.check_file("m.sql", sql)


def test_tokens_skip_literals_and_count_lines():
    found = [(kind, text, line) for kind, text, line in sqlscan.tokens("SELECT 'a\nb' -- x\n, $q$ ; $q$ ;\n\\!")]
    assert found == [("word", "select", 1), ("literal", "", 1), ("symbol", ",", 3), ("literal", "", 3),
                     (";", ";", 3), ("\\", "\\!", 4)]


def test_non_utf8_is_one_line_naming_the_file():
    with pytest.raises(ProdmirrorError, match=r"^migrations/m\.sql: not UTF-8 text \(byte 0xe9 at offset 26\)"):
        migrations.decode("migrations/m.sql", "INSERT INTO t VALUES ('caf\xe9');".encode("latin-1"))


def test_the_dollar_quote_tag_is_not_in_the_text():
    assert migrations.dollar_quote("a") == "$pm0$a$pm0$"
    assert migrations.dollar_quote("x $pm0$ y $pm1") == "$pm2$x $pm0$ y $pm1$pm2$"
