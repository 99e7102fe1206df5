"""The three-way push's decisions and the exact drift guard, as pure logic over snapshots."""

import pytest

from tasks import drift
from tasks.errors import GuardError


def snap(tables, schema=None, sequences=None):
    return {"tables": {k: list(v) for k, v in tables.items()},
            "schema": schema if schema is not None else {k: "s1" for k in tables},
            "sequences": sequences or {}}


BASE = snap({"public.users": (3, "h1"), "public.orders": (5, "h2"), "public.logs": (9, "h3")})


def test_ui_edit_is_kept_and_local_work_pushed():
    prod_now = snap({"public.users": (3, "ui"), "public.orders": (5, "h2"), "public.logs": (9, "h3")})
    local_now = snap({"public.users": (3, "h1"), "public.orders": (6, "local"), "public.logs": (9, "h3")})
    plan = drift.plan_push(BASE, prod_now, BASE, local_now)
    assert (plan.push, plan.keep, plan.conflicts, plan.blockers) == (["public.orders"], ["public.users"], [], [])


def test_both_sides_changed_is_a_conflict_unless_they_now_agree():
    prod_now = snap({"public.users": (4, "x"), "public.orders": (5, "h2"), "public.logs": (9, "h3")})
    local_now = snap({"public.users": (4, "y"), "public.orders": (5, "h2"), "public.logs": (9, "h3")})
    assert drift.plan_push(BASE, prod_now, BASE, local_now).conflicts == ["public.users"]
    agreed = snap({"public.users": (4, "x"), "public.orders": (5, "h2"), "public.logs": (9, "h3")})
    plan = drift.plan_push(BASE, prod_now, BASE, agreed)
    assert plan.conflicts == [] and plan.push == []


@pytest.mark.parametrize("local_now, prod_now, blocker", [
    (snap({**BASE["tables"], "public.new": (0, "0")}), BASE, "public.new: new locally"),
    (snap({k: v for k, v in BASE["tables"].items() if k != "public.logs"}), BASE, "public.logs: dropped locally"),
    (snap(BASE["tables"], schema={**BASE["schema"], "public.users": "s2"}), BASE, "public.users: schema locally"),
    (snap({**BASE["tables"], "public.orders": (6, "l")}), snap({k: v for k, v in BASE["tables"].items()
                                                                if k != "public.orders"}),
     "public.orders: changed locally, dropped in production"),
])
def test_what_cannot_go_table_by_table_is_a_blocker(local_now, prod_now, blocker):
    plan = drift.plan_push(BASE, prod_now, BASE, local_now)
    assert blocker in plan.blockers and not plan.push


def test_a_sequence_move_is_its_tables_change():
    base = snap({"public.users": (3, "h1")}, sequences={"public.users_id_seq": ["3", "public.users"]})
    now = snap({"public.users": (3, "h1")}, sequences={"public.users_id_seq": ["4", "public.users"]})
    assert drift.changes(base, now) == {"public.users": "sequence"}


def test_without_a_content_hash_unchanged_cannot_be_proven():
    base = snap({"users": (3, None)})
    assert drift.changes(base, snap({"users": (3, None)})) == {"users": "rows"}


def test_guard_refuses_names_what_changed_and_only_the_flag_overrides():
    last = {"time": "t", "base": {"production": BASE}}
    now = snap({"public.users": (2, "h9"), "public.orders": (5, "h2"), "public.logs": (9, "h3")})
    with pytest.raises(GuardError, match=r"public.users \(rows: 3 → 2, contents changed\).*--overwrite-production"):
        drift.guard(last, "production", now, False, "app")
    assert drift.guard(last, "production", now, True, "app") == ["public.users"]
    assert drift.guard(last, "production", now, False, "app", only={"public.orders"}) == []
    with pytest.raises(GuardError, match="no exact record"):
        drift.guard({"counters": {}}, "production", now, False, "app")  # written by an older prodmirror


# --- change marks: what they may be compared with, and the incremental pull's plan -----------------

def marked(tables, xid=("16384", 1000), large_objects=0, **kw):
    return {**snap(tables, **kw), "xid": list(xid), "large_objects": large_objects}


MARKED = marked({"public.users": (3, "xmin:1"), "public.orders": (5, "xmin:2")})


@pytest.mark.parametrize("now_xid, comparable", [
    (("16384", 1000), True), (("16384", 5000), True),
    (("16385", 5000), False),                      # another database (dropped and created again)
    (("16384", 999), False),                       # the counter went back: a restore to an earlier point
    (("16384", 1000 + (1 << 31)), False),          # so many transactions later an old xmin could come again
])
def test_marks_compare_only_within_one_database_and_xid_span(now_xid, comparable):
    now = marked(MARKED["tables"], xid=now_xid)
    assert drift.comparable(MARKED, now) is comparable
    assert drift.changes(MARKED, now) == ({} if comparable else {"public.orders": "rows", "public.users": "rows"})


def test_snapshots_without_marks_always_compare():
    assert drift.comparable(BASE, BASE) and drift.changes(BASE, BASE) == {}


def test_the_incremental_plan_takes_what_changed_on_either_side():
    prod_now = marked({"public.users": (3, "xmin:9"), "public.orders": (5, "xmin:2")}, xid=("16384", 1200))
    local_now = marked({"public.users": (3, "xmin:1"), "public.orders": (4, "xmin:7")}, xid=("7", 50))
    local_base = marked(MARKED["tables"], xid=("7", 40))
    assert drift.plan_changed(MARKED, prod_now, local_base, local_now) == (["public.orders", "public.users"], None)
    assert drift.plan_changed(MARKED, MARKED, local_base, local_base) == ([], None)


@pytest.mark.parametrize("prod_now, why", [
    (marked({**MARKED["tables"], "public.new": (0, "xmin:0")}), "public.new: new in production"),
    (marked(MARKED["tables"], schema={"public.users": "s2", "public.orders": "s1"}), "public.users: schema in production"),
    (marked(MARKED["tables"], large_objects=2), "large objects"),
    (marked(MARKED["tables"], xid=("99", 2000)), "production's database was replaced or restored"),
    (snap(MARKED["tables"]), "no change marks"),
    (marked(MARKED["tables"], sequences={"public.ticket": ["7", None]}), "a sequence that belongs to no table"),
])
def test_the_incremental_plan_says_why_it_cannot_be_exact(prod_now, why):
    tables, reason = drift.plan_changed(marked(MARKED["tables"], sequences={"public.ticket": ["5", None]})
                                        if "sequence" in why else MARKED, prod_now, MARKED, MARKED)
    assert tables is None and why in reason


def test_a_change_outside_the_tables_is_database_objects_and_blocks_a_table_by_table_push():
    base = {**MARKED, "objects": "o1"}
    now = {**MARKED, "objects": "o2"}
    assert drift.changes(base, now) == {drift.OBJECTS: "schema"}
    assert drift.changes({**MARKED}, now) == {}  # a record without the signature (older) cannot tell
    assert drift.plan_push(base, base, base, now).blockers == [f"{drift.OBJECTS}: schema locally"]
    assert drift.plan_changed(base, now, base, base)[1] == f"{drift.OBJECTS}: schema in production since the last sync"
