"""Invoke configuration + .env -> validated, typed sections (model.py).

`load()` reads the `environments`, `backups`, `limits`, `mirror` and `hotfix` sections of invoke's config, each
through its own validator (a module of this folder named like the section, with the section's
DEFAULTS, which the collections also register with `ns.configure`). Every structural mistake is found
here, before anything runs, and reported as one line that names the key. `${VAR}` (expand.py) is
filled from the process environment, then from the `.env` file beside invoke.yaml.
"""

import os
from pathlib import Path

from ..errors import ConfigError
from . import backups, environments, hotfix, limits, mirror
from .expand import Expander, plain
from .model import (Backups, Database, Deploy, DjangoApp, Environment, Hotfix, Limits, Migrations,  # noqa: F401
                    Mirror, Postgrest, Project, Secret, SSHTarget)
from .validate import duration as parse_duration  # noqa: F401


def load(config, root):
    """Given invoke's config (a mapping) and the project root, return a validated Project.

    Raise ConfigError with the offending key for any structural mistake.
    """
    from dotenv import dotenv_values  # only when a task runs: `inv --list` never reads .env

    root = Path(root)
    try:
        values = {**dotenv_values(root / ".env", encoding="utf-8"), **os.environ}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{root / '.env'}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    missing = {}
    expand = Expander(values, missing)
    envs = environments.validate(_get(config, "environments"), expand)
    return Project(root=root, environments=envs,
                   backups=backups.validate(_get(config, "backups"), root, expand), missing=missing,
                   mirror=mirror.bind_databases(mirror.validate(expand(_get(config, "mirror"), "mirror"), root), envs),
                   hotfix=hotfix.validate(expand(_get(config, "hotfix"), "hotfix")),
                   limits=limits.validate(expand(_get(config, "limits"), "limits")), variables=values)


def _get(config, key):
    try:
        value = config[key]
    except (KeyError, AttributeError):
        return {}
    return plain(value) if value is not None else {}
