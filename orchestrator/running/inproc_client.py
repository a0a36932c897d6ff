"""`InprocPeerClient`: the group loop's client for a `Peer` object in this process (no sockets, no
encoding): the baseline for RPC overhead, the fast path for tests and a quick mode for users. It is
wiring, not loop: the loop's modules import no peer code (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TypeVar

import numpy as np

from orchestrator.loop.client import PeerCallError, PeerClient
from peer_service.peer import Peer
from peer_service.validation import status_of
from peerlearn.messages import EvalResult, PeerInfo, StepResult

R = TypeVar("R")


class InprocPeerClient(PeerClient):
    """A peer object in this process. Calls run inline, in the order the loop makes them, so a
    seeded in-process run is exactly reproducible."""

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.address = f"inproc:{peer.config.peer_id}"

    def _call(self, name: str, fn: Callable[..., R], *args: object) -> R:
        self.calls += 1
        try:
            return fn(*args)
        except Exception as err:
            # the code the peer's server would answer with (one mapping for both transports); a bug
            # in the peer is no answer: raised as it is, where a server would log it and say INTERNAL
            status = status_of(err)
            if status is None:
                raise
            code, message = status
            raise PeerCallError(self.address, name, code.name, message) from err

    async def get_info(self) -> PeerInfo:
        return self._call("GetInfo", self.peer.info)

    async def suggest(self, states: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return self._call("Suggest", self.peer.suggest, states, deterministic)

    async def evaluate(self, q_states: np.ndarray, q_actions: np.ndarray,
                       v_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self._call("Evaluate", self.peer.evaluate, q_states, q_actions, v_states)

    async def reset(self, seed: int | None) -> tuple[np.ndarray, int]:
        return self._call("Reset", self.peer.reset, seed)

    async def step(self, step_id: int, action: np.ndarray | None, v_states: np.ndarray | None = None,
                   next_observation_rows: Collection[int] = ()) -> StepResult:
        return self._call("Step", self.peer.step, step_id, action, v_states, next_observation_rows)

    async def run_evaluation(self, episodes: int, seed: int) -> EvalResult:
        return self._call("RunEvaluation", self.peer.run_evaluation, episodes, seed)

    async def save(self, step_id: int, tag: str = "") -> tuple[str, str]:
        return self._call("Save", self.peer.save, step_id, tag)

    async def load(self, tag: str = "") -> tuple[str, int]:
        return self._call("Load", self.peer.load, tag)
