"""exclude_data.py: which patterns hold for a copy, what they match, and snapshots without the data
they keep out (what the drift guard and the three-way push compare)."""

import pytest

from tasks import drift, exclude_data
from tasks.config import Database
from tasks.errors import GuardError


def db(env, *patterns):
    return Database(key="gamit", env=env, engine="postgres", name="db_gamit", user="u", exclude_data=patterns)


def test_the_patterns_of_a_copy_are_both_entries_together():
    assert exclude_data.patterns(db("production", "sessions", "audit_*"), db("local", "audit_*", "logs")) == (
        "audit_*", "logs", "sessions")
    assert exclude_data.patterns(db("local"), db("production", "sessions")) == ("sessions",)
    assert exclude_data.where(db("local"), db("production", "x")) == "environments.production.databases.gamit.exclude_data"


@pytest.mark.parametrize("names, patterns, expected", [
    (("public.sessions", "sessions"), ["sessions"], True),       # the bare name
    (("billing.sessions", "sessions"), ["sessions"], True),      # in any schema
    (("public.audit_log", "audit_log"), ["audit_*"], True),
    (("billing.invoices", "invoices"), ["billing.*"], True),     # the label: a whole schema
    (("public.invoices", "invoices"), ["billing.*"], False),
    (('"Sales".orders', "orders"), ['"Sales".*'], True),
    (('public."Audit Log"', "Audit Log"), ["audit*"], False),    # case matters, as in names
    (("public.logs", "logs"), ["log[?]"], False),                # [?] is a literal ?
    (('public."log?"', "log?"), ["log[?]"], True),
])
def test_a_pattern_matches_the_label_or_the_own_name(names, patterns, expected):
    assert exclude_data.matches(patterns, *names) is expected


SNAP = {"tables": {"public.sessions": [3, "h1"], "public.users": [2, "h2"]},
        "schema": {"public.sessions": "s1", "public.users": "s2"},
        "sequences": {"public.sessions_id_seq": ["3", "public.sessions"], "public.users_id_seq": ["2", "public.users"],
                      "public.loose": ["1", None]}}


def test_strip_drops_the_data_and_keeps_the_definition():
    out = exclude_data.strip(SNAP, {"public.sessions"})
    assert out["tables"] == {"public.users": [2, "h2"]} and out["schema"] == SNAP["schema"]
    assert set(out["sequences"]) == {"public.users_id_seq", "public.loose"}
    assert exclude_data.strip(SNAP, {"public.sessions"}, definitions=True)["schema"] == {"public.users": "s2"}
    assert exclude_data.strip(SNAP, set()) is SNAP and exclude_data.strip(None, {"x"}) is None
    assert SNAP["tables"]["public.sessions"] == [3, "h1"]  # the given snapshot is left as it was


def test_stripped_rows_and_sequences_are_no_change_but_a_definition_still_is():
    now = {"tables": {**SNAP["tables"], "public.sessions": [9, "h9"]}, "schema": dict(SNAP["schema"]),
           "sequences": {**SNAP["sequences"], "public.sessions_id_seq": ["9", "public.sessions"]}}
    labels = {"public.sessions"}
    assert drift.changes(SNAP, now) == {"public.sessions": "rows"}
    assert drift.changes(exclude_data.strip(SNAP, labels), exclude_data.strip(now, labels)) == {}
    now["schema"]["public.sessions"] = "s1 with a new column"
    assert drift.changes(exclude_data.strip(SNAP, labels), exclude_data.strip(now, labels)) == {"public.sessions": "schema"}


class FakeEngine:
    """Enough of an engine for Excluded: per host, the objects the patterns match."""

    OBJECT_WORD, EXCLUDES_DEFINITIONS = "table", False

    def __init__(self, found):
        self.found, self.asked = found, []

    def excluded(self, host, db, patterns):
        self.asked.append((host, patterns))
        return self.found[host]

    def object_label(self, obj):
        return ".".join(obj)


def test_excluded_resolves_on_both_sides_and_words_the_plan():
    engine = FakeEngine({"src": [("public", "sessions")], "dst": [("public", "sessions"), ("public", "audit_2027")]})
    a, b = db("local"), db("production", "sessions", "audit_*")
    excluded = exclude_data.Excluded(engine, a, b, "src", "dst")
    assert excluded.objects == [("public", "sessions")]
    assert excluded.labels == {"public.sessions", "public.audit_2027"}
    assert excluded.step(keeps_target=True) == ("gamit: data of 1 table(s) not copied (exclude_data): public.sessions; "
                                                "production's own rows of them are kept")
    assert excluded.step(keeps_target=False) == "gamit: data of 1 table(s) not copied (exclude_data): public.sessions"
    record = {"time": "t", "base": {"production": SNAP, "local": SNAP}}
    assert all("public.sessions" not in snap["tables"] for snap in excluded.strip_record(record)["base"].values())
    with pytest.raises(GuardError, match=r"^public.sessions is not copied: environments.production.databases.gamit."
                                         r"exclude_data \(audit_\*, sessions\) matches public.sessions; nothing was changed$"):
        excluded.refuse("public.sessions", ["public.sessions"])
    excluded.refuse("public.users", ["public.users"])  # anything else is not refused


def test_without_patterns_nothing_is_asked_and_nothing_is_excluded():
    engine = FakeEngine({})
    excluded = exclude_data.Excluded(engine, db("local"), db("production"), "src", None)
    assert not excluded and engine.asked == [] and excluded.strip(SNAP) is SNAP
