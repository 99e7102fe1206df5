"""mirror.* against a real Django 5.2 project served by the SSH "production" host and its Postgres.

The project's settings point at production's database (as a real project's do): every manage.py
prodmirror runs must still reach local only, which `production_untouched` checks after every test."""

import io
import json
import os
import subprocess
import sys
import tarfile

import pytest

from tasks import audit, backup_store, code, config
from tasks.actions import mirror
from tasks.errors import GuardError, ProdmirrorError
from tasks.transfer import sha256_file
from tasks.ui import Progress
from tests import django_site
from tests.conftest import cli_project, inv, pg_db, table_digests

DB = "db_gamit_mirror"
CREDS = {"DJANGO_SUPERUSER_USERNAME": "opsadmin", "DJANGO_SUPERUSER_EMAIL": "ops@example.com",
         "DJANGO_SUPERUSER_PASSWORD": "not-a-real-password-42"}


@pytest.fixture(scope="module")
def site(prod, local, sshd, base):
    """Production's code root (gamit_app) and its migrated database."""
    code_root = os.path.join(base, "prod-code")
    app_dir = django_site.build(code_root, DB, prod.port)
    prod.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE); CREATE DATABASE {DB} OWNER spmo_admin")
    django_site.migrate(app_dir, DB, prod.port)
    yield code_root
    for cluster in (prod, local):
        cluster.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")


@pytest.fixture(autouse=True)
def production_untouched(site, prod):
    """No mirror task writes to production's database: every table (auth_user, django_migrations…) as it was."""
    before = table_digests(prod, DB)
    yield
    assert table_digests(prod, DB) == before


@pytest.fixture
def cfg(site, prod, local, sshd, tmp_path, monkeypatch):
    """The ops repo's config: the app entry has no `env:`, so its settings point at production."""
    for key in CREDS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("FORCE", raising=False)
    local.psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in CREDS.items()))
    return {"environments": {
        "production": {"ssh": sshd.target(), "databases": {"gamit": pg_db(prod, DB)},
                       "code": {"root": site, "paths": ["gamit_app"], "exclude": ["__pycache__", "*.pyc", "staticfiles"]}},
        "local": {"code": {"root": "code"}, "databases": {"gamit": pg_db(local, DB)}}},
        "mirror": {"snapshots": "snapshots", "keep": 3, "django": [{
            "name": "gamit", "path": "gamit_app", "settings": "gamit_core/settings.py", "python": sys.executable,
            "database": "gamit"}]}}


@pytest.fixture
def project(cfg, tmp_path):
    return config.load(cfg, tmp_path)


def manage(project, *args, check=True):
    """Run manage.py by hand, as a developer would: no PM_DB_*/PRODMIRROR_* variables, only settings.py."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PM_DB_", "PRODMIRROR_DB_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=project.root / "code" / "gamit_app", env=env,
                          capture_output=True, text=True, check=check, timeout=120)


def server_of(project):
    """Return (port, database) of the server Django's default connection really reaches, run by hand."""
    out = manage(project, "shell", "-c", "from django.db import connection\nwith connection.cursor() as c:\n"
                 "    c.execute('SELECT inet_server_port(), current_database()'); print(*c.fetchone())").stdout
    port, name = out.strip().splitlines()[-1].split()
    return int(port), name


def prod_sums(site):
    return code.local_checksums(site, ["gamit_app"], ["__pycache__", "*.pyc", "staticfiles"])


def local_sums(project):
    return code.local_checksums(project.root / "code", ["gamit_app"], ["__pycache__", "*.pyc", "staticfiles"])


def test_mirror_production_end_to_end(project, site, prod, local):
    rec = mirror.production(project)

    settings = "gamit_app/gamit_core/settings.py"
    mine, theirs = local_sums(project), prod_sums(site)
    assert {k: v for k, v in mine.items() if k != settings} == {k: v for k, v in theirs.items() if k != settings}
    assert "gamit_app/media/uploads/photo.bin" in mine
    local_settings = (project.root / "code" / settings).read_text()
    assert local_settings.startswith(open(os.path.join(site, settings)).read().rstrip("\n"))
    assert "DEBUG = True" in local_settings and "ALLOWED_HOSTS = ['*']" in local_settings
    # data identical (auth_user gained the local superuser, as the seed's step B intends)
    ours, prods = table_digests(local, DB), table_digests(prod, DB)
    assert {k: v for k, v in ours.items() if k != "public.auth_user"} == {k: v for k, v in prods.items() if k != "public.auth_user"}
    assert ours["public.inventory_item"].startswith("25:")
    # Django itself is content: check passes, localized settings are live, the superuser authenticates.
    manage(project, "check")
    out = manage(project, "shell", "-c", "from django.conf import settings; from django.contrib.auth import authenticate;"
                 f"print(settings.DEBUG, settings.ALLOWED_HOSTS, authenticate(username='opsadmin', "
                 f"password='{CREDS['DJANGO_SUPERUSER_PASSWORD']}') is not None)").stdout.strip().splitlines()[-1]
    assert out == "True ['*'] True"
    assert (project.root / "code" / "gamit_app" / "staticfiles" / "inventory" / "site.css").exists()
    # the snapshot: complete, verified, its files match the manifest
    snap = backup_store.get(project, rec["snapshot"], project.mirror.snapshots)
    assert snap.manifest["code"]["paths"] == ["gamit_app"] and snap.verify("gamit")
    assert sha256_file(snap.path / "code.tar") == snap.manifest["code"]["sha256"]
    assert audit.read(project.state_dir)[-1]["result"] == "ok"


def test_status_reports_ghost_then_force_sync_removes_it(project, site):
    mirror.production(project)
    ghost = project.root / "code" / "gamit_app" / "inventory" / "ghost.py"
    ghost.write_text("# left over from an old deploy\n")
    (project.root / "code" / "gamit_app" / "inventory" / "models.py").write_text("# edited locally\n")
    os.remove(project.root / "code" / "gamit_app" / "inventory" / "static" / "inventory" / "site.css")

    report = mirror.status(project)["code"]["gamit_app"]
    assert report["ghost"] == ["gamit_app/inventory/ghost.py"]
    assert report["missing"] == ["gamit_app/inventory/static/inventory/site.css"]
    assert "gamit_app/inventory/models.py" in report["changed"]

    mirror.force_sync_code(project)
    assert not ghost.exists()
    after = mirror.status(project)  # the localize block in settings.py is prodmirror's, not a difference
    assert after["code"]["gamit_app"] == {"ghost": [], "missing": [], "changed": []}
    assert after["data"] == {"gamit": "matches the snapshot"}


def test_localize_is_idempotent_and_restored_after_code_sync(project):
    mirror.production(project, download_only=True)
    mirror.force_sync_code(project)
    settings = project.root / "code" / "gamit_app" / "gamit_core" / "settings.py"
    first = settings.read_text()
    assert mirror.localize_settings(project) == {"gamit": False}
    assert settings.read_text() == first and first.count("prodmirror localize") == 2


def test_download_only_stores_a_snapshot_and_touches_nothing_local(project, local):
    rec = mirror.production(project, download_only=True)
    assert not (project.root / "code" / "gamit_app").exists()
    assert local.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'").strip() == ""
    assert (project.mirror.snapshots / rec["snapshot"] / "gamit.pgdump").exists()


def test_mirror_dry_runs_change_nothing_and_leave_one_audit_line_each(project, local):
    snapshot = mirror.production(project, download_only=True)["snapshot"]
    start = len(audit.read(project.state_dir))
    assert mirror.production(project, dry_run=True) is None
    assert mirror.force_sync_code(project, dry_run=True) is None
    assert mirror.restore_db(project, dry_run=True) is None
    records = audit.read(project.state_dir)[start:]
    assert [(r["task"], r["result"]) for r in records] == [
        ("mirror.production", "dry-run"), ("mirror.force-sync-code", "dry-run"), ("mirror.restore-db", "dry-run")]
    assert records[1]["snapshot"] == snapshot
    assert not (project.root / "code").exists()
    assert local.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB}'").strip() == ""
    assert [b.name for b in backup_store.list_backups(project, project.mirror.snapshots)] == [snapshot]


def test_fix_migrations_detects_and_repairs_missing_row(project, local):
    mirror.production(project)
    assert mirror.fix_migrations(project) == {"gamit": []}  # consistent: left alone
    local.psql("DELETE FROM django_migrations WHERE app = 'inventory' AND name = '0001_initial'", db=DB)
    broken = manage(project, "migrate", "--check", check=False)
    assert broken.returncode != 0 and "InconsistentMigrationHistory" in broken.stderr

    assert mirror.fix_migrations(project) == {"gamit": [("inventory", "0001_initial")]}
    assert manage(project, "migrate", "--check", check=False).returncode == 0


def test_restore_db_from_snapshot(project, local, prod):
    mirror.production(project)
    local.psql("DELETE FROM inventory_item", db=DB)
    rec = mirror.restore_db(project)
    assert local.psql("SELECT count(*) FROM inventory_item", db=DB).strip() == "25"
    assert rec["backup"].startswith("local_")


def test_force_sync_refuses_uncommitted_git_changes(project):
    mirror.production(project)
    app = project.root / "code" / "gamit_app"
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-C", str(app)]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-qm", "local"], check=True)
    (app / "inventory" / "views.py").write_text("# work in progress\n")
    with pytest.raises(GuardError, match=r"uncommitted changes would be lost: gamit_app: inventory/views.py"):
        mirror.force_sync_code(project)
    assert (app / "inventory" / "views.py").read_text() == "# work in progress\n"
    mirror.force_sync_code(project, force=True)
    assert "work in progress" not in (app / "inventory" / "views.py").read_text()


def _fake_snapshot(project, members):
    name = "production_20260101_000000"
    folder = project.mirror.snapshots / name
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for member, kind, target in members:
            info = tarfile.TarInfo(member)
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, target
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
    (folder / "code.tar").write_bytes(buf.getvalue())
    manifest = {"name": name, "env": "production", "created": "2026-01-01T00:00:00+00:00", "databases": {},
                "code": {"file": "code.tar", "size": len(buf.getvalue()), "paths": ["gamit_app"],
                         "sha256": sha256_file(folder / "code.tar")}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return name


@pytest.mark.parametrize("members", [
    [("gamit_app/ok.txt", "file", None), ("gamit_app/../../evil", "file", None)],
    [("gamit_app/ok.txt", "file", None), ("/tmp/prodmirror-evil", "file", None)],
    [("gamit_app/ok.txt", "file", None), ("gamit_app/link", "symlink", "/etc")],
])
def test_unsafe_snapshot_is_refused_and_nothing_extracted(project, members):
    (project.root / "code" / "gamit_app").mkdir(parents=True)
    (project.root / "code" / "gamit_app" / "mine.txt").write_text("local")
    name = _fake_snapshot(project, members)
    with pytest.raises(code.UnsafeArchive, match="nothing was extracted"):
        mirror.force_sync_code(project, snapshot=name)
    assert sorted(os.listdir(project.root / "code")) == ["gamit_app"]
    assert os.listdir(project.root / "code" / "gamit_app") == ["mine.txt"]
    assert not os.path.exists("/tmp/prodmirror-evil") and not (project.root / "evil").exists()


def test_connection_lost_mid_mirror_leaves_no_complete_snapshot(project, site, sshd, mocker):
    big = os.path.join(site, "gamit_app", "media", "uploads", "big.bin")
    with open(big, "wb") as f:
        f.write(os.urandom(60_000_000))
    os.chmod(big, 0o644)
    before = [b.name for b in backup_store.list_backups(project, project.mirror.snapshots)]
    real_advance, killed = Progress.advance, []

    def drop_connection(self, n):
        real_advance(self, n)
        if "production/code" in self.label and not killed:
            pids = subprocess.run(["pgrep", "-u", str(sshd.uid), "-x", "tar"], capture_output=True, text=True).stdout.split()
            for pid in pids:
                os.kill(int(pid), 9)
            killed.extend(pids)

    mocker.patch.object(Progress, "advance", drop_connection)
    try:
        with pytest.raises(ProdmirrorError, match="tar failed"):
            mirror.production(project)
    finally:
        os.remove(big)
    assert killed
    assert [b.name for b in backup_store.list_backups(project, project.mirror.snapshots)] == before
    assert not list(project.mirror.snapshots.glob(".partial-*"))
    assert not (project.root / "code" / "gamit_app").exists()
    assert not [p for p in (project.root / "code").iterdir()]  # no staging left behind
    assert audit.read(project.state_dir)[-1]["result"] == "failed"


def test_checkpoint_tags_the_ops_repo(project):
    subprocess.run(["git", "-C", str(project.root), "init", "-q"], check=True)
    subprocess.run(["git", "-C", str(project.root), "-c", "user.name=t", "-c", "user.email=t@example.com",
                    "commit", "-q", "--allow-empty", "-m", "ops repo"], check=True)
    rec = mirror.production(project, download_only=True)
    first, second = mirror.checkpoint(project), mirror.checkpoint(project)
    assert first.startswith("stable-mirror-2") and second == f"{first}-2"
    message = subprocess.run(["git", "-C", str(project.root), "tag", "-l", "--format=%(contents)", first],
                             capture_output=True, text=True).stdout
    assert rec["snapshot"] in message and '"sha256"' in message


def test_manage_py_runs_in_a_local_app_container(project, local, container_pg):
    """mirror.django[].container: manage.py runs with `docker exec -w` in a local container (like app_gamit)."""
    import dataclasses

    from tasks.sandbox import docker as testbed_docker

    client = testbed_docker.ensure_daemon()
    name = f"app_gamit_{os.getpid()}"
    code_root = project.root / "code"
    code_root.mkdir()
    mounts = {"/usr": {"bind": "/usr", "mode": "ro"}, "/etc": {"bind": "/etc", "mode": "ro"},
              str(code_root): {"bind": "/app", "mode": "rw"}}
    for folder in {sys.prefix, sys.base_prefix}:  # the Python that has Django, at the same path inside
        mounts[folder] = {"bind": folder, "mode": "ro"}
    testbed_docker.remove(client, name)
    client.containers.run(testbed_docker.ensure_image(client), command=["/bin/sh", "-c", "sleep 600"], name=name,
                          detach=True, network_mode="host", volumes=mounts, labels={testbed_docker.LABEL: "1"})
    try:
        app = dataclasses.replace(project.mirror.apps[0], container=name, workdir="/app/gamit_app")
        project.mirror = dataclasses.replace(project.mirror, apps=(app,))
        mirror.production(project)  # localize on disk; superuser and collectstatic inside the container
        out = manage(project, "shell", "-c", "from django.contrib.auth import authenticate;"
                     f"print(authenticate(username='opsadmin', password='{CREDS['DJANGO_SUPERUSER_PASSWORD']}') is not None)")
        assert out.stdout.strip().splitlines()[-1] == "True"
        assert (code_root / "gamit_app" / "staticfiles" / "inventory" / "site.css").exists()
        assert mirror.create_superuser(project) == {"gamit": "updated"}
    finally:
        testbed_docker.remove(client, name)


# --- issue 11: local stays local, parity is honest ---------------------------------------------------

def test_every_mirror_task_leaves_production_alone(project, prod, local):
    """Settings point at production and the app entry has no env: every task still writes only to local."""
    def untouched(task, *args, **kwargs):
        before = table_digests(prod, DB)
        result = task(project, *args, **kwargs)
        after = table_digests(prod, DB)
        assert {t: after[t] for t in ("public.auth_user", "public.django_migrations")} == \
               {t: before[t] for t in ("public.auth_user", "public.django_migrations")}, task.__name__
        assert after == before, task.__name__
        return result

    untouched(mirror.production)
    untouched(mirror.force_sync_code)
    untouched(mirror.localize_settings)
    untouched(mirror.restore_db)
    local.psql("DELETE FROM auth_user", db=DB)
    assert untouched(mirror.create_superuser) == {"gamit": "created"}
    local.psql("DELETE FROM django_migrations WHERE app = 'inventory' AND name = '0001_initial'", db=DB)
    assert untouched(mirror.fix_migrations) == {"gamit": [("inventory", "0001_initial")]}
    untouched(mirror.status)
    assert local.psql("SELECT username FROM auth_user", db=DB).split() == ["opsadmin"]
    assert prod.psql("SELECT count(*) FROM auth_user", db=DB).strip() == "0"


def unlocalize(project, site):
    """Put production's settings.py back (no localize block): Django's default database is production's."""
    path = "gamit_app/gamit_core/settings.py"
    (project.root / "code" / path).write_text(open(os.path.join(site, path)).read())


def test_manage_py_is_refused_while_django_points_at_production(project, site, prod, local):
    mirror.production(project)
    unlocalize(project, site)
    local.psql("DELETE FROM inventory_item", db=DB)
    users = table_digests(local, DB)
    refusal = (f"gamit: Django's default database is {DB} on 127.0.0.1:{prod.port}, not local's {DB} on "
               f"127.0.0.1:{local.port}; run mirror.localize-settings or fix mirror.django[0].env")
    for task in (mirror.create_superuser, mirror.fix_migrations, mirror.restore_db):
        with pytest.raises(GuardError) as caught:
            task(project)
        assert str(caught.value) == refusal
    assert table_digests(local, DB) == users  # restore-db refused before restoring: nothing changed
    assert audit.read(project.state_dir)[-1]["result"] == "refused"
    mirror.localize_settings(project)
    assert mirror.create_superuser(project) == {"gamit": "updated"}


def test_the_refusal_through_the_cli_is_one_line(project, cfg, site, prod, local, tmp_path):
    mirror.production(project)
    unlocalize(project, site)
    res = inv(cli_project(tmp_path, cfg), "mirror.create-superuser")
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"prodmirror: gamit: Django's default database is {DB} on 127.0.0.1:{prod.port}, not local's {DB} on "
        f"127.0.0.1:{local.port}; run mirror.localize-settings or fix mirror.django[0].env"]


def test_env_pointing_at_production_is_refused_too(cfg, tmp_path, site, prod, local):
    """An app `env:` that overrides the localized database (here: another settings module) is caught."""
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "prod_settings.py").write_text(
        "from gamit_core.settings import *  # noqa\n"
        f"DATABASES['default'].update(HOST='127.0.0.1', PORT='{prod.port}')\n")
    cfg["mirror"]["django"][0]["env"] = {"PYTHONPATH": str(tmp_path / "extra"), "DJANGO_SETTINGS_MODULE": "prod_settings"}
    project = config.load(cfg, tmp_path)
    mirror.production(project, download_only=True)
    with pytest.raises(GuardError, match="gamit: Django's default database is .* not local's"):
        mirror.force_sync_code(project)  # settings.py is localized, but Django reads another module


def test_localized_settings_send_manage_py_by_hand_to_local(cfg, tmp_path, prod, local):
    """runserver/shell by hand reach local; the password is handed over in the environment, never written."""
    cfg["environments"]["local"]["databases"]["gamit"]["password"] = "${LOCAL_DB_PASSWORD}"
    with open(tmp_path / ".env", "a") as f:
        f.write("LOCAL_DB_PASSWORD=local-pw-7731\n")
    project = config.load(cfg, tmp_path)
    mirror.production(project)
    assert server_of(project) == (local.port, DB)
    settings = project.root / "code" / "gamit_app" / "gamit_core" / "settings.py"
    text = settings.read_text()
    assert "local-pw-7731" not in text and "PRODMIRROR_DB_PASSWORD" in text
    assert mirror.localize_settings(project) == {"gamit": False} and settings.read_text() == text
    from tasks import django_apps

    site = django_apps.bind(project, project.root / "code")[0]
    out = django_apps.manage(site, "shell", "-c", "from django.db import connection\n"
                             "print(connection.settings_dict['PASSWORD'] == 'local-pw-7731')").stdout
    assert out.strip().splitlines()[-1] == "True"


def test_a_mirror_with_settings_pointing_at_production_creates_the_superuser_locally(project, prod, local):
    mirror.production(project)
    assert local.psql("SELECT username FROM auth_user", db=DB).split() == ["opsadmin"]
    assert prod.psql("SELECT count(*) FROM auth_user", db=DB).strip() == "0"


def test_fix_migrations_finds_the_newest_migration_whose_row_is_missing(project, local):
    mirror.production(project)
    local.psql("DELETE FROM django_migrations WHERE app = 'inventory' AND name = '0002_item_qty'", db=DB)
    assert manage(project, "migrate", "--check", check=False).returncode != 0  # Django sees it as pending
    assert mirror.fix_migrations(project) == {"gamit": [("inventory", "0002_item_qty")]}
    migrated = manage(project, "migrate", "--verbosity", "0", check=False)
    assert migrated.returncode == 0, migrated.stderr  # before: `column "qty" of relation … already exists`
    assert mirror.fix_migrations(project) == {"gamit": []}


def test_fix_migrations_reports_a_recorded_migration_whose_schema_is_missing(project, local, capsys):
    mirror.production(project)
    local.psql("ALTER TABLE inventory_item DROP COLUMN qty", db=DB)
    rows = local.psql("SELECT app, name FROM django_migrations ORDER BY id", db=DB)
    with pytest.raises(ProdmirrorError, match="1 migration problem"):
        mirror.fix_migrations(project)
    assert ("gamit: recorded, but missing from the schema (left as is, never faked): "
            "inventory.0002_item_qty (column inventory_item.qty)") in capsys.readouterr().err.splitlines()
    assert local.psql("SELECT app, name FROM django_migrations ORDER BY id", db=DB) == rows


def test_fix_migrations_leaves_a_really_pending_migration_to_migrate(project, local, capsys):
    mirror.production(project)
    local.psql("ALTER TABLE inventory_item DROP COLUMN qty; "
               "DELETE FROM django_migrations WHERE app = 'inventory' AND name = '0002_item_qty'", db=DB)
    assert mirror.fix_migrations(project) == {"gamit": []}
    assert "gamit: pending, not in the schema (`manage.py migrate` applies them): inventory.0002_item_qty" in \
        capsys.readouterr().err
    manage(project, "migrate", "--verbosity", "0")
    assert local.psql("SELECT count(qty) FROM inventory_item", db=DB).strip() == "25"


def test_fix_migrations_inserts_a_named_row_only_if_its_schema_is_there(project, local):
    mirror.production(project)
    local.psql("ALTER TABLE inventory_item DROP COLUMN qty; "
               "DELETE FROM django_migrations WHERE app = 'inventory' AND name = '0002_item_qty'", db=DB)
    with pytest.raises(ProdmirrorError, match=r"gamit: inventory.0002_item_qty is not in the schema "
                                              r"\(column inventory_item.qty missing\)"):
        mirror.fix_migrations(project, label="inventory", migration="0002_item_qty")
    with pytest.raises(ProdmirrorError, match="gamit: no migration inventory.0009_nope in the code"):
        mirror.fix_migrations(project, label="inventory", migration="0009_nope")
    assert local.psql("SELECT count(*) FROM django_migrations WHERE app = 'inventory'", db=DB).strip() == "1"


def test_status_is_clean_right_after_a_mirror(project):
    rec = mirror.production(project)
    report = mirror.status(project)
    assert report["code"] == {"gamit_app": {"ghost": [], "missing": [], "changed": []}}
    assert report["data"] == {"gamit": "matches the snapshot"}
    assert report["restored"] == {"gamit": rec["snapshot"]} and report["snapshot"] == rec["snapshot"]


def test_status_names_the_snapshot_restored_last_and_the_newest(project, cfg, tmp_path):
    restored = mirror.production(project)["snapshot"]
    newest = mirror.production(project, download_only=True)["snapshot"]
    report = mirror.status(project)
    assert report["restored"] == {"gamit": restored} and report["snapshot"] == newest != restored
    assert report["data"] == {"gamit": "matches the snapshot"}
    res = inv(cli_project(tmp_path, cfg), "mirror.status")
    assert res.returncode == 0, res.stderr
    assert f"data gamit: matches the snapshot ({restored}, restored last; the newest is {newest})" in res.stdout


def test_restore_db_recreates_the_local_superuser(project, local, capsys):
    mirror.production(project)
    capsys.readouterr()
    mirror.restore_db(project)  # production's user table replaces local's
    assert "gamit: superuser opsadmin created in local gamit" in capsys.readouterr().err
    out = manage(project, "shell", "-c", "from django.contrib.auth import authenticate;"
                 f"print(authenticate(username='opsadmin', password='{CREDS['DJANGO_SUPERUSER_PASSWORD']}') is not None)")
    assert out.stdout.strip().splitlines()[-1] == "True"
    assert mirror.status(project)["data"] == {"gamit": "matches the snapshot"}


def test_restore_db_without_credentials_says_how_to_get_the_superuser_back(project, local, capsys):
    mirror.production(project)
    (project.root / ".env").write_text("")
    project = config.load(
        {"environments": {"production": {"databases": {}}, "local": {"databases": {"gamit": pg_db(local, DB)}}},
         "mirror": {"snapshots": "snapshots", "django": [{"name": "gamit", "path": "gamit_app",
                                                         "settings": "gamit_core/settings.py"}]}}, project.root)
    capsys.readouterr()
    mirror.restore_db(project)
    assert ("note: restoring replaced the user table, so the local superuser is gone; set DJANGO_SUPERUSER_USERNAME, "
            "DJANGO_SUPERUSER_EMAIL, DJANGO_SUPERUSER_PASSWORD in .env to have it recreated "
            "(or run mirror.create-superuser)") in capsys.readouterr().err.splitlines()
    assert local.psql("SELECT count(*) FROM auth_user", db=DB).strip() == "0"


def test_the_mirror_inside_the_ops_repo_is_not_its_uncommitted_work(project):
    git = ["git", "-C", str(project.root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(git + ["init", "-q"], check=True, timeout=30)
    (project.root / "invoke.yaml").write_text("# the ops repo's config\n")
    subprocess.run(git + ["add", "invoke.yaml"], check=True, timeout=30)
    subprocess.run(git + ["commit", "-qm", "ops repo"], check=True, timeout=30)
    mirror.production(project)
    mirror.force_sync_code(project)  # before: "uncommitted changes would be lost: gamit_app: …"
    status = subprocess.run(git + ["status", "--porcelain"], capture_output=True, text=True, timeout=30).stdout
    assert "code/" not in status and "snapshots/" not in status, status
    exclude = (project.root / ".git" / "info" / "exclude").read_text().splitlines()
    assert exclude.count("/code/") == 1 and exclude.count("/snapshots/") == 1
    mirror.force_sync_code(project)
    assert (project.root / ".git" / "info" / "exclude").read_text().splitlines() == exclude  # said once


def test_a_tar_failure_on_production_names_the_file(project, site):
    secret = os.path.join(site, "gamit_app", "secret.txt")
    with open(secret, "w") as f:
        f.write("only root reads this\n")
    os.chmod(secret, 0o600)  # the SSH user (the deploy user) may not read it
    try:
        with pytest.raises(ProdmirrorError) as caught:
            mirror.production(project)
    finally:
        os.remove(secret)
    assert "tar: gamit_app/secret.txt: Cannot open: Permission denied" in str(caught.value)
    assert "previous errors" not in str(caught.value)
    assert not (project.root / "code" / "gamit_app").exists()


def test_create_superuser_before_any_mirror_says_what_to_run(project, local):
    with pytest.raises(ProdmirrorError, match=r"^gamit: no .*/code/gamit_app/manage.py: run mirror.production or "
                                              r"mirror.force-sync-code first \(or check mirror.django\[0\].path\)$"):
        mirror.create_superuser(project)
