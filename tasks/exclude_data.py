"""`exclude_data` (per database in invoke.yaml): the tables whose definitions a copy brings but not
their rows (Postgres: sessions, audit logs), the collections it leaves out entirely (MongoDB).

Written once here, for every flow: which patterns hold for a copy (both entries' lists together, so
they may be written once, in production's entry), what a pattern matches (a glob over an object's
label, `public.sessions`, or its own name, `sessions`), which objects that is on both sides, and the
snapshots without their data (what the drift guard and the three-way push compare: rows nobody
copies are never anybody's change). Backups are not copies: they keep everything.
"""

from fnmatch import fnmatchcase

from .errors import GuardError

KEY = "exclude_data"


def patterns(a, b):
    """Given the two Databases of a copy, return the patterns in effect: both entries' lists together,
    each once, sorted."""
    return tuple(sorted(set(a.exclude_data) | set(b.exclude_data)))


def matches(patterns, *names):
    """Return whether one of the glob patterns matches one of the names (case-sensitive: names are)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns for name in names)


def where(a, b):
    """Return the config keys the patterns of a copy between `a` and `b` come from, for messages."""
    return " and ".join(f"{db.path}.{KEY}" for db in (a, b) if db.exclude_data) or KEY


class Excluded:
    """What exclude_data keeps out of one copy from `a` (source) into `b` (target).

    The patterns are resolved against the objects each side really has, on the sides whose host is
    given (a database that does not exist has none): `objects` are the engine's references to the
    source's matching objects (what the dump leaves out), `labels` theirs and the target's (what no
    comparison may count)."""

    def __init__(self, engine, a, b, src_host=None, dst_host=None):
        self.engine, self.a, self.b = engine, a, b
        self.patterns = patterns(a, b)
        found = lambda host, db: engine.excluded(host, db, self.patterns) if self.patterns and host else []  # noqa: E731
        self.objects = found(src_host, a)
        self.labels = {engine.object_label(obj) for obj in self.objects + found(dst_host, b)}

    def __bool__(self):
        return bool(self.labels)

    def shown(self):
        """Return the source's excluded labels in order, for plans and messages."""
        return [self.engine.object_label(obj) for obj in self.objects]

    def step(self, keeps_target):
        """Return the plan line naming what is not copied; `keeps_target`: the target keeps its own rows."""
        names = self.shown()
        line = (f"{self.a.key}: data of {len(names)} {self.engine.OBJECT_WORD}(s) not copied ({KEY}): "
                f"{', '.join(names)}")
        if self.engine.EXCLUDES_DEFINITIONS:
            return line + f"; {self.b.env}'s own are left as they are"
        return line + (f"; {self.b.env}'s own rows of them are kept" if keeps_target else "")

    def strip(self, snapshot):
        """Given an engine snapshot (or None), return it without the data of the excluded objects."""
        return strip(snapshot, self.labels, self.engine.EXCLUDES_DEFINITIONS)

    def strip_record(self, last):
        """Given a database's sync-state record (or None), return it with every recorded base stripped."""
        if not last or not self.labels:
            return last
        return {**last, "base": {env: self.strip(snap) for env, snap in last.get("base", {}).items()}}

    def refuse(self, label, parts):
        """Raise GuardError if a copy of `label` (moving `parts`) would move an excluded object."""
        hit = [part for part in parts if part in self.labels]
        if hit:
            raise GuardError(f"{label} is not copied: {where(self.a, self.b)} ({', '.join(self.patterns)}) matches "
                             f"{', '.join(hit)}; nothing was changed")


def strip(snapshot, labels, definitions=False):
    """Given a snapshot ({'tables', 'schema', 'sequences'}, engines/base.py) and labels, return a copy
    without those objects' data: their `tables` entries and the sequences they own go; their `schema`
    entries stay, so that a change of definition still counts (unless `definitions`: the engine
    leaves the objects out entirely)."""
    if snapshot is None or not labels:
        return snapshot
    out = dict(snapshot)
    out["tables"] = {k: v for k, v in snapshot["tables"].items() if k not in labels}
    if definitions:
        out["schema"] = {k: v for k, v in snapshot.get("schema", {}).items() if k not in labels}
    out["sequences"] = {k: v for k, v in snapshot.get("sequences", {}).items() if not (v and v[1] in labels)}
    return out
