"""A custom-format archive's table of contents read and rewritten as it streams (engines/postgres/archive.py),
and what a push keeps built from it (privileges.py), on archives built here byte by byte."""

import pytest

from tasks.engines.postgres import archive
from tasks.engines.postgres.privileges import kept_statements, owner_statement
from tasks.errors import ProdmirrorError

SECRET = "s3cret-of-production"
MAPPING = ("USER MAPPING", "USER MAPPING app SERVER lab",
           f"CREATE USER MAPPING FOR app SERVER lab OPTIONS (\n    password '{SECRET}',\n    \"user\" 'lab'\n);\n",
           "DROP USER MAPPING FOR app SERVER lab;\n", "", None)
TABLE = ("TABLE", "users", "CREATE TABLE public.users (id integer);\n", "DROP TABLE public.users;\n", "app_owner", "public")
DATA = b"\x01\x00\x02\x00\x00\x00" + bytes(range(256)) * 40  # stands for the data blocks after the TOC


def _int(n):
    return (b"\x01" if n < 0 else b"\x00") + abs(n).to_bytes(4, "little")


def _str(text):
    return _int(-1) if text is None else _int(len(text.encode())) + text.encode()


def build(entries, minor=14):
    """Return an archive (format 1.minor) holding `entries` [(desc, tag, defn, drop, owner, namespace)], then DATA."""
    out = b"PGDMP" + bytes([1, minor, 0, 4, 8, 1]) + (b"\x00" if minor >= 15 else _int(-1))
    out += b"".join(_int(0) for _ in range(7)) + _str("shop") + _str("15.18") + _str("15.18") + _int(len(entries))
    for n, (desc, tag, defn, drop, owner, namespace) in enumerate(entries, 1):
        out += _int(n) + _int(0) + _str("0") + _str(str(n)) + _str(tag) + _str(desc) + _int(2) + _str(defn)
        out += _str(drop) + _str("") + _str(namespace) + _str("") + _str("")
        out += (_int(114) if minor >= 16 else b"") + _str(owner) + _str("false") + _str("1") + _str(None)
        out += b"\x03" + bytes(8)
    return out + DATA


class Sink:
    def __init__(self):
        self.data, self.checked = bytearray(), False

    def write(self, data):
        self.data += data

    def check(self):
        self.checked = True


def rewrite(data, chunk):
    sink = Sink()
    stream = archive.TocRewrite(sink, archive.without_credentials)
    for i in range(0, len(data), chunk):
        stream.write(data[i:i + chunk])
    stream.check()
    return bytes(sink.data)


@pytest.mark.parametrize("minor", [14, 15, 16])
@pytest.mark.parametrize("chunk", [1, 3, 64, 1 << 20])
def test_user_mappings_lose_their_options_in_any_chunking_and_the_data_passes_untouched(minor, chunk):
    out = rewrite(build([TABLE, MAPPING, TABLE], minor), chunk)

    assert SECRET.encode() not in out and out.endswith(DATA)
    _, entries = archive.read_toc(out)
    assert [e.defn for e in entries] == [TABLE[2], "CREATE USER MAPPING FOR app SERVER lab;\n", TABLE[2]]
    assert entries[1].drop == MAPPING[3] and entries[0].owner == "app_owner"


def test_an_archive_without_user_mappings_is_passed_on_byte_for_byte():
    data = build([TABLE, TABLE])
    assert rewrite(data, 7) == data


def test_an_unknown_archive_format_stops_the_restore_in_one_line():
    with pytest.raises(ProdmirrorError, match=r"pg_dump archive format 1\.17 is newer than this prodmirror reads"):
        rewrite(build([TABLE], minor=17), 1 << 20)
    with pytest.raises(ProdmirrorError, match="not a pg_dump custom-format archive"):
        rewrite(b"-- plain SQL\nSELECT 1;\n", 1 << 20)


def test_a_dump_ending_inside_its_table_of_contents_is_an_error():
    sink = Sink()
    stream = archive.TocRewrite(sink, archive.without_credentials)
    stream.write(build([TABLE, MAPPING])[:120])
    with pytest.raises(ProdmirrorError, match="ended inside its table of contents"):
        stream.check()
    assert SECRET.encode() not in bytes(sink.data)


def test_a_user_mapping_of_unexpected_form_is_refused_without_showing_its_options():
    odd = ("USER MAPPING", "USER MAPPING app SERVER lab", MAPPING[2], "", "", None)
    with pytest.raises(ProdmirrorError) as caught:
        rewrite(build([odd]), 1 << 20)
    assert "USER MAPPING app SERVER lab" in str(caught.value) and SECRET not in str(caught.value)


def test_owner_statements_follow_pg_restore():
    def entry(desc, tag, drop="DROP x;\n", owner="app_owner", namespace=None):
        return archive.Entry(1, tag, desc, "", drop, namespace, owner)

    assert owner_statement(entry("TABLE", "Order Items", namespace="sales")) == \
        'ALTER TABLE "sales"."Order Items" OWNER TO "app_owner";'
    assert owner_statement(entry("FUNCTION", "total(bigint)", drop="DROP FUNCTION sales.total(bigint);\n")) == \
        'ALTER FUNCTION sales.total(bigint) OWNER TO "app_owner";'
    assert owner_statement(entry("DATABASE", "shop")) == 'ALTER DATABASE "shop" OWNER TO "app_owner";'
    assert owner_statement(entry("INDEX", "users_pkey")) is None  # indexes belong to their table
    assert owner_statement(entry("SCHEMA", "public", drop="")) is None  # no DROP: not separately owned


def test_kept_statements_put_owners_first_and_grants_last_and_keep_mapping_options():
    entries = [archive.Entry(1, "x", "ACL", "GRANT SELECT ON TABLE public.users TO reader;\n", "", "public", "o"),
               archive.Entry(2, "users", "TABLE", "CREATE TABLE …", "DROP TABLE public.users;\n", "public", "o"),
               archive.Entry(3, "DATABASE shop", "COMMENT", "COMMENT ON DATABASE shop IS 'x';\n", "", None, "o"),
               archive.Entry(4, "shop", "DATABASE PROPERTIES", "ALTER DATABASE shop SET work_mem TO '8MB';\n", "", None,
                             "o"),
               archive.Entry(5, MAPPING[1], "USER MAPPING", MAPPING[2], MAPPING[3], None, ""),
               archive.Entry(6, "COLUMN users.id", "COMMENT", "COMMENT ON COLUMN …", "", "public", "o")]
    assert kept_statements(entries) == [
        'ALTER TABLE "public"."users" OWNER TO "o";', "COMMENT ON DATABASE shop IS 'x';\n",
        "ALTER DATABASE shop SET work_mem TO '8MB';\n", "DROP USER MAPPING IF EXISTS FOR app SERVER lab;\n", MAPPING[2],
        "GRANT SELECT ON TABLE public.users TO reader;\n"]


def test_database_only_keeps_what_is_about_the_database_itself():
    entries = [archive.Entry(1, "shop", "DATABASE", "CREATE DATABASE shop …", "DROP DATABASE shop;\n", None, "o"),
               archive.Entry(2, "DATABASE shop", "ACL", "REVOKE CONNECT ON DATABASE shop FROM PUBLIC;\n", "", None, "o"),
               archive.Entry(3, "users", "TABLE", "CREATE TABLE …", "DROP TABLE public.users;\n", "public", "o"),
               archive.Entry(4, "TABLE users", "ACL", "GRANT SELECT ON TABLE public.users TO r;\n", "", "public", "o"),
               archive.Entry(5, MAPPING[1], "USER MAPPING", MAPPING[2], MAPPING[3], None, "")]
    assert kept_statements(entries, database_only=True) == [
        'ALTER DATABASE "shop" OWNER TO "o";', "REVOKE CONNECT ON DATABASE shop FROM PUBLIC;\n"]
