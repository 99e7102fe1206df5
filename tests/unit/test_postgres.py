"""Argv builders and the secret channel: exact commands, and no secret ever in argv."""

from tasks.config import Database, Secret
from tasks.engines import postgres
from tasks.hosts import ContainerHost, LocalHost, secret_prologue


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
    assert len(postgres._side_name("x" * 80, "__pm_new")) == 63
