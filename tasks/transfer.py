"""Move bytes from a source into sinks (a restore's stdin, a backup file, a safe extractor) in constant
memory, and the one way a dump reaches a restore (`stream_into`).

Every end of a transfer has the same small interface (`End`): a source is read(), a sink is
write()n; both check() (wait for the end of their work, raise if it failed) and kill() (stop now, a
failure elsewhere). Processes (procs.py), files and the tar extractor (code.py) are all ends, so the
code that moves bytes never asks what kind of end it holds.
"""

import hashlib
import os
import time
from dataclasses import dataclass

from . import critical
from .errors import ProdmirrorError
from .ui import Progress

CHUNK = 1 << 20


class End:
    """One end of a transfer. Subclasses give read() (a source) or write() (a sink), or both."""

    def read(self, n=CHUNK):
        raise NotImplementedError(f"{type(self).__name__} is not a source")

    def write(self, data):
        raise NotImplementedError(f"{type(self).__name__} is not a sink")

    def check(self):
        """Wait for the end of this end's work; raise (one line) if it failed."""

    def kill(self):
        """Stop at once, because something else failed; never raises."""

    seen = None  # a dump's: the snapshot of what it dumped, when the engine can tell (engines/base.py)


@dataclass
class Moved:
    bytes: int
    sha256: str
    seconds: float
    broken_sink: bool = False  # a sink stopped taking bytes (it died, the disk is full): see `error`
    error: OSError = None


class FileSink(End):
    """Write to `path` as `path.part`; check() fsyncs and renames it into place, kill() removes it."""

    def __init__(self, path):
        self.path = path
        self.part = f"{path}.part"
        self._fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def check(self):
        os.fsync(self._fd)
        os.close(self._fd)
        self._fd = None
        os.replace(self.part, self.path)

    def kill(self):
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if os.path.exists(self.part):
            os.unlink(self.part)


class FileSource(End):
    """A file read in chunks; check() and kill() close it."""

    def __init__(self, path):
        self._f = open(path, "rb", buffering=0)

    def read(self, n=CHUNK):
        return self._f.read(n)

    def check(self):
        self._f.close()

    kill = close = check


def pump(source, sinks, progress=None):
    """Given a readable source and writable sinks, copy everything across; return what moved.

    A sink that breaks (BrokenPipeError/OSError from a dead restore) stops the copy: the result says
    so and the caller reads the sink's exit code for the reason.
    """
    digest, moved, started = hashlib.sha256(), 0, time.monotonic()
    for chunk in iter(lambda: source.read(CHUNK), b""):
        digest.update(chunk)
        moved += len(chunk)
        try:
            for sink in sinks:
                sink.write(chunk)
        except OSError as exc:
            return Moved(moved, digest.hexdigest(), time.monotonic() - started, broken_sink=True, error=exc)
        if progress:
            progress.advance(len(chunk))
    return Moved(moved, digest.hexdigest(), time.monotonic() - started)


def stream_into(source, restore, label, commit=True):
    """Pump `source` (an End) into `restore` (an engines.base.Restore); return what moved. With
    `commit`, make it live (restore.commit() then cleanup()); without, the caller commits it
    (see restore_all), and must abort() it if anything else fails first.

    A source that fails (killed dump, lost connection) or a restore that fails leaves the target as it
    was: both ends are killed, the restore is aborted, and nothing is swapped in or committed. The
    error names the end that failed first: a sink that stopped reading is asked why before the
    source, whose own failure (killed by us, or a broken pipe) would only be a consequence.
    """
    try:
        sink = restore.begin()
    except BaseException:
        source.kill()  # started for nothing: never leave it running
        raise
    try:
        with Progress(label) as progress:
            moved = pump(source, [sink], progress)
        if moved.broken_sink:
            source.kill()
            sink.check()  # raises with the sink's own reason (killed, server gone, disk full)
            raise ProdmirrorError(f"{label}: the restore stopped reading before the end")
        source.check()
        restore.finish()
        sink.check()
        if commit:
            restore.before_commit()
            restore.commit()
    except BaseException:
        source.kill()
        sink.kill()
        restore.abort()
        raise
    if commit:
        restore.cleanup()
    return moved


def restore_all(jobs, before_commit=None):
    """Given [(start_source, restore, label)], stream every source into its restore and only once all
    have arrived make them live together; return [Moved]. `start_source()` starts that dump when its
    turn comes.

    Nothing is swapped in while any is still streaming: a failure or an interruption (even in the
    last one) aborts every restore, and every target stays as it was. `before_commit()`, if given,
    runs once all have arrived (a last check: it raises to abort them all), then each restore's own
    before_commit() (its last work on the arrived data, which may raise too). If a swap itself fails,
    the ones already swapped are undone, newest first.
    """
    arrived, moved = [], []
    try:
        for start_source, restore, label in jobs:
            moved.append(stream_into(start_source(), restore, label, commit=False))
            arrived.append(restore)
        if before_commit:
            before_commit()
        for restore in arrived:
            restore.before_commit()
    except BaseException:
        for restore in arrived:
            restore.abort()
        raise
    swapped = []
    with critical.section():  # a signal now waits: the swaps are made, or undone, as one step
        try:
            for restore in arrived:
                restore.commit()
                swapped.append(restore)
        except BaseException:
            for restore in reversed(swapped):
                restore.undo()
            for restore in arrived[len(swapped):]:
                restore.abort()
            raise
        for restore in arrived:
            restore.cleanup()
    return moved


def sha256_file(path):
    """Given a file path, return its sha256 hex digest, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
