"""Root namespace of prodmirror: composes the collections in the tasks/ package."""

import os

from invoke import Collection

# invoke imports this file as the module `tasks`, which hides the tasks/ package of the same name.
# Giving this module the package's __path__ makes it that package, so `from tasks.db import …`
# loads tasks/db/… whether invoke loaded this file or Python imported the package (tests).
__path__ = [os.path.join(os.path.dirname(os.path.abspath(__file__)), "tasks")]

from tasks.cli import check_project_file, quiet_broken_pipe  # noqa: E402

check_project_file(os.path.dirname(os.path.abspath(__file__)))  # before invoke reads it (one line, not a traceback)
quiet_broken_pipe()

from tasks import db, hotfix, mirror  # noqa: E402
from tasks.config import limits  # noqa: E402

ns = Collection(mirror.ns, db.ns, hotfix.ns)
ns.configure({"prodmirror": {"root": os.path.dirname(os.path.abspath(__file__))}, "limits": limits.DEFAULTS})
