"""TarGuard and safe extraction on real archives (GNU, pax and ustar formats), fed in odd chunk sizes."""

import io
import tarfile

import pytest

from tasks.code import GuardedExtract, TarGuard, UnsafeArchive, parity


def make_tar(members, fmt=tarfile.GNU_FORMAT):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, extra
                tar.addfile(info)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, extra
                tar.addfile(info)
            elif kind == "device":
                info.type = tarfile.CHRTYPE
                tar.addfile(info)
    return buf.getvalue()


def feed(data, chunk=777):
    guard = TarGuard(["app"])
    for i in range(0, len(data), chunk):
        guard.feed(data[i:i + chunk])
    return guard


LONG = "app/" + "deep/" * 40 + "file.txt"


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_clean_archives_pass_in_every_format(fmt):
    members = [("app", "dir", None), ("app/a.py", "file", b"x" * 1500), ("app/link", "symlink", "a.py"),
               ("app/sub/up", "symlink", "../a.py"), ("app/hard", "hardlink", "app/a.py")]
    if fmt != tarfile.USTAR_FORMAT:
        members.append((LONG, "file", b"long name"))
    assert feed(make_tar(members, fmt)).members == len(members)


@pytest.mark.parametrize("member, message", [
    (("../evil", "file", b"x"), "absolute path or '..'"),
    (("app/../../evil", "file", b"x"), "absolute path or '..'"),
    (("/etc/cron.d/evil", "file", b"x"), "absolute path or '..'"),
    (("other/x", "file", b"x"), "outside the configured folders"),
    (("app/link", "symlink", "/etc/passwd"), "points out of the tree"),
    (("app/link", "symlink", "../../etc"), "points out of the tree"),
    (("app/hard", "hardlink", "/etc/shadow"), "points out of the tree"),
    (("app/dev", "device", None), "device"),
    (("app/" + "x" * 120 + "/../../../evil", "file", b"x"), "absolute path or '..'"),
])
def test_unsafe_members_are_refused(member, message):
    data = make_tar([("app/ok", "file", b"fine"), member], tarfile.PAX_FORMAT if len(member[0]) > 100 else tarfile.GNU_FORMAT)
    with pytest.raises(UnsafeArchive, match=message):
        feed(data, chunk=100)


def test_guarded_extract_refuses_before_writing_and_leaves_tree(tmp_path):
    root = tmp_path / "mirror"
    (root / "app").mkdir(parents=True)
    (root / "app" / "keep.txt").write_text("local")
    sink = GuardedExtract(root, ["app"])
    with pytest.raises(UnsafeArchive):
        sink.write(make_tar([("app/new.txt", "file", b"n"), ("app/l", "symlink", "/etc")]))
    sink.discard()
    assert sorted(p.name for p in root.iterdir()) == ["app"]
    assert (root / "app" / "keep.txt").read_text() == "local" and not (root / "app" / "new.txt").exists()
    assert not (tmp_path / "etc").exists()


def test_guarded_extract_swaps_in_a_clean_archive(tmp_path):
    root = tmp_path / "mirror"
    (root / "app").mkdir(parents=True)
    (root / "app" / "ghost.txt").write_text("ghost")
    sink = GuardedExtract(root, ["app"])
    sink.write(make_tar([("app", "dir", None), ("app/new.txt", "file", b"new")]))
    sink.check()
    sink.swap_in()
    assert sorted(p.name for p in (root / "app").iterdir()) == ["new.txt"]
    assert sorted(p.name for p in root.iterdir()) == ["app"]


def test_parity_lists_ghost_missing_changed():
    assert parity({"a": "1", "b": "2", "g": "9"}, {"a": "1", "b": "3", "m": "4"}) == {
        "ghost": ["g"], "missing": ["m"], "changed": ["b"]}
