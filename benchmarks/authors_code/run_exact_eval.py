"""Run the authors' `run_peer.py` (kramerlab/PeerLearning, commit cc4d51d) unchanged, adding only the
evaluation peerlearn uses, so that its numbers sit beside ours in docs/results.md.

Runs in the authors' own venv (Python 3.11, gym 0.25.2, stable-baselines3 1.5.0; recipe in
results/authors-code/README.md), from their checkout:

    python run_exact_eval.py AUTHORS_DIR OUT_CSV -- <run_peer.py arguments>

Their code reports evaluations only to wandb (10 random goals per evaluation). This wrapper patches
their `PeerEvalCallback._on_step` (callbacks.py) so that, at the peer's own step 1 and every
EXACT_EVERY own steps, each peer's deterministic policy is also rolled out once from each of the 80
goals of Room-21, as peerlearn's exact evaluation does, and appends `peer,step,exact_return` to
OUT_CSV. Nothing in their training is touched: the evaluation uses fresh env objects and the
models' `predict(..., deterministic=True)` (DQN: no random draws).
"""

from __future__ import annotations

import csv
import os
import runpy
import sys

import numpy as np

EXACT_EVERY = int(os.environ.get("EXACT_EVERY", "1000"))


def goals(size: int) -> list[np.ndarray]:
    """peerlearn's enumeration (peer_service/envs/room.py, goal_from_index): axis x side x coordinate."""
    out = []
    for index in range(4 * (size - 1)):
        axis, rest = divmod(index, 2 * (size - 1))
        side, coord = divmod(rest, size - 1)
        goal = np.zeros(2, dtype=np.int64)
        goal[axis] = side * (size - 1)
        goal[1 - axis] = coord
        out.append(goal)
    return out


def exact_return(model, env_id: str) -> float:  # noqa: ANN001
    import gym  # type: ignore[import-not-found]  # the authors' venv's (gym 0.25.2), not ours

    returns = []
    for goal in goals(21):
        env = gym.make(env_id)
        env.reset()
        room = env.unwrapped
        room.goal_location = goal.copy()
        obs = np.hstack((room.agent_location / (room.size - 1), room.goal_location / (room.size - 1)))
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, done, _ = env.step(int(action))
            total += reward
        returns.append(total)
    return float(np.mean(returns))


def main() -> None:
    authors_dir, out_csv = sys.argv[1], sys.argv[2]
    args = sys.argv[sys.argv.index("--") + 1:]
    env_id = args[args.index("--env") + 1]
    sys.path.insert(0, authors_dir)
    os.chdir(authors_dir)
    import callbacks  # type: ignore[import-not-found]  # their module, found on the path just set

    original = callbacks.PeerEvalCallback._on_step
    peer_of: dict[int, int] = {}  # id of a callback -> the peer's index

    def on_step(self) -> bool:  # noqa: ANN001
        result = original(self)
        if self.n_calls == 1 or self.n_calls % EXACT_EVERY == 0:
            peer = peer_of.setdefault(id(self), len(peer_of))
            with open(out_csv, "a", newline="") as f:
                csv.writer(f).writerow([peer, self.n_calls, exact_return(self.model, env_id)])
        return result

    callbacks.PeerEvalCallback._on_step = on_step
    sys.argv = ["run_peer.py", *args]
    runpy.run_path(os.path.join(authors_dir, "run_peer.py"), run_name="__main__")


if __name__ == "__main__":
    main()
