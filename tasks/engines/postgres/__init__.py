"""PostgreSQL: pg_dump/pg_restore/psql driven on whichever host the database's tools run on.

This package satisfies the engine contract (engines/base.py) with the names below; its modules hold
the parts: client.py (quoting, psql), database.py (whole-database dump, atomic restore), archive.py
(a custom-format archive's table of contents, read and rewritten as it streams), privileges.py (what
a push keeps of the target's own), needs.py (roles and extensions a restore needs on the target),
schema.py (the schema signature status shows), tables.py (tables, labels, fingerprints, snapshots),
table_copy.py (resolve a name, a table's tree, replace tables in one transaction), clone.py
(same-server clones for hotfix.*).
"""

from .client import (MAINTENANCE_DB, SEP, client_env, connection_args, execute, exists, psql_argv,  # noqa: F401
                     query, quote_ident, quote_literal, tool_version)
from .clone import clone_dump, clone_facts, clone_template, drop, online_clone_argv  # noqa: F401
from .database import (KEEPS_DATABASES, AtomicRestore, drop_kept, dump, dump_argv, kept_facts,  # noqa: F401
                       preflight, restore_argv, server_facts, side_name, swap_kept)
from .privileges import apply_privileges, privileges  # noqa: F401
from .schema import schema  # noqa: F401
from .table_copy import (ObjectReplace, TablesReplace, copy_rows, dump_object, dump_tables, excluded,  # noqa: F401
                         explain_object_failure, object_jobs,
                         explain_table_failure, object_label, object_parts, parse_name, qualified, resolve_object,
                         resolve_table, tree)
from .tables import fingerprint, label, landed, reset_passwords, snapshot, tables  # noqa: F401

REQUIRED_KEYS = ("name", "user")
OBJECT_WORD = "table"
SUFFIX = ".pgdump"
OBJECT_SUFFIX = ".sql"
DUMP_TOOL = "pg_dump"
MAGIC = b"PGDMP"
EXCLUDES_DEFINITIONS = False  # exclude_data: a table's definition, indexes and triggers come; its rows do not
