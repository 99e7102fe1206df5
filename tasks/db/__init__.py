"""The `db` namespace: db.sync.* and db.backup.*."""

from invoke import Collection

from ..config import backups as backups_config
from . import backup, sync

ns = Collection("db")
ns.add_collection(sync.ns)
ns.add_collection(backup.ns)
ns.configure({"backups": backups_config.DEFAULTS})
