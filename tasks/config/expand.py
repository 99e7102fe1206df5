"""`${VAR}` and `${VAR:-default}` in configuration values, filled from the process environment and the
project's `.env`. A variable without a value is noted by key path, not refused: it is only an error
once a command needs that value (`Project.check`)."""

import re

VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Expander:
    """Fill `${VAR}` in strings (in nested dicts and lists too); note the key path of every variable
    that has no value in `missing`."""

    def __init__(self, values, missing):
        self.values, self.missing = values, missing

    def __call__(self, value, path):
        if isinstance(value, dict):
            return {k: self(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, str):
            return value

        def fill(match):
            name, default = match.group(1), match.group(2)
            if self.values.get(name) not in (None, ""):
                return self.values[name]
            if default is not None:
                return default
            self.missing.setdefault(path, name)
            return ""

        return VAR.sub(fill, value)


def plain(value):
    """Given an invoke DataProxy (or any mapping/list tree), return plain dicts and lists."""
    if hasattr(value, "items") and not isinstance(value, str):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
