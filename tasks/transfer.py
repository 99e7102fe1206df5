"""Stream bytes from a source process into sinks (a restore's stdin, a backup file) in constant memory.

The pump hashes what passes (sha256) and reports progress; it never holds more than one chunk.
"""

import hashlib
import os
import time
from dataclasses import dataclass

from .hosts import CHUNK


@dataclass
class Moved:
    bytes: int
    sha256: str
    seconds: float
    broken_sink: bool = False  # a sink stopped reading (it died): its exit code tells why


class FileSink:
    """Write to `path` as `path.part`, fsync, and rename into place only on commit()."""

    def __init__(self, path):
        self.path = path
        self.part = f"{path}.part"
        self._fd = os.open(self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    def write(self, data):
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]

    def commit(self):
        os.fsync(self._fd)
        os.close(self._fd)
        os.replace(self.part, self.path)

    def abort(self):
        try:
            os.close(self._fd)
        except OSError:
            pass
        if os.path.exists(self.part):
            os.unlink(self.part)


class FileSource:
    """A file read in chunks, shaped like a Proc's stdout so it can feed the pump."""

    def __init__(self, path):
        self._f = open(path, "rb", buffering=0)

    def read(self, n=CHUNK):
        return self._f.read(n)

    def close(self):
        self._f.close()


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
        except OSError:
            return Moved(moved, digest.hexdigest(), time.monotonic() - started, broken_sink=True)
        if progress:
            progress.advance(len(chunk))
    return Moved(moved, digest.hexdigest(), time.monotonic() - started)


def sha256_file(path):
    """Given a file path, return its sha256 hex digest, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()
