"""The local code tree and git: refuse to replace app folders holding uncommitted work, and keep
prodmirror's own output (the mirrored code, the snapshots) out of the ops repo it lives in, so that
it never counts as someone's uncommitted work."""

import os
import subprocess
from pathlib import Path

from . import guard
from .errors import GuardError, ProdmirrorError

GIT_WAIT = 30  # seconds; git on a local folder answers at once unless something is badly wrong
EXCLUDE_NOTE = "# prodmirror's own output (mirror.*): never this repo's work"


def _git(folder, *args):
    """Run git in `folder`; return the CompletedProcess (exit 127 when git is not installed: then no
    folder is a work tree). Raise ProdmirrorError if it does not answer in time."""
    try:
        return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=GIT_WAIT)
    except FileNotFoundError:
        return subprocess.CompletedProcess(["git"], 127, "", "git: not found")
    except subprocess.TimeoutExpired:
        raise ProdmirrorError(f"git {args[0]} in {folder} did not answer within {GIT_WAIT}s") from None


def check_clean(root, paths, force):
    """Refuse (GuardError, naming files) to replace app folders holding uncommitted git changes, unless forced."""
    dirty = []
    for path in paths:
        folder = root / path
        if not folder.is_dir() or _git(folder, "rev-parse", "--is-inside-work-tree").returncode != 0:
            continue
        status = _git(folder, "status", "--porcelain", "--", ".").stdout
        dirty += [f"{path}: {line[3:]}" for line in status.splitlines() if line.strip()]
    if dirty and not guard.forced(force):
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise GuardError(f"uncommitted changes would be lost: {shown}; commit or stash them, or pass --force")


def exclusions(repo, folders):
    """Given the ops repo folder and the folders prodmirror writes (parents first), return (exclude file, ['/rel/' lines it
    still lacks]) for those inside that repo's work tree; (None, []) when it is not a git work tree."""
    top = _git(repo, "rev-parse", "--show-toplevel")
    if top.returncode != 0:
        return None, []
    top = Path(top.stdout.strip()).resolve()
    exclude = Path(_git(repo, "rev-parse", "--git-path", "info/exclude").stdout.strip())
    exclude = exclude if exclude.is_absolute() else Path(repo) / exclude
    present = set(exclude.read_text().splitlines()) if exclude.exists() else set()
    lines = []
    for folder in folders:
        try:
            rel = Path(os.path.abspath(folder)).resolve().relative_to(top)
        except ValueError:
            continue  # outside the repo: not its business
        # the repo's own top folder cannot be excluded (its app folders are listed after it); a
        # folder under one already excluded needs no line of its own
        covered = [f"/{p.as_posix()}/" for p in [rel, *rel.parents] if p.parts]
        if covered and not any(line in present or line in lines for line in covered):
            lines.append(covered[0])
    return exclude, lines


def keep_out_of_git(exclude, lines):
    """Append `lines` to the exclude file (`.git/info/exclude`, read by git only in this clone)."""
    if not lines:
        return
    exclude.parent.mkdir(parents=True, exist_ok=True)
    old = exclude.read_text() if exclude.exists() else ""
    sep = "" if not old or old.endswith("\n") else "\n"
    note = "" if EXCLUDE_NOTE in old else f"{EXCLUDE_NOTE}\n"
    with open(exclude, "a") as f:
        f.write(sep + note + "".join(f"{line}\n" for line in lines))
