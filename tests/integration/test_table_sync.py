"""One-table sync of the tables real schemas have: partitioned (range, list, hash, with a foreign key
between two partitioned tables), inheritance parents, sequences only named in a DEFAULT, and names
that need quoting. Both directions, against real clusters with production behind a real sshd."""

import pytest

from tasks.actions import sync
from tasks.errors import ProdmirrorError
from tests.conftest import make_config, table_digests

SHOP = """
CREATE SCHEMA "Sales";
CREATE TABLE public.orders (id int NOT NULL, placed date NOT NULL, total numeric(10, 2), PRIMARY KEY (id, placed))
  PARTITION BY RANGE (placed);
CREATE TABLE public.orders_2026_01 PARTITION OF public.orders FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE public.orders_2026_02 PARTITION OF public.orders FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')
  PARTITION BY HASH (id);
CREATE TABLE public.orders_2026_02_a PARTITION OF public.orders_2026_02 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE public.orders_2026_02_b PARTITION OF public.orders_2026_02 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE public.stock (region text NOT NULL, sku text, qty int) PARTITION BY LIST (region);
CREATE TABLE public.stock_north PARTITION OF public.stock FOR VALUES IN ('north');
CREATE TABLE public.stock_other PARTITION OF public.stock DEFAULT;
CREATE TABLE public.order_lines (order_id int NOT NULL, placed date NOT NULL, line int NOT NULL, sku text,
  PRIMARY KEY (order_id, placed, line), FOREIGN KEY (order_id, placed) REFERENCES public.orders (id, placed))
  PARTITION BY HASH (line);
CREATE TABLE public.order_lines_0 PARTITION OF public.order_lines FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE public.order_lines_1 PARTITION OF public.order_lines FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE public.audit_log (at timestamptz DEFAULT now(), what text);
CREATE FUNCTION "Sales".note_order() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO public.audit_log (what) VALUES ('order ' || NEW.id); RETURN NEW; END $$;
CREATE TRIGGER orders_note AFTER INSERT ON public.orders FOR EACH ROW EXECUTE FUNCTION "Sales".note_order();
CREATE TABLE public.vehicles (id int PRIMARY KEY, name text);
CREATE TABLE public.cars (doors int) INHERITS (public.vehicles);
CREATE TABLE public.trucks (axles int) INHERITS (public.vehicles);
CREATE SEQUENCE public.ticket_numbers;
CREATE TABLE public.tickets (id int PRIMARY KEY DEFAULT nextval('public.ticket_numbers'), title text);
CREATE TABLE public.badges (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, label text,
  shout text GENERATED ALWAYS AS (upper(label)) STORED);
CREATE TABLE public."Order Items" (id serial PRIMARY KEY, "Qty" int);
CREATE TABLE public."MixedCase" (v text);
CREATE TABLE public."ünïcode" (v text);
CREATE TABLE "Sales".orders (id int PRIMARY KEY, region text);
INSERT INTO public.orders SELECT g, date '2026-01-01' + (g % 50), (g % 3) + 1 FROM generate_series(1, 200) g;
INSERT INTO public.order_lines SELECT id, placed, l, 'sku-' || l FROM public.orders, generate_series(1, 3) l;
INSERT INTO public.stock SELECT (ARRAY['north', 'south', 'east'])[1 + g % 3], 'sku-' || g, g FROM generate_series(1, 30) g;
INSERT INTO public.vehicles VALUES (1, 'bike');
INSERT INTO public.cars VALUES (2, 'sedan', 4), (3, 'coupe', 2);
INSERT INTO public.trucks VALUES (4, 'lorry', 3);
INSERT INTO public.tickets (title) SELECT 'ticket ' || g FROM generate_series(1, 5) g;
INSERT INTO public.badges (label) VALUES ('gold'), ('silver');
INSERT INTO public."Order Items" ("Qty") SELECT g FROM generate_series(1, 5) g;
INSERT INTO public."MixedCase" VALUES ('a'), ('b');
INSERT INTO public."ünïcode" VALUES ('é');
INSERT INTO "Sales".orders VALUES (1, 'north'), (2, 'south');
"""


def same(local, prod, dbname):
    """Whether both sides hold the same rows (audit_log aside: production's trigger writes there)."""
    mine, theirs = table_digests(local, dbname), table_digests(prod, dbname)
    for side in (mine, theirs):
        side.pop("public.audit_log")
    return mine == theirs


@pytest.fixture
def shop(prod, local, sshd, dbname, project_for):
    """A project whose production database holds SHOP (besides the sample schema), pulled into local."""
    prod.psql(SHOP, db=dbname)
    project = project_for(make_config(prod, local, dbname, ssh=sshd.target()))
    sync.copy(project, "production", "local")
    return project


def test_a_partitioned_table_is_synced_with_its_whole_tree_both_ways(prod, local, dbname, shop):
    prod.psql("DELETE FROM public.order_lines WHERE order_id > 150; DELETE FROM public.orders WHERE id > 150; "
              "INSERT INTO public.orders VALUES (999, '2026-02-10', 2.00)", db=dbname)
    assert not same(local, prod, dbname)

    sync.copy_object(shop, "production", "local", "order_lines")  # the referencing tree first, then its target
    sync.copy_object(shop, "production", "local", "orders")       # referenced by order_lines' foreign key

    assert same(local, prod, dbname)
    local.psql("UPDATE public.orders SET placed = '2026-01-20' WHERE id = 999", db=dbname, user="spmo_admin")
    local.psql("UPDATE public.stock SET qty = 0 WHERE region = 'south'", db=dbname, user="spmo_admin")
    sync.copy_object(shop, "local", "production", "orders", force=True)  # a row that moved to another partition
    sync.copy_object(shop, "local", "production", "stock", force=True)   # list partitions, with a default one
    assert prod.psql("SELECT tableoid::regclass FROM public.orders WHERE id = 999", db=dbname).strip() == \
        "orders_2026_01"
    assert same(local, prod, dbname)


def test_one_partition_named_on_its_own(prod, local, dbname, shop):
    local.psql("UPDATE public.orders_2026_01 SET total = total + 10", db=dbname, user="spmo_admin")
    rec = sync.copy_object(shop, "local", "production", "orders_2026_01", force=True)
    assert rec["object"] == "orders_2026_01"
    assert same(local, prod, dbname)


def test_a_foreign_key_that_the_new_rows_break_rolls_everything_back(prod, local, dbname, shop):
    before = table_digests(prod, dbname)
    # Locally order 7 and its lines are gone; pushing only `orders` would orphan production's lines of 7.
    local.psql("DELETE FROM public.order_lines WHERE order_id = 7; DELETE FROM public.orders WHERE id = 7",
               db=dbname, user="spmo_admin")
    with pytest.raises(ProdmirrorError, match="public.orders was left as it was: its new rows would break foreign key"):
        sync.copy_object(shop, "local", "production", "orders", force=True)
    assert table_digests(prod, dbname) == before


def test_an_inheritance_parent_brings_its_children(prod, local, dbname, shop, capfd):
    prod.psql("INSERT INTO public.cars VALUES (5, 'van', 5); DELETE FROM public.trucks; "
              "UPDATE public.vehicles SET name = 'unicycle' WHERE id = 1", db=dbname)
    sync.copy_object(shop, "production", "local", "vehicles")
    for table in ("vehicles", "cars", "trucks"):
        assert local.psql(f"SELECT count(*), string_agg(name, ',' ORDER BY id) FROM ONLY public.{table}", db=dbname) == \
            prod.psql(f"SELECT count(*), string_agg(name, ',' ORDER BY id) FROM ONLY public.{table}", db=dbname)
    assert "public.vehicles comes with 2 partition(s) or child table(s): public.cars, public.trucks" in capfd.readouterr().err


def test_a_push_moves_every_sequence_the_table_uses_past_the_pushed_values(prod, local, dbname, shop):
    local.psql("INSERT INTO public.tickets (title) SELECT 'local ' || g FROM generate_series(1, 20) g; "
               "INSERT INTO public.badges (label) SELECT 'local ' || g FROM generate_series(1, 20) g; "
               "INSERT INTO public.\"Order Items\" (\"Qty\") SELECT g FROM generate_series(1, 20) g", db=dbname,
               user="spmo_admin")
    for name in ("tickets", "badges", "Order Items"):
        sync.copy_object(shop, "local", "production", name, force=True)
    # Production's next inserts take fresh keys (the DEFAULT-only sequence, identity and serial alike).
    prod.psql("INSERT INTO public.tickets (title) VALUES ('after'); INSERT INTO public.badges (label) VALUES ('after');"
              " INSERT INTO public.\"Order Items\" (\"Qty\") VALUES (0)", db=dbname)
    assert prod.psql("SELECT max(id) FROM public.tickets", db=dbname).strip() == "26"
    assert prod.psql("SELECT shout FROM public.badges WHERE label = 'after'", db=dbname).strip() == "AFTER"


@pytest.mark.parametrize("name, shown", [
    ("Order Items", 'public."Order Items"'), ('"MixedCase"', 'public."MixedCase"'), ("MixedCase", 'public."MixedCase"'),
    ("ünïcode", 'public."ünïcode"'), ('"Sales".orders', '"Sales".orders'), ("Sales.orders", '"Sales".orders'),
    ("public.stock", "public.stock"), ("STOCK", "public.stock"),
])
def test_any_real_name_resolves_and_is_shown_quoted_where_sql_needs_it(prod, local, dbname, shop, name, shown, capfd):
    table = shown.replace('"', "")
    schema, _, bare = table.partition(".")
    prod.psql(f'TRUNCATE {shown.split(".")[0]}.{shown.split(".", 1)[1]} CASCADE', db=dbname)
    sync.copy_object(shop, "production", "local", name)
    assert local.psql(f"SELECT count(*) FROM {shown}", db=dbname).strip() == "0"
    assert f"{shown} done" in capfd.readouterr().err


@pytest.mark.parametrize("name", ["users; DROP TABLE users", "$(touch /tmp/pm-pwned)", "users' OR '1'='1",
                                  '"users"; --', "-rf", "../../etc/passwd"])
def test_hostile_names_resolve_to_nothing_and_run_nothing(prod, local, dbname, shop, name):
    before = table_digests(local, dbname), table_digests(prod, dbname)
    with pytest.raises(ProdmirrorError, match="no table|cannot read"):
        sync.copy_object(shop, "production", "local", name)
    assert (table_digests(local, dbname), table_digests(prod, dbname)) == before
    assert not list(shop.backups_dir.glob("local_*"))[1:]  # only the pull's own backup, if any
