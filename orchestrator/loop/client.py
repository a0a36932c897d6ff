"""What the group loop needs of a peer: one async client interface (`PeerClient`), whatever carries the
calls. The transports live with the wiring that picks one (orchestrator/running/grpc_client.py for gRPC,
orchestrator/running/inproc_client.py for a peer object in this process); the loop cannot tell them apart, and every
failure of either surfaces as `PeerCallError`.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Collection

import numpy as np

from peerlearn.messages import EvalResult, PeerInfo, StepResult


class PeerCallError(Exception):
    """A call that did not give a usable reply: the peer abstains from this round."""

    def __init__(self, peer: str, call: str, code: str, message: str) -> None:
        super().__init__(f"{peer} {call}: {code}: {message}")
        self.peer, self.call, self.code, self.message = peer, call, code, message


class PeerClient(abc.ABC):
    address: str
    calls: int = 0  # protocol calls made through this client (benchmarks check O(N) per group step)

    @abc.abstractmethod
    async def get_info(self) -> PeerInfo: ...

    @abc.abstractmethod
    async def suggest(self, states: np.ndarray, deterministic: bool = False) -> np.ndarray: ...

    @abc.abstractmethod
    async def evaluate(self, q_states: np.ndarray, q_actions: np.ndarray,
                       v_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    @abc.abstractmethod
    async def reset(self, seed: int | None) -> tuple[np.ndarray, int]: ...

    @abc.abstractmethod
    async def step(self, step_id: int, action: np.ndarray | None, v_states: np.ndarray | None = None,
                   next_observation_rows: Collection[int] = ()) -> StepResult:
        """v_states / next_observation_rows only for peers with capabilities.values_in_step. The rows
        are a Collection, not a Sequence: the loop sends a NumPy array of them (evidence.EvidenceDraw)."""

    @abc.abstractmethod
    async def run_evaluation(self, episodes: int, seed: int) -> EvalResult: ...

    @abc.abstractmethod
    async def save(self, step_id: int, tag: str = "") -> tuple[str, str]: ...

    @abc.abstractmethod
    async def load(self, tag: str = "") -> tuple[str, int]: ...

    async def check_health(self, timeout_s: float = 1.0) -> bool:
        """grpc.health.v1 says SERVING (in-process peers are always healthy)."""
        return True

    def redial(self) -> asyncio.Task[None] | None:
        """Start a fresh connection: in place when this returns (calls made after it use it); closing
        the old one continues in the returned task. None in process (nothing to re-dial)."""
        return None

    async def close(self) -> None:
        return None
