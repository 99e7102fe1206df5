"""The hotfix testbed shared by the integration and fault tiers: a multi-schema production database like
the seed's (hub, expense, sales, custodian, activity), production reached over SSH, its Docker daemon
driven through that SSH connection, a PostgREST stand-in image (PostgREST itself cannot be installed
here), and a git repo served by production. Test modules import the fixtures they use by name."""

import itertools
import os
import subprocess

import pytest

from tasks import config

SCHEMA = """
CREATE SCHEMA hub; CREATE SCHEMA expense; CREATE SCHEMA sales; CREATE SCHEMA custodian; CREATE SCHEMA activity;
CREATE TABLE sales.catalog (id serial PRIMARY KEY, sku text UNIQUE NOT NULL, price numeric(10,2));
CREATE TABLE custodian.custodians (id serial PRIMARY KEY, name text, active boolean NOT NULL DEFAULT true);
CREATE TABLE custodian.transaction_lines (id bigserial PRIMARY KEY, custodian_id int REFERENCES custodian.custodians,
  catalog_id int NOT NULL REFERENCES sales.catalog (id), qty int);
CREATE TABLE expense.custodian_status (custodian_id int PRIMARY KEY, active boolean);
CREATE TABLE hub.pwa_registry (name text PRIMARY KEY, url text);
CREATE TABLE activity.log (at timestamptz DEFAULT now(), what text);
CREATE FUNCTION expense.sync_custodian_active() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO expense.custodian_status VALUES (NEW.id, NEW.active)
  ON CONFLICT (custodian_id) DO UPDATE SET active = EXCLUDED.active;
  RETURN NEW;
END $$;
CREATE TRIGGER sync_custodian_active AFTER INSERT OR UPDATE ON custodian.custodians
  FOR EACH ROW EXECUTE FUNCTION expense.sync_custodian_active();
INSERT INTO sales.catalog (sku, price) SELECT 'sku-' || g, g FROM generate_series(1, 50) g;
INSERT INTO custodian.custodians (name) SELECT 'custodian ' || g FROM generate_series(1, 20) g;
INSERT INTO custodian.transaction_lines (custodian_id, catalog_id, qty) SELECT 1 + g % 20, 1 + g % 50, g FROM generate_series(1, 300) g;
INSERT INTO hub.pwa_registry VALUES ('custodian', '/custodian/'), ('sales', '/sales/');
GRANT USAGE ON SCHEMA hub, expense, sales, custodian, activity TO web_anon;
GRANT SELECT ON ALL TABLES IN SCHEMA hub, sales TO web_anon;
"""
ROLES = """
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'web_anon') THEN CREATE ROLE web_anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticator') THEN CREATE ROLE authenticator LOGIN; END IF;
END $$;
"""
_n = itertools.count(1)


@pytest.fixture(scope="module")
def standin(container_pg):
    from tasks.sandbox import docker as testbed_docker

    client = testbed_docker.ensure_daemon()
    return testbed_docker.ensure_standin(client), testbed_docker.STANDIN_COMMAND


@pytest.fixture
def lm360(prod):
    name = f"lm360_{os.getpid()}_{next(_n)}"
    prod.psql(ROLES)
    prod.psql(f"CREATE DATABASE {name} OWNER spmo_admin")
    prod.psql(SCHEMA, db=name)
    yield name
    for db in (name, f"{name}_bugfix", f"{name}_dev"):
        prod.psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def project_for(tmp_path, prod, sshd, lm360, standin=None, deploy=None, limits=None):
    """Return the validated Project of hotfix_config(…), rooted in tmp_path."""
    return config.load(hotfix_config(tmp_path, prod, sshd, lm360, standin, deploy, limits), tmp_path)


def hotfix_config(tmp_path, prod, sshd, lm360, standin=None, deploy=None, limits=None):
    """Write the secrets into tmp_path/.env and return the config: production over SSH holding lm360 and its dev
    database, hotfix.* cloning lm360 (with PostgREST given the stand-in (image, command), with the deploy given
    its config), and `limits` if given."""
    from tasks.sandbox import free_port
    from tasks.sandbox.docker import standin_postgrest

    (tmp_path / ".env").write_text("PG_AUTH_PASSWORD=auth-s3cret-pw\nPGRST_JWT_SECRET=jwt-s3cret-0123456789abcdef0123456789\n")
    db = {"engine": "postgres", "name": lm360, "user": "spmo_admin", "host": "127.0.0.1", "port": prod.port}
    hotfix = {"database": "lm360", "clone": f"{lm360}_bugfix", "ttl": "24h", "dev_database": "dev",
              "migrations": {"dir": "migrations", "pattern": "*.sql"}}
    if standin:
        image, command = standin
        hotfix["postgrest"] = standin_postgrest(
            f"postgrest-bugfix-{lm360}", free_port(), prod.port, image=image, command=command,
            db_user="authenticator", db_password="${PG_AUTH_PASSWORD}",
            schemas=["hub", "expense", "sales", "custodian", "activity"], anon_role="web_anon",
            jwt_secret="${PGRST_JWT_SECRET}", url="https://bugfix.example.com/db",
            labels={"traefik.enable": "true", "traefik.http.routers.postgrestbugfix.rule":
                    "Host(`bugfix.example.com`) && PathPrefix(`/db`)"})
    if deploy:
        hotfix["deploy"] = deploy
    cfg = {"environments": {"production": {"ssh": sshd.target(), "databases": {
        "lm360": db, "dev": {**db, "name": f"{lm360}_dev"}}}}, "hotfix": hotfix}
    if limits:
        cfg["limits"] = limits
    return cfg


def git(repo, *args):
    return subprocess.run(["git", "-c", "safe.directory=*", "-c", "user.name=dev", "-c", "user.email=dev@example.com",
                           "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def served(base, svc, tmp_path):
    """A git repo (master = production, dev = the fix) and the folder production serves, owned by the SSH user."""
    root = os.path.join(base, f"deploy-{next(_n)}")
    repo, target = os.path.join(root, "360lm"), os.path.join(root, "360lm-prod")
    os.makedirs(os.path.join(repo, "migrations"))
    os.makedirs(target)
    with open(os.path.join(repo, "index.html"), "w") as f:
        f.write("v1\n")
    with open(os.path.join(repo, "old.js"), "w") as f:
        f.write("gone soon\n")
    with open(os.path.join(repo, "migrations", "migrate_v1.sql"), "w") as f:
        f.write("CREATE TABLE activity.applied_v1 (x int);\n")
    git(repo, "init", "-q", "-b", "master")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "v1")
    subprocess.run(["rsync", "-a", "--exclude=.git", "--exclude=migrations", f"{repo}/", f"{target}/"], check=True)
    git(repo, "checkout", "-qb", "dev")
    with open(os.path.join(repo, "index.html"), "w") as f:
        f.write("v2 with the fix\n")
    os.remove(os.path.join(repo, "old.js"))
    for name, sql in (("migrate_v10.sql", "ALTER TABLE activity.applied_v2 ADD COLUMN y int;\n"),
                      ("migrate_v2.sql", "CREATE TABLE activity.applied_v2 (x int);\n")):
        with open(os.path.join(repo, "migrations", name), "w") as f:
            f.write(sql)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "fix: the bug")
    subprocess.run(["chown", "-R", f"{svc[1]}:{svc[2]}", root], check=True)
    return repo, target


def snapshot_files(folder):
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f)).read()
            for d, _, fs in os.walk(folder) for f in fs}
