"""The edge between invoke and the library: load the project from the context, turn library errors
into one line and a non-zero exit (no traceback), and keep invoke's own habits (-e echo)."""

import functools
import os
from pathlib import Path

import invoke
from invoke import Exit

from .config import load
from .errors import Interrupted, ProdmirrorError


def task(*args, **kwargs):
    """invoke's @task without automatic short flags. Those would take letters invoke itself uses (-e echo,
    -d debug, -f config, -r search root…), and a destructive option must be typed in full."""
    return invoke.task(*args, auto_shortflags=False, **kwargs)


def project(c):
    """Given an invoke Context, return the validated Project (root: the folder of tasks.py)."""
    root = c.config.get("prodmirror", {}).get("root") or os.getcwd()
    return load(c.config, Path(root))


def echo(c):
    return bool(c.config.get("run", {}).get("echo"))


def split_keys(value):
    """Given '--db a,b' (or None), return ['a', 'b'] (or None for all)."""
    return [k.strip() for k in value.split(",") if k.strip()] if value else None


def one_line_errors(body):
    """Decorate a task body so library errors end as `prodmirror: <line>` with the error's exit code."""

    @functools.wraps(body)
    def wrapper(*args, **kwargs):
        try:
            return body(*args, **kwargs)
        except ProdmirrorError as exc:
            raise Exit(f"prodmirror: {exc}", code=exc.exit_code) from None
        except Interrupted as exc:
            raise Exit(f"prodmirror: interrupted ({exc.signal}); what was in progress was rolled back and "
                       "its temporaries dropped (see the audit log)", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("prodmirror: interrupted (SIGINT)", code=130) from None

    return wrapper
