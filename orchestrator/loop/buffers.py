"""The suggestion buffer (docs/algorithm.md, "Trust"): the last executed transitions of one peer,
each tagged with the peer that was followed. A numpy ring buffer, so sampling a batch is one
fancy-index instead of a Python loop over a deque (the reference uses `random.sample` on a deque)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class Batch:
    obs: np.ndarray
    followed: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray

    def __len__(self) -> int:
        return len(self.followed)


class SuggestionBuffer:
    def __init__(self, capacity: int, obs_shape: tuple[int, ...]) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be > 0")
        self.capacity = capacity
        self.obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=np.float32)
        self.followed = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float64)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.size = 0
        self.pos = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, followed: int, reward: float, next_obs: np.ndarray, terminated: bool) -> None:
        i = self.pos
        self.obs[i], self.next_obs[i] = obs, next_obs
        self.followed[i], self.rewards[i], self.terminated[i] = followed, reward, terminated
        self.pos = (self.pos + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, rng: np.random.Generator, k: int) -> Batch | None:
        """k entries without replacement; None until the buffer holds more than k (as the reference)."""
        idx = self.draw(rng, k)
        return None if idx is None else self.take(idx)

    def draw(self, rng: np.random.Generator, k: int, pending: bool = False) -> np.ndarray | None:
        """The slots `sample` would take; with `pending`, as the buffer will stand once one more
        transition is added: that transition's slot is `pos` (the oldest entry's when full, which it
        replaces), so slot `pos` then stands for the pending transition."""
        size = min(self.size + pending, self.capacity)
        if k <= 0 or size <= k:
            return None
        return rng.choice(size, size=k, replace=False)

    def take(self, idx: np.ndarray) -> Batch:
        return Batch(self.obs[idx], self.followed[idx], self.rewards[idx], self.next_obs[idx], self.terminated[idx])

    def state(self) -> dict[str, np.ndarray | int]:
        return {"obs": self.obs, "next_obs": self.next_obs, "followed": self.followed, "rewards": self.rewards,
                "terminated": self.terminated, "size": self.size, "pos": self.pos}

    def restore(self, state: dict[str, Any]) -> None:
        for key in ("obs", "next_obs", "followed", "rewards", "terminated"):
            getattr(self, key)[...] = state[key]
        self.size, self.pos = int(state["size"]), int(state["pos"])
