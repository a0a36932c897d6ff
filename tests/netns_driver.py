"""Runs inside the orchestrator's network namespace for tests/test_netns.py: drives a group of peers
in other namespaces, injects loss and partitions with nftables in the peers' namespaces, and prints
the measured figures as JSON on the last line of stdout."""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import time

import numpy as np

from orchestrator.config import RunConfig
from orchestrator.loop.client import PeerCallError
from orchestrator.loop.group import Group
from orchestrator.running.grpc_client import Deadlines, GrpcPeerClient
from peerlearn.security import ClientSecurity


def nft(ns: str, *rules: str) -> None:
    for rule in rules:
        subprocess.run(["ip", "netns", "exec", ns, "nft", *rule.split()], check=True)


def heal(ns: str) -> None:
    nft(ns, "flush chain inet chaos input", "flush chain inet chaos output")


def events_of(group: Group, peer: str, since: float) -> list[tuple[float, str]]:
    return [(t, what) for t, _, name, what in group.health.events if name == peer and t >= since]


async def main(args: argparse.Namespace) -> dict[str, object]:
    peers = [p.split("=") for p in args.peers.split(",")]  # ns=address
    config = RunConfig(peers=len(peers), steps=10**9, eject_after=3, quorum=2, below_quorum="pause",
                       pause_timeout_s=60, probe_max_backoff_s=0.5, redial_on_timeout=not args.no_redial)
    insecure = ClientSecurity(allow_insecure=True)  # a test network the test itself made
    clients = [GrpcPeerClient(addr, Deadlines(read_s=3.0, step_s=6.0, hedge_s=args.hedge_s), insecure)
               for _, addr in peers]
    for c in clients:  # start-up only: wait (wait_for_ready) until the peers are up and reachable
        started = time.monotonic()
        while True:
            try:
                await c.get_info(wait_for_ready=True)
                break
            except PeerCallError:
                if time.monotonic() - started > 120:
                    raise
    group = await Group.connect(clients, config)
    await group.reset()
    durations: list[float] = []
    phase_longest: dict[str, float] = {}
    phase = "start"
    running = True

    async def loop() -> None:
        while running:
            t0 = time.perf_counter()
            await group.step()
            durations.append(time.perf_counter() - t0)
            phase_longest[phase] = max(phase_longest.get(phase, 0.0), durations[-1])

    stepper = asyncio.create_task(loop())
    figures: dict[str, object] = {}
    names = [m.name for m in group.members]
    ns_of = {m.name: ns for m, (ns, _) in zip(group.members, peers, strict=True)}
    try:
        await asyncio.sleep(3.0)

        # 1. 30% loss both ways on one peer's link: slower, but no spurious ejection with the default
        #    deadlines (5 s / 10 s): TCP's retransmission backoff makes single calls take seconds, and a
        #    connection in backoff stays slow for the next calls too (2-3 s deadlines did eject).
        phase = "loss"
        for c in clients:
            c.deadlines = Deadlines(read_s=args.loss_read_s, step_s=2 * args.loss_read_s, hedge_s=args.hedge_s)
        start, before, redials_before = time.time(), len(durations), group.health.redials
        lossy_client = clients[0]
        hedges_before, won_before = lossy_client.hedges, lossy_client.hedges_won
        nft(ns_of[names[0]], "add rule inet chaos input numgen random mod 100 < 30 drop",
            "add rule inet chaos output numgen random mod 100 < 30 drop")
        await asyncio.sleep(args.loss_s)
        heal(ns_of[names[0]])
        lossy = durations[before:]
        figures["loss: seconds"] = args.loss_s
        figures["loss: deadlines read / step (s)"] = [args.loss_read_s, 2 * args.loss_read_s]
        figures["loss: re-dial on a missed deadline"] = not args.no_redial
        figures["loss: group steps"] = len(lossy)
        figures["loss: median / max step (s)"] = [round(float(np.median(lossy)), 4), round(max(lossy), 3)]
        figures["loss: events of the lossy peer"] = [w for _, w in events_of(group, names[0], start)]
        figures["loss: connections re-dialed after a missed deadline"] = group.health.redials - redials_before
        figures["loss: hedge after (s)"] = args.hedge_s
        figures["loss: calls hedged / won by the spare connection"] = [lossy_client.hedges - hedges_before,
                                                                        lossy_client.hedges_won - won_before]
        await asyncio.sleep(2.0)
        if args.loss_only:
            return figures

        phase = "partitions"
        for c in clients:  # partitions: short deadlines so that ejection comes within the partition
            c.deadlines = Deadlines(read_s=3.0, step_s=6.0, hedge_s=args.hedge_s)

        async def partition(victims: list[str], outgoing_only: bool, label: str) -> None:
            for v in victims:
                nft(ns_of[v], "add rule inet chaos output drop", *(() if outgoing_only else
                                                                   ("add rule inet chaos input drop",)))
            cut = time.time()
            steps_before = len(durations)
            await asyncio.sleep(args.partition_s)
            # A failing step lasts up to read + read + step deadlines, so three of them may take longer
            # than the partition: keep the cut until every victim is ejected (time to detect, below).
            victims_out = lambda: all(group.health.state(names.index(v)) == "ejected" for v in victims)  # noqa: E731
            while not victims_out() and time.time() - cut < args.partition_s + 40:
                await asyncio.sleep(0.02)
            figures[f"{label}: ejected after (s)"] = [
                round(min((t for t, w in events_of(group, v, cut) if w == "ejected"), default=float("nan")) - cut, 2)
                for v in victims]
            figures[f"{label}: states while cut"] = [group.health.state(m.index) for m in group.members]
            figures[f"{label}: group steps while cut"] = len(durations) - steps_before
            for v in victims:
                heal(ns_of[v])
            healed = time.time()
            deadline = healed + 15
            while time.time() < deadline and any(group.health.state(names.index(v)) != "healthy"
                                                 for v in victims):
                await asyncio.sleep(0.02)
            rejoins = [max((t for t, w in events_of(group, v, cut) if w == "rejoined"), default=float("nan"))
                       for v in victims]
            figures[f"{label}: rejoined after heal (s)"] = [round(r - healed, 2) for r in rejoins]
            steps_after = len(durations)
            await asyncio.sleep(1.0)
            figures[f"{label}: group steps in 1 s after"] = len(durations) - steps_after
            figures[f"{label}: events"] = {v: [w for _, w in events_of(group, v, cut)] for v in victims}

        await partition([names[1]], False, "partition one")
        await partition([names[0], names[1]], False, "partition majority")
        await partition([names[2]], True, "asymmetric")
        # A step has up to three rounds (Suggest, Evaluate, Step); when different peers fail in
        # different rounds, their deadlines add up: read + read + step is the bound by design.
        figures["longest group step (s)"] = {k: round(v, 3) for k, v in phase_longest.items()}
        figures["final states"] = [group.health.state(m.index) for m in group.members]
    finally:
        running = False
        await stepper
        await group.health.close()
        for c in clients:
            await c.close()
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--peers", required=True, help="ns=host:port,...")
    parser.add_argument("--loss-s", type=float, default=60.0)
    parser.add_argument("--partition-s", type=float, default=12.0)
    parser.add_argument("--loss-read-s", type=float, default=5.0,
                        help="read deadline during the loss phase (Step gets twice that); 5 = the default")
    parser.add_argument("--no-redial", action="store_true", help="turn re-dial on a missed deadline off (A/B)")
    parser.add_argument("--hedge-s", type=float, default=1.0, help="hedge calls after this long; 0 = off (A/B)")
    parser.add_argument("--loss-only", action="store_true", help="stop after the loss phase")
    print(json.dumps(asyncio.run(main(parser.parse_args()))), flush=True)
