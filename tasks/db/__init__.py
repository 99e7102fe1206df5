"""The `db` namespace: db.sync.* and db.backup.*."""

from invoke import Collection

from . import backup, sync

ns = Collection("db")
ns.add_collection(sync.ns)
ns.add_collection(backup.ns)
