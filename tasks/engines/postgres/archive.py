"""pg_dump's custom-format archive read as it streams by: its header and table of contents (TOC), one
entry at a time, so that an entry can be rewritten on its way to pg_restore while the data after the
TOC passes through untouched. Only the TOC is parsed (it is small next to the data) and at most one
entry plus one chunk is held, so memory stays constant however large the database.

The layout (PostgreSQL's pg_backup_archiver.c, archive formats 1.12 to 1.16, i.e. pg_dump 9.0 to 17+):
"PGDMP", the version (3 bytes), int size, offset size, format (1 = custom); compression (an int, or
from 1.15 one byte); the creation time (7 ints); the database name and the server's and pg_dump's
versions; the entry count; per entry: dump id, had-dumper, table oid, oid, tag, desc, section, defn,
drop statement, copy statement, namespace, tablespace, table access method, relkind (1.16), owner,
"with oids", dependencies (strings up to a null one), and the data offset (a flag byte and
offset-size bytes). An int is a sign byte and int-size bytes, least significant first; a string is
its length as an int (-1 for null) and its bytes.
"""

from dataclasses import dataclass

from ...errors import ProdmirrorError
from ...transfer import End

MAGIC = b"PGDMP"
KNOWN = range(12, 17)  # archive format minors 1.12 to 1.16 (pg_dump 9.0 to 17, and 18 still writes 1.16)


class Short(Exception):
    """Not enough bytes yet: parse again once more arrived."""


@dataclass
class Entry:
    """One TOC entry; `defn_at` is the (start, end) of its defn field within the entry's bytes."""

    dump_id: int
    tag: str
    desc: str
    defn: str
    drop: str
    namespace: str
    owner: str
    defn_at: tuple = (0, 0)


class _Cursor:
    def __init__(self, buf, pos=0, int_size=4):
        self.buf, self.pos, self.int_size = buf, pos, int_size

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise Short
        data = self.buf[self.pos:self.pos + n]
        self.pos += n
        return bytes(data)

    def byte(self):
        return self.take(1)[0]

    def int(self):
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def str(self):
        n = self.int()
        return None if n < 0 else self.take(n).decode("utf-8", "replace")


def read_header(buf):
    """Given the archive's first bytes, return (header dict, its length). Raise Short if more are
    needed, ProdmirrorError if this is no custom-format archive of a format this code knows."""
    cur = _Cursor(buf)
    if cur.take(5) != MAGIC:
        raise ProdmirrorError("the dump is not a pg_dump custom-format archive")
    major, minor, _ = cur.byte(), cur.byte(), cur.byte()
    if major != 1 or minor not in KNOWN:
        raise ProdmirrorError(f"pg_dump archive format {major}.{minor} is newer than this prodmirror reads (1.12 to "
                              "1.16: it reads the archive to leave user mappings' credentials out); update prodmirror")
    cur.int_size, offset_size, fmt = cur.byte(), cur.byte(), cur.byte()
    if fmt != 1:
        raise ProdmirrorError(f"the dump is an archive of format {fmt}, not pg_dump's custom format")
    if minor >= 15:
        cur.byte()  # compression algorithm
    else:
        cur.int()  # compression level
    for _ in range(7):
        cur.int()  # creation time
    name, _, _ = cur.str(), cur.str(), cur.str()
    count = cur.int()
    return {"minor": minor, "int_size": cur.int_size, "offset_size": offset_size, "database": name,
            "entries": count}, cur.pos


def read_entry(buf, pos, header):
    """Given bytes holding a TOC entry at `pos`, return (Entry, where it ends). Raise Short if incomplete."""
    cur = _Cursor(buf, pos, header["int_size"])
    dump_id = cur.int()
    cur.int()  # had dumper
    cur.str(), cur.str()  # table oid, oid
    tag, desc = cur.str(), cur.str()
    cur.int()  # section
    start = cur.pos - pos
    defn = cur.str()
    end = cur.pos - pos
    drop = cur.str()
    cur.str()  # copy statement
    namespace = cur.str()
    cur.str(), cur.str()  # tablespace, table access method
    if header["minor"] >= 16:
        cur.int()  # relkind
    owner = cur.str()
    cur.str()  # with oids
    while cur.str() is not None:  # dependencies
        pass
    cur.take(1 + header["offset_size"])  # data offset: flag, position
    return Entry(dump_id, tag, desc, defn, drop, namespace, owner, (start, end)), cur.pos


def write_str(text, int_size):
    """Given a string, return it encoded as an archive string field."""
    data = text.encode()
    return b"\x00" + len(data).to_bytes(int_size, "little") + data


def read_toc(data):
    """Given a whole archive's bytes (a schema-only dump), return (header, [Entry])."""
    header, pos = read_header(data)
    entries = []
    for _ in range(header["entries"]):
        try:
            entry, pos = read_entry(data, pos, header)
        except Short:
            raise ProdmirrorError("the schema dump ended inside its table of contents") from None
        entries.append(entry)
    return header, entries


class TocRewrite(End):
    """A sink that passes an archive on to `sink` with each TOC entry shown to `rewrite(entry)` first:
    a string it returns replaces that entry's defn (what pg_restore runs for it). Bytes after the TOC
    go straight through."""

    def __init__(self, sink, rewrite):
        self.sink, self.rewrite = sink, rewrite
        self.buf, self.header, self.left = bytearray(), None, None

    def write(self, data):
        if self.left == 0:
            return self.sink.write(data)
        self.buf += data
        out, pos = [], 0
        try:
            if self.header is None:
                self.header, pos = read_header(self.buf)
                self.left = self.header["entries"]
                out.append(bytes(self.buf[:pos]))
            while self.left:
                entry, end = read_entry(self.buf, pos, self.header)
                out.append(self._rewritten(entry, bytes(self.buf[pos:end])))
                pos, self.left = end, self.left - 1
        except Short:
            pass  # the rest of this entry comes with the next chunk
        if self.left == 0:
            out.append(bytes(self.buf[pos:]))
            pos = len(self.buf)
        del self.buf[:pos]
        if out:
            self.sink.write(b"".join(out))

    def _rewritten(self, entry, raw):
        new = self.rewrite(entry)
        if new is None:
            return raw
        start, end = entry.defn_at
        return raw[:start] + write_str(new, self.header["int_size"]) + raw[end:]

    def check(self):
        self.sink.check()
        if self.left != 0:
            raise ProdmirrorError("the dump ended inside its table of contents")

    def kill(self):
        self.sink.kill()


def without_credentials(entry):
    """Given a TOC entry, return the defn a portable restore runs instead, or None to keep it: a user
    mapping arrives without its options (user names, passwords: credentials of production's).

    Built from the entry's own DROP statement, which names the mapping exactly as pg_dump quoted it.
    Raise ProdmirrorError (naming the mapping, never its options) if that statement is not the expected one."""
    if entry.desc != "USER MAPPING":
        return None
    prefix = "DROP USER MAPPING FOR "
    if not (entry.drop or "").startswith(prefix) or not entry.drop.rstrip().endswith(";"):
        raise ProdmirrorError(f"the dump's {entry.tag} is not in the form prodmirror knows; it may hold "
                              "credentials, so the restore stops")
    return "CREATE" + entry.drop[len("DROP"):]
