"""The conformance kit (`peerlearn conformance ADDRESS`) against the Python peers, and against a
deliberately broken peer, whose failures it must name."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import pytest

from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import peer_pb2_grpc, tensor_pb2

pytestmark = pytest.mark.timeout(240)
ROOT = Path(__file__).resolve().parents[1]


def run_kit(address: str, *extra: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess, as a user runs it (and no nested pytest session in this one)."""
    cmd = [sys.executable, "-m", "peerlearn.cli", "conformance", address, "-q", *extra]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


@pytest.mark.parametrize("name", ["dqn", "sac", "expert"])
def test_python_peers_pass_the_kit(peer_processes: dict[str, str], name: str) -> None:
    proc = run_kit(peer_processes[name])
    assert proc.returncode == 0, f"the Python {name} peer fails the conformance kit:\n{proc.stdout[-6000:]}"
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_kit_works_on_a_used_peer(peer_processes: dict[str, str]) -> None:
    """A second run meets a peer that has stepped and has an active episode. The Python peer's checkpoints
    keep the episode (exact resume), so Step-before-Reset is not testable on it and says why; Save and
    Load are checked, the episode continuing after Load."""
    run_kit(peer_processes["dqn"], "-k", "reset_and_step_ids")
    proc = run_kit(peer_processes["dqn"], "-k", "step_before_reset or save_and_load", "-rs")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "1 passed, 1 skipped" in proc.stdout, proc.stdout[-4000:]
    assert "keep the episode in progress (exact resume)" in proc.stdout, proc.stdout[-4000:]


def test_a_learner_without_checkpoints_says_so_and_passes() -> None:
    """A model served from Python without a checkpoint directory says capabilities.checkpoints = false
    in its handshake (the orchestrator then never asks it to Save); the kit holds it to that: Save
    refuses with FAILED_PRECONDITION, and the rest of the lifecycle passes."""
    import gymnasium as gym
    from stable_baselines3 import DQN

    from peerlearn.api import serve

    env = gym.make("CartPole-v1")
    with serve(DQN("MlpPolicy", env, policy_kwargs={"net_arch": [8]}), env, peer_id="served", total_steps=100) as p:
        proc = run_kit(p.address, "-k", "capabilities or save_and_load", "-rs")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "capabilities.checkpoints is false and Save refuses" in proc.stdout, proc.stdout[-4000:]


class BrokenAdviser(peer_pb2_grpc.PeerServiceServicer):
    """Room-6 adviser with two bugs: every Suggest answers one action, and bad input is accepted.
    No health service. Every other call falls to the generated base class (UNIMPLEMENTED)."""

    def GetInfo(self, request, context):  # type: ignore[no-untyped-def]
        box = tensor_pb2.BoxSpace(
            shape=[4], dtype=tensor_pb2.DTYPE_FLOAT32, low=_f64(np.zeros(4)), high=_f64(np.ones(4))
        )
        return pb.PeerInfo(
            protocol_version="peerlearn.v1",
            peer_id="broken",
            language="python",
            env_id="peerlearn/Room-6-v0",
            implementation="broken",
            gamma=0.99,
            observation_space=tensor_pb2.Space(box=box),
            action_space=tensor_pb2.Space(discrete=tensor_pb2.DiscreteSpace(n=4)),
            capabilities=pb.Capabilities(advises=True),
        )

    def Suggest(self, request, context):  # type: ignore[no-untyped-def]
        return pb.SuggestReply(
            actions=tensor_pb2.Tensor(
                dtype=tensor_pb2.DTYPE_INT64, shape=[1], data=np.zeros(1, "<i8").tobytes()
            )
        )


def _f64(a: np.ndarray) -> tensor_pb2.Tensor:
    return tensor_pb2.Tensor(
        dtype=tensor_pb2.DTYPE_FLOAT64, shape=list(a.shape), data=a.astype("<f8").tobytes()
    )


def test_kit_names_what_a_broken_peer_gets_wrong() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    peer_pb2_grpc.add_PeerServiceServicer_to_server(BrokenAdviser(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        proc = run_kit(f"127.0.0.1:{port}")
    finally:
        server.stop(0)
    out = proc.stdout
    assert proc.returncode == 1, out[-4000:]
    assert "Suggest(B=5, deterministic=True): actions have shape (1,), expected (5,)" in out, out[-4000:]
    assert "grpc.health.v1.Health/Check(service='') failed with UNIMPLEMENTED" in out
    assert "Suggest with bad states (NaN): expected status INVALID_ARGUMENT, but the call succeeded" in out
    assert "FAILED" in out and "test_capabilities_coherent" not in out.split("short test summary")[-1]


def test_kit_reports_an_unreachable_address_in_one_line_at_once() -> None:
    """Nothing listens there: exit 2 and one line, without the kit's 30 s channel wait and its pytest
    session (29 lines before)."""
    import time

    with socket.socket() as held:  # bound, not listening: refused, and no one else gets the port meanwhile
        held.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{held.getsockname()[1]}"
        started = time.monotonic()
        proc = run_kit(address, timeout=60)
        seconds = time.monotonic() - started
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"peerlearn conformance: error: no peer answers at {address}: UNAVAILABLE")
    assert seconds < 15, seconds  # the interpreter's start included; about 1 s
