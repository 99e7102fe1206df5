"""Several runs taking over a stale lock at the same instant: exactly one holds it, every time."""

import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTENDER = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from tasks.guard import Lock
from tasks.errors import GuardError
state, start = Path(sys.argv[2]), float(sys.argv[3])
while time.time() < start:
    pass
try:
    lock = Lock(state, "production", "race").acquire()
except GuardError:
    print(json.dumps({"held": False}))
    sys.exit(0)
begin = time.time()
time.sleep(0.3)
end = time.time()
lock.release()
print(json.dumps({"held": True, "begin": begin, "end": end}))
"""


def test_exactly_one_holder_when_runs_race_for_a_stale_lock(tmp_path):
    trials, runners, overlaps, holders = 8, 6, 0, []
    for trial in range(trials):
        state = tmp_path / f"t{trial}"
        (state / "locks").mkdir(parents=True)
        dead = subprocess.Popen(["true"])
        dead.wait()
        # What a SIGKILLed run leaves: its lock file, naming a pid that is gone.
        (state / "locks" / "production.lock").write_text(json.dumps({"pid": dead.pid, "task": "killed run"}))
        start = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", CONTENDER, str(ROOT), str(state), str(start)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(runners)]
        results = [json.loads(p.communicate(timeout=30)[0]) for p in procs]
        held = sorted((r["begin"], r["end"]) for r in results if r["held"])
        holders.append(len(held))
        overlaps += sum(1 for (_, end), (begin, _) in zip(held, held[1:]) if begin < end)
    assert overlaps == 0, f"two runs held the lock at once in {overlaps} of {trials} trials"
    assert all(n >= 1 for n in holders), holders
