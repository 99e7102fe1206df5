"""The flows' pure parts (actions/sync.py): how status words the schema differences of two signatures."""

from tasks.actions.sync import schema_differences


def test_schema_differences_name_the_object_and_what_differs():
    production = {"public.users": {"column email": "#2 text NOT NULL", "index users_email_key": "CREATE UNIQUE …"},
                  "public.audit": {"kind": "table"}, "public.v": {"definition": "SELECT " + "x, " * 40 + "y"}}
    local = {"public.users": {"column email": "#2 text"}, "public.extra": {"kind": "table"},
             "public.v": {"definition": "SELECT 1"}}
    assert schema_differences(production, local) == [
        "public.audit: only in production",
        "public.extra: only in local",
        "public.users: column email differs (production: #2 text NOT NULL; local: #2 text)",
        "public.users: index users_email_key only in production",
        f"public.v: definition differs (production: {('SELECT ' + 'x, ' * 40)[:79]}…; local: SELECT 1)"]
    assert schema_differences(production, production) == []
