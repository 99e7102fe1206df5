"""Shared by the benchmarks: a throwaway ops repo using this prodmirror, a timed run of one task with
the prodmirror process's peak memory (VmHWM), and the closing report of medians and ratios."""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def ops_repo(folder, invoke_yaml):
    """Make folder an ops repo: tasks.py and tasks/ linked to this checkout, the given invoke.yaml."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tasks.py").symlink_to(ROOT / "tasks.py")
    (folder / "tasks").symlink_to(ROOT / "tasks")
    (folder / "invoke.yaml").write_text(invoke_yaml)
    return folder


def run_task(repo, *args):
    """Run `inv ARGS` in repo; return (seconds, peak RSS in MB of that process). Exit on failure.

    The time is taken when the process ends (a wait, not a poll); a thread samples its VmHWM meanwhile."""
    started = time.monotonic()
    proc = subprocess.Popen([str(ROOT / ".venv/bin/python"), "-m", "invoke", *args], cwd=repo,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            try:
                with open(f"/proc/{proc.pid}/status") as status:
                    for line in status:
                        if line.startswith("VmHWM:"):
                            peak[0] = max(peak[0], int(line.split()[1]))
            except OSError:
                pass
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stderr = proc.stderr.read()
    proc.wait()
    elapsed = time.monotonic() - started
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"prodmirror failed: {stderr}")
    return elapsed, peak[0] / 1024


def report(raw, ours, peaks, target, what="raw"):
    """Print the medians, the ratio against its target, and the peak memory."""
    ratio = statistics.median(ours) / statistics.median(raw)
    print(f"\nmedian {what:<14}: {statistics.median(raw):.2f} s")
    print(f"median prodmirror    : {statistics.median(ours):.2f} s")
    print(f"ratio prodmirror/{what}: {ratio:.3f} (target <= {target:.2f})  {'OK' if ratio <= target else 'OVER TARGET'}")
    print(f"peak RSS of the prodmirror process: {max(peaks):.0f} MB")
    return ratio


@contextmanager
def testbed(prefix, clusters=()):
    """Yield (user, base, {name: Cluster}, sshd): throwaway clusters and a loopback sshd, all stopped afterwards."""
    from tasks.sandbox import owned_dir, service_user
    from tasks.sandbox.postgres import Cluster
    from tasks.sandbox.sshd import SSHServer

    user, uid, gid = service_user()
    base = tempfile.mkdtemp(prefix=prefix)
    owned_dir(base, uid, gid)
    os.chmod(base, 0o755)
    started = {}
    sshd = None
    try:
        for name in clusters:
            started[name] = Cluster(base, name, uid, gid).init().start()
        sshd = SSHServer(base, user, uid, gid).prepare().start()
        yield user, base, started, sshd
    finally:
        if sshd:
            sshd.stop()
        for cluster in started.values():
            cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
