"""`peerlearn bench reference --authors DIR --authors-python PY`: the authors' code itself as the
reference loop, beside our lock-step gRPC group on the same group (4 SAC peers, the paper's settings
from their Experiments.md: [150, 200] networks, gSDE, batch 256, tau 0.02, 8 gradient steps every 8
env steps, follow 10 steps, critic + trust + agent values).

Their code runs unchanged in its own venv (benchmarks/authors_throughput.py times it from inside);
ours runs the same schedule (train_freq 8, gradient_steps 8) on gymnasium's v5 env of the same task
(theirs is gym 0.25's v4: the same MuJoCo model; the physics versions differ, mujoco 2.3 vs 3.x).
Only ratios measured within one invocation are compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

# Their env ids, env arguments and learning rates per task (Experiments.md, "Peer Learning" rows).
AUTHORS_TASKS = {
    "hopper": ("Hopper-v4", ["terminate_when_unhealthy=False"], "3e-4"),
    "walker2d": ("Walker2d-v4", ["terminate_when_unhealthy=False"], "3e-4"),
    "ant": ("Ant-v4", ["terminate_when_unhealthy=False"], "3e-4"),
    "halfcheetah": ("HalfCheetah-v4", [], "7.3e-4"),
}
EPISODE = 1000  # their epoch length with --min-epoch-length 0: one episode per peer per turn


def authors_args(task: str, peers: int, epochs: int, warmup: int, save_dir: str) -> list[str]:
    """run_peer.py's arguments: Experiments.md's peer-learning row, except a short budget, the same
    warm-up as ours (--buffer-start-size), no evaluation during the timed run, wandb off."""
    env_id, env_args, lr = AUTHORS_TASKS[task]
    return ["--save-name", "bench", "--job_id", "0", "--env", env_id, "--env_args", *env_args,
            "--agent-count", str(peers), "--batch-size", "256", "--buffer-size", "1000000",
            "--steps", str(epochs * EPISODE), "--buffer-start-size", str(warmup), "--gamma", "0.99",
            "--gradient_steps", "8", "--tau", "0.02", "--train_freq", "8", "--seed", "0",
            "--net-arch", "150", "200", "--follow-steps", "10", "--learning_rate", f"lambda x: {lr}",
            "--agents_to_store", "--T-decay", "0", "--mix-agents", "SAC", "--switch-ratio", "0",
            "--use-advantage", "True", "--epsilon", "0.2", "--T", "1", "--min-epoch-length", "0",
            "--sample-from-suggestions", "True", "--use-critic", "True", "--use-agent-value", "True",
            "--use-trust", "True", "--peers-sample-with-noise", "True", "--only-follow-peers", "False",
            "--max-peer-epochs", "10000000", "--eval-interval", str(10**9), "--wandb", "disabled",
            "--save-dir", save_dir]


def run_authors(authors_dir: Path, python: str, task: str, peers: int = 4, threads: int | None = None,
                epochs: int = 1, warmup: int = 100) -> float:
    """Agent-steps per second of their loop over every step past each peer's warm-up (`epochs` turns
    of one episode per peer). `threads=None` leaves torch's default (their code sets none); 1 pins it."""
    script = Path(__file__).with_name("authors_throughput.py")
    env = dict(os.environ)
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    with TemporaryDirectory(prefix="peerlearn-authors-") as tmp:
        proc = subprocess.run([python, str(script), str(authors_dir.resolve()), str(warmup), "--",
                               *authors_args(task, peers, epochs, warmup, tmp)],
                              env=env, capture_output=True, text=True, timeout=3600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-4000:])
        raise RuntimeError(f"the authors' code failed (exit {proc.returncode}); its stderr is above")
    timing = json.loads(lines[-1])
    return float(timing["agent_steps"]) / float(timing["seconds"])
