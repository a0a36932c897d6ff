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
- When the probe sees it SERVING again it is *rejoining*; at the next step boundary the
  orchestrator re-handshakes, restores the peer's latest checkpoint if it lost its state (a
  restarted process), resets its episode and lets it back in.
- A peer ejected for *invalid replies* (NaN, wrong shapes, out-of-bounds actions) is quarantined
  (`quarantine_steps`, doubling per strike) before it is probed again, and banned for the run after
  `ban_after` strikes: a liar answers health checks perfectly well.
- Quorum: with fewer than `quorum` usable acting peers, `below_quorum = "pause"` waits (up to
  `pause_timeout_s`, then the run stops cleanly with an error); "continue" lets the remaining peers
  go on alone. With no usable acting peer at all the group always waits: it never spins or hangs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from orchestrator.transport import PeerCallError

if TYPE_CHECKING:
    from orchestrator.group import Group, Member

log = logging.getLogger("peerlearn.orchestrator")

HEALTHY, SUSPECT, EJECTED, REJOINING, BANNED = "healthy", "suspect", "ejected", "rejoining", "banned"


class QuorumLost(RuntimeError):
    pass


class HealthMonitor:
    def __init__(self, group: Group) -> None:
        self.group = group
        cfg = group.config
        self.eject_after = cfg.eject_after
        self.redial_on_timeout = cfg.redial_on_timeout
        self.quorum = cfg.quorum
        self.below_quorum = cfg.below_quorum
        self.pause_timeout_s = cfg.pause_timeout_s
        self.probe_max_backoff_s = cfg.probe_max_backoff_s
        self.quarantine_steps = cfg.quarantine_steps
        self.ban_after = cfg.ban_after
        self._probes: dict[int, asyncio.Task] = {}
        self.redials = 0  # connections re-dialed after a missed deadline (reported by the netns test)
        self.events: list[tuple[float, int, str, str]] = []  # (time, group step, peer, event)

    # ------------------------------------------------------------------ bookkeeping
    def usable(self, m: Member) -> bool:
        return m.state in (HEALTHY, SUSPECT) and not m.failed_this_step

    def on_success(self, m: Member) -> None:
        if m.state == SUSPECT and not m.failed_this_step:
            self._event(m, "healthy")
            m.state = HEALTHY
        if not m.failed_this_step:
            m.consecutive_failures, m.invalid_streak = 0, False

    def on_failure(self, m: Member, invalid: bool = False, timed_out: bool = False) -> None:
        if m.failed_this_step or m.state in (EJECTED, REJOINING, BANNED):
            return
        m.failed_this_step = True
        m.consecutive_failures += 1
        m.invalid_streak = m.invalid_streak or invalid
        if m.consecutive_failures >= self.eject_after:
            self.eject(m)
            return
        if m.state == HEALTHY:
            m.state = SUSPECT
            self._event(m, "suspect")
        if timed_out and self.redial_on_timeout:
            self._redial(m)

    def _redial(self, m: Member) -> None:
        """A fresh connection for a peer that missed a deadline (see the module docstring)."""
        # A synchronous swap: the next call already uses the new connection; the client closes the old.
        if m.client.redial() is not None:
            self.redials += 1

    def eject(self, m: Member) -> None:
        """Take the peer out of the loop. A peer ejected for invalid replies answers its health check
        perfectly well, so it is not re-admitted on that alone: it is quarantined for
        quarantine_steps * 2^(strikes-1) group steps, and banned for the run after ban_after strikes."""
        m.state = EJECTED
        m.following = -1
        if m.invalid_streak:
            m.strikes += 1
            if m.strikes >= self.ban_after:
                m.state = BANNED
                self._event(m, f"banned (invalid replies, {m.strikes} strikes)")
                return
            quarantine = self.quarantine_steps * 2 ** (m.strikes - 1)
            m.quarantine_until = self.group.t + quarantine
            self._event(m, f"ejected (invalid replies; quarantined {quarantine} steps)")
        else:
            self._event(m, "ejected")
        if m.index not in self._probes or self._probes[m.index].done():
            self._probes[m.index] = asyncio.create_task(self._probe(m))

    def resync(self, m: Member) -> None:
        """The peer answers but its state differs from ours: rejoin it at the next step boundary."""
        if m.state != EJECTED:
            m.state = REJOINING
            self._event(m, "out of sync")

    async def _probe(self, m: Member) -> None:
        delay = 0.05
        m.client.redial()
        while m.state == EJECTED and self.group.t < m.quarantine_until:
            await asyncio.sleep(0.05)
        while m.state == EJECTED:
            if await m.client.check_health(timeout_s=1.0):
                m.state = REJOINING
                self._event(m, "back")
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.probe_max_backoff_s)

    def _event(self, m: Member, what: str) -> None:
        self.events.append((time.time(), self.group.t, m.name, what))
        log.warning("step %d: %s is %s", self.group.t, m.name, what)
        if self.group.recorder is not None:
            self.group.recorder.health_event(self.group, m, what)

    # ------------------------------------------------------------------ step boundary
    async def before_step(self) -> None:
        for m in self.group.members:
            m.failed_this_step = False
        await self.rejoin_ready()
        started = time.monotonic()
        while not self._enough():
            if time.monotonic() - started > self.pause_timeout_s:
                raise QuorumLost(f"fewer than {max(self.quorum, 1)} usable acting peers for "
                                 f"{self.pause_timeout_s:.0f} s; states: "
                                 + ", ".join(f"{m.name}={m.state}" for m in self.group.members))
            await asyncio.sleep(0.05)
            await self.rejoin_ready()

    def _enough(self) -> bool:
        usable = sum(1 for m in self.group.members if m.acts and self.usable(m))
        if usable == 0:
            return False
        return usable >= self.quorum or self.below_quorum == "continue"

    async def rejoin_ready(self) -> None:
        ready = [m for m in self.group.members if m.state == REJOINING]
        if ready:
            await asyncio.gather(*(self._rejoin(m) for m in ready))

    async def _rejoin(self, m: Member) -> None:
        """Re-handshake; restore the latest checkpoint if the peer lost its state; reset its episode."""
        try:
            info = await m.client.get_info()
            if m.acts:
                intact = info.episode_active and info.last_step_id == m.step_id and m.obs is not None
                if not intact:
                    if m.info.capabilities.learns and info.last_step_id < m.step_id:
                        try:
                            await m.client.load("")
                        except PeerCallError as err:
                            if err.code != "NOT_FOUND":
                                raise
                            self._event(m, "has no checkpoint: continues from its own state")
                    m.obs, m.step_id = await m.client.reset(None)
        except PeerCallError as err:
            m.state = EJECTED
            self._event(m, f"failed to rejoin ({err.code})")
            self._probes[m.index] = asyncio.create_task(self._probe(m))
            return
        m.state, m.consecutive_failures, m.following, m.redecide = HEALTHY, 0, -1, True
        m.invalid_streak = False
        self._event(m, "rejoined")

    async def close(self) -> None:
        for task in self._probes.values():
            task.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)
