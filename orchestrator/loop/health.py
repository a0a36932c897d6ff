"""Peer health in the orchestrator: healthy -> suspect -> ejected -> rejoining -> healthy.

- A failed or invalid reply makes the peer *suspect*; it sits out the rest of that group step, so a
  frozen peer costs at most one deadline per step.
- A missed deadline also re-dials the peer: on a lossy link the old TCP connection can sit in
  exponential retransmission backoff (200 ms, 400 ms, ... 3.2 s) for several calls in a row, long
  enough to miss `eject_after` deadlines and be ejected although the peer is fine. A fresh connection
  starts with a fresh retransmission timer. A frozen or partitioned peer misses the deadline on the
  new connection too, so re-dialing does not delay its ejection.
- `eject_after` consecutive failing steps *eject* it: no more calls in the loop. A background
  probe asks its grpc.health.v1 service with backoff (capped at `probe_max_backoff_s`).
- When the probe sees it SERVING again it is *rejoining*; at the next step boundary the group
  re-handshakes, restores the peer's latest checkpoint if it lost its state (a restarted process),
  resets its episode and lets it back in (Group._rejoin).
- A peer ejected for *invalid replies* (NaN, wrong shapes, out-of-bounds actions) is quarantined
  (`quarantine_steps`, doubling per strike) before it is probed again, and banned for the run after
  `ban_after` strikes: a liar answers health checks perfectly well.
- Quorum: with fewer than `quorum` usable acting peers, `below_quorum = "pause"` waits (up to
  `pause_timeout_s`, then the run stops cleanly with an error); "continue" lets the remaining peers
  go on alone. With no usable acting peer at all the group always waits: it never spins or hangs.

The monitor owns every peer's health record. It knows the peers only by index, their clients (to
re-dial and probe) and a clock (the group step); it tells its owner about each change through
`on_event` and never touches the group's own state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from orchestrator.config import RunConfig
from orchestrator.loop.client import PeerClient
from peerlearn.settings import RunStopped

log = logging.getLogger("peerlearn.orchestrator")

HEALTHY, SUSPECT, EJECTED, REJOINING, BANNED = "healthy", "suspect", "ejected", "rejoining", "banned"


class QuorumLost(RunStopped):
    """Too few usable acting peers for longer than pause_timeout_s."""


@dataclass
class PeerHealth:
    """One peer's health record."""

    state: str = HEALTHY
    consecutive_failures: int = 0
    failed_this_step: bool = False
    invalid_streak: bool = False  # the current failing streak includes invalid replies
    strikes: int = 0  # ejections for invalid replies (quarantined, then banned)
    quarantine_until: int = 0  # group step before which an ejected liar is not probed


class HealthMonitor:
    def __init__(self, config: RunConfig, clients: Sequence[PeerClient], names: Sequence[str],
                 acts: Sequence[bool], clock: Callable[[], int],
                 on_event: Callable[[int, str], None] | None = None) -> None:
        self.clients, self.names, self.acts = list(clients), list(names), list(acts)
        self.clock = clock  # the group step, for quarantines and event records
        self.on_event = on_event
        self.peers = [PeerHealth() for _ in self.clients]
        self.eject_after = config.eject_after
        self.redial_on_timeout = config.redial_on_timeout
        self.quorum = config.quorum
        self.below_quorum = config.below_quorum
        self.pause_timeout_s = config.pause_timeout_s
        self.probe_max_backoff_s = config.probe_max_backoff_s
        self.quarantine_steps = config.quarantine_steps
        self.ban_after = config.ban_after
        self._probes: dict[int, asyncio.Task[None]] = {}
        self.redials = 0  # connections re-dialed after a missed deadline (reported by the netns test)
        self.events: list[tuple[float, int, str, str]] = []  # (time, group step, peer, event)

    # ------------------------------------------------------------------ queries
    def state(self, i: int) -> str:
        return self.peers[i].state

    def usable(self, i: int) -> bool:
        h = self.peers[i]
        return h.state in (HEALTHY, SUSPECT) and not h.failed_this_step

    def rejoining(self) -> list[int]:
        return [i for i, h in enumerate(self.peers) if h.state == REJOINING]

    # ------------------------------------------------------------------ reports from the loop
    def on_success(self, i: int) -> None:
        h = self.peers[i]
        if h.state == SUSPECT and not h.failed_this_step:
            self._event(i, "healthy")
            h.state = HEALTHY
        if not h.failed_this_step:
            h.consecutive_failures, h.invalid_streak = 0, False

    def on_failure(self, i: int, invalid: bool = False, timed_out: bool = False) -> None:
        h = self.peers[i]
        if h.failed_this_step or h.state in (EJECTED, REJOINING, BANNED):
            return
        h.failed_this_step = True
        h.consecutive_failures += 1
        h.invalid_streak = h.invalid_streak or invalid
        if h.consecutive_failures >= self.eject_after:
            self.eject(i)
            return
        if h.state == HEALTHY:
            h.state = SUSPECT
            self._event(i, "suspect")
        if timed_out and self.redial_on_timeout:
            self._redial(i)

    def _redial(self, i: int) -> None:
        """A fresh connection for a peer that missed a deadline (see the module docstring)."""
        # A synchronous swap: the next call already uses the new connection; the client closes the old.
        if self.clients[i].redial() is not None:
            self.redials += 1

    def eject(self, i: int) -> None:
        """Take the peer out of the loop. A peer ejected for invalid replies answers its health check
        perfectly well, so it is not re-admitted on that alone: it is quarantined for
        quarantine_steps * 2^(strikes-1) group steps, and banned for the run after ban_after strikes."""
        h = self.peers[i]
        h.state = EJECTED
        if h.invalid_streak:
            h.strikes += 1
            if h.strikes >= self.ban_after:
                h.state = BANNED
                self._event(i, f"banned (invalid replies, {h.strikes} strikes)")
                return
            quarantine = self.quarantine_steps * 2 ** (h.strikes - 1)
            h.quarantine_until = self.clock() + quarantine
            self._event(i, f"ejected (invalid replies; quarantined {quarantine} steps)")
        else:
            self._event(i, "ejected")
        self._start_probe(i)

    def resync(self, i: int) -> None:
        """The peer answers but its state differs from ours: rejoin it at the next step boundary."""
        h = self.peers[i]
        if h.state != EJECTED:
            h.state = REJOINING
            self._event(i, "out of sync")

    def rejoined(self, i: int) -> None:
        h = self.peers[i]
        h.state, h.consecutive_failures, h.invalid_streak = HEALTHY, 0, False
        self._event(i, "rejoined")

    def rejoin_failed(self, i: int, code: str) -> None:
        self.peers[i].state = EJECTED
        self._event(i, f"failed to rejoin ({code})")
        self._probes[i] = asyncio.create_task(self._probe(i))

    def note(self, i: int, what: str) -> None:
        """An event of the peer's health story that changes no state (recorded like the others)."""
        self._event(i, what)

    # ------------------------------------------------------------------ probing
    def _start_probe(self, i: int) -> None:
        if i not in self._probes or self._probes[i].done():
            self._probes[i] = asyncio.create_task(self._probe(i))

    async def _probe(self, i: int) -> None:
        h, client = self.peers[i], self.clients[i]
        delay = 0.05
        client.redial()
        while h.state == EJECTED and self.clock() < h.quarantine_until:
            await asyncio.sleep(0.05)
        while h.state == EJECTED:
            if await client.check_health(timeout_s=1.0):
                h.state = REJOINING
                self._event(i, "back")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.probe_max_backoff_s)

    def _event(self, i: int, what: str) -> None:
        self.events.append((time.time(), self.clock(), self.names[i], what))
        log.warning("step %d: %s: %s", self.clock(), self.names[i], what)
        if self.on_event is not None:
            self.on_event(i, what)

    # ------------------------------------------------------------------ step boundary
    async def before_step(self, rejoin: Callable[[list[int]], Awaitable[None]]) -> None:
        """Clear last step's failures, let `rejoin` re-admit the peers that are back, and wait while
        too few acting peers are usable (the quorum rule of the module docstring)."""
        for h in self.peers:
            h.failed_this_step = False
        await self._rejoin_ready(rejoin)
        started = time.monotonic()
        while not self._enough():
            if time.monotonic() - started > self.pause_timeout_s:
                raise QuorumLost(f"fewer than {max(self.quorum, 1)} usable acting peers for "
                                 f"{self.pause_timeout_s:.0f} s; states: "
                                 + ", ".join(f"{n}={h.state}" for n, h in zip(self.names, self.peers, strict=True)))
            await asyncio.sleep(0.05)
            await self._rejoin_ready(rejoin)

    async def _rejoin_ready(self, rejoin: Callable[[list[int]], Awaitable[None]]) -> None:
        ready = self.rejoining()
        if ready:
            await rejoin(ready)

    def _enough(self) -> bool:
        usable = sum(1 for i, acts in enumerate(self.acts) if acts and self.usable(i))
        if usable == 0:
            return False
        return usable >= self.quorum or self.below_quorum == "continue"

    async def close(self) -> None:
        for task in self._probes.values():
            task.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)
