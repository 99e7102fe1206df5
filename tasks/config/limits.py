"""The `limits` section: every wait prodmirror makes has a bound, and these are the bounds a user sets."""

from ..errors import ConfigError
from .model import Limits
from .validate import duration, mapping, only, with_defaults

DEFAULTS = {"stall": "120s", "lock_wait": "60s", "container_ready": "60s"}


def validate(raw):
    """Given the raw `limits` mapping (${VAR} already filled), return Limits."""
    raw = with_defaults(mapping(raw, "limits"), DEFAULTS)
    only(raw, set(DEFAULTS), "limits")
    values = {key: duration(raw[key], f"limits.{key}") for key in DEFAULTS}
    for key, seconds in values.items():
        if seconds < 1:
            raise ConfigError(f"limits.{key}: at least 1s (a wait of 0 would never let anything through)")
    return Limits(**values)
