"""How fast can K learners go when each is its own process on this machine's cores, with no advice and
no RPC at all? The compute limit of docs/performance.md assumes one learner's work divides perfectly
over the cores; a group of 4 peers on 2 cores time-slices 4 processes (plus the orchestrator). This
runs K = 1, 2, 4 copies of the compute-limit loop (HalfCheetah, SAC, the paper's schedule) at once,
started together after their warm-up, and prints their combined agent-steps per second. Run from the
repository root on an idle machine:

    PYTHONPATH=. .venv/bin/python benchmarks/studies/contention.py [STEPS] [EVERY]
"""

import os
import subprocess
import sys
import time

from orchestrator.config import usable_cores

# The compute limit's own loop (benchmarks/bench.py), each copy timed from the same instant.
CHILD = """
import sys
from benchmarks.bench import compute_limit
steps, every, start_at = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
print(compute_limit("halfcheetah", steps, every=every, start_at=start_at) * steps)
"""


def run(k: int, steps: int, every: int) -> float:
    start_at = time.time() + 8.0 + 2.0 * k  # after every copy's imports and warm-up
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": "."}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(steps), str(every), str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
             for _ in range(k)]
    seconds = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return sum(steps / s for s in seconds)


def main(steps: int, every: int) -> None:
    cores = usable_cores()
    rows = [(k, run(k, steps, every)) for k in (1, 2, 4, 1, 2, 4)]
    print(f"\n{steps} timed steps each, train_freq = gradient_steps = {every}, {cores} cores")
    print("| learners at once | agent-steps/s, all together | per learner |")
    print("|---|---|---|")
    for k, rate in rows:
        print(f"| {k} | {rate:.1f} | {rate / k:.1f} |")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400, int(sys.argv[2]) if len(sys.argv) > 2 else 8)
