"""PostgreSQL: pg_dump/pg_restore/psql driven on whichever host the database's tools run on.

This package satisfies the engine contract (engines/base.py) with the names below; its modules hold
the parts: client.py (quoting, psql), database.py (whole-database dump, atomic restore), archive.py
(a custom-format archive's table of contents, read and rewritten as it streams), privileges.py (what
a push keeps of the target's own), needs.py (roles and extensions a restore needs on the target),
schema.py (the schema signature status compares), tables.py (tables, fingerprints, one-table
replace), clone.py (same-server clones for hotfix.*).
"""

from .client import (MAINTENANCE_DB, SEP, client_env, connection_args, execute, exists, psql_argv,  # noqa: F401
                     query, quote_ident, quote_literal, tool_version)
from .clone import clone_dump, clone_facts, clone_template, drop, online_clone_argv  # noqa: F401
from .database import AtomicRestore, dump, dump_argv, preflight, restore_argv, server_facts, _side_name  # noqa: F401
from .privileges import apply_privileges, privileges  # noqa: F401
from .schema import schema  # noqa: F401
from .tables import (ObjectReplace, TableReplace, counters, dump_object, dump_table, explain_object_failure,  # noqa: F401
                     explain_table_failure, fingerprint, object_label, qualified, reset_passwords, resolve_object,
                     resolve_table, table_names, tables)

REQUIRED_KEYS = ("name", "user")
OBJECT_WORD = "table"
SUFFIX = ".pgdump"
OBJECT_SUFFIX = ".sql"
DUMP_TOOL = "pg_dump"
MAGIC = b"PGDMP"
