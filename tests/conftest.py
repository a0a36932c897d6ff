"""Shared fixtures: real peer processes on loopback, stopped by PID after the tests that use them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from orchestrator.running.launcher import LocalPeers, PeerSpec

torch.set_num_threads(1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.fixture(scope="module")
def peer_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A DQN learner, a SAC learner and a scripted expert, each its own gRPC server process."""
    tmp = tmp_path_factory.mktemp("peers")
    specs = [PeerSpec("dqn", "room-6", 1, 2000, checkpoint_dir=str(tmp / "ckpt-dqn")),
             PeerSpec("sac", "hopper", 2, 2000, checkpoint_dir=str(tmp / "ckpt-sac"),
                      learner_overrides={"learning_starts": 16, "batch_size": 16}),
             PeerSpec("expert", "room-6", 3, 2000, role="expert")]
    peers = LocalPeers(specs, tmp / "logs")
    asyncio.run(peers.start())
    try:
        yield dict(zip([s.peer_id for s in specs], peers.addresses, strict=True))
    finally:
        pids = peers.pids
        peers.stop()
        assert not any(pid_alive(p) for p in pids), "a peer process survived stop()"
