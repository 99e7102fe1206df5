"""Exact copies of real schemas (issue 10, part A): the shop and clinic sample databases pulled and pushed
whole and compared by tests/compare.py; roles the schema names created or refused before any data
moves; production's database-level properties, owners, grants, large objects' owners and user
mappings kept by a push; no user-mapping password landing locally."""

import itertools
import os

import pytest

from tasks import audit
from tasks.actions import backup, sync
from tasks.errors import ProdmirrorError
from tasks.sandbox.sample import clinic, shop
from tests import compare
from tests.conftest import cli_project, db_exists, drop_database, inv, make_config, pg_db

_names = itertools.count(1)


@pytest.fixture
def sample(prod, local):
    """Return a function: (sample module, **options) -> the name of a fresh database holding that sample
    on production. The databases, and the sample's roles on local, are dropped afterwards."""
    made = []

    def create(module, **options):
        name = f"{module.__name__.rsplit('.', 1)[-1]}_{os.getpid()}_{next(_names)}"
        module.create(prod, name, "spmo_admin", **options)
        made.append((module, name))
        return name

    drop_roles(local, clinic.ROLES + shop.ROLES)
    yield create
    for module, name in made:
        for cluster in (prod, local):
            drop_database(cluster, name)
    drop_roles(local, clinic.ROLES + shop.ROLES)


def drop_roles(cluster, roles):
    cluster.psql("".join(f'DROP ROLE IF EXISTS "{role}";\n' for role in roles))


def project(project_for, prod, local, sshd, name, local_user="spmo_admin"):
    return project_for(make_config(prod, local, name, ssh=sshd.target(), local_db=pg_db(local, name, user=local_user)))


def roles_on(cluster, roles):
    names = ", ".join(f"'{r}'" for r in roles)
    return cluster.psql(f"SELECT rolname FROM pg_roles WHERE rolname IN ({names}) ORDER BY 1").split()


def test_shop_pull_then_push_are_exact_and_push_keeps_production_privileges(prod, local, sshd, sample, project_for):
    name = sample(shop)
    kept = compare.privileges(prod, name)
    pm = project(project_for, prod, local, sshd, name)

    sync.copy(pm, "production", "local", task="db.sync.from-production")
    compare.assert_same(prod, local, name)
    assert local.psql("SELECT count(*) FROM pg_largeobject_metadata", db=name).strip() == "2"

    local.psql("""UPDATE public.products SET name = 'Renamed locally' WHERE id = 100;
                  INSERT INTO sales.orders (ordered_at, region, customer_id) VALUES ('2026-05-01', 'eu', 2);
                  SELECT lo_from_bytea(0, 'a new local large object');""", db=name, user="spmo_admin")
    sync.copy(pm, "local", "production", force=True, full=True, task="db.sync.to-production")

    compare.assert_same(local, prod, name, names=("local", "production"))
    after = compare.privileges(prod, name)
    # local's new large object: the one production did not have (OIDs come from each cluster's counter)
    [new_object] = [k for k in after if k.startswith("owner of large object ") and k not in kept]
    compare.assert_equal(kept, {k: v for k, v in after.items() if k != new_object}, names=("before", "after"))
    assert after[new_object].startswith("spmo_admin")  # local's own large object: production never had it


def test_clinic_pull_is_refused_before_anything_moves_when_local_may_not_create_roles(prod, local, sshd, sample,
                                                                                  project_for):
    name = sample(clinic)
    pm = project(project_for, prod, local, sshd, name)

    with pytest.raises(ProdmirrorError) as caught:
        sync.copy(pm, "production", "local", task="db.sync.from-production")

    message = str(caught.value)
    assert "\n" not in message
    assert "production's schema names roles local lacks (clinic_auditor, clinic_doctor, clinic_lab, clinic_nurse" \
        in message and "spmo_admin may not create roles" in message
    assert 'CREATE ROLE "clinic_auditor" NOLOGIN; CREATE ROLE "clinic_doctor" NOLOGIN;' in message
    assert "only a superuser may create extension postgres_fdw, and spmo_admin is none" in message
    assert not db_exists(local, name) and not pm.backups_dir.exists()
    assert roles_on(local, clinic.NAMED) == []
    assert audit.read(pm.state_dir)[-1]["result"] == "failed"


def test_clinic_without_foreign_server_pulls_once_local_may_create_roles(prod, local, sshd, sample, project_for,
                                                                       capsys):
    name = sample(clinic, fdw=False)
    pm = project(project_for, prod, local, sshd, name)
    local.psql("ALTER ROLE spmo_admin CREATEROLE")
    try:
        sync.copy(pm, "production", "local", task="db.sync.from-production")
    finally:
        local.psql("ALTER ROLE spmo_admin NOCREATEROLE")

    assert roles_on(local, clinic.NAMED) == ["clinic_auditor", "clinic_doctor", "clinic_nurse"]
    assert "local: created roles clinic_auditor, clinic_doctor, clinic_nurse (NOLOGIN, no password)" \
        in capsys.readouterr().err
    assert local.psql("SELECT rolcanlogin, rolpassword IS NULL FROM pg_authid WHERE rolname = 'clinic_doctor'").strip() \
        == "f|t"
    compare.assert_same(prod, local, name)


def test_clinic_pull_brings_no_credentials_and_push_keeps_production_own(prod, local, sshd, sample, project_for):
    name = sample(clinic)
    kept = compare.privileges(prod, name)
    pm = project(project_for, prod, local, sshd, name, local_user="postgres")  # postgres_fdw needs a superuser

    sync.copy(pm, "production", "local", task="db.sync.from-production")

    compare.assert_same(prod, local, name)
    mappings = local.psql("SELECT usename || ':' || coalesce(array_to_string(umoptions, ','), '') FROM pg_user_mappings "
                          "ORDER BY 1", db=name).split()
    assert mappings == ["clinic_lab:", "public:"]
    for password in clinic.PASSWORDS:
        assert password not in local.psql("SELECT umoptions::text FROM pg_user_mapping", db=name)
    # Only the rows owners see: the table owner (local's superuser) reads them all, as on production.
    assert local.psql("SELECT count(*) FROM clinic.patients", db=name).strip() == "30"

    local.psql("INSERT INTO clinic.visits_outpatient (patient_id, at, room) VALUES (5, '2026-04-01', 'Room 9')", db=name)
    rec = sync.copy(pm, "local", "production", force=True, full=True, task="db.sync.to-production")

    compare.assert_same(local, prod, name, names=("local", "production"))
    compare.assert_equal(kept, compare.privileges(prod, name), names=("before", "after"))
    assert prod.psql("SELECT count(*) FROM ONLY clinic.visits_outpatient", db=name).strip() == "2"

    # A backup of production (it holds the passwords: it is exact) restored into local leaves them out too.
    backup.restore_backup(pm, rec["backup"], "local", force=True, task="db.backup.restore-local")
    assert local.psql("SELECT count(*) FROM ONLY clinic.visits_outpatient", db=name).strip() == "1"
    assert local.psql("SELECT count(*) FROM pg_user_mapping WHERE umoptions IS NOT NULL", db=name).strip() == "0"


def test_full_push_of_a_database_with_its_own_search_path_is_not_taken_for_drift(prod, local, sshd, sample, project_for):
    """Fingerprints and schema signatures are taken under search_path '' (tables.SETTINGS), whatever
    ALTER DATABASE … SET search_path production has."""
    name = sample(clinic, fdw=False)
    pm = project(project_for, prod, local, sshd, name, local_user="postgres")
    sync.copy(pm, "production", "local", task="db.sync.from-production")

    sync.copy(pm, "local", "production", force=True, full=True, task="db.sync.to-production")


def test_push_refuses_roles_that_production_lacks(prod, local, sshd, dbname, synced):
    local.psql("CREATE ROLE local_only_reader NOLOGIN")
    try:
        local.psql("ALTER TABLE users ENABLE ROW LEVEL SECURITY; "
                   "CREATE POLICY readers ON users FOR SELECT TO local_only_reader USING (true)", db=dbname)
        before = compare.describe(prod, dbname)
        with pytest.raises(ProdmirrorError, match=r"local's schema names roles production lacks \(local_only_reader:"
                                                  r".*prodmirror creates no roles in production, a protected "
                                                  r'environment; .*CREATE ROLE "local_only_reader" NOLOGIN;'):
            sync.copy(synced, "local", "production", force=True, task="db.sync.to-production")
        assert compare.describe(prod, dbname) == before
        assert roles_on(prod, ["local_only_reader"]) == []
    finally:
        local.psql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE); DROP ROLE local_only_reader')


def test_status_says_a_dropped_index_is_the_difference(prod, local, sshd, dbname, project_for, tmp_path):
    prod.psql("CREATE INDEX users_name_idx ON users (name)", db=dbname)
    cfg = make_config(prod, local, dbname, ssh=sshd.target())
    pm = project_for(cfg)
    sync.copy(pm, "production", "local", task="db.sync.from-production")
    assert sync.status(pm)[0]["schema_diff"] == []

    local.psql("DROP INDEX users_name_idx", db=dbname)

    report = sync.status(pm)[0]
    assert report["schema_diff"] == ["public.users: index users_name_idx only in production"]
    assert report["source"]["contents"] == report["target"]["contents"]  # the rows alone would say "in sync"
    (tmp_path / "repo").mkdir()
    res = inv(cli_project(tmp_path / "repo", cfg), "db.sync.status")
    assert res.returncode == 0, res.stderr
    assert "app: differs" in res.stdout and "schema: public.users: index users_name_idx only in production" in res.stdout


def test_status_of_pulled_samples_finds_no_schema_difference(prod, local, sshd, sample, project_for):
    for module in (shop, clinic):
        name = sample(module, **({"fdw": False} if module is clinic else {}))
        pm = project(project_for, prod, local, sshd, name, local_user="postgres")
        sync.copy(pm, "production", "local", task="db.sync.from-production")
        assert sync.status(pm)[0]["schema_diff"] == [], module.__name__
        local.psql("ALTER TABLE sales.orders_2025 ALTER COLUMN region SET DEFAULT 'eu'; "
                   'DROP TRIGGER order_items_audit ON sales."Order Items"' if module is shop else
                   "DROP POLICY nurses_only_adults ON clinic.patients", db=name)
        expected = (['sales."Order Items": trigger order_items_audit only in production',
                     "sales.orders_2025: column region differs (production: #3 text NOT NULL; local: #3 text NOT NULL "
                     "DEFAULT 'eu'::text)"] if module is shop else
                    ["clinic.patients: policy nurses_only_adults only in production"])
        assert sync.status(pm)[0]["schema_diff"] == expected


def test_restore_production_from_its_backup_keeps_its_database_properties(prod, local, sshd, sample, project_for):
    name = sample(shop)
    kept = compare.privileges(prod, name)
    pm = project(project_for, prod, local, sshd, name)
    taken = backup.backup(pm, "production")
    prod.psql("DELETE FROM sales.payments", db=name)

    backup.restore_backup(pm, taken.name, "production", force=True, task="db.backup.restore-production")

    assert prod.psql("SELECT count(*) FROM sales.payments", db=name).strip() != "0"
    compare.assert_equal(kept, compare.privileges(prod, name), names=("before", "after"))


@pytest.mark.parametrize("module", [shop, clinic], ids=["shop", "clinic"])
def test_the_recorded_local_state_after_a_pull_is_what_local_holds(module, prod, local, sshd, sample, project_for):
    """Local's base after a pull is derived from the dump's counts (marks.landed_marks), not read: it must
    equal a real snapshot of every table, partition and inheritance child, or a push would see changes
    nobody made."""
    from tasks import drift, syncstate
    from tasks.engines import postgres
    from tasks.hosts import LocalHost

    dbname = sample(module)
    pm = project(project_for, prod, local, sshd, dbname,  # postgres_fdw needs a superuser
                                   local_user="postgres" if module is clinic else "spmo_admin")
    sync.copy(pm, "production", "local", task="db.sync.from-production")
    sync.copy(pm, "production", "local", task="db.sync.from-production")  # into an existing one too
    base = syncstate.read(pm)["app"]["base"]
    now = postgres.snapshot(LocalHost(), pm.env("local").database("app"))
    assert len(now["tables"]) >= 5 and drift.changes(base["local"], now) == {}
    assert base["local"]["tables"] == now["tables"]
    prod_now = postgres.snapshot(LocalHost(), pm.env("production").database("app"))
    assert drift.changes(base["production"], prod_now) == {}
