"""A scanner for PostgreSQL's SQL text, enough to check a migration before it runs (migrations.py).

It splits text where the server's own lexer does: `--` and nested `/* */` comments are skipped,
'…' and E'…' strings, "…" identifiers and $tag$…$tag$ bodies are one opaque literal each, and the
rest is words, semicolons, backslashes and other symbols. Strings are read as the server reads them
with standard_conforming_strings on (a plain '…' takes no backslash escapes, E'…' does);
migrations.apply sets that for the transaction a migration runs in.
"""

import re

# A letter, '_' or any character past ASCII starts an identifier; digits may follow. Written as what is left
# out of ASCII: the same sets as [A-Za-z_\x80-\U0010ffff], which cost 6 ms of compiling on every start.
_START, _CONT = r"[^\x00-\x40\x5b-\x5e\x60\x7b-\x7f]", r"[^\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f]"
WORD = re.compile(rf"{_START}(?:{_CONT}|\$)*")  # identifiers and key words may hold '$' after the first letter
DOLLAR = re.compile(rf"\$(?:{_START}{_CONT}*)?\$")  # $$ or $tag$; $1 is a parameter
META = re.compile(r"\\\S{0,15}")


def tokens(sql):
    """Given SQL text, yield (kind, text, line) of each token: kind 'word' (text lower-cased), 'literal'
    (text empty), ';', '\\' (the backslash and what follows it, as psql reads a meta-command) or 'symbol'."""
    i, n, line = 0, len(sql), 1
    while i < n:
        c, end, token = sql[i], i + 1, None
        word = WORD.match(sql, i)
        tag = DOLLAR.match(sql, i) if c == "$" else None
        if sql.startswith("--", i):
            end = _end_of_line(sql, i)
        elif sql.startswith("/*", i):
            end = _end_of_comment(sql, i)
        elif c in "'\"":
            end, token = _end_of_quoted(sql, i + 1, c, escapes=False), ("literal", "")
        elif tag:
            close = sql.find(tag.group(), tag.end())
            end, token = n if close < 0 else close + len(tag.group()), ("literal", "")
        elif word and word.group() in ("e", "E") and sql.startswith("'", word.end()):  # E'…': backslash escapes
            end, token = _end_of_quoted(sql, word.end() + 1, "'", escapes=True), ("literal", "")
        elif word:
            end, token = word.end(), ("word", word.group().lower())
        elif c == "\\":
            meta = META.match(sql, i).group()
            end, token = i + len(meta), ("\\", meta)
        elif c == ";":
            token = (";", c)
        elif not c.isspace():
            token = ("symbol", c)
        if token:
            yield (*token, line)
        line += sql.count("\n", i, end)
        i = end


def _end_of_line(sql, i):
    ends = [p for p in (sql.find("\n", i), sql.find("\r", i)) if p >= 0]
    return min(ends) if ends else len(sql)


def _end_of_comment(sql, i):
    """Return the index after the /* … */ comment starting at i (they nest); the end of text if it is open."""
    depth = 0
    while i < len(sql):
        if sql.startswith("/*", i):
            depth, i = depth + 1, i + 2
        elif sql.startswith("*/", i):
            depth, i = depth - 1, i + 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(sql)


def _end_of_quoted(sql, i, quote, escapes):
    """Return the index after the closing quote of a literal whose body starts at i (a doubled quote is one
    quote; with `escapes`, a backslash escapes the next character); the end of text if it is open."""
    while i < len(sql):
        c = sql[i]
        if escapes and c == "\\":
            i += 2
        elif c == quote:
            if not sql.startswith(quote, i + 1):
                return i + 1
            i += 2
        else:
            i += 1
    return len(sql)
