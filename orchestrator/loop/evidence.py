"""Trust and agent-value evidence (docs/algorithm.md, "Trust" and "Agent values"): which suggestion-buffer entries a
learner scores after a step, the states its critic must value, and the TD targets built from the
values that come back.

The values travel one of two ways:
- inside Step, for peers that advertise `values_in_step`: one call per peer and step instead of two.
  The draw is made before the Step, from the buffer as it will stand once that Step's transition is
  stored (the transition is *pending*); its next state is known only to the peer, so the rows that
  stand for it are named (`next_observation_rows`) and the peer values its own true next observation
  there;
- in an Evaluate at the start of the next step, for other peers (the buffer then already holds it).
Either way the entries come from the same buffer and are scored by the critic after that step's
gradient steps: the reference's "update after every env step". The draws use the group's RNG at
the same point of its sequence (after this step's choices, before the next step's), so a seeded run
gives the same evidence both ways (tests/test_evidence.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from orchestrator.loop.buffers import SuggestionBuffer
from orchestrator.loop.trust import td_targets


class Kind(StrEnum):
    """What a batch of evidence updates (a str: checkpoints store its value)."""

    TRUST = "trust"  # the valuing learner's own trust in the peers it followed (Eq. 4)
    AGENT_VALUES = "agent_values"  # the group's agent values, pooled over learners (Eq. 7)


@dataclass(frozen=True)
class Evidence:
    """TD targets of drawn suggestion-buffer entries, valued by one learner's own critic."""

    peer: int  # the learner whose critic valued the entries (and whose buffer they came from)
    kind: Kind
    followed: np.ndarray  # per entry, the peer that was followed
    targets: np.ndarray  # per entry, Eq. 8's target
    round: int = 0  # which agent-value update of the step it belongs to (one per acting peer's env step)

    def as_tuple(self) -> tuple[int, str, np.ndarray, np.ndarray, int]:
        """Plain values, for checkpoints (pickles of the orchestrator's state outlive this class)."""
        return self.peer, str(self.kind), self.followed.copy(), self.targets.copy(), self.round

    @classmethod
    def from_tuple(cls, saved: tuple[Any, ...]) -> Evidence:
        """Inverse of as_tuple; also reads the 4-tuples of checkpoints written before `round` existed."""
        peer, kind, followed, targets, *rest = saved
        return cls(int(peer), Kind(kind), np.asarray(followed).copy(), np.asarray(targets).copy(),
                   int(rest[0]) if rest else 0)


class EvidenceLedger:
    """The one owner of evidence between its valuation and its use.

    Evidence valued inside a Step (values_in_step peers) waits here for the next step; that step's
    Evaluate evidence joins it, and `take` hands both over in member order, as one Evaluate round
    would (Step replies arrive in any order). What waits is part of the orchestrator's checkpoint."""

    def __init__(self) -> None:
        self._deferred: list[Evidence] = []

    def defer(self, evidence: list[Evidence]) -> None:
        """Evidence valued inside this step's Step: used with the next step's."""
        self._deferred += evidence

    def take(self, fresh: list[Evidence]) -> list[Evidence]:
        """The evidence for this step's update: the deferred and `fresh`, in member order (stable, so a
        learner's trust batch stays before its agent-value batches)."""
        out = sorted(self._deferred + fresh, key=lambda e: e.peer)
        self._deferred = []
        return out

    def state(self) -> list[tuple[int, str, np.ndarray, np.ndarray, int]]:
        return [e.as_tuple() for e in self._deferred]

    def restore(self, saved: list[tuple[Any, ...]]) -> None:
        self._deferred = [Evidence.from_tuple(e) for e in saved]


@dataclass
class EvidenceDraw:
    """Buffer slots drawn for one learner, and the rows its critic must value for them."""

    draws: list[tuple[Kind, np.ndarray]]  # (kind, buffer slots), slots as the buffer stands after the step
    v_states: np.ndarray  # the next states of all drawn entries, then their states (an Evaluate's layout)
    next_observation_rows: np.ndarray  # rows of v_states that stand for the pending transition's next state


def draw_evidence(buffer: SuggestionBuffer, rng: np.random.Generator, batches: list[tuple[Kind, int]],
                  obs_now: np.ndarray | None = None) -> EvidenceDraw | None:
    """Draw `batches` (kind, size) from `buffer`. `obs_now` given: a transition from that state is
    pending (it will be stored at the buffer's next slot) and may be drawn; the peer fills in its
    next state (the rows are sent holding `obs_now`, a valid state, as a placeholder)."""
    pending = obs_now is not None
    draws = [(kind, idx) for kind, k in batches if (idx := buffer.draw(rng, k, pending)) is not None]
    if not draws:
        return None
    idx = np.concatenate([slots for _, slots in draws])
    next_states, states = buffer.next_obs[idx], buffer.obs[idx]  # fancy indexing copies
    rows = np.flatnonzero(idx == buffer.pos) if pending else np.zeros(0, dtype=np.int64)
    if len(rows):
        next_states[rows] = obs_now
        states[rows] = obs_now
    return EvidenceDraw(draws, np.concatenate([next_states, states]).astype(np.float32, copy=False), rows)


def evidence_from_values(draw: EvidenceDraw, values: np.ndarray, buffer: SuggestionBuffer, index: int,
                         gamma: float, advantage: bool) -> list[Evidence]:
    """TD targets of the drawn entries (Eq. 8) from the critic's values of `draw.v_states`. Call it
    once the pending transition, if any, is stored: rewards and terminations are read from the buffer."""
    total = len(draw.v_states) // 2
    v_next, v_now = values[:total], values[total:]
    out: list[Evidence] = []
    offset = 0
    rounds: dict[Kind, int] = {}
    for kind, slots in draw.draws:
        k = len(slots)
        batch = buffer.take(slots)
        targets = td_targets(batch.rewards, v_next[offset:offset + k], v_now[offset:offset + k],
                             batch.terminated, gamma, advantage)
        rounds[kind] = rounds.get(kind, -1) + 1  # the n-th batch of a kind feeds the n-th update
        out.append(Evidence(index, Kind(kind), batch.followed, targets, rounds[kind]))
        offset += k
    return out
