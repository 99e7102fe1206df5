"""hotfix.* on the real testbed (tests/hotfix_bed.py): a clone of a multi-schema production database over
SSH, PostgREST (a stand-in) on production's Docker through that SSH connection, migrations, the deploy."""

import os
import re
import subprocess
import time
import urllib.request

import pytest

from tasks import migrations
from tasks.actions import deploy, hotfix
from tasks.errors import ProdmirrorError
from tests.conftest import table_digests
from tests.hotfix_bed import git, hotfix_config, lm360, project_for, served, snapshot_files, standin  # noqa: F401


@pytest.fixture(autouse=True)
def forced(monkeypatch):
    monkeypatch.setenv("FORCE", "true")  # hotfix.create/teardown/deploy confirm like a push; tests/faults covers that


def test_create_idle_source_uses_template_and_starts_postgrest(prod, sshd, lm360, standin, tmp_path, capfd):
    import docker

    project = project_for(tmp_path, prod, sshd, lm360, standin)
    try:
        rec = hotfix.create(project)
        assert rec["strategy"] == "template"
        clone = f"{lm360}_bugfix"
        assert table_digests(prod, clone) == table_digests(prod, lm360)
        # cross-schema FK, trigger and grants came along
        prod.psql("UPDATE custodian.custodians SET active = false WHERE id = 3", db=clone)
        assert prod.psql("SELECT active FROM expense.custodian_status WHERE custodian_id = 3", db=clone).strip() == "f"
        with pytest.raises(RuntimeError, match="violates foreign key"):
            prod.psql("INSERT INTO custodian.transaction_lines (catalog_id) VALUES (9999)", db=clone)
        assert prod.psql("SELECT has_table_privilege('web_anon', 'sales.catalog', 'SELECT')", db=clone).strip() == "t"
        # the container, as configured
        pg = project.hotfix.postgrest
        box = docker.from_env().containers.get(pg.name)
        env = dict(e.split("=", 1) for e in box.attrs["Config"]["Env"])
        assert box.status == "running" and box.attrs["HostConfig"]["NetworkMode"] == "host"
        assert env["PGRST_DB_URI"] == f"postgres://authenticator:auth-s3cret-pw@127.0.0.1:{prod.port}/{clone}"
        assert env["PGRST_DB_SCHEMAS"] == "hub,expense,sales,custodian,activity" and env["PGRST_DB_ANON_ROLE"] == "web_anon"
        assert env["PGRST_SERVER_PORT"] == str(pg.port) and env["PGRST_JWT_SECRET"].startswith("jwt-s3cret")
        assert box.labels["traefik.enable"] == "true" and box.labels["prodmirror.database"] == clone
        assert box.attrs["Config"]["Cmd"] == standin[1]
        body = _get(f"http://127.0.0.1:{pg.port}/")
        assert "hub,expense,sales,custodian,activity" in body
        out = capfd.readouterr()
        assert "s3cret" not in out.out + out.err and "https://bugfix.example.com/db" in out.err
        # ttl: 24h is 24h everywhere: the plan, the state, the container's label, the status
        assert "expires in 24h" in out.err and hotfix.read_state(project)[clone]["ttl"] == "24h"
        assert box.labels["prodmirror.ttl"] == "24h"
        assert [r["ttl"] for r in hotfix.status(project) if r["name"] == clone] == ["24h"]
    finally:
        hotfix.teardown(project)
    assert not docker.from_env().containers.list(all=True, filters={"name": project.hotfix.postgrest.name})
    assert prod.psql(f"SELECT 1 FROM pg_database WHERE datname = '{lm360}_bugfix'").strip() == ""
    assert hotfix.teardown(project) == [f"{lm360}_bugfix"]  # idempotent


@pytest.fixture
def remote(monkeypatch):
    """Count what runs reach production: SSH connections (paramiko transports started) and commands (the first
    words of each channel's argv). Returns (connections, commands), lists a test may clear between runs."""
    import paramiko

    from tasks import hosts

    connections, commands = [], []
    start_client, stream = paramiko.Transport.start_client, hosts.SSHHost.stream

    def counted_start(transport, *args, **kwargs):
        connections.append(transport)
        return start_client(transport, *args, **kwargs)

    def counted_stream(host, argv, env=None):
        commands.append(" ".join(argv[:3]))
        return stream(host, argv, env)

    monkeypatch.setattr(paramiko.Transport, "start_client", counted_start)
    monkeypatch.setattr(hosts.SSHHost, "stream", counted_stream)
    return connections, commands


def test_each_run_is_one_ssh_connection_and_one_docker_channel(prod, sshd, lm360, standin, tmp_path, remote):
    """Every remote step of a run, the Docker API included, goes over one SSH connection; docker-py keeps one
    HTTP connection, so one `docker system dial-stdio` channel carries all its calls."""
    connections, commands = remote
    project = project_for(tmp_path, prod, sshd, lm360, standin)
    try:
        for run in (lambda: hotfix.create(project), lambda: hotfix.status(project), lambda: hotfix.teardown(project)):
            connections.clear()
            commands.clear()
            run()
            assert len(connections) == 1
            assert commands.count("docker system dial-stdio") == 1, commands
    finally:
        hotfix.teardown(project)


def test_the_kept_alive_docker_channel_outlives_limits_stall_when_idle(sshd, standin, tmp_path, monkeypatch):
    """Between two API calls the channel is quiet while the flow clones (minutes): that is no frozen peer."""
    import threading
    import time as clock

    from tasks.config.model import Limits, SSHTarget
    from tasks.containers import Docker
    from tasks.hosts import SSHHost

    failures = []
    monkeypatch.setattr(threading, "excepthook", failures.append)
    host = SSHHost("production", SSHTarget(**sshd.target()), tmp_path / "known_hosts")
    host.limits = Limits(stall=0.5)
    docker = Docker(host)
    try:
        assert docker.client.ping()
        clock.sleep(1.2)
        assert docker.client.images.get(standin[0])
    finally:
        docker.close()
        host.close()
    assert failures == []


def _get(url, attempts=50):
    for _ in range(attempts):
        try:
            return urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing answers at {url}")


def test_hotfix_dry_runs_change_nothing_and_leave_one_audit_line_each(prod, sshd, lm360, tmp_path):
    from tasks import audit

    project = project_for(tmp_path, prod, sshd, lm360)
    assert hotfix.create(project, dry_run=True) is None
    assert prod.psql(f"SELECT 1 FROM pg_database WHERE datname = '{lm360}_bugfix'").strip() == ""
    assert hotfix.read_state(project) == {}
    assert [(r["task"], r["result"]) for r in audit.read(project.state_dir)] == [("hotfix.create", "dry-run")]


def _hold_session(prod, db):
    """Start a session on `db` that stays (a psql sleeping two minutes), and return its process once it is there."""
    held = subprocess.Popen([f"{prod.bin}/psql", "-X", "-h", "127.0.0.1", "-p", str(prod.port), "-U", "postgres",
                             "-d", db, "-c", "SELECT pg_sleep(120)"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(50):
        if prod.psql(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'").strip() != "0":
            break
        time.sleep(0.1)
    return held


def test_create_with_a_session_held_clones_online_and_keeps_it(prod, sshd, lm360, tmp_path):
    project = project_for(tmp_path, prod, sshd, lm360)
    held = _hold_session(prod, lm360)
    try:
        rec = hotfix.create(project)
        assert rec["strategy"] == "dump"
        assert held.poll() is None  # the production session survived
        clone = f"{lm360}_bugfix"
        assert table_digests(prod, clone) == table_digests(prod, lm360)
        assert prod.psql("SELECT tgname FROM pg_trigger WHERE tgname = 'sync_custodian_active'", db=clone).strip()
        with pytest.raises(ProdmirrorError, match="already exists .* --replace"):
            hotfix.create(project)
        assert hotfix.create(project, replace=True, strategy="dump")["strategy"] == "dump"
        with pytest.raises(ProdmirrorError, match="TEMPLATE .* failed: .*being accessed by other users"):
            hotfix.create(project, replace=True, strategy="template")
        assert held.poll() is None
        assert hotfix.create(project, replace=True, strategy="template", terminate=True)["strategy"] == "template"
        assert held.wait(timeout=10) != 0  # --terminate, and only --terminate, ends production sessions
        held = _hold_session(prod, lm360)
        assert hotfix.create(project, replace=True, terminate=True)["strategy"] == "template"  # auto + --terminate
        assert held.wait(timeout=10) != 0
    finally:
        held.kill()


def test_status_and_teardown_of_expired(prod, sshd, lm360, tmp_path):
    project = project_for(tmp_path, prod, sshd, lm360)
    hotfix.create(project, ttl="1s")
    rows = hotfix.status(project)
    assert [(r["database"], r["exists"], r["ttl"]) for r in rows] == [(f"{lm360}_bugfix", True, "1s")]
    time.sleep(1.2)
    assert hotfix.status(project)[0]["expired"] is True
    assert hotfix.teardown(project, expired=True) == [f"{lm360}_bugfix"]
    assert hotfix.status(project) == []


def test_migrate_applies_once_to_bugfix_and_dev(prod, sshd, lm360, tmp_path):
    project = project_for(tmp_path, prod, sshd, lm360)
    prod.psql(f"CREATE DATABASE {lm360}_dev TEMPLATE {lm360}")
    hotfix.create(project)
    good = tmp_path / "migrate_custodian_v2.sql"
    good.write_text("ALTER TABLE custodian.custodians ADD COLUMN note text;\n")
    assert hotfix.migrate(project, str(good), dry_run=True) == {f"{lm360}_bugfix": "apply", f"{lm360}_dev": "apply"}
    assert prod.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'note'", db=f"{lm360}_dev").strip() == "0"
    from tasks import audit

    assert [(r["task"], r["result"]) for r in audit.read(project.state_dir)][-1] == ("hotfix.migrate", "dry-run")
    assert hotfix.migrate(project, str(good)) == {f"{lm360}_bugfix": "applied", f"{lm360}_dev": "applied"}
    assert hotfix.migrate(project, str(good)) == {f"{lm360}_bugfix": "already applied", f"{lm360}_dev": "already applied"}
    bad = tmp_path / "migrate_custodian_v3.sql"
    bad.write_text("ALTER TABLE custodian.custodians ADD COLUMN x int;\nSELECT 1/0;\n")
    with pytest.raises(ProdmirrorError, match="v3.sql failed on .* rolled back: .*division by zero"):
        hotfix.migrate(project, str(bad))
    assert prod.psql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'x'", db=f"{lm360}_bugfix").strip() == "0"
    good.write_text("ALTER TABLE custodian.custodians ADD COLUMN note text NOT NULL DEFAULT '';\n")  # edited after
    line = f"migrate_custodian_v2.sql was applied to {lm360}_bugfix with other contents (sha256 "
    plan = hotfix.migrate(project, str(good), dry_run=True)
    assert plan[f"{lm360}_bugfix"].startswith(line) and plan[f"{lm360}_bugfix"].endswith("write a new migration file")
    assert plan[f"{lm360}_dev"].startswith(line.replace("_bugfix", "_dev"))
    with pytest.raises(ProdmirrorError, match=f"^{re.escape(line)}"):
        hotfix.migrate(project, str(good))
    assert prod.psql("SELECT is_nullable FROM information_schema.columns WHERE column_name = 'note'",
                     db=f"{lm360}_bugfix").strip() == "YES"
    own = tmp_path / "migrate_v4.sql"
    own.write_text("BEGIN;\nSELECT 1;\nCOMMIT;\n")
    with pytest.raises(ProdmirrorError, match="migrate_v4.sql: line 1: BEGIN ends or opens a transaction"):
        hotfix.migrate(project, str(own))


# --- deploy -------------------------------------------------------------------------------------------

V1 = "CREATE TABLE activity.applied_v1 (x int);\n"  # migrate_v1.sql of the served repo


def _commit(repo, sshd, message, files):
    """Commit {path: text} on the served repo's checked-out branch (dev), which stays the SSH user's."""
    for path, text in files.items():
        with open(os.path.join(repo, path), "w") as f:
            f.write(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)
    subprocess.run(["chown", "-R", f"{sshd.uid}:{sshd.gid}", repo], check=True)


def _record(prod, project, lm360, name, sql):
    """Record migration `name` as applied to production's lm360 with the checksum of `sql`."""
    migrations.ensure_table(*_db(project, lm360), "prodmirror_migrations")
    prod.psql(f"INSERT INTO prodmirror_migrations (name, sha256) VALUES ('{name}', '{migrations.checksum(sql)}')",
              db=lm360)


def test_deploy_dry_run_changes_nothing_then_deploys(prod, sshd, lm360, served, tmp_path, monkeypatch, capfd, remote):
    import psycopg

    repo, target = served
    _commit(repo, sshd, "app.js for the fix", {"app.js": "new in the fix\n"})
    commits = git(repo, "log", "--format=%h %s", "master..dev").splitlines()
    deploy_cfg = {"repo": repo, "target": target, "branch": "master", "dev_branch": "dev", "exclude": [".git", "migrations"]}
    project = project_for(tmp_path, prod, sshd, lm360, deploy=deploy_cfg)
    prod.psql(V1, db=lm360)  # v1 is already in production…
    _record(prod, project, lm360, "migrate_v1.sql", V1)
    before = (table_digests(prod, lm360), snapshot_files(target), git(repo, "rev-parse", "master", "dev"))
    mode = os.stat(target).st_mode

    plan = deploy.deploy(project, dry_run=True)
    from tasks import audit

    assert [(r["task"], r["result"]) for r in audit.read(project.state_dir)] == [("hotfix.deploy", "dry-run")]
    assert plan["pending"] == ["migrations/migrate_v2.sql", "migrations/migrate_v10.sql"] and plan["edited"] == []
    assert plan["commits"] == commits and [c.split()[1:] for c in commits] == [["app.js", "for", "the", "fix"],
                                                                              ["fix:", "the", "bug"]]
    assert plan["conflicts"] == []
    assert plan["changes"] == {"added": ["app.js"], "changed": ["index.html"], "deleted": ["old.js"]}
    said = capfd.readouterr().err
    assert "".join(f"\n       {c}" for c in commits) in said  # every commit, hash and subject
    assert "added: app.js; changed: index.html; deleted: old.js" in said
    assert (table_digests(prod, lm360), snapshot_files(target), git(repo, "rev-parse", "master", "dev")) == before

    listener = psycopg.connect(f"host=127.0.0.1 port={prod.port} user=postgres dbname={lm360}", autocommit=True)
    listener.execute("LISTEN pgrst")
    monkeypatch.setenv("FORCE", "true")
    remote[0].clear()
    rec = deploy.deploy(project)
    assert len(remote[0]) == 1  # git, rsync, the backup's pg_dump and every psql: one SSH connection
    said = capfd.readouterr().err
    assert f"{target}: added: app.js; changed: index.html; deleted: old.js" in said  # the real deploy says the same
    assert "".join(f"\n       {c}" for c in commits) in said and rec["merged"] == commits
    assert rec["migrations"] == ["migrations/migrate_v2.sql", "migrations/migrate_v10.sql"]
    assert prod.psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'applied_v2' ORDER BY 1",
                     db=lm360).split() == ["x", "y"]
    assert snapshot_files(target) == {"index.html": "v2 with the fix\n", "app.js": "new in the fix\n"}
    assert os.stat(target).st_mode == mode  # the served folder stays open to the web server
    assert git(repo, "merge-base", "--is-ancestor", "dev", "master") == ""  # dev is merged into master
    assert git(repo, "symbolic-ref", "--short", "HEAD") == "dev"  # the dev checkout was not disturbed
    assert [n.payload for n in listener.notifies(timeout=2, stop_after=1)] == ["reload schema"]
    assert rec["backup"].startswith("production_")
    assert deploy.deploy(project, dry_run=True)["pending"] == []


def _db(project, name):
    from tasks.hosts import Hosts

    db = project.env("production").database("lm360")
    return Hosts(project).for_db(db), db


def test_deploy_stops_at_the_first_failing_migration(prod, sshd, lm360, served, tmp_path, monkeypatch):
    repo, target = served
    _commit(repo, sshd, "more", {"migrations/migrate_v3.sql": "SELECT * FROM activity.no_such_table;\n",
                                 "migrations/migrate_v4.sql": "CREATE TABLE activity.applied_v4 (x int);\n"})
    deploy_cfg = {"repo": repo, "target": target, "exclude": [".git"]}
    project = project_for(tmp_path, prod, sshd, lm360, deploy=deploy_cfg)
    monkeypatch.setenv("FORCE", "true")
    with pytest.raises(ProdmirrorError, match="migrate_v3.sql failed .* rolled back"):
        deploy.deploy(project)
    recorded = prod.psql("SELECT name FROM prodmirror_migrations ORDER BY name", db=lm360).split()
    assert recorded == ["migrate_v1.sql", "migrate_v2.sql"]  # before the failure: applied and recorded
    assert prod.psql("SELECT to_regclass('activity.applied_v4') IS NULL", db=lm360).strip() == "t"


def test_deploy_refuses_a_migration_edited_after_it_was_applied(prod, sshd, lm360, served, tmp_path, monkeypatch,
                                                                capfd):
    repo, target = served
    project = project_for(tmp_path, prod, sshd, lm360, deploy={"repo": repo, "target": target})
    _record(prod, project, lm360, "migrate_v1.sql", "CREATE TABLE activity.applied_v1 (x text);\n")  # v1 as it was
    refs, files = git(repo, "rev-parse", "master", "dev"), snapshot_files(target)
    line = (f"migrate_v1.sql was applied to {lm360} with other contents (sha256 "
            f"{migrations.checksum('CREATE TABLE activity.applied_v1 (x text);' + chr(10))[:12]}… recorded, "
            f"{migrations.checksum(V1)[:12]}… now); write a new migration file")
    for migrate_only in (False, True):
        plan = deploy.deploy(project, dry_run=True, migrate_only=migrate_only)
        assert plan["edited"] == [line] and "migrations/migrate_v1.sql" not in plan["pending"]
        assert f"REFUSING: {line}" in capfd.readouterr().err
    monkeypatch.setenv("FORCE", "true")
    for migrate_only in (False, True):
        with pytest.raises(ProdmirrorError) as refused:
            deploy.deploy(project, migrate_only=migrate_only)
        assert str(refused.value) == line
    assert git(repo, "rev-parse", "master", "dev") == refs and snapshot_files(target) == files
    assert prod.psql("SELECT to_regclass('activity.applied_v2') IS NULL", db=lm360).strip() == "t"
    assert not project.backups.dir.exists() or not any(project.backups.dir.iterdir())  # not even a backup


def test_deploy_refuses_a_conflicting_merge(prod, sshd, lm360, served, tmp_path, monkeypatch):
    repo, target = served
    git(repo, "checkout", "-q", "master")
    with open(os.path.join(repo, "index.html"), "w") as f:
        f.write("edited on master\n")
    git(repo, "commit", "-qam", "conflicting edit")
    git(repo, "checkout", "-q", "dev")
    subprocess.run(["chown", "-R", f"{sshd.uid}:{sshd.gid}", repo], check=True)
    project = project_for(tmp_path, prod, sshd, lm360, deploy={"repo": repo, "target": target})
    refs = git(repo, "rev-parse", "master", "dev")
    assert deploy.deploy(project, dry_run=True)["conflicts"] == ["index.html"]
    monkeypatch.setenv("FORCE", "true")
    with pytest.raises(ProdmirrorError, match="conflicts in index.html; nothing was changed"):
        deploy.deploy(project)
    assert git(repo, "rev-parse", "master", "dev") == refs
    assert prod.psql("SELECT to_regclass('public.prodmirror_migrations') IS NULL", db=lm360).strip() == "t"


def test_deploy_migrate_only_applies_the_production_branch_migrations_only(prod, sshd, lm360, served, tmp_path,
                                                                           monkeypatch):
    repo, target = served
    project = project_for(tmp_path, prod, sshd, lm360, deploy={"repo": repo, "target": target})
    refs, files = git(repo, "rev-parse", "master", "dev"), snapshot_files(target)
    assert deploy.deploy(project, dry_run=True, migrate_only=True)["pending"] == ["migrations/migrate_v1.sql"]
    monkeypatch.setenv("FORCE", "true")
    rec = deploy.deploy(project, migrate_only=True)
    assert rec["migrations"] == ["migrations/migrate_v1.sql"] and "merged" not in rec
    assert prod.psql("SELECT to_regclass('activity.applied_v1') IS NOT NULL", db=lm360).strip() == "t"
    assert git(repo, "rev-parse", "master", "dev") == refs and snapshot_files(target) == files


# --- PostgREST readiness ---------------------------------------------------------------------------------


@pytest.fixture
def watched(monkeypatch):
    """Record what the readiness wait does, in order: ("probe", HTTP status or None) and ("sleep", seconds)."""
    import types

    from tasks import containers

    events, probe = [], containers.http_status

    def recorded_probe(*args):
        status = probe(*args)
        events.append(("probe", status))
        return status

    def recorded_sleep(seconds):
        events.append(("sleep", seconds))
        time.sleep(seconds)

    monkeypatch.setattr(containers, "http_status", recorded_probe)
    monkeypatch.setattr(containers, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=recorded_sleep))
    return events


def test_create_returns_once_postgrest_answers_not_after_a_fixed_sleep(prod, sshd, lm360, standin, tmp_path, watched,
                                                                       capfd):
    """A PostgREST that listens only a second after it started: create waits for its answer (asked on production,
    through the run's SSH connection), returns as soon as it has it, and it then answers at the first request."""
    from tasks.sandbox.docker import standin_command

    project = project_for(tmp_path, prod, sshd, lm360, (standin[0], standin_command(before="/bin/busybox sleep 1")))
    pg = project.hotfix.postgrest
    try:
        hotfix.create(project)
        assert "stand-in: hub,expense" in urllib.request.urlopen(f"http://127.0.0.1:{pg.port}/", timeout=5).read().decode()
        probes = [status for what, status in watched if what == "probe"]
        assert probes[0] is None and probes[-1] == 200  # asked before it listened, and until it answered
        # asked, paused, asked again…, and nothing slept once it answered
        assert [what for what, _ in watched] == ["probe", "sleep"] * (len(watched) // 2) + ["probe"]
        assert f"GET / at 127.0.0.1:{pg.port} on production answered 200" in capfd.readouterr().err
    finally:
        hotfix.teardown(project)


def test_create_waits_for_the_images_healthcheck(prod, sshd, lm360, container_pg, tmp_path, watched, capfd):
    """An image with a HEALTHCHECK: create returns when Docker reports it healthy, and probes nothing itself."""
    import docker

    from tasks.sandbox import docker as testbed_docker

    image = testbed_docker.ensure_standin(testbed_docker.ensure_daemon(), healthcheck=True)
    project = project_for(tmp_path, prod, sshd, lm360, (image, testbed_docker.STANDIN_COMMAND))
    try:
        hotfix.create(project)
        box = docker.from_env().containers.get(project.hotfix.postgrest.name)
        assert box.attrs["State"]["Health"]["Status"] == "healthy"
        assert [what for what, _ in watched if what == "probe"] == []
        assert ": healthy (its HEALTHCHECK)); PostgREST answers at" in capfd.readouterr().err
    finally:
        hotfix.teardown(project)


def test_create_asks_the_admin_servers_ready_endpoint_when_there_is_one(prod, sshd, lm360, standin, tmp_path, capfd):
    """With PGRST_ADMIN_SERVER_PORT set, /ready there is the signal: not ready (here 404, as 503 in PostgREST)
    until it answers 200, a second after the API port already answers."""
    from tasks import config
    from tasks.sandbox import free_port
    from tasks.sandbox.docker import standin_command

    admin = free_port()
    late_ready = ('mkdir -p /adm && /bin/busybox httpd -p "$PGRST_ADMIN_SERVER_PORT" -h /adm && '
                  '(/bin/busybox sleep 1 && echo ok > /adm/ready) &')
    cfg = hotfix_config(tmp_path, prod, sshd, lm360, (standin[0], standin_command(before=late_ready)))
    cfg["hotfix"]["postgrest"]["environment"] = {"PGRST_ADMIN_SERVER_PORT": admin}
    project = config.load(cfg, tmp_path)
    try:
        hotfix.create(project)
        assert urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=5).status == 200
        assert f"GET /ready at 127.0.0.1:{admin} on production answered 200" in capfd.readouterr().err
    finally:
        hotfix.teardown(project)
