"""The C++ adviser (peers/cpp, built here with `make -C peers/cpp`): the conformance kit as expert and
as adversary, and its moves and critic values against the Python scripted rule and exact critic on
many observations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest

from orchestrator.running.launcher import LocalPeers, PeerSpec
from peer_service.envs import room_critic
from peer_service.envs.room import optimal_action
from peerlearn.tensors import from_tensor, to_tensor
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import peer_pb2_grpc
from tests.conftest import pid_alive
from tests.foreign_peers import cpp_peer  # noqa: F401 (session fixture)
from tests.test_conformance import run_kit

pytestmark = pytest.mark.timeout(600)  # the first build compiles the generated code (~30-60 s on 2 cores)


@pytest.fixture(scope="module")
def cpp_advisers(cpp_peer: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    specs = [PeerSpec("cpp-expert", "room-6", 0, 1000, role="expert"),
             PeerSpec("cpp-adversary", "room-21", 0, 1000, role="adversary")]
    for spec in specs:
        spec.command = (f"{cpp_peer} --port {{port}} --peer-id {{peer_id}} --task {{task}} --role {{role}} "
                        "--seed {seed} --total-steps {total_steps} --exit-with-parent")
    peers = LocalPeers(specs, tmp_path_factory.mktemp("cpp") / "logs", start_timeout_s=30)
    asyncio.run(peers.start())
    try:
        yield {s.peer_id: (s, a) for s, a in zip(specs, peers.addresses, strict=True)}
    finally:
        pids = peers.pids
        peers.stop()
        assert not any(pid_alive(p) for p in pids), "a C++ peer survived stop()"


@pytest.mark.parametrize("name", ["cpp-expert", "cpp-adversary"])
def test_cpp_adviser_passes_the_kit(cpp_advisers, name: str) -> None:  # type: ignore[no-untyped-def]
    _, address = cpp_advisers[name]
    proc = run_kit(address)
    assert proc.returncode == 0, f"{name} fails the conformance kit:\n{proc.stdout[-6000:]}"
    summary = proc.stdout.strip().splitlines()[-1]
    assert "passed" in summary and "failed" not in summary, summary


@pytest.mark.parametrize("name", ["cpp-expert", "cpp-adversary"])
def test_cpp_moves_match_the_python_rule(cpp_advisers, name: str) -> None:  # type: ignore[no-untyped-def]
    spec, address = cpp_advisers[name]
    size = int(spec.task.split("-")[1])
    rng = np.random.default_rng(1)
    grid = rng.integers(0, size, (400, 4)) / (size - 1)
    grid[:100, 2:] = 0.5  # goals on the mirror's rounding edge
    states = np.concatenate([grid, rng.random((200, 4))]).astype(np.float32)
    with grpc.insecure_channel(address) as channel:
        reply = peer_pb2_grpc.PeerServiceStub(channel).Suggest(
            pb.SuggestRequest(states=to_tensor(states), deterministic=False), timeout=10)
    got = from_tensor(reply.actions)
    want = np.array([optimal_action(s, size, toward_mirror=spec.role == "adversary") for s in states])
    assert got.dtype == np.int64 and got.shape == want.shape
    bad = np.flatnonzero(got != want)
    assert bad.size == 0, \
        f"{bad.size} moves differ, e.g. state {states[bad[0]].tolist()}: {got[bad[0]]} vs {want[bad[0]]}"


@pytest.mark.parametrize("name", ["cpp-expert", "cpp-adversary"])
def test_cpp_critic_matches_the_python_critic(cpp_advisers, name: str) -> None:  # type: ignore[no-untyped-def]
    """Evaluate over gRPC: Q and V of the scripted policy, the same closed form as room_critic.py."""
    spec, address = cpp_advisers[name]
    size, mirror = int(spec.task.split("-")[1]), spec.role == "adversary"
    rng = np.random.default_rng(2)
    grid = rng.integers(0, size, (400, 4)) / (size - 1)
    grid[:100, 2:] = 0.5
    states = np.concatenate([grid, rng.random((200, 4))]).astype(np.float32)
    actions = rng.integers(0, 4, len(states))
    with grpc.insecure_channel(address) as channel:
        reply = peer_pb2_grpc.PeerServiceStub(channel).Evaluate(
            pb.EvaluateRequest(q_states=to_tensor(states), q_actions=to_tensor(actions),
                               v_states=to_tensor(states[::-1].copy())), timeout=10)
    q, v = from_tensor(reply.q_values), from_tensor(reply.v_values)
    assert q.dtype == np.float32 and q.shape == (len(states),) and v.shape == (len(states),)
    want_q = room_critic.q_values(states, actions, size, mirror, 0.99).astype(np.float32)
    want_v = room_critic.v_values(states[::-1], size, mirror, 0.99).astype(np.float32)
    np.testing.assert_allclose(q, want_q, rtol=1e-6)
    np.testing.assert_allclose(v, want_v, rtol=1e-6)
    assert len(np.unique(q)) > 10, "the critic gave nearly constant values: the comparison proves little"
