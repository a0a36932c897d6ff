"""A user's own environment, defined outside peerlearn: it registers itself when imported, so a group
names it with gymnasium's `module:EnvId` syntax (`--task tests.user_envs.corridor:Corridor-v0`)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class Corridor(gym.Env):
    """Walk right along a corridor of `length` cells: +1 at the end (the episode ends), -0.01 a step."""

    def __init__(self, length: int = 8) -> None:
        self.length = length
        self.observation_space = gym.spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.position = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.position / (self.length - 1)], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.position = 0
        return self._obs(), {}

    def step(self, action: Any):
        self.position = int(np.clip(self.position + (1 if int(action) == 1 else -1), 0, self.length - 1))
        done = self.position == self.length - 1
        return self._obs(), (1.0 if done else -0.01), done, False, {}


gym.register("Corridor-v0", entry_point=Corridor, max_episode_steps=40)
