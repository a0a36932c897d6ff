"""Trust evidence valued inside Step (`values_in_step`, orchestrator/loop/evidence.py) against the
separate Evaluate it replaces: the same buffer entries, the same targets, the same group."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from orchestrator.config import RunConfig
from orchestrator.loop.buffers import SuggestionBuffer
from orchestrator.loop.evidence import Kind, draw_evidence, evidence_from_values
from orchestrator.loop.group import Group
from orchestrator.loop.trust import td_targets
from orchestrator.running.inproc_client import InprocPeerClient

pytestmark = pytest.mark.timeout(120)


def _filled(capacity: int, entries: int, seed: int = 0) -> SuggestionBuffer:
    rng = np.random.default_rng(seed)
    buf = SuggestionBuffer(capacity, (3,))
    for _ in range(entries):
        buf.add(rng.random(3), int(rng.integers(4)), float(rng.random()), rng.random(3), bool(rng.random() < 0.2))
    return buf


def _critic(states: np.ndarray) -> np.ndarray:
    """A deterministic stand-in critic: V(x) = sum of x (so values identify their rows)."""
    return states.sum(axis=1).astype(np.float64)


@pytest.mark.parametrize("entries", [40, 60, 73], ids=["filling", "full", "wrapped"])
def test_pending_draw_equals_a_draw_after_the_add(entries: int) -> None:
    """Drawing before the step's transition exists (the peer values its next state) gives the same
    entries and targets as drawing after it was stored, whether the buffer is filling, full or wrapped."""
    capacity, batches = 60, [(Kind.TRUST, 10), (Kind.AGENT_VALUES, 5)]
    obs, nxt, reward, terminated, followed = np.full(3, 0.25), np.full(3, 0.75), 0.5, True, 2
    for seed in range(20):
        before = _filled(capacity, entries)
        draw = draw_evidence(before, np.random.default_rng(seed), batches, obs_now=obs)
        assert draw is not None
        # The peer's side: V of v_states with its true next observation in the rows named.
        rows = draw.v_states.copy()
        rows[draw.next_observation_rows] = nxt
        values = _critic(rows)
        before.add(obs, followed, reward, nxt, terminated)
        got = evidence_from_values(draw, values, before, 0, 0.9, True)

        after = _filled(capacity, entries)
        after.add(obs, followed, reward, nxt, terminated)
        rng = np.random.default_rng(seed)
        for (kind, k), e in zip(batches, got, strict=True):
            batch = after.sample(rng, k)
            assert batch is not None and (e.peer, e.kind) == (0, kind)
            got_followed, got_targets = e.followed, e.targets
            np.testing.assert_array_equal(got_followed, batch.followed)
            expected = td_targets(batch.rewards, _critic(batch.next_obs), _critic(batch.obs), batch.terminated,
                                  0.9, True)
            np.testing.assert_allclose(got_targets, expected, rtol=0, atol=1e-12)


def test_pending_transition_is_drawn_and_its_next_state_rows_named() -> None:
    buf = _filled(50, 50)
    obs_now = np.full(3, 7.0)
    hits = 0
    for seed in range(200):
        draw = draw_evidence(buf, np.random.default_rng(seed), [(Kind.TRUST, 10)], obs_now=obs_now)
        assert draw is not None
        slots = draw.draws[0][1]
        pending = np.flatnonzero(slots == buf.pos)
        np.testing.assert_array_equal(draw.next_observation_rows, pending)  # among the first 10: next states
        assert len(draw.v_states) == 20
        known = np.setdiff1d(np.arange(10), pending)
        np.testing.assert_array_equal(draw.v_states[known], buf.next_obs[slots[known]].astype(np.float32))
        np.testing.assert_array_equal(draw.v_states[10 + known], buf.obs[slots[known]].astype(np.float32))
        assert (draw.v_states[pending] == 7.0).all() and (draw.v_states[10 + pending] == 7.0).all()
        hits += len(pending)
    assert 20 <= hits <= 60  # 200 draws of 10 from 50 slots: the pending one ~40 times


def test_no_draw_until_the_buffer_holds_more_than_the_batch() -> None:
    buf = _filled(100, 9)
    assert draw_evidence(buf, np.random.default_rng(0), [(Kind.TRUST, 10)]) is None
    assert draw_evidence(buf, np.random.default_rng(0), [(Kind.TRUST, 10)], obs_now=np.zeros(3)) is None
    buf.add(np.zeros(3), 0, 0.0, np.zeros(3), False)
    assert draw_evidence(buf, np.random.default_rng(0), [(Kind.TRUST, 10)], obs_now=np.zeros(3)) is not None


async def _room_group(values_in_step: bool, steps: int, suggestion_buffer: int,
                      agent_value_updates: str = "per_env_step") -> tuple[Group, int]:
    import torch

    from peer_service.peer import Peer, PeerConfig

    torch.set_num_threads(1)
    peers = [Peer(PeerConfig(peer_id=f"peer-{i}", task="room-6", seed=i, total_steps=10**6,
                             learner_overrides={"learning_starts": 50})) for i in range(3)]
    clients = [InprocPeerClient(p) for p in peers]
    config = RunConfig(task="room-6", peers=3, seed=0, transport="inproc", status_port=-1, progress=False,
                       reputation_lr=0.01, suggestion_buffer=suggestion_buffer, values_in_step=values_in_step,
                       agent_value_updates=agent_value_updates)
    group = await Group.connect(clients, config)
    await group.reset()
    for _ in range(steps):
        await group.step()
    return group, sum(c.calls for c in clients)


@pytest.mark.parametrize("suggestion_buffer,updates", [(1000, "per_env_step"), (40, "per_env_step"),
                                                       (1000, "per_group_step")],
                         ids=["filling", "wrapping", "filling-per-group-step"])
def test_group_with_values_in_step_is_the_group_with_evaluate(suggestion_buffer: int, updates: str) -> None:
    """DQN critics value without sampling, so the two ways must agree bit for bit: trust, agent values
    and who followed whom, with one Evaluate fewer per learner and step (Evaluate only on decisions)."""
    steps = 400
    folded, folded_calls = asyncio.run(_room_group(True, steps, suggestion_buffer, updates))
    plain, plain_calls = asyncio.run(_room_group(False, steps, suggestion_buffer, updates))
    np.testing.assert_array_equal(folded.reputations.trust, plain.reputations.trust)
    for a, b in zip(folded.members, plain.members, strict=True):
        np.testing.assert_array_equal(a.follow_counts, b.follow_counts)
    np.testing.assert_array_equal(folded.reputations.agent_values, plain.reputations.agent_values)
    assert not np.allclose(folded.reputations.trust[0], 200.0)  # evidence did arrive
    saved = plain_calls - folded_calls
    print(f"\nvalues in Step: {folded_calls} calls, separate Evaluate: {plain_calls} "
          f"({saved / steps:.2f} fewer per step)")
    assert saved >= 0.7 * 3 * (steps - 60)  # about one Evaluate per learner per step past warm-up


@pytest.mark.parametrize("updates,per_step", [("per_env_step", 3), ("per_group_step", 1)])
def test_agent_values_move_once_per_acting_peers_env_step(monkeypatch: pytest.MonkeyPatch, updates: str,
                                                          per_step: int) -> None:
    """The authors' code updates the agent values after every env step of every peer: a group step of
    3 acting peers makes 3 updates, each pooling one fresh batch from every learner; per_group_step
    keeps one update per group step."""
    import orchestrator.loop.reputation as reputation_module

    calls: list[list[int]] = []
    real = reputation_module.aggregate_agent_values

    def counting(values, evidence, *args, **kwargs):  # noqa: ANN001, ANN202
        calls.append(sorted(k for k, _, _ in evidence))
        return real(values, evidence, *args, **kwargs)

    monkeypatch.setattr(reputation_module, "aggregate_agent_values", counting)
    steps = 150
    asyncio.run(_room_group(True, steps, 1000, updates))
    assert calls, "no agent-value update happened"
    # every update pools exactly one batch from each of the three learners
    assert all(c == [0, 1, 2] for c in calls)
    # past warm-up (learning_starts 50) and once the buffers hold a batch, every step updates per_step times
    steps_with_updates = len(calls) / per_step
    assert len(calls) % per_step == 0 and 60 <= steps_with_updates <= steps
