"""Byzantine peers on Room-6 with honest DQN learners: one seeded in-process group and its follow rates.

Shared by the test suite (tests/test_byzantine.py, CI scale) and the study over seeds
(benchmarks/studies/byzantine_seeds.py, docs/security.md), so that both measure the same group.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np

LR = 0.01  # 10x the paper's alpha: at CI scale the paper's 0.001 is still near its initial 200 (docs/security.md)
WINDOW = 1000  # follow counts are read per this many group steps
HONEST = ("learner", "")  # (role, attack) of an honest learner
ATTACKERS = [("adversary", ""), ("expert", "random"), ("expert", "garbage"), ("expert", "turncoat:300")]


def run_group_inproc(peers: list[tuple[str, str]], steps: int, aggregation: str = "median", seed: int = 0,
                     window: int = WINDOW, reputation_lr: float = LR) -> dict[str, Any]:
    """One seeded in-process group; returns windowed follow counts and the honest learners' returns."""
    # Imported here, in the worker process that runs the group (spawned: it sets its own torch threads),
    # so that importing this module (a test's collection, the study's parent process) stays light.
    import torch

    torch.set_num_threads(1)
    logging.getLogger("peerlearn").setLevel(logging.ERROR)
    from orchestrator.config import RunConfig
    from orchestrator.loop.group import Group
    from orchestrator.running.inproc_client import InprocPeerClient
    from peer_service.peer import Peer, PeerConfig

    config = RunConfig(task="room-6", peers=len(peers), steps=steps, transport="inproc", seed=seed,
                       reputation_lr=reputation_lr, agent_value_aggregation=aggregation, eval_every=10**9,
                       progress=False, status_port=-1, checkpoint_every=0)
    def name(i: int, role: str, attack: str) -> str:
        what = attack.split(":")[0] if attack else ("mirror" if role == "adversary" else "")
        return f"peer-{i}-{what}" if what else f"peer-{i}"

    objs = [Peer(PeerConfig(peer_id=name(i, role, attack), task="room-6",
                            seed=seed * 1000 + i, total_steps=steps, role=role, attack=attack,
                            learner_overrides={"learning_starts": 100}))
            for i, (role, attack) in enumerate(peers)]
    turned_at: dict[int, int] = {}

    async def main() -> dict[str, Any]:
        group = await Group.connect([InprocPeerClient(p) for p in objs], config)
        await group.reset()
        windows, previous = [], group.follow_matrix().copy()
        while group.t < steps:
            await group.step()
            for i, p in enumerate(objs):
                a = p.attack
                if a is not None and a.mode == "turncoat" and i not in turned_at and a.suggest_calls > a.turncoat_after:
                    turned_at[i] = group.t
            if group.t % window == 0:
                now = group.follow_matrix()
                windows.append((group.t, (now - previous).tolist()))
                previous = now.copy()
        events = getattr(getattr(group, "health", None), "events", [])
        return {"names": [m.name for m in group.members], "windows": windows,
                "invalid_replies": [int(getattr(m, "invalid_replies", 0)) for m in group.members],
                "ejections": [e[2] for e in events if e[3].startswith(("ejected", "banned"))],
                "agent_values": group.reputations.agent_values.tolist(), "turned_at": turned_at}

    result = asyncio.run(main())
    honest = [i for i, (role, attack) in enumerate(peers) if role == "learner" and not attack]
    result["honest"] = honest
    result["returns"] = {i: objs[i].run_evaluation(0, 1).mean_return for i in range(len(peers))
                         if objs[i].learner is not None}
    return result


def follow_rate(counts: np.ndarray, target: int, askers: list[int]) -> float:
    """Share of the askers' env steps spent on `target`'s suggestions (askers other than the target)."""
    rows = [a for a in askers if a != target]
    total = counts[rows].sum()
    return float(counts[rows, target].sum() / total) if total else 0.0
