"""The edge between invoke and the library: load the project from the context, turn library errors
into one line and a non-zero exit (no traceback), and keep invoke's own habits (-e echo)."""

import functools
import os
import sys
from pathlib import Path

import invoke
from invoke import Exit

from .config import load
from .errors import ConfigError, Interrupted, ProdmirrorError


def check_project_file(folder):
    """Exit with one line (code 2) if invoke.yaml in `folder` is not valid UTF-8 YAML.

    invoke reads that file after it loaded tasks.py and shows a parser traceback for a mistake in it;
    tasks.py calls this first, so the user gets the file, line and column instead."""
    path = Path(folder) / "invoke.yaml"
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return
    except UnicodeDecodeError as exc:
        _exit(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8")
    except OSError as exc:
        _exit(f"{path}: cannot read it: {exc.strerror}")
    import yaml

    try:
        yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        _exit(f"{path}{where}: invalid YAML: {what}")


def quiet_broken_pipe():
    """Make a closed stdout pipe (`inv --list | head -1`) end the process quietly, as it would end
    `ls`, instead of with invoke's BrokenPipeError traceback. SIGPIPE itself stays ignored: a dead
    restore's pipe must keep raising, so that its run cleans up."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        if issubclass(kind, BrokenPipeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            os._exit(141)
        previous(kind, value, tb)

    sys.excepthook = hook


def _exit(line, code=2):
    print(f"prodmirror: {line}", file=sys.stderr)
    sys.exit(code)


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
    """Given '--db a,b' (or None), return ['a', 'b'] (or None for all). Raise ConfigError for a value
    that names no key at all ('', ','): that is a mistake, never a request for every database."""
    if value is None:
        return None
    keys = [k.strip() for k in str(value).split(",") if k.strip()]
    if not keys:
        raise ConfigError(f"--db {value!r}: no database key given (leave --db out for every database)")
    return keys


def one_line_errors(body):
    """Decorate a task body so library errors end as `prodmirror: <line>` with the error's exit code."""

    @functools.wraps(body)
    def wrapper(*args, **kwargs):
        try:
            result = body(*args, **kwargs)
            sys.stdout.flush()  # inside the try: a closed pipe (`| head`) surfaces here, not at exit
            return result
        except BrokenPipeError:
            # The reader (head, grep -q…) has what it wanted. Point stdout at /dev/null so the final
            # flush at exit cannot raise again, and end as a command killed by SIGPIPE would.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise Exit(code=141) from None
        except ProdmirrorError as exc:
            raise Exit(f"prodmirror: {exc}", code=exc.exit_code) from None
        except Interrupted as exc:
            raise Exit(f"prodmirror: interrupted ({exc.signal}); what was in progress was rolled back and "
                       "its temporaries dropped (see the audit log)", code=exc.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("prodmirror: interrupted (SIGINT)", code=130) from None

    return wrapper
