"""Sample production data for the sandbox, the tests and the benchmarks: a schema that exercises what
breaks naive copies (sequences, a non-public schema, no primary key, a quoted mixed-case name, an enum,
a view, a plpgsql function and trigger, objects owned by a role that exists only in production).

Two fuller ones stand beside it, for exact copies of real schemas: shop.py (partitions of every kind,
identity and generated columns, large objects) and clinic.py (row-level security with policies TO
production-only roles, inheritance, a foreign server with user mappings, database-level settings)."""

SCHEMA = """
CREATE SCHEMA billing;
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE public.users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, name text, mood public.mood,
                           password_digest text,
                           created timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00');
CREATE TABLE billing.invoices (id bigserial PRIMARY KEY, user_id int NOT NULL REFERENCES public.users (id),
                               amount numeric(12, 2) NOT NULL, note text);
CREATE TABLE public.events (at timestamptz, payload jsonb);
CREATE TABLE public."MixedCase Table" ("Id" int, "Value" text);
CREATE VIEW public.user_totals AS
  SELECT u.id, u.email, coalesce(sum(i.amount), 0) AS total FROM public.users u
  LEFT JOIN billing.invoices i ON i.user_id = u.id GROUP BY u.id, u.email;
CREATE FUNCTION billing.stamp_note() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.note := coalesce(NEW.note, 'invoice for user ' || NEW.user_id); RETURN NEW; END $$;
CREATE TRIGGER invoices_stamp BEFORE INSERT ON billing.invoices FOR EACH ROW EXECUTE FUNCTION billing.stamp_note();
ALTER TABLE billing.invoices OWNER TO app_owner;
GRANT SELECT ON billing.invoices TO app_owner;
"""


def data(users=200):
    """Return SQL inserting `users` users with invoices, events and mixed-case rows."""
    return f"""
INSERT INTO public.users (email, name, mood)
  SELECT 'user' || g || '@example.com', 'User ' || g, (ARRAY['sad','ok','happy']::public.mood[])[1 + g % 3]
  FROM generate_series(1, {users}) g;
INSERT INTO billing.invoices (user_id, amount) SELECT 1 + g % {users}, (g * 7 % 1000) / 10.0 FROM generate_series(1, {users * 3}) g;
INSERT INTO public.events SELECT '2026-01-01'::timestamptz + g * interval '1 minute', jsonb_build_object('n', g)
  FROM generate_series(1, {users}) g;
INSERT INTO public."MixedCase Table" SELECT g, 'value ' || g FROM generate_series(1, 10) g;
SELECT setval('billing.invoices_id_seq', 5000);
"""


def ensure_roles(cluster, roles):
    """Create the given roles (NOLOGIN) on `cluster` unless they exist: the roles a sample's owners,
    grants and policies name, which only the server it is created on has."""
    cluster.psql("".join(f"DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') "
                         f'THEN CREATE ROLE "{role}"; END IF; END $$;\n' for role in roles))


def create(cluster, dbname, owner, users=200):
    """Create `dbname` on `cluster` owned by `owner` and fill it with the sample schema and data."""
    ensure_roles(cluster, ("app_owner",))
    cluster.psql(f'CREATE DATABASE "{dbname}" OWNER "{owner}"')
    cluster.psql(SCHEMA + data(users), db=dbname)
