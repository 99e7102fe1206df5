"""The `backups` section: where backups are kept and how many per environment (`keep` file backups,
`keep_databases` previous local databases kept by renaming them: backup_store.py)."""

from ..errors import ConfigError
from .model import Backups
from .validate import integer, mapping, only, with_defaults

DEFAULTS = {"dir": "backups", "keep": 5, "keep_databases": 2}


def validate(raw, root, expand):
    """Given the raw `backups` mapping (defaults below it), return Backups."""
    raw = with_defaults(mapping(raw, "backups"), DEFAULTS)
    only(raw, set(DEFAULTS), "backups")
    keep = integer(expand(raw["keep"], "backups.keep"), "backups.keep", minimum=0)
    keep_databases = integer(expand(raw["keep_databases"], "backups.keep_databases"), "backups.keep_databases",
                             minimum=0)
    folder = expand(raw["dir"], "backups.dir")
    if not isinstance(folder, str) or not folder.strip():
        raise ConfigError(f"backups.dir: expected a folder (text), got {folder!r}")
    return Backups(dir=root / folder, keep=keep, keep_databases=keep_databases)
