"""The Node.js peer (peers/node): its own tests, its Room against the Python RoomEnv, and the
conformance kit against it as learner and as scripted adversary (started with `npm start`)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from orchestrator.running.launcher import LocalPeers, PeerSpec
from peer_service.envs import room_critic, room_id
from peer_service.envs.room import EPISODE_STEPS, optimal_action
from tests.conftest import pid_alive
from tests.foreign_peers import ROOT, node_peer  # noqa: F401 (session fixture)
from tests.test_conformance import run_kit

pytestmark = pytest.mark.timeout(240)


def test_npm_test_passes(node_peer: Path) -> None:  # noqa: F811
    proc = subprocess.run(["npm", "test"], cwd=node_peer, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "# fail 0" in proc.stdout


def test_node_room_matches_python_room(node_peer: Path) -> None:  # noqa: F811
    """Same goal_index and the same actions give identical observations, rewards and truncation."""
    rng = np.random.default_rng(0)
    rollouts, expected = [], []
    for size in (3, 6, 21):
        env = gym.make(room_id(size))
        goals = range(4 * (size - 1)) if size < 21 else rng.choice(4 * (size - 1), 24, replace=False)
        for goal in goals:
            # Biased walks reach walls, corners and the goal; one step past the time limit is not taken.
            actions = rng.choice(4, EPISODE_STEPS[size], p=rng.dirichlet(np.ones(4) * 0.5)).tolist()
            obs, _ = env.reset(options={"goal_index": int(goal)})
            observations, rewards, truncated = [obs.tolist()], [], []
            for a in actions:
                obs, reward, term, trunc, _ = env.step(a)
                assert not term
                observations.append(obs.tolist())
                rewards.append(reward)
                truncated.append(trunc)
            rollouts.append({"size": size, "goal_index": int(goal), "actions": actions})
            expected.append({"observations": observations, "rewards": rewards, "truncated": truncated})
    suggest, moves, critic = [], [], []
    for size in (3, 6, 21):
        grid = rng.integers(0, size, (200, 4)) / (size - 1)
        grid[:50, 2:] = 0.5  # goal coordinates on the mirror's rounding edge (round half to even)
        for obs in np.concatenate([grid, rng.random((100, 4))]).astype(np.float32):
            for mirror in (False, True):
                suggest.append({"size": size, "mirror": mirror, "obs": obs.tolist()})
                moves.append(optimal_action(obs, size, toward_mirror=mirror))
                critic.append({"size": size, "mirror": mirror, "obs": obs.tolist(),
                               "action": int(rng.integers(4)), "gamma": 0.99})
    proc = subprocess.run(["node", "tools/rollout.js"], cwd=node_peer, input=json.dumps(
        {"rollouts": rollouts, "suggest": suggest, "critic": critic}), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout)
    hits = 0
    for case, want, have in zip(rollouts, expected, got["rollouts"], strict=True):
        label = f"Room-{case['size']} goal {case['goal_index']}"
        assert have["observations"] == want["observations"], f"{label}: observations differ"
        assert have["rewards"] == want["rewards"], f"{label}: rewards differ"
        assert have["truncated"] == want["truncated"], f"{label}: truncation differs"
        hits += sum(r == 1.0 for r in want["rewards"])
    assert hits > 0, "no rollout ever reached its goal: the comparison did not cover the goal reward"
    mismatches = [(s, m, g) for s, m, g in zip(suggest, moves, got["suggest"], strict=True) if m != g]
    assert not mismatches, f"{len(mismatches)} scripted moves differ, e.g. {mismatches[:3]}"
    # The scripted advisers' critic (Evaluate): the same closed form in both languages.
    for case, (q, v) in zip(critic, got["critic"], strict=True):
        obs = np.array([case["obs"]], np.float32)
        want_q = room_critic.q_values(obs, np.array([case["action"]]), case["size"], case["mirror"], 0.99)[0]
        want_v = room_critic.v_values(obs, case["size"], case["mirror"], 0.99)[0]
        assert q == pytest.approx(want_q, rel=1e-12) and v == pytest.approx(want_v, rel=1e-12), case


def _start(specs: list[PeerSpec], tmp_path: Path) -> LocalPeers:
    peers = LocalPeers(specs, tmp_path / "logs", start_timeout_s=60)
    asyncio.run(peers.start())
    return peers


def test_node_peers_pass_the_kit(node_peer: Path, tmp_path: Path) -> None:  # noqa: F811
    main = node_peer / "src" / "main.js"
    specs = [PeerSpec("node-learner", "room-21", 3, 5000, command=(
                 f"node {main} --port {{port}} --peer-id {{peer_id}} --task {{task}} --seed {{seed}} "
                 f"--total-steps {{total_steps}} --role {{role}} --checkpoint-dir {tmp_path / 'ckpt'}")),
             PeerSpec("node-adversary", "room-6", 4, 5000, role="adversary", command=(
                 f"npm --prefix {node_peer} start --silent -- --port {{port}} --task {{task}} "
                 "--role {role} --peer-id {peer_id}"))]
    peers = _start(specs, tmp_path)
    try:
        for spec, address in zip(specs, peers.addresses, strict=True):
            proc = run_kit(address)
            assert proc.returncode == 0, f"{spec.peer_id} fails the conformance kit:\n{proc.stdout[-6000:]}"
            summary = proc.stdout.strip().splitlines()[-1]
            if spec.role == "adversary":
                assert "skipped" in summary, summary  # adviser: no Step, Save checks (it does Evaluate)
            else:
                assert "passed" in summary and "skipped" in summary, summary
    finally:
        pids = peers.pids
        peers.stop()
    assert not any(pid_alive(p) for p in pids)
