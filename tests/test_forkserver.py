"""The peer fork server in the README's plain install (no MuJoCo) and when it dies.

The plain install (`pip install -e .`, no extras) has no MuJoCo; CI installs the dev extra, which has
it. These tests hide MuJoCo from the started processes with a `mujoco` package on PYTHONPATH whose
import fails, as it fails in the plain install: gymnasium then raises its DependencyNotInstalled,
which is not an ImportError. Before the fix the fork server died of it and every run waited its
120 s ready timeout before starting its peers another way.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from orchestrator.running.forkserver import ForkedProcess, ForkServer
from orchestrator.running.launcher import LocalPeers, PeerSpec

pytestmark = pytest.mark.timeout(180)


def _shadowing(tmp_path: Path, module: str, error: str) -> dict[str, str]:
    """The environment of this process with `import MODULE` failing with ERROR in started processes."""
    folder = tmp_path / f"no-{module}"
    (folder / module).mkdir(parents=True)
    (folder / module / "__init__.py").write_text(f"raise {error}\n")
    path = os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_default_group_forks_its_peers_without_mujoco(tmp_path: Path) -> None:
    """The Room default's peers come from the fork server although MuJoCo is missing."""
    env = _shadowing(tmp_path, "mujoco", "ImportError('No module named mujoco (hidden by the test)')")
    specs = [PeerSpec(peer_id="peer-0", task="room-6", seed=0, total_steps=100)]

    async def start() -> tuple[bool, str]:
        async with LocalPeers(specs, tmp_path / "logs", fork_server=True,
                              env={"PYTHONPATH": env["PYTHONPATH"]}) as local:
            return isinstance(local.processes[0], ForkedProcess), (tmp_path / "logs" / "peer-0.log").read_text()

    started = time.monotonic()
    forked, peer_log = asyncio.run(start())
    seconds = time.monotonic() - started
    server_log = (tmp_path / "logs" / "forkserver.log").read_text()
    assert "MuJoCo not preloaded (DependencyNotInstalled" in server_log, server_log[-2000:]
    assert forked, peer_log[-2000:]  # not "fork server unavailable; starting a new interpreter"
    assert seconds < 60, seconds  # the old fork server made this wait 120 s


def test_spawn_falls_back_at_once_when_the_fork_server_died(tmp_path: Path) -> None:
    """A fork server that died at start (here: torch fails to import) is noticed at once, not after
    its ready timeout; the launcher then starts the peer in its own interpreter."""
    env = _shadowing(tmp_path, "torch", "RuntimeError('torch is broken (by the test)')")
    server = ForkServer(env, tmp_path / "forkserver.log", ready_timeout_s=120.0)
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError, match="fork server did not start"):
            server.spawn(["--task", "room-6"], tmp_path / "peer.log", env)
        seconds = time.monotonic() - started
        assert not server.alive()
    finally:
        server.close()
    assert seconds < 20, seconds  # it waited the whole 120 s before
    assert "torch is broken" in (tmp_path / "forkserver.log").read_text()
