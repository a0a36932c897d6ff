"""The reputation object's rules, checked by hand (orchestrator/loop/reputation.py)."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.config import RunConfig
from orchestrator.loop.evidence import Evidence, Kind
from orchestrator.loop.reputation import Reputations
from peerlearn.settings import UserError


def evidence(peer: int, kind: Kind, followed: list[int], targets: list[float]) -> Evidence:
    return Evidence(peer, kind, np.array(followed), np.array(targets, dtype=np.float64))


@pytest.mark.parametrize("votes,moves", [("sole_evaluator", True), ("never", False)])
def test_a_lone_learner_beside_an_adviser_is_judged_by_its_own_evidence(votes: str, moves: bool) -> None:
    """Peer 0 learns, peer 1 is an adviser without a critic: nobody else ever votes on peer 0. With
    the old rule its agent value stayed at the optimistic 200 for ever while the adviser's fell."""
    rep = Reputations(2, RunConfig(agent_value_self_votes=votes, reputation_lr=0.5), evaluators=[0])
    for _ in range(20):
        rep.update([evidence(0, Kind.AGENT_VALUES, [0, 1], [1.0, 3.0])])
    assert rep.agent_values[1] == pytest.approx(3.0, abs=1e-3)
    assert (rep.agent_values[0] == pytest.approx(1.0, abs=1e-3)) if moves else rep.agent_values[0] == 200.0


def test_self_votes_change_nothing_where_two_learners_vote() -> None:
    runs = []
    for votes in ("sole_evaluator", "never"):
        rep = Reputations(3, RunConfig(agent_value_self_votes=votes, reputation_lr=0.1), evaluators=[0, 1])
        for k in range(30):
            rep.update([evidence(0, Kind.AGENT_VALUES, [0, 1, 2], [1.0, 2.0, -k]),
                        evidence(1, Kind.AGENT_VALUES, [0, 1, 2], [0.5, 4.0, k])])
        runs.append(rep.agent_values)
    np.testing.assert_array_equal(*runs)


def test_reward_floor_keeps_near_zero_trust_near_zero() -> None:
    """Trust of +-0.01 is noise next to rewards of size 1: the paper's x / max|x| makes it +-1."""
    paper = Reputations(2, RunConfig(use_critic=False, use_agent_values=False), evaluators=[0, 1])
    fixed = Reputations(2, RunConfig(use_critic=False, use_agent_values=False, reputation_scale="reward_floor"),
                        evaluators=[0, 1])
    for rep in (paper, fixed):
        rep.trust[0] = [0.01, -0.01]
    rng = np.random.default_rng(0)
    _, d_paper = paper.decide(rng, 0, [0, 1], None, reward_scale=1.0)
    _, d_fixed = fixed.decide(rng, 0, [0, 1], None, reward_scale=1.0)
    assert d_paper is not None and d_fixed is not None
    np.testing.assert_allclose(d_paper.components["trust"], [1.0, -1.0])
    np.testing.assert_allclose(d_fixed.components["trust"], [0.01, -0.01])
    assert d_paper.probabilities[0] == pytest.approx(np.exp(2) / (1 + np.exp(2)))
    assert abs(d_fixed.probabilities[0] - 0.5) < 0.01
    # Above the floor nothing changes.
    fixed.trust[0] = [3.0, -1.5]
    _, d_big = fixed.decide(rng, 0, [0, 1], None, reward_scale=1.0)
    assert d_big is not None
    np.testing.assert_allclose(d_big.components["trust"], [1.0, -0.5])


def thompson(**kw: object) -> Reputations:
    return Reputations(3, RunConfig(adviser_choice="thompson", **kw), evaluators=[0, 1])  # type: ignore[arg-type]


def test_thompson_tries_unseen_peers_first_then_follows_the_best() -> None:
    rep = thompson(thompson_own_share=0.0)
    rng = np.random.default_rng(1)
    rep.update([evidence(0, Kind.TRUST, [0, 0], [0.0, 0.1])])
    firsts = {rep.decide(rng, 0, [0, 1, 2], None)[0] for _ in range(50)}
    assert firsts == {1, 2}  # never followed: tried before peer 0, whose evidence exists
    for _ in range(50):
        rep.update([evidence(0, Kind.TRUST, [0, 1, 2, 0, 1, 2], [0.0, 0.1, 1.0, 0.05, 0.0, 0.9])])
    picks = [rep.decide(rng, 0, [0, 1, 2], None)[0] for _ in range(200)]
    assert picks.count(2) > 190
    _, decision = rep.decide(rng, 0, [0, 1, 2], None)
    assert decision is not None and decision.probabilities[2] > 0.95
    assert decision.probabilities.sum() == pytest.approx(1.0)


def test_thompson_keeps_random_advices_own_share() -> None:
    """However good an adviser looks, a learner acts on its own policy about 1/N of the time."""
    rep = thompson()
    for _ in range(50):
        rep.update([evidence(0, Kind.TRUST, [0, 1, 2], [0.0, 0.0, 5.0])])
    rng = np.random.default_rng(2)
    picks = [rep.decide(rng, 0, [0, 1, 2], None)[0] for _ in range(3000)]
    assert abs(picks.count(0) / 3000 - 1 / 3) < 0.03 and picks.count(1) < 30
    _, decision = rep.decide(rng, 0, [0, 1, 2], None)
    assert decision is not None and decision.probabilities[0] == pytest.approx(1 / 3, abs=0.01)


def test_thompson_forgets_so_a_neglected_peer_is_tried_again() -> None:
    rep = thompson(thompson_own_share=0.0, thompson_discount=0.9, trust_batch=1)
    for _ in range(30):
        rep.update([evidence(0, Kind.TRUST, [0, 0, 1, 1], [-0.5, 0.5, 0.5, 1.5])])
    _, std_fresh, _ = rep._posterior(0, [0, 1])
    for _ in range(30):  # peer 0 is no longer followed: only peer 1's evidence arrives
        rep.update([evidence(0, Kind.TRUST, [1, 1], [0.5, 1.5])])
    _, std_old, _ = rep._posterior(0, [0, 1])
    assert std_old[0] > 3 * std_fresh[0]


def test_state_restores_every_reputation() -> None:
    rep = thompson()
    rep.update([evidence(0, Kind.TRUST, [0, 2], [1.0, 2.0]), evidence(1, Kind.AGENT_VALUES, [0, 2], [1.0, 2.0])])
    other = thompson()
    other.restore(rep.state())
    for key, value in rep.state().items():
        np.testing.assert_array_equal(value, other.state()[key], err_msg=key)


@pytest.mark.parametrize("kw", [{"adviser_choice": "ucb"}, {"reputation_scale": "max"},
                                {"agent_value_self_votes": "always"}, {"thompson_discount": 0.0},
                                {"adviser_choice": "thompson", "use_trust": False},
                                {"peers": 2, "learner_by_peer": {"2": {"learning_rate": 1e-5}}},
                                {"learner_by_peer": {"x": {}}}])
def test_bad_choice_settings_are_refused_before_start(kw: dict[str, object]) -> None:
    with pytest.raises(UserError):
        RunConfig(**kw).validate()  # type: ignore[arg-type]


def test_learner_by_peer_overrides_one_peers_learner() -> None:
    config = RunConfig(peers=2, learner={"learning_starts": 50, "learning_rate": 1e-3},
                       learner_by_peer={"0": {"learning_rate": 1e-4}}, algos=["", "DQN"]).validate()
    assert config.learner_of(0) == {"learning_starts": 50, "learning_rate": 1e-4}
    assert config.learner_of(1) == {"learning_starts": 50, "learning_rate": 1e-3, "algo": "DQN"}
