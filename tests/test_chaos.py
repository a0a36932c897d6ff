"""T1: a chaos proxy between the orchestrator and one peer (delay, blackhole, connection resets,
flaky aborts). The group keeps stepping within its deadlines, ejects the peer while it is cut off
and re-admits it when the link heals. Figures are printed (run with -s)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from orchestrator.config import RunConfig
from orchestrator.loop.group import Group
from orchestrator.running.grpc_client import Deadlines, GrpcPeerClient
from orchestrator.running.launcher import LocalPeers, PeerSpec
from peerlearn.chaos import ChaosProxy

pytestmark = pytest.mark.timeout(300)
READ_S, STEP_S = 1.0, 2.0


async def _scenario(tmp_path: Path) -> dict[str, object]:
    specs = [PeerSpec(f"peer-{i}", "room-6", i, 3000) for i in range(3)]
    config = RunConfig(peers=3, steps=3000, eject_after=3, probe_max_backoff_s=0.5)
    figures: dict[str, object] = {}
    async with LocalPeers(specs, tmp_path / "logs") as local:
        proxy = ChaosProxy(local.addresses[2])
        addresses = [*local.addresses[:2], await proxy.start()]
        clients = [GrpcPeerClient(a, Deadlines(read_s=READ_S, step_s=STEP_S)) for a in addresses]
        group = await Group.connect(clients, config)
        await group.reset()
        victim = group.members[2]
        longest = 0.0

        async def steps_for(seconds: float, until=None) -> int:  # type: ignore[no-untyped-def]
            nonlocal longest
            n, start = 0, time.monotonic()
            while time.monotonic() - start < seconds and not (until and until()):
                t0 = time.perf_counter()
                await group.step()
                longest = max(longest, time.perf_counter() - t0)
                n += 1
            return n

        async def healed(phase: str) -> None:
            proxy.set_mode("pass")
            t0 = time.monotonic()
            await steps_for(20.0, until=lambda: group.health.state(victim.index) == "healthy")
            figures[f"{phase}: healthy again after (s)"] = round(time.monotonic() - t0, 2)
            before = victim.steps
            await steps_for(0.5)
            assert victim.steps > before, f"{phase}: the peer does not act after healing"

        try:
            await steps_for(1.0)
            proxy.set_mode("delay", delay_s=0.05)
            before = victim.steps
            await steps_for(2.0)
            figures["delay 50 ms: victim steps in 2 s"] = victim.steps - before
            figures["delay 50 ms: victim state"] = group.health.state(victim.index)
            assert group.health.state(victim.index) == "healthy"

            proxy.set_mode("blackhole")
            figures["blackhole: group steps in 4 s"] = await steps_for(4.0)
            # Ejection takes eject_after failing group steps, each one deadline long: on a loaded machine
            # 4 s may hold too few of them, so give it a few more steps before judging (bounded).
            await steps_for(6.0, until=lambda: group.health.state(victim.index) == "ejected")
            figures["blackhole: victim state"] = group.health.state(victim.index)
            assert group.health.state(victim.index) == "ejected"
            await healed("blackhole")

            proxy.set_mode("reset")
            figures["reset: group steps in 2 s"] = await steps_for(2.0)
            assert group.health.state(victim.index) in ("ejected", "suspect")
            await healed("reset")

            proxy.set_mode("flaky")
            proxy.abort_p = 0.02
            figures["flaky 2%: group steps in 3 s"] = await steps_for(3.0)
            await healed("flaky")
            figures["longest group step (s)"] = round(longest, 2)
            figures["health events"] = [e[3] for e in group.health.events if e[2] == victim.name]
        finally:
            await group.health.close()
            for c in clients:
                await c.close()
            await proxy.close()
    return figures


def test_group_survives_delay_blackhole_resets_and_aborts(tmp_path: Path) -> None:
    figures = asyncio.run(_scenario(tmp_path))
    print()
    for key, value in figures.items():
        print(f"  {key}: {value}")
    assert figures["longest group step (s)"] <= STEP_S + 0.5
    assert figures["blackhole: group steps in 4 s"] > 20  # the others went on without the cut-off peer
    for phase in ("blackhole", "reset", "flaky"):
        assert figures[f"{phase}: healthy again after (s)"] <= 3.0


async def _hedging_scenario(tmp_path: Path) -> dict[str, object]:
    """One peer behind the proxy; the client's primary connection stalls (as a TCP stream in
    retransmission backoff on a lossy link does) while its spare flows."""
    import numpy as np

    from orchestrator.loop.client import PeerCallError

    figures: dict[str, object] = {}
    async with LocalPeers([PeerSpec("peer-0", "room-6", 0, 3000)], tmp_path / "logs") as local:
        proxy = ChaosProxy(local.addresses[0])
        client = GrpcPeerClient(await proxy.start(), Deadlines(read_s=3.0, step_s=3.0, hedge_s=0.3))
        try:
            await client.get_info()
            started = time.monotonic()
            while proxy.connections < 2 and time.monotonic() - started < 5:
                await asyncio.sleep(0.01)
            assert proxy.connections == 2, "the spare connection was not opened"
            states = np.full((2, 4), 0.5, np.float32)

            async def timed(call):  # type: ignore[no-untyped-def]
                t0 = time.perf_counter()
                result = await call
                return result, time.perf_counter() - t0

            # Which proxied connection is the primary? Stall one; a hedge tells.
            proxy.stall(0)
            _, first = await timed(client.suggest(states))
            stalled = 0 if client.hedges else 1
            if stalled == 1:
                proxy.unstall(0)
                proxy.stall(1)
                _, first = await timed(client.suggest(states))
            figures["suggest on a stalled primary (s)"] = round(first, 3)
            assert client.hedges == 1 and client.hedges_won == 1
            _, after = await timed(client.suggest(states))
            figures["next suggest, spare promoted (s)"] = round(after, 3)
            assert client.hedges == 1, "the connection that answered did not become the primary"

            # A hedged Step: the stalled connection's copy reaches the peer later and is replayed.
            obs, last = await client.reset(None)
            proxy.unstall(stalled)
            proxy.stall(1 - stalled)
            result, step_s = await timed(client.step(last + 1, np.int64(0)))
            figures["step on a stalled primary (s)"] = round(step_s, 3)
            assert result.step_id == last + 1 and client.hedges_won == 2
            proxy.unstall(1 - stalled)  # the first copy of the Step now reaches the peer
            await asyncio.sleep(0.3)
            nxt = await client.step(last + 2, np.int64(1))
            assert nxt.step_id == last + 2
            info = await client.get_info()
            figures["peer's last step id after a hedged Step and the next"] = [info.last_step_id, last + 2]
            assert info.last_step_id == last + 2, "a hedged Step was applied twice"
            try:
                await client.step(last + 1, np.int64(0))
            except PeerCallError as err:
                assert err.code == "ALREADY_EXISTS"
        finally:
            await client.close()
            await proxy.close()
    return figures


def test_hedged_calls_beat_a_stalled_connection_and_never_double_apply_a_step(tmp_path: Path) -> None:
    figures = asyncio.run(_hedging_scenario(tmp_path))
    print()
    for key, value in figures.items():
        print(f"  {key}: {value}")
    for key in ("suggest on a stalled primary (s)", "step on a stalled primary (s)"):
        assert 0.3 <= figures[key] < 2.0, (key, figures)  # hedged after 0.3 s, far inside the 3 s deadline
    assert figures["next suggest, spare promoted (s)"] < 0.3
