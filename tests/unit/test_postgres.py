"""The Postgres engine without a server: argv builders, the secret channel (no secret ever in argv), and the
version guard of preflight."""

import pytest

from tasks.config import Database, Secret
from tasks.engines import postgres
from tasks.errors import ProdmirrorError
from tasks.hosts import ContainerHost, LocalHost, secret_prologue
from tasks.procs import Result


def db(**kw):
    return Database(key="gamit", env="local", engine="postgres", name="db_gamit", user="spmo_admin", **kw)


def test_dump_argv_custom_format_without_password():
    d = db(host="127.0.0.1", port=5432, password=Secret("hunter2"))
    assert postgres.dump_argv(d) == ("pg_dump", "--format=custom", "--no-password", "--username", "spmo_admin",
                                     "--dbname", "db_gamit", "--host", "127.0.0.1", "--port", "5432")
    assert "hunter2" not in " ".join(postgres.dump_argv(d))
    assert postgres.client_env(d) == {"PGPASSWORD": "hunter2"}


def test_restore_argv_portable_drops_owner_and_acl():
    assert postgres.restore_argv(db(), "tmp") == ("pg_restore", "--exit-on-error", "--no-owner", "--no-acl",
                                                  "--no-password", "--username", "spmo_admin", "--dbname", "tmp")
    assert "--no-owner" not in postgres.restore_argv(db(), "tmp", portable=False)


def test_quoting():
    assert postgres.quote_ident('Mixed "Case"') == '"Mixed ""Case"""'
    assert postgres.quote_literal("o'k") == "'o''k'"


def test_container_exec_argv_passes_secret_names_only():
    box = ContainerHost(LocalHost(), "spmo_shared_db")
    assert box.exec_argv(["psql", "-c", "select 1"], {"PGPASSWORD": "x"}) == [
        "docker", "exec", "-i", "-e", "PGPASSWORD", "spmo_shared_db", "psql", "-c", "select 1"]


def test_secret_prologue_reads_values_from_stdin():
    assert secret_prologue(["PGPASSWORD"]) == ["sh", "-c", 'IFS= read -r PGPASSWORD && export PGPASSWORD && exec "$@"', "sh"]


def test_local_host_run_passes_secret_in_environment_only():
    res = LocalHost().run(["sh", "-c", 'printf "%s|%s" "$PGPASSWORD" "$0"'], env={"PGPASSWORD": "s3cret"})
    assert res.stdout == "s3cret|sh"


def test_side_names_fit_postgres_identifier_limit():
    assert len(postgres.side_name("x" * 80, "__pm_new")) == 63


class FakeHost:
    """Answers `--version` and the server-version query: the error path needs no real old server."""

    def __init__(self, label, versions, server=150000):
        self.label, self.versions, self.server = label, versions, server

    def run(self, argv, input=None, env=None, check=True):
        if argv[-1] == "--version":
            return Result(0, f"{argv[0]} (PostgreSQL) {self.versions[argv[0]]}\n", "")
        if "server_version_num" in (input or ""):
            return Result(0, f"{self.server}\x1f1\x1f\n", "")  # version, database exists, no stuck session
        return Result(0, "1\n", "")


def test_preflight_reports_pg_dump_older_than_server():
    db = Database(key="app", env="production", engine="postgres", name="x", user="u")
    src = FakeHost("production", {"pg_dump": "13.4"}, server=160002)
    dst = FakeHost("local", {"pg_restore": "16.1"})
    with pytest.raises(ProdmirrorError, match="pg_dump 13.4 cannot dump a PostgreSQL 16 server; install postgresql-client-16"):
        postgres.preflight(src, db, dst, db)


def test_preflight_reports_pg_restore_older_than_pg_dump():
    db = Database(key="app", env="production", engine="postgres", name="x", user="u")
    with pytest.raises(ProdmirrorError, match="pg_restore 13.1 cannot read an archive from pg_dump 15.2"):
        postgres.preflight(FakeHost("production", {"pg_dump": "15.2"}), db, FakeHost("local", {"pg_restore": "13.1"}), db)


def test_needs_refuses_in_one_line_what_the_target_cannot_create():
    from tasks.engines.postgres import needs

    src = Database(key="app", env="production", engine="postgres", name="clinic", user="spmo_admin")
    dst = Database(key="app", env="local", engine="postgres", name="clinic", user="spmo_admin")
    found = [("may create roles", "false"), ("missing role", "clinic_doctor"), ("missing role", 'odd "name"'),
             ("superuser extension", "postgres_fdw"), ("missing extension", "postgis")]
    assert needs.problems(src, dst, found) == [
        "extension postgis is not installed on local's server (install its package there)",
        "only a superuser may create extension postgres_fdw, and spmo_admin is none (configure a superuser as "
        "environments.local.databases.app.user)",
        "production's schema names roles local lacks (clinic_doctor, odd \"name\": policies, user mappings or functions "
        "use them) and spmo_admin may not create roles; run there as a role with CREATEROLE: "
        'CREATE ROLE "clinic_doctor" NOLOGIN; CREATE ROLE "odd ""name""" NOLOGIN;']
    assert needs.problems(src, dst, [("may create roles", "true"), ("missing role", "clinic_doctor")]) == []
    protected = Database(key="app", env="production", engine="postgres", name="clinic", user="u", protected=True)
    assert "prodmirror creates no roles in production, a protected environment" in \
        needs.problems(dst, protected, [("may create roles", "true"), ("missing role", "x")])[0]


def test_dump_argv_leaves_out_the_rows_of_excluded_tables_named_exactly():
    argv = postgres.dump_argv(db(), exclude=[("public", "sessions"), ("Sales", 'Audit "Trail"'), ("public", "log?")])
    assert argv[:5] == ("pg_dump", "--format=custom", "--exclude-table-data=\"public\".\"sessions\"",
                        '--exclude-table-data="Sales"."Audit ""Trail"""', '--exclude-table-data="public"."log?"')
    assert postgres.dump_argv(db()) == postgres.dump_argv(db(), exclude=())


def test_landed_marks_are_rows_times_the_loading_transaction_and_unknown_is_read():
    from tasks.engines.postgres.marks import landed_marks

    seen = {"public.a": [3, "xmin:whatever"], "public.empty": [0, "xmin:0"], "public.excluded": [9, "xmin:1"]}
    firsts = {"public.a": "-7", "public.empty": None, "public.excluded": None, "public.new": "5"}
    assert landed_marks(firsts, seen) == {"public.a": [3, "xmin:-21"], "public.empty": [0, "xmin:0"],
                                          "public.excluded": [0, "xmin:0"], "public.new": None}


def test_side_names_fit_63_bytes_and_long_names_sharing_their_start_never_collide():
    from tasks.engines.postgres.database import side_name

    assert side_name("db_gamit", "__pm_new") == "db_gamit__pm_new"
    a, b = "x" * 50 + "_first", "x" * 50 + "_second"
    one, two = side_name(a, "__pm_20261201121213"), side_name(b, "__pm_20261201121213")
    assert one != two and len(one.encode()) <= 63 and len(two.encode()) <= 63
    assert len(side_name("ü" * 40, "__pm_new").encode()) <= 63  # bytes, not characters


def test_a_snapshot_skips_reading_the_rows_of_excluded_tables_by_label():
    from tasks.engines.postgres.tables import snapshot_sql

    sql = snapshot_sql(None, None, skip={'public."Big Log"', "audit.events"})
    assert "<> ALL(ARRAY['audit.events', 'public.\"Big Log\"']::text[])" in sql
    assert snapshot_sql(None, None).count("<> ALL") == 0
