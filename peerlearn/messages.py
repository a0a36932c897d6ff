"""Plain-Python views of the protocol messages, shared by peers, clients and the in-process transport.

The orchestrator and the peer service both work with these dataclasses; only the gRPC layer converts
them to and from `peerlearn.v1` protobufs, all of it in peerlearn/wire.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np


@dataclass(frozen=True)
class Capabilities:
    advises: bool = True
    evaluates: bool = True
    acts: bool = True
    learns: bool = True
    values_in_step: bool = False
    checkpoints: bool = True  # answers Save/Load (only a learner is asked); on the wire unset = learns


@dataclass
class PeerInfo:
    protocol_version: str
    peer_id: str
    language: str
    implementation: str
    env_id: str
    observation_space: gym.Space[Any]
    action_space: gym.Space[Any]
    capabilities: Capabilities
    gamma: float = 0.99
    warmup_steps: int = 0
    last_step_id: int = 0
    episode_active: bool = False


@dataclass
class StepResult:
    step_id: int
    action: np.ndarray
    reward: float
    next_observation: np.ndarray
    terminated: bool
    truncated: bool
    episode_return: float | None = None
    episode_length: int | None = None
    reset_observation: np.ndarray | None = None
    replayed: bool = False
    gradient_steps: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    v_values: np.ndarray | None = None  # values requested with the Step (capabilities.values_in_step)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    exact: bool

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns)) if self.returns else float("nan")
