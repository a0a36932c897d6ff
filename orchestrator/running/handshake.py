"""A group of peers given by address (`peerlearn orchestrate`, the Python API's `run(addresses=...)`) is
asked who it is before the run folder is made: config.toml then records what the peers said in the
handshake (their task, how many they are, each one's role and algorithm) instead of the settings'
defaults, which describe peers started here, and the folder is named by their task. A group that
cannot run (a peer out of reach, incompatible peers) is refused there, before anything is written.
GetInfo is read-only and safe to repeat: the run's own connection asks again.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from orchestrator.config import RunConfig
from orchestrator.loop.client import PeerClient
from orchestrator.loop.group import Group
from peer_service.envs import ALIASES
from peerlearn.messages import PeerInfo
from peerlearn.settings import ROLES

# The short name of each task that has one (peerlearn/Room-6-v0 -> room-6), as a run started here records it.
SHORT_NAMES = {env_id: name for name, env_id in ALIASES.items()}


async def described_by_peers(config: RunConfig, clients: list[PeerClient]) -> RunConfig:
    """`config` with what the peers behind `clients` said in their handshake; the clients are closed."""
    try:
        group = await Group.connect(clients, config)  # the handshake and its checks (GroupError)
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return described(config, [m.info for m in group.members])


def described(config: RunConfig, infos: list[PeerInfo]) -> RunConfig:
    env_id = infos[0].env_id  # the handshake checked that all agree
    return replace(config, task=SHORT_NAMES.get(env_id, env_id), peers=len(infos),
                   roles=[role_of(info) for info in infos], algos=[algorithm_of(info) for info in infos])


def role_of(info: PeerInfo) -> str:
    """The role a peer plays, in the words of `roles`: a learner learns; a scripted Room adviser names
    its role in its implementation (scripted-expert); any other peer only advises."""
    if info.capabilities.learns:
        return "learner"
    scripted = info.implementation.removeprefix("scripted-")
    return scripted if scripted in ROLES and scripted != info.implementation else "adviser"


def algorithm_of(info: PeerInfo) -> str:
    """The SB3 algorithm a Python peer runs (sb3.DQN, a frozen sb3.PPO.frozen -> PPO), in the words of
    `algos`; "" for a peer of another implementation (versions.json names it)."""
    parts = info.implementation.split(".")
    return parts[1] if len(parts) >= 2 and parts[0] == "sb3" else ""
