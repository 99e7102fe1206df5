"""Real parts for the tests: two PostgreSQL clusters ("production", "local"), an sshd on 127.0.0.1 as the
production host, and a Docker container `spmo_shared_db` running Postgres.

With PRODMIRROR_TESTBED=required (CI, scripts/test) a component that cannot be started fails the
test; otherwise the test is skipped and the skip says which component is missing.
"""

import itertools
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tasks import config
from tasks.sandbox import owned_dir, service_user
from tasks.sandbox import sample
from tasks.sandbox.postgres import Cluster, bindir
from tasks.sandbox.sshd import SSHServer

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = os.environ.get("PRODMIRROR_TESTBED", "").lower() == "required"
CONTAINER = f"spmo_shared_db_{os.getpid()}"  # named like the seeds'; per run, so two runs never collide
_names = itertools.count(1)


def unavailable(component, why):
    """Fail under PRODMIRROR_TESTBED=required (CI: the real parts must run), else skip saying what is missing."""
    if REQUIRED:
        pytest.fail(f"PRODMIRROR_TESTBED=required: {component} is not available on this machine ({why})", pytrace=False)
    pytest.skip(reason=f"{component} is not available on this machine ({why})")


@pytest.fixture(scope="session")
def svc():
    if not bindir():
        unavailable("PostgreSQL server", "no /usr/lib/postgresql/*/bin: apt-get install postgresql")
    try:
        return service_user()
    except (OSError, subprocess.CalledProcessError) as exc:
        unavailable("an unprivileged service user", exc)


@pytest.fixture(scope="session")
def base(svc):
    path = tempfile.mkdtemp(prefix="prodmirror-tests-")
    owned_dir(path, svc[1], svc[2])
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _cluster(base, svc, name, admin):
    cluster = Cluster(base, name, svc[1], svc[2]).init().start()
    cluster.wait_ready()
    cluster.psql(f"CREATE ROLE spmo_admin LOGIN {admin}")
    return cluster


@pytest.fixture(scope="session")
def prod(base, svc):
    cluster = _cluster(base, svc, "production", "SUPERUSER")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def local(base, svc):
    cluster = _cluster(base, svc, "local", "CREATEDB")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def sshd(base, svc):
    if not os.path.exists("/usr/sbin/sshd"):
        unavailable("OpenSSH server", "no /usr/sbin/sshd: apt-get install openssh-server")
    server = SSHServer(base, svc[0], svc[1], svc[2]).prepare()
    try:
        server.start()
    except RuntimeError as exc:
        unavailable("OpenSSH server", exc)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def container_pg(base, svc):
    """A Postgres cluster whose server runs in the Docker container `spmo_shared_db` (host networking)."""
    from tasks.sandbox import docker as testbed_docker

    try:
        client = testbed_docker.ensure_daemon()
    except Exception as exc:  # no daemon, no permission, no binary: all mean "Docker is missing here"
        unavailable("Docker daemon", exc)
    cluster = Cluster(base, "container", svc[1], svc[2]).init()
    box = testbed_docker.run_postgres(client, CONTAINER, cluster.dir, cluster.port, svc[1], svc[2], bindir())
    try:
        cluster.wait_ready(timeout=30)
    except RuntimeError:
        logs = box.logs()[-500:]
        box.remove(force=True)
        raise RuntimeError(f"postgres in {CONTAINER} did not start: {logs!r}")
    cluster.psql("CREATE ROLE spmo_admin LOGIN CREATEDB")
    yield cluster
    testbed_docker.remove(client, CONTAINER)


@pytest.fixture
def dbname(prod, local):
    """A fresh database name; the sample database is created on production. Dropped everywhere afterwards."""
    name = f"app_{os.getpid()}_{next(_names)}"
    sample.create(prod, name, "spmo_admin")
    yield name
    for cluster in (prod, local):
        drop_database(cluster, name)


def kept_databases(cluster, name):
    """The previous databases of `name` a pull or restore kept (`name__pm_…`, database backups), by name."""
    return cluster.psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{name}\\_\\_pm\\_%' ORDER BY 1").split()


def drop_database(cluster, name):
    """Drop database `name` and the previous ones a pull kept of it (database backups)."""
    for db in [name, *kept_databases(cluster, name)]:
        cluster.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def pg_db(cluster, name, **extra):
    return {"engine": "postgres", "name": name, "user": "spmo_admin", "host": "127.0.0.1", "port": cluster.port, **extra}


def make_config(prod, local, name, ssh=None, local_db=None, keep=5, local_protected=None):
    production = {"databases": {"app": pg_db(prod, name)}}
    if ssh is not None:
        production["ssh"] = ssh
    local_env = {"databases": {"app": local_db or pg_db(local, name)}}
    if local_protected is not None:
        local_env["protected"] = local_protected
    return {"environments": {"production": production, "local": local_env}, "backups": {"dir": "backups", "keep": keep}}


@pytest.fixture
def project_for(tmp_path):
    """Return a function: config dict -> validated Project rooted in a fresh folder."""
    return lambda cfg: config.load(cfg, tmp_path)


@pytest.fixture
def synced(prod, local, sshd, dbname, project_for):
    """A project whose local was just pulled from production (the normal start of a push)."""
    from tasks.actions import sync

    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    sync.copy(project, "production", "local", task="db.sync.from-production")
    return project


def during_transfer(mocker, label_part, action):
    """Make `action()` run once, as soon as the first chunk of a transfer whose label holds
    `label_part` has moved (the fault injector's "mid-stream"). Return the list that then holds
    what it returned (empty if that transfer never started)."""
    from tasks.ui import Progress

    done, real = [], Progress.advance

    def advance(self, n):
        real(self, n)
        if label_part in self.label and not done:
            done.append(action())

    mocker.patch.object(Progress, "advance", advance)
    return done


def kill_children(name):
    """Return an action that SIGKILLs this very process's children named `name` (never another run's)
    and returns their pids."""
    import signal
    import subprocess

    def kill():
        pids = subprocess.run(["pgrep", "-P", str(os.getpid()), "-x", name], capture_output=True, text=True).stdout.split()
        for pid in pids:
            os.kill(int(pid), signal.SIGKILL)
        return pids
    return kill


def table_digests(cluster, name):
    """An independent check of the data: per table, md5 of every row's text in a fixed order."""
    tables = cluster.psql("SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables "
                          "WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1", db=name).splitlines()
    out = {}
    for table in tables:
        out[table] = cluster.psql(f"SELECT count(*) || ':' || coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), '') "
                                  f"FROM {table} t", db=name).strip()
    return out


def sequences(cluster, name):
    return cluster.psql("SELECT schemaname || '.' || sequencename || '=' || coalesce(last_value::text, 'null') "
                        "FROM pg_sequences ORDER BY 1", db=name).split()


def db_exists(cluster, name):
    return cluster.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip() == "1"


def cli_project(tmp_path, cfg, env_text=""):
    """Make a throwaway ops repo using this prodmirror (tasks.py and tasks/ linked), with its own config."""
    import yaml

    (tmp_path / "tasks.py").symlink_to(ROOT / "tasks.py")
    (tmp_path / "tasks").symlink_to(ROOT / "tasks")
    (tmp_path / "invoke.yaml").write_text(yaml.safe_dump(cfg))
    if env_text:
        (tmp_path / ".env").write_text(env_text)
    return tmp_path


def inv(project_dir, *args, env=None):
    """Run `inv ARGS` in project_dir without a terminal; return the CompletedProcess."""
    clean = {k: v for k, v in os.environ.items() if k != "FORCE"}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=project_dir, capture_output=True, text=True,
                          env={**clean, **(env or {})}, stdin=subprocess.DEVNULL, timeout=300)
