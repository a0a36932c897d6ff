"""The Room grid world of the peer learning paper, as a Gymnasium env (docs/algorithm.md, "The Room environment").

An L x L grid; the agent starts at the centre and must walk to a goal on the border and stay there.
Observation `[agent_pos / (L-1), goal_pos / (L-1)]` (4 floats in [0, 1]); actions 0..3 are
+x, -x, +y, -y (the reference's `d = a // 2`, `direction = a % 2`); moves into a wall leave the
agent in place. Reward 1.0 on every step that ends on the goal, -0.001 otherwise; reaching the goal
does not end the episode, the time limit (100 steps for L=21) truncates it.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

EPISODE_STEPS = {3: 20, 6: 50, 21: 100, 27: 150, 33: 250}
STEP_REWARD = -0.001
GOAL_REWARD = 1.0


class RoomEnv(gym.Env[np.ndarray, np.int64]):
    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 10}

    def __init__(self, size: int = 21, render_mode: str | None = None) -> None:
        if size < 2:
            raise ValueError(f"Room size must be >= 2, got {size}")
        self.size = int(size)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(4)
        self.start = np.array([self.size // 2, self.size // 2], dtype=np.int64)
        self.agent = self.start.copy()
        self.goal = np.zeros(2, dtype=np.int64)

    @property
    def num_goals(self) -> int:
        """Number of equally likely goal draws: axis (2) x side (2) x coordinate (L-1)."""
        return 4 * (self.size - 1)

    def goal_from_index(self, index: int) -> np.ndarray:
        """The goal of draw `index` in 0..num_goals-1, each as likely as in the random draw.

        The free coordinate runs over 0..L-2 only, so the corners are not alike: (0, 0) comes twice
        (once per axis), (L-1, 0) and (0, L-1) once, (L-1, L-1) never; 4(L-1) draws over 4(L-1)-1
        distinct cells (tests/test_room_env.py)."""
        axis, rest = divmod(int(index), 2 * (self.size - 1))
        side, coord = divmod(rest, self.size - 1)
        goal = np.zeros(2, dtype=np.int64)
        goal[axis] = side * (self.size - 1)
        goal[1 - axis] = coord
        return goal

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.agent = self.start.copy()
        if options and "goal_index" in options:
            self.goal = self.goal_from_index(options["goal_index"])
        else:
            # Same draw as the reference: both coordinates in 0..L-2, then one axis to a wall.
            self.goal = self.np_random.integers(0, self.size - 1, size=2)
            axis = int(self.np_random.integers(0, 2))
            self.goal[axis] = int(self.np_random.choice([0, self.size - 1]))
        return self._observation(), {}

    def step(self, action: Any):
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        axis, direction = divmod(int(action), 2)
        delta = 1 if direction == 0 else -1
        self.agent[axis] = int(np.clip(self.agent[axis] + delta, 0, self.size - 1))
        on_goal = bool(np.array_equal(self.agent, self.goal))
        reward = GOAL_REWARD if on_goal else STEP_REWARD
        return self._observation(), reward, False, False, {"on_goal": on_goal}

    def _observation(self) -> np.ndarray:
        return (np.concatenate([self.agent, self.goal]) / (self.size - 1)).astype(np.float32)

    def render(self) -> Any:
        """ansi: the grid as text (A agent, G goal); rgb_array: an image, 8 pixels a cell (for videos)."""
        if self.render_mode == "rgb_array":
            cell = 8
            image = np.full((self.size * cell, self.size * cell, 3), 235, dtype=np.uint8)
            image[::cell, :], image[:, ::cell] = 200, 200  # grid lines
            for (x, y), colour in ((self.goal, (40, 160, 60)), (self.agent, (200, 60, 40))):
                image[y * cell + 1:(y + 1) * cell, x * cell + 1:(x + 1) * cell] = colour
            return image
        rows = [["." for _ in range(self.size)] for _ in range(self.size)]
        rows[self.goal[1]][self.goal[0]] = "G"
        rows[self.agent[1]][self.agent[0]] = "A"
        return "\n".join("".join(r) for r in rows)


def optimal_action(observation: np.ndarray, size: int, toward_mirror: bool = False) -> int:
    """The expert's move from an observation: close the larger gap to the goal first.

    With `toward_mirror` it walks to the paper's adversarial target instead: the goal coordinates
    replaced by `1 - round(goal)` (docs/algorithm.md, "The adversary experiment").
    """
    obs = np.asarray(observation, dtype=np.float64).reshape(-1)
    agent = np.rint(obs[:2] * (size - 1))
    goal = obs[2:4]
    target = (1.0 - np.round(goal)) if toward_mirror else goal
    diff = np.rint(target * (size - 1)) - agent
    if not diff.any():
        # On the target: push into the nearest wall (a no-op move that stays put).
        axis = int(np.argmin(np.minimum(agent, size - 1 - agent)))
        return axis * 2 + (1 if agent[axis] <= size - 1 - agent[axis] else 0)
    axis = int(np.argmax(np.abs(diff)))
    return axis * 2 + (0 if diff[axis] > 0 else 1)


def room_id(size: int) -> str:
    return f"peerlearn/Room-{size}-v0"


def register_rooms() -> None:
    for size, steps in EPISODE_STEPS.items():
        env_id = room_id(size)
        if env_id not in gym.registry:
            # gymnasium calls entry_point(**kwargs); its EnvCreator protocol types only a **kwargs signature
            gym.register(env_id, entry_point=RoomEnv,  # type: ignore[arg-type]
                         max_episode_steps=steps, kwargs={"size": size})
