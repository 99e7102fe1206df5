"""App code and media: archive on production (tar over SSH), safe extraction, nuke & pave, parity.

Extraction is safe while it streams: `TarGuard` reads every tar header as the bytes pass and refuses
an absolute path, a `..` component, a member outside the configured folders, a link that points out
of the tree, or a device, *before* that header reaches `tar -x`. `tar -x` writes into a staging
folder beside the code root; only a complete, clean archive is swapped in (one rename per app
folder), so a refused or interrupted archive leaves the local tree as it was.
"""

import fnmatch
import hashlib
import os
import posixpath
import shutil
from pathlib import Path

from .errors import ProdmirrorError
from .procs import LocalProc
from .transfer import End


class UnsafeArchive(ProdmirrorError):
    """A member of the archive could write outside the tree."""


def archive_argv(code):
    """Given an environment's `code` config, return the tar argv that writes its folders to stdout."""
    excludes = tuple(f"--exclude={pattern}" for pattern in code.get("exclude", []))
    return ("tar", "-C", code["root"], "-cf", "-") + excludes + ("--",) + tuple(code["paths"])


def extract_argv(dest):
    return ("tar", "-xf", "-", "-C", str(dest), "--no-same-owner")


class TarGuard:
    """A streaming validator of tar headers (ustar, GNU long names, pax). feed() raises UnsafeArchive."""

    def __init__(self, allowed):
        self.allowed = set(allowed)
        self.header = bytearray()
        self.skip = 0           # data bytes (with padding) of the current member still to pass
        self.collect = None     # bytearray collecting an L/K/x member's data
        self.collect_left = 0
        self.collect_kind = None
        self.skip_after_collect = 0
        self.next_name = self.next_link = None
        self.members = 0
        self.ended = False

    def feed(self, chunk):
        pos, size = 0, len(chunk)
        while pos < size and not self.ended:
            if self.collect is not None:
                take = min(self.collect_left, size - pos)
                self.collect += chunk[pos:pos + take]
                self.collect_left -= take
                pos += take
                if self.collect_left == 0:
                    self._collected()
                continue
            if self.skip:
                take = min(self.skip, size - pos)
                self.skip -= take
                pos += take
                continue
            take = min(512 - len(self.header), size - pos)
            self.header += chunk[pos:pos + take]
            pos += take
            if len(self.header) == 512:
                block, self.header = bytes(self.header), bytearray()
                self._block(block)

    def _block(self, block):
        if block == b"\0" * 512:
            self.ended = True  # end of archive: what follows is padding
            return
        kind = chr(block[156]) if block[156] else "0"
        size = _number(block[124:136])
        padded = (size + 511) // 512 * 512
        if kind in "LKx":
            self.collect, self.collect_left, self.collect_kind = bytearray(), size, kind
            self.skip_after_collect = padded - size
            if size == 0:
                self._collected()
            return
        if kind == "g":
            self.skip = padded
            return
        name = self.next_name or _text(block[0:100])
        if block[257:263] == b"ustar\x00" and block[345] and not self.next_name:
            name = f"{_text(block[345:500])}/{name}"
        link = self.next_link or _text(block[157:257])
        self.next_name = self.next_link = None
        self._check(name, kind, link)
        self.members += 1
        self.skip = padded  # links and folders have size 0

    def _collected(self):
        data, kind = bytes(self.collect), self.collect_kind
        self.collect, self.skip = None, self.skip_after_collect
        if kind == "L":
            self.next_name = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        elif kind == "K":
            self.next_link = data.split(b"\0", 1)[0].decode("utf-8", "replace")
        else:
            for record in _pax_records(data):
                key, _, value = record.partition("=")
                if key == "path":
                    self.next_name = value
                elif key == "linkpath":
                    self.next_link = value

    def _check(self, name, kind, link):
        clean = name.rstrip("/")
        parts = [p for p in clean.split("/") if p not in ("", ".")]
        if name.startswith("/") or ".." in clean.split("/"):
            raise UnsafeArchive(f"unsafe archive: member {name!r} has an absolute path or '..'; nothing was extracted")
        if not parts or parts[0] not in self.allowed:
            raise UnsafeArchive(f"unsafe archive: member {name!r} is outside the configured folders "
                                f"({', '.join(sorted(self.allowed))}); nothing was extracted")
        if kind in "346":
            raise UnsafeArchive(f"unsafe archive: member {name!r} is a device or fifo; nothing was extracted")
        if kind in "12":
            base = posixpath.dirname("/".join(parts)) if kind == "2" else ""
            target = posixpath.normpath(posixpath.join(base, link))
            if link.startswith("/") or target == ".." or target.startswith("../") or \
                    target.split("/")[0] not in self.allowed:
                raise UnsafeArchive(f"unsafe archive: link {name!r} -> {link!r} points out of the tree; "
                                    "nothing was extracted")


def _number(field):
    if field[0] & 0x80:  # GNU base-256 for large sizes
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip() or b"0"
    return int(text, 8)


def _text(field):
    return field.split(b"\0", 1)[0].decode("utf-8", "replace")


def _pax_records(data):
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        length = int(data[pos:space])
        yield data[space + 1:pos + length - 1].decode("utf-8", "replace")
        pos += length


class GuardedExtract(End):
    """A sink for the pump: validate each chunk with TarGuard, then hand it to `tar -x` in a staging folder."""

    def __init__(self, root, paths):
        self.root, self.paths = Path(root), list(paths)
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging = self.root / f".prodmirror-staging-{os.getpid()}"
        shutil.rmtree(self.staging, ignore_errors=True)
        self.staging.mkdir()
        self.guard = TarGuard(self.paths)
        self.tar = LocalProc("local", extract_argv(self.staging))

    def write(self, chunk):
        self.guard.feed(chunk)  # raises before tar sees an unsafe header
        self.tar.write(chunk)

    def check(self):
        """Close tar's input; raise if tar failed or the archive was empty."""
        self.tar.check()
        if not self.guard.members:
            raise ProdmirrorError("the archive holds no files; nothing was changed")

    def swap_in(self):
        """Replace each app folder of the local tree with the extracted one (renames); undo all on failure."""
        moved, placed = [], []
        try:
            for path in self.paths:
                live, new = self.root / path, self.staging / path
                if live.exists() or live.is_symlink():
                    old = self.staging / f".old-{path}"
                    os.rename(live, old)
                    moved.append((old, live))
                if new.exists():
                    os.rename(new, live)
                    placed.append(live)
        except OSError:
            for live in placed:
                shutil.rmtree(live, ignore_errors=True)
            for old, live in moved:
                os.rename(old, live)
            raise
        self.discard()

    def discard(self):
        """Remove the staging folder (and stop tar): the local tree stays as it was."""
        self.tar.kill()
        shutil.rmtree(self.staging, ignore_errors=True)

    kill = discard


def _excluded(relpath, patterns):
    parts = relpath.split("/")
    return any(fnmatch.fnmatch(part, pat) for part in parts for pat in patterns)


def local_checksums(root, paths, exclude):
    """Return {relative path: sha256} of the regular files under root/paths, honouring `exclude`."""
    out = {}
    root = Path(root)
    for path in paths:
        for folder, dirs, files in os.walk(root / path):
            rel_folder = os.path.relpath(folder, root)
            dirs[:] = [d for d in dirs if not _excluded(f"{rel_folder}/{d}", exclude)]
            for name in files:
                rel = os.path.normpath(f"{rel_folder}/{name}")
                full = Path(folder) / name
                if full.is_symlink() or _excluded(rel, exclude):
                    continue
                digest = hashlib.sha256()
                with open(full, "rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
                out[rel] = digest.hexdigest()
    return out


REMOTE_SUMS = 'cd "$1" && shift && find "$@" -type f -print0 | xargs -0 -r sha256sum'


def remote_checksums(host, code):
    """Return {relative path: sha256} of the files under code.root/paths on `host` (find + sha256sum)."""
    existing = code["paths"]
    out = host.run(["sh", "-c", REMOTE_SUMS, "sh", code["root"], *existing]).stdout
    sums = {}
    for line in out.splitlines():
        digest, _, rel = line.partition("  ")
        rel = os.path.normpath(rel)
        if rel and not _excluded(rel, code.get("exclude", [])):
            sums[rel] = digest
    return sums


def parity(local, remote):
    """Given two checksum maps, return {'ghost': local only, 'missing': remote only, 'changed': both but differ}."""
    return {"ghost": sorted(set(local) - set(remote)), "missing": sorted(set(remote) - set(local)),
            "changed": sorted(k for k in set(local) & set(remote) if local[k] != remote[k])}
