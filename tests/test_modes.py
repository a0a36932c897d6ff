"""The follow logic of every mode (docs/algorithm.md, "Baselines"): who is asked, who is followed,
for how long, and when early advising stops; group sizes 2..16; a `DQN DQN Adversarial` group.

Most tests drive the real `Group` loop with scripted fake peers whose suggestion *is* their index
(adviser j always suggests action j), so every executed action says whom the peer followed. Two
tests run real in-process SB3 groups and read the follow counts from group.csv.
"""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import peerlearn
from orchestrator.config import RunConfig
from orchestrator.loop.client import PeerClient
from orchestrator.loop.group import Group
from orchestrator.running.run import run_group
from peerlearn.messages import Capabilities, EvalResult, PeerInfo, StepResult

pytestmark = pytest.mark.timeout(120)

OBS = gym.spaces.Box(0.0, 1.0, (2,), np.float32)
ACT = gym.spaces.Discrete(32)


class ScriptedPeer(PeerClient):
    """Suggests action == its index; executes the given action (or its own index when acting alone,
    a random one during warm-up) and records what it executed."""

    def __init__(self, index: int, warmup: int = 0, learner: bool = True) -> None:
        self.index, self.warmup, self.learner = index, warmup, learner
        self.address = f"fake:{index}"
        self.executed: list[int] = []  # -1 = warm-up action
        self.suggest_calls = 0
        self.step_id = 0

    async def get_info(self) -> PeerInfo:
        caps = Capabilities(advises=True, evaluates=self.learner, acts=self.learner, learns=self.learner)
        return PeerInfo(
            protocol_version=peerlearn.PROTOCOL_VERSION,
            peer_id=f"p{self.index}",
            language="test",
            implementation="scripted",
            env_id="Fake-v0",
            observation_space=OBS,
            action_space=ACT,
            capabilities=caps,
            warmup_steps=self.warmup if self.learner else 0,
        )

    async def suggest(self, states: np.ndarray, deterministic: bool = False) -> np.ndarray:
        self.suggest_calls += 1
        return np.full(len(states), self.index, dtype=np.int64)

    async def evaluate(self, q_states, q_actions, v_states):  # type: ignore[no-untyped-def]
        # A critic that prefers nobody; V varies a little so trust targets are not all equal.
        return np.zeros(len(q_states), np.float32), np.linspace(0, 1, len(v_states), dtype=np.float32)

    async def reset(self, seed: int | None) -> tuple[np.ndarray, int]:
        return np.zeros(2, np.float32), self.step_id

    async def step(self, step_id: int, action: np.ndarray | None) -> StepResult:
        self.step_id = step_id
        if action is None:
            executed = -1 if step_id <= self.warmup else self.index
        else:
            executed = int(action)
        self.executed.append(executed)
        done = step_id % 50 == 0
        obs = np.array([step_id % 50 / 50, self.index / 32], np.float32)
        return StepResult(
            step_id=step_id,
            action=np.array(max(executed, 0)),
            reward=float(executed == 0),
            next_observation=obs,
            terminated=False,
            truncated=done,
            episode_return=0.0 if done else None,
            episode_length=50 if done else None,
            reset_observation=np.zeros(2, np.float32) if done else None,
        )

    async def run_evaluation(self, episodes: int, seed: int) -> EvalResult:
        return EvalResult([0.0], [1], False)

    async def save(self, step_id: int, tag: str = "") -> tuple[str, str]:
        return "", f"step-{step_id}"

    async def load(self, tag: str = "") -> tuple[str, int]:
        return "", self.step_id


def run_fake(
    n: int, steps: int, warmup: int = 0, advisers_only: int = 0, **kw
) -> tuple[Group, list[ScriptedPeer]]:  # type: ignore[no-untyped-def]
    peers = [ScriptedPeer(i, warmup) for i in range(n)] + [
        ScriptedPeer(n + k, learner=False) for k in range(advisers_only)
    ]
    config = RunConfig(
        peers=len(peers),
        steps=steps,
        eval_every=10**9,
        checkpoint_every=0,
        progress=False,
        status_port=-1,
        **kw,
    ).validate()

    async def go() -> Group:
        group = await Group.connect(peers, config)
        await group.reset()
        await group.run(steps)
        return group

    return asyncio.run(go()), peers


def blocks(seq: list[int], size: int) -> list[list[int]]:
    return [seq[k : k + size] for k in range(0, len(seq), size)]


def test_single_mode_never_asks_and_always_acts_alone() -> None:
    group, peers = run_fake(3, 200, warmup=20, mode="single")
    assert all(p.suggest_calls == 0 for p in peers)
    for p in peers:
        assert p.executed[:20] == [-1] * 20 and set(p.executed[20:]) == {p.index}
    assert (group.follow_matrix() == np.diag([180] * 3)).all()  # warm-up steps follow nobody


def test_random_mode_follows_a_uniform_peer_including_self_for_follow_steps() -> None:
    n, steps = 4, 3000
    group, peers = run_fake(n, steps, mode="random")
    picks = np.zeros(n, int)
    for p in peers:
        for b in blocks(p.executed, 10):  # one decision every 10 own steps, kept for the block
            assert len(set(b)) == 1, b
            picks[b[0]] += 1
    # 4 peers x 300 decisions over 4 choices: expected 300 each (binomial sd ~15)
    assert picks.sum() == n * steps // 10 and (np.abs(picks - 300) < 75).all(), picks
    assert all(group.follow_matrix()[i, i] > 0 for i in range(n))  # self is a possible pick
    assert group.follow_matrix().sum() == n * steps
    assert np.allclose(group.reputations.trust, 200.0)  # no reputations outside peer mode


def test_early_mode_follows_random_others_every_step_then_stops() -> None:
    n, steps, warmup = 3, 400, 10
    group, peers = run_fake(n, steps, warmup=warmup, mode="early", early_fraction=0.5)
    stop = int(0.5 * steps)
    for p in peers:
        assert p.executed[:warmup] == [-1] * warmup  # warm-up: own random actions
        early = p.executed[warmup:stop]
        assert p.index not in early and set(early) == set(range(n)) - {p.index}  # only others, all of them
        changes = sum(a != b for a, b in zip(early, early[1:], strict=False))
        assert changes > len(early) / 4  # a fresh draw every step, not every 10 steps
        assert set(p.executed[stop:]) == {p.index}  # after the early fraction: alone
    follow = group.follow_matrix()
    assert (np.diag(follow) == steps - stop).all()
    assert (follow.sum(axis=1) - np.diag(follow) == stop - warmup).all()


def test_peer_mode_asks_every_adviser_and_follows_the_choice_for_follow_steps() -> None:
    group, peers = run_fake(3, 300, mode="peer")
    # every decision asks all 3 advisers for all 3 deciders: 30 decision steps, + the followed one in between
    assert all(p.suggest_calls >= 30 for p in peers)
    for p in peers:
        assert all(len(set(b)) == 1 for b in blocks(p.executed, 10))
    assert group.follow_matrix().sum() == 3 * 300
    assert not np.allclose(group.reputations.trust, 200.0)  # trust learned from followed steps


@pytest.mark.parametrize("n", [2, 4, 8, 11, 16])
def test_group_sizes_up_to_16(n: int) -> None:
    group, peers = run_fake(n, 120, mode="peer")
    assert group.av_batch == max(1, 10 // n)  # the reference's 10 // N is 0 above 10 and crashes
    follow = group.follow_matrix()
    assert follow.sum() == n * 120 and follow.shape == (n, n)
    assert np.isfinite(group.reputations.agent_values).all() and not np.allclose(group.reputations.agent_values, 200.0)


def test_adviser_only_peers_are_asked_and_followed_but_never_act() -> None:
    group, peers = run_fake(2, 300, advisers_only=1, mode="random")
    adviser = peers[-1]
    assert adviser.executed == [] and adviser.suggest_calls > 0
    assert group.follow_matrix()[:2, 2].sum() > 0 and group.follow_matrix()[2].sum() == 0


# --------------------------------------------------------------------------- real in-process groups

SMALL = {"learning_starts": 20, "net_arch": [32], "batch_size": 16, "gradient_steps": 1}


def _group_rows(tmp_path: Path, name: str, **kw) -> tuple[Path, list[dict[str, str]]]:  # type: ignore[no-untyped-def]
    config = RunConfig(
        transport="inproc",
        out=str(tmp_path),
        name=name,
        progress=False,
        status_port=-1,
        log_every=10,
        checkpoint_every=0,
        learner=SMALL,
        **kw,
    )
    run_dir = asyncio.run(run_group(config)).run_dir
    return run_dir, list(csv.DictReader((run_dir / "group.csv").open()))


def test_inproc_early_advising_in_group_csv(tmp_path: Path) -> None:
    _, rows = _group_rows(
        tmp_path, "early", task="room-6", peers=2, steps=200, eval_every=100, mode="early", early_fraction=0.5
    )
    by_t = {int(r["group_step"]): r for r in rows}
    assert int(by_t[100]["follow/peer-0/peer-0"]) == 0 and int(by_t[100]["follow/peer-0/peer-1"]) == 80
    assert int(by_t[200]["follow/peer-0/peer-1"]) == 80 and int(by_t[200]["follow/peer-0/peer-0"]) == 100
    assert int(by_t[200]["follow/peer-1/peer-0"]) == 80


def test_inproc_dqn_dqn_adversarial_group(tmp_path: Path) -> None:
    run_dir, rows = _group_rows(
        tmp_path,
        "adv",
        task="room-6",
        peers=3,
        steps=300,
        eval_every=150,
        roles=["learner", "learner", "adversary"],
    )
    last = rows[-1]
    assert int(last["steps/peer-2"]) == 0 and int(last["steps/peer-0"]) == 300
    assert (
        int(last["follow/peer-0/peer-2"]) + int(last["follow/peer-1/peer-2"]) > 0
    )  # it was asked and followed
    assert not (run_dir / "peers" / "peer-2" / "evaluations.csv").exists()
    assert (run_dir / "peers" / "peer-1" / "evaluations.csv").read_text().count("\n") == 1 + 3


def test_inproc_group_of_16_runs(tmp_path: Path) -> None:
    _, rows = _group_rows(tmp_path, "n16", task="room-3", peers=16, steps=40, eval_every=40)
    last = rows[-1]
    assert int(last["group_step"]) == 40
    assert sum(int(v) for k, v in last.items() if k.startswith("follow/")) == 16 * (40 - 20)
