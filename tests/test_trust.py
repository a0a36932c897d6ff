"""Trust, agent-value and selection math against hand-computed examples (docs/algorithm.md)."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.loop.buffers import SuggestionBuffer
from orchestrator.loop.trust import choose, combine, normalise, softmax, td_targets, update_reputation


def test_normalise_by_max_abs() -> None:
    np.testing.assert_allclose(normalise(np.array([2.0, -4.0, 1.0])), [0.5, -1.0, 0.25])


def test_normalise_all_zero_gives_zeros_not_nan() -> None:
    np.testing.assert_array_equal(normalise(np.zeros(3)), np.zeros(3))


def test_normalise_ignores_non_finite_entries() -> None:
    out = normalise(np.array([np.nan, 2.0, np.inf, -1.0]))
    np.testing.assert_allclose(out, [0.0, 1.0, 0.0, -0.5])
    np.testing.assert_array_equal(normalise(np.array([np.nan, np.inf])), [0.0, 0.0])


def test_combine_adds_normalised_components_with_equal_weight() -> None:
    v = combine({"critic": np.array([10.0, 5.0]), "trust": np.array([200.0, 200.0]),
                 "agent_values": np.array([-1.0, 2.0])})
    # critic [1, .5] + trust [1, 1] + agent values [-.5, 1]
    np.testing.assert_allclose(v, [1.5, 2.5])
    with pytest.raises(ValueError):
        combine({})


def test_softmax_hand_example_and_stability() -> None:
    p = softmax(np.array([0.0, np.log(3.0)]), 1.0)
    np.testing.assert_allclose(p, [0.25, 0.75])
    p = softmax(np.array([1000.0, 1000.0]), 1.0)  # no overflow
    np.testing.assert_allclose(p, [0.5, 0.5])
    np.testing.assert_allclose(softmax(np.array([0.0, 1.0]), 0.5), softmax(np.array([0.0, 2.0]), 1.0))
    with pytest.raises(ValueError):
        softmax(np.array([1.0]), 0.0)


def test_choose_follows_softmax_frequencies() -> None:
    rng = np.random.default_rng(0)
    values = np.array([0.0, np.log(3.0)])
    picks = np.array([choose(rng, values, 1.0) for _ in range(4000)])
    assert abs(picks.mean() - 0.75) < 0.03


def test_td_targets_with_and_without_advantage_and_termination_mask() -> None:
    r = np.array([1.0, 0.5])
    v_next, v_now = np.array([10.0, 10.0]), np.array([4.0, 2.0])
    term = np.array([False, True])
    np.testing.assert_allclose(td_targets(r, v_next, v_now, term, 0.9, advantage=False), [10.0, 0.5])
    np.testing.assert_allclose(td_targets(r, v_next, v_now, term, 0.9, advantage=True), [6.0, -1.5])


def test_update_reputation_per_followed_peer_mean() -> None:
    values = np.array([200.0, 200.0, 200.0])
    followed = np.array([0, 0, 2])
    targets = np.array([10.0, 20.0, -100.0])
    new = update_reputation(values, followed, targets, lr=0.5)
    # peer 0: 200 + .5 (15 - 200) = 107.5; peer 1 absent keeps 200; peer 2: 200 + .5 (-100 - 200) = 50
    np.testing.assert_allclose(new, [107.5, 200.0, 50.0])
    np.testing.assert_array_equal(values, [200.0, 200.0, 200.0])  # not modified in place


def test_update_reputation_drops_non_finite_targets() -> None:
    new = update_reputation(np.array([1.0, 1.0]), np.array([0, 1]), np.array([np.nan, 3.0]), lr=1.0)
    np.testing.assert_allclose(new, [1.0, 3.0])


def test_suggestion_buffer_is_fifo_and_samples_without_replacement() -> None:
    buf = SuggestionBuffer(capacity=5, obs_shape=(2,))
    rng = np.random.default_rng(0)
    for i in range(7):
        buf.add(np.array([i, i]), followed=i % 3, reward=float(i), next_obs=np.array([i + 1, i + 1]),
                terminated=i == 6)
    assert len(buf) == 5
    assert sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0, 5.0, 6.0]  # the oldest two were dropped
    batch = buf.sample(rng, 4)
    assert batch is not None and len(set(batch.rewards.tolist())) == 4
    np.testing.assert_array_equal(batch.next_obs[:, 0], batch.obs[:, 0] + 1)
    np.testing.assert_array_equal(batch.followed, batch.rewards.astype(int) % 3)
    assert buf.sample(rng, 5) is None  # as the reference: needs more entries than the batch


def test_agent_values_mean_is_the_papers_pooled_mean() -> None:
    from orchestrator.loop.trust import aggregate_agent_values

    evidence = [(0, np.array([1, 1]), np.array([10.0, 20.0])), (1, np.array([1]), np.array([60.0]))]
    new = aggregate_agent_values(np.array([0.0, 0.0]), evidence, lr=1.0, method="mean")
    np.testing.assert_allclose(new, [0.0, 30.0])  # pooled: (10 + 20 + 60) / 3


def test_agent_values_median_excludes_self_and_bounds_a_liar() -> None:
    from orchestrator.loop.trust import aggregate_agent_values

    honest = [(k, np.array([0, 0]), np.array([5.0, 7.0])) for k in (1, 2)]  # mean 6 each
    liar = (3, np.array([0, 3]), np.array([-1e6, 1e6]))  # runs peer 0 down, praises itself
    new = aggregate_agent_values(np.zeros(4), [*honest, liar], lr=1.0, method="median")
    assert new[0] == 6.0  # median of (6, 6, -1e6)
    assert new[3] == 0.0  # only self-evidence about peer 3: excluded
    plain = aggregate_agent_values(np.zeros(4), [*honest, liar], lr=1.0, method="mean")
    assert plain[0] < -1e5 and plain[3] == 1e6  # the paper's mean is moved arbitrarily far
    trimmed = aggregate_agent_values(np.zeros(4), [*honest, liar], lr=1.0, method="trimmed_mean")
    assert trimmed[0] == 6.0
    with pytest.raises(ValueError):
        aggregate_agent_values(np.zeros(2), [], lr=1.0, method="max")


def test_running_estimates_outvote_a_liar_who_speaks_alone_in_a_step() -> None:
    from orchestrator.loop.trust import aggregate_agent_values

    running = np.full((4, 4), np.nan)
    values = np.zeros(4)
    for _ in range(5):  # honest peers 1 and 2 report about peer 0: about 6
        values = aggregate_agent_values(values, [(1, np.array([0]), np.array([6.0])),
                                                 (2, np.array([0]), np.array([6.0]))], 1.0, running=running)
    # now only the liar (3) has evidence about peer 0 in this step
    values = aggregate_agent_values(values, [(3, np.array([0]), np.array([-1e6]))], 1.0, running=running)
    assert values[0] == 6.0  # median over (6, 6, -1e6): the running estimates keep the honest votes
    without = aggregate_agent_values(np.zeros(4), [(3, np.array([0]), np.array([-1e6]))], 1.0)
    assert without[0] == -1e6  # per-step median alone: the lone liar decides
