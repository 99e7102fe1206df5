"""Alternate prodmirror's `mirror.production` (code only: tar streamed over SSH through the safe-extraction
guard into a staging folder, swapped in, and kept as a snapshot) with the raw
`ssh HOST tar -C ROOT -cf - PATHS | tar -xf - -C DEST` over the same loopback sshd, on a tree of at least
20,000 files / 200 MB; print the median time ratio. Both extract into an empty folder each run.

usage: scripts/bench-mirror [--runs 3] [--files 20000] [--mb 200]
"""

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from benchlib import ops_repo, report, run_task, testbed  # noqa: E402 (benchlib puts the checkout on sys.path)

APPS = ["gamit_app", "gfa_app", "suplay_app", "spmo_website"]


def make_tree(root, files, megabytes):
    """Write `files` small source-like files and enough media to reach `megabytes` in all."""
    small_total = 0
    for i in range(files):
        folder = Path(root) / APPS[i % len(APPS)] / f"pkg{i // 400}"
        folder.mkdir(parents=True, exist_ok=True)
        body = (f"# module {i}\n" + "x = 1\n" * (200 + i % 900)).encode()
        (folder / f"mod{i}.py").write_bytes(body)
        small_total += len(body)
    media = Path(root) / APPS[0] / "media"
    media.mkdir(parents=True, exist_ok=True)
    left, n = megabytes * 1_000_000 - small_total, 0
    while left > 0:
        size = min(left, 8_000_000)
        (media / f"upload{n}.bin").write_bytes(os.urandom(size))
        left, n = left - size, n + 1
    for folder, _, names in os.walk(root):
        os.chmod(folder, 0o755)
        for name in names:
            os.chmod(os.path.join(folder, name), 0o644)


def run_raw(sshd, code_root, dest):
    shutil.rmtree(dest, ignore_errors=True)
    os.makedirs(dest)
    os.sync()  # start with the previous run's writes on disk: each timed run pays only for its own
    ssh = ["ssh", "-i", sshd.client_key, "-p", str(sshd.port), "-o", "StrictHostKeyChecking=no", "-o",
           "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", f"{sshd.user}@127.0.0.1",
           f"tar -C {code_root} -cf - {' '.join(APPS)}"]
    started = time.monotonic()
    src = subprocess.Popen(ssh, stdout=subprocess.PIPE)
    rc = subprocess.run(["tar", "-xf", "-", "-C", dest], stdin=src.stdout).returncode
    src.stdout.close()
    if src.wait() != 0 or rc != 0:
        raise SystemExit("raw pipe failed")
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()

    with testbed("prodmirror-bench-mirror-") as (user, base, _, sshd):
        code_root = os.path.join(base, "prod-code")
        print(f"generating {args.files} files, {args.mb} MB in all…", flush=True)
        make_tree(code_root, args.files, args.mb)
        count = sum(len(f) for _, _, f in os.walk(code_root))
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(code_root) for f in fs)
        print(f"tree: {count} files, {size / 1e6:.0f} MB")
        repo = ops_repo(Path(base) / "repo",
                        "environments:\n"
                        f"  production:\n    ssh: {{host: 127.0.0.1, user: {user}, port: {sshd.port}, "
                        f"key_filename: {sshd.client_key}}}\n"
                        f"    code: {{root: {code_root}, paths: [{', '.join(APPS)}]}}\n"
                        "  local:\n    code: {root: code}\n"
                        "mirror: {snapshots: snapshots, keep: 1}\n")
        raw, ours, peaks = [], [], []
        for i in range(args.runs):
            raw.append(run_raw(sshd, code_root, os.path.join(base, "raw-dest")))
            shutil.rmtree(repo / "code", ignore_errors=True)
            os.sync()
            seconds, peak = run_task(repo, "mirror.production", "--force")
            ours.append(seconds)
            peaks.append(peak)
            print(f"run {i + 1}: raw ssh|tar {raw[-1]:.2f} s · prodmirror {ours[-1]:.2f} s (peak RSS {peak:.0f} MB)",
                  flush=True)
        mirrored = sum(len(f) for _, _, f in os.walk(repo / "code"))
        print(f"files mirrored by prodmirror in the last run: {mirrored}")
        report(raw, ours, peaks, 1.15, "raw ssh|tar")


if __name__ == "__main__":
    main()
