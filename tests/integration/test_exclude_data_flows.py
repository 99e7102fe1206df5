"""exclude_data: tables whose definitions a copy brings but not their rows, against real clusters with
production behind a real sshd. A pull leaves their rows out (the table, its index and trigger
arrive), a three-way push neither pushes them nor counts production's writes to them, a --full push
keeps production's own rows (written up to the swap), and a one-table copy of one is refused."""

import pytest

from tasks import audit
from tasks.actions import sync
from tasks.errors import GuardError, ProdmirrorError
from tests.conftest import cli_project, db_exists, during_transfer, inv, make_config, sequences, table_digests

# Beside the sample: a sessions table with an index, a trigger and a foreign key into users; an audit
# log; a quoted name with capitals, a space and a double quote (matched by its own name, `Audit*`);
# `log?`, matched literally by `log[?]`, and its decoy `logs`, which a `?` read as pg_dump's wildcard
# (an unquoted pattern) would exclude too; a partitioned `hits` (excluded by its name: its partitions
# with it); an inheritance child `notes_archive` excluded while its parent `notes` is not.
EXTRA = '''
CREATE TABLE public.sessions (id serial PRIMARY KEY, user_id int NOT NULL REFERENCES public.users (id),
                              token text NOT NULL, seen timestamptz);
CREATE INDEX sessions_token_idx ON public.sessions (token);
CREATE FUNCTION public.sessions_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN NEW.seen := coalesce(NEW.seen, '2026-02-02 00:00:00+00'); RETURN NEW; END $$;
CREATE TRIGGER sessions_stamp BEFORE INSERT ON public.sessions FOR EACH ROW EXECUTE FUNCTION public.sessions_seen();
INSERT INTO public.sessions (user_id, token) SELECT 1 + g % 200, md5(g::text) FROM generate_series(1, 300) g;
CREATE TABLE public.audit_log (at timestamptz, what text);
INSERT INTO public.audit_log SELECT '2026-01-01'::timestamptz + g * interval '1 hour', 'event ' || g
  FROM generate_series(1, 50) g;
CREATE TABLE billing."Audit ""Trail""" (n int);
INSERT INTO billing."Audit ""Trail""" SELECT generate_series(1, 5);
CREATE TABLE public."log?" (n int);
INSERT INTO public."log?" SELECT generate_series(1, 3);
CREATE TABLE public.logs (n int);
INSERT INTO public.logs SELECT generate_series(1, 4);
CREATE TABLE public.hits (at date NOT NULL, n int) PARTITION BY RANGE (at);
CREATE TABLE public.hits_a PARTITION OF public.hits FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE public.hits_b PARTITION OF public.hits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO public.hits SELECT '2025-06-01'::date + g, g FROM generate_series(1, 400) g;
CREATE TABLE public.notes (n int);
CREATE TABLE public.notes_archive () INHERITS (public.notes);
INSERT INTO public.notes SELECT generate_series(1, 6);
INSERT INTO public.notes_archive SELECT generate_series(7, 9);
'''
PATTERNS = ["sessions", "audit_*", "Audit*", "log[?]", "hits", "notes_archive"]
# As the plan lists them: the tables matched, then the partitions that come with them.
EXCLUDED = ['billing."Audit ""Trail"""', "public.audit_log", "public.hits", 'public."log?"', "public.notes_archive",
            "public.sessions", "public.hits_a", "public.hits_b"]


def excluding_config(prod, local, sshd, dbname):
    """The sample's config with exclude_data written once, in production's entry only."""
    cfg = make_config(prod, local, dbname, ssh=sshd.target())
    cfg["environments"]["production"]["databases"]["app"]["exclude_data"] = PATTERNS
    return cfg


@pytest.fixture
def excl(prod, local, sshd, dbname, project_for):
    """A project with exclude_data whose local was just pulled from production."""
    prod.psql(EXTRA, db=dbname)
    project = project_for(excluding_config(prod, local, sshd, dbname))
    sync.copy(project, "production", "local", task="db.sync.from-production")
    return project


def rows(cluster, dbname, table):
    return int(cluster.psql(f"SELECT count(*) FROM {table}", db=dbname).strip())


def test_a_pull_brings_the_definitions_but_not_the_rows(prod, local, sshd, dbname, project_for, capfd):
    prod.psql(EXTRA, db=dbname)
    project = project_for(excluding_config(prod, local, sshd, dbname))

    sync.copy(project, "production", "local", force=True, task="db.sync.from-production")

    err = capfd.readouterr().err
    assert f"app: data of 8 table(s) not copied (exclude_data): {', '.join(EXCLUDED)}" in err, err
    ours, theirs = table_digests(local, dbname), table_digests(prod, dbname)
    for table in EXCLUDED:
        assert ours[table] == "0:" and theirs[table] != "0:", table  # the table is there, empty
    for table in ("public.users", "billing.invoices", "public.events", "public.logs", 'public."MixedCase Table"'):
        assert ours[table] == theirs[table], table
    assert rows(local, dbname, "public.logs") == 4  # `log[?]` matched `log?` alone
    assert rows(local, dbname, "ONLY public.notes") == 6  # the parent's own rows came, its child's did not
    # The definition came whole: its index, its trigger (which works), its foreign key.
    assert local.psql("SELECT indexdef FROM pg_indexes WHERE indexname = 'sessions_token_idx'",
                      db=dbname).strip() == "CREATE INDEX sessions_token_idx ON public.sessions USING btree (token)"
    local.psql("INSERT INTO public.sessions (user_id, token) VALUES (1, 'local')", db=dbname, user="spmo_admin")
    assert local.psql("SELECT seen FROM public.sessions", db=dbname).strip() == "2026-02-02 00:00:00+00"
    with pytest.raises(RuntimeError, match="sessions_user_id_fkey"):
        local.psql("INSERT INTO public.sessions (user_id, token) VALUES (999, 'x')", db=dbname, user="spmo_admin")
    # status neither counts the rows as a difference nor production's writes to them as drift.
    prod.psql("INSERT INTO public.sessions (user_id, token) VALUES (2, 'ui'); DELETE FROM public.audit_log", db=dbname)
    report = sync.status(project, keys=["app"])[0]
    assert report["drift"] == {} and set(EXCLUDED) <= set(report["excluded"])


def test_a_three_way_push_leaves_production_sessions_alone(prod, local, dbname, excl, capfd):
    # Production's sessions change all the time: rows, their sequence; local has its own.
    prod.psql("INSERT INTO public.sessions (user_id, token) VALUES (7, 'ui login'); UPDATE public.sessions "
              "SET token = 'rotated' WHERE id = 3; DELETE FROM public.audit_log WHERE what = 'event 1'", db=dbname)
    local.psql("INSERT INTO public.sessions (user_id, token) VALUES (1, 'dev login'); "
               "UPDATE public.users SET name = 'local work' WHERE id = 3", db=dbname, user="spmo_admin")
    before = table_digests(prod, dbname)

    rec = sync.copy(excl, "local", "production", force=True, task="db.sync.to-production")

    err = capfd.readouterr().err
    assert rec["tables"] == {"app": ["public.users"]}
    assert "app: data of 8 table(s) not copied (exclude_data)" in err and "keep production's" not in err
    after, ours = table_digests(prod, dbname), table_digests(local, dbname)
    assert after["public.users"] == ours["public.users"] != before["public.users"]
    for table in EXCLUDED:
        assert after[table] == before[table], table
    assert prod.psql("SELECT token FROM public.sessions WHERE id = 3", db=dbname).strip() == "rotated"
    # More production sessions later are still nobody's change: the next push has nothing to do.
    prod.psql("INSERT INTO public.sessions (user_id, token) VALUES (8, 'another')", db=dbname)
    assert "tables" not in sync.copy(excl, "local", "production", force=True)


def test_a_three_way_push_never_moves_an_excluded_child_with_its_parent(prod, local, dbname, excl):
    local.psql("UPDATE ONLY public.notes SET n = n + 100", db=dbname, user="spmo_admin")
    before = table_digests(prod, dbname)
    with pytest.raises(GuardError, match=r"public.notes changed locally, but a table-by-table push would move "
                                         r"public.notes_archive with it, whose data exclude_data keeps out"):
        sync.copy(excl, "local", "production", force=True)
    assert table_digests(prod, dbname) == before


def test_a_full_push_keeps_production_rows_written_up_to_the_swap(prod, local, dbname, excl, mocker):
    prod.psql("INSERT INTO public.sessions (user_id, token) VALUES (7, 'before the push')", db=dbname)
    local.psql("UPDATE public.users SET name = 'pushed whole' WHERE id = 4; DELETE FROM public.audit_log",
               db=dbname, user="spmo_admin")

    def write_during_the_transfer():  # after the guard passed, while the new database is arriving
        prod.psql("INSERT INTO public.sessions (user_id, token) VALUES (9, 'during the push'); "
                  "SELECT nextval('public.sessions_id_seq')", db=dbname)
        return table_digests(prod, dbname), sequences(prod, dbname)

    seen = during_transfer(mocker, "app: local → production", write_during_the_transfer)
    rec = sync.copy(excl, "local", "production", force=True, full=True, task="db.sync.to-production")

    assert seen, "the transfer never started"
    live, live_sequences = seen[0]
    after = table_digests(prod, dbname)
    assert "overwritten" not in rec and rec["tables"] == {"app": "all"}
    for table in EXCLUDED:
        assert after[table] == live[table], table
    assert prod.psql("SELECT count(*) FROM public.sessions WHERE token IN ('before the push', 'during the push')",
                     db=dbname).strip() == "2"
    assert [s for s in sequences(prod, dbname) if "sessions" in s] == [s for s in live_sequences if "sessions" in s]
    assert after["public.users"] == table_digests(local, dbname)["public.users"]
    assert prod.psql("SELECT count(*) FROM pg_trigger WHERE tgname = 'sessions_stamp'", db=dbname).strip() == "1"


def test_a_full_push_whose_kept_rows_do_not_fit_changes_nothing(prod, local, dbname, excl):
    # Production's sessions reference user 5, which local deleted: they cannot be kept, so nothing moves.
    local.psql("DELETE FROM billing.invoices WHERE user_id = 5; DELETE FROM public.users WHERE id = 5",
               db=dbname, user="spmo_admin")
    before = table_digests(prod, dbname)
    with pytest.raises(ProdmirrorError, match=r"production's own rows of the tables exclude_data keeps out do not fit "
                                              r"the new database .*sessions_user_id_fkey.*nothing was swapped in"):
        sync.copy(excl, "local", "production", force=True, full=True)
    assert table_digests(prod, dbname) == before
    assert not db_exists(prod, f"{dbname}__pm_new")
    assert audit.read(excl.state_dir)[-1]["result"] == "failed"


def test_a_one_table_copy_of_an_excluded_table_is_refused(prod, local, sshd, dbname, excl, tmp_path):
    before = table_digests(prod, dbname), table_digests(local, dbname)
    for source, target in (("production", "local"), ("local", "production")):
        with pytest.raises(GuardError, match=r"^public.sessions is not copied: environments.production.databases.app."
                                             r"exclude_data \(.*\) matches public.sessions; nothing was changed$"):
            sync.copy_object(excl, source, target, "sessions", force=True)
    assert (table_digests(prod, dbname), table_digests(local, dbname)) == before
    assert not list(excl.backups_dir.glob("production_*"))
    assert audit.read(excl.state_dir)[-1]["result"] == "refused"
    (tmp_path / "repo").mkdir()
    repo = cli_project(tmp_path / "repo", excluding_config(prod, local, sshd, dbname))
    res = inv(repo, "db.sync.collection-to-production", "public.audit_log", "--force")
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines()[-1] == (
        "prodmirror: public.audit_log is not copied: environments.production.databases.app.exclude_data "
        "(Audit*, audit_*, hits, log[?], notes_archive, sessions) matches public.audit_log; nothing was changed")
    assert table_digests(prod, dbname) == before[0]


def test_status_marks_excluded_tables_and_counts_neither_their_rows_nor_their_sequences(prod, local, sshd, dbname,
                                                                                         excl, tmp_path):
    (tmp_path / "repo").mkdir()
    repo = cli_project(tmp_path / "repo", excluding_config(prod, local, sshd, dbname))
    (repo / ".prodmirror").mkdir()
    (repo / ".prodmirror" / "sync-state.json").write_text((excl.state_dir / "sync-state.json").read_text())
    prod.psql("INSERT INTO public.sessions (user_id, token) VALUES (3, 'ui'); SELECT nextval('public.sessions_id_seq')",
              db=dbname)
    res = inv(repo, "db.sync.status")
    assert res.returncode == 0, res.stderr
    cells = [[cell.strip() for cell in line.strip("│┃ ").split("│")] for line in res.stdout.splitlines()]
    table = {row[0]: row[1:] for row in cells if len(row) == 4}
    assert table["public.sessions"] == ["301", "0", "data not copied (exclude_data)"], res.stdout
    assert table["public.users"] == ["200", "200", "yes"]
    assert "app: in sync" in res.stdout and "production unchanged since the last sync" in res.stdout, res.stdout
    assert "sequences that differ" not in res.stdout


def test_the_rows_of_excluded_tables_are_not_read_for_the_record_either(excl, prod, dbname):
    """A huge log excluded from the data is never scanned by a pull or a push's checks (pg_dump leaves
    it out, and the change marks skip it): production's sequential scans of it do not move."""
    import time

    def scans(table):
        time.sleep(1.2)  # the servers' statistics of ended sessions are flushed by then
        return int(prod.psql(f"SELECT seq_scan FROM pg_stat_user_tables WHERE relid = '{table}'::regclass",
                             db=dbname).strip())

    before = {t: scans(t) for t in ("public.audit_log", "public.users")}
    sync.copy(excl, "production", "local", task="db.sync.from-production")
    sync.copy(excl, "local", "production", dry_run=True)  # a three-way plan: both sides' snapshots
    assert scans("public.audit_log") == before["public.audit_log"]
    assert scans("public.users") > before["public.users"]  # (the counters do move for the others)
