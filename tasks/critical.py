"""Steps a signal must not cut in two. Ctrl-C or SIGTERM during the swaps of several databases would
leave some swapped and some not; inside a `section()` the run context (actions/run.py) only notes
the signal, and it takes effect (as Interrupted) once the section has ended."""

from .errors import Interrupted

_state = {"depth": 0, "pending": None}


class section:  # noqa: N801 - used as `with critical.section():`
    """Defer SIGINT/SIGTERM until the block ends (then raise Interrupted, if the block itself ended well)."""

    def __enter__(self):
        _state["depth"] += 1
        return self

    def __exit__(self, exc_type, exc, tb):
        _state["depth"] -= 1
        if _state["depth"] == 0 and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            if exc_type is None:
                raise Interrupted(signum)
        return False


def defer(signum):
    """Given a signal that arrived, return True (and keep it for later) if a section is running."""
    if _state["depth"]:
        _state["pending"] = signum
        return True
    return False
