"""Checks the section validators share: each raises ConfigError with one line naming the key."""

import re

from ..errors import ConfigError
from .model import Duration

SIMPLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def mapping(value, path):
    """Return `value` if it is a mapping; raise ConfigError naming `path` otherwise."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__} {value!r}")
    return value


def only(values, allowed, path):
    """Raise ConfigError for the first key of `values` that is not in `allowed`."""
    for key in values:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}: unknown key (expected one of: {', '.join(sorted(allowed))})")


def subsection(raw, path, allowed, required):
    """Given an optional sub-mapping, return it checked (only `allowed` keys, every `required` one set),
    or None when it is absent or empty."""
    raw = mapping(raw or {}, path)
    if not raw:
        return None
    only(raw, allowed, path)
    for key in required:
        if not raw.get(key):
            raise ConfigError(f"{path}.{key}: required")
    return raw


def integer(value, path, minimum=None, maximum=None):
    """Given a number or its text, return it as an int within [minimum, maximum]; raise ConfigError otherwise."""
    try:
        number = int(value)
        if isinstance(value, bool) or str(number) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: expected a whole number, got {value!r}") from None
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ConfigError(f"{path}: {number} is out of range")
    return number


def duration(text, path):
    """Given '24h', '90m', '2d' or seconds, return seconds. Raise ConfigError naming `path`."""
    return timespan(text, path).seconds


def timespan(text, path):
    """Given '24h', '90m', '2d' or seconds, return a Duration shown as written ('24h', not 86400 nor 1d); bare
    seconds show in their shortest exact form. Raise ConfigError naming `path`."""
    match = DURATION.match(str(text))
    if not match:
        raise ConfigError(f"{path}: expected a duration such as 24h, 90m or 2d, got {text!r}")
    number, unit = int(match.group(1)), match.group(2)
    return Duration(number * UNITS.get(unit, 1), f"{number}{unit}" if unit else shortest(number))


def shortest(seconds):
    """Given seconds, return their shortest exact form: '2d', '90m', '45s'."""
    for unit, size in UNITS.items():
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def with_defaults(raw, defaults):
    """Return `raw` over `defaults`, merged key by key in nested mappings (as invoke merges config levels)."""
    out = dict(defaults)
    for key, value in (raw or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = with_defaults(value, out[key])
        else:
            out[key] = value
    return out
