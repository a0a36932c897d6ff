"""Room grid world dynamics and its exact evaluation (docs/algorithm.md, "The Room environment")."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from peer_service.envs import make_env, room_id
from peer_service.envs.room import EPISODE_STEPS, RoomEnv, optimal_action


def exact_return(size: int, policy) -> float:  # type: ignore[no-untyped-def]
    env = make_env(f"room-{size}")
    room = env.unwrapped
    total = 0.0
    for k in range(room.num_goals):
        obs, _ = env.reset(options={"goal_index": k})
        done = False
        while not done:
            obs, r, term, trunc, _ = env.step(policy(obs))
            total += r
            done = term or trunc
    return total / room.num_goals


@pytest.mark.parametrize("size,optimum", [(3, 19.4995), (6, 47.0971), (21, 85.986)])
def test_expert_reaches_the_known_optimum(size: int, optimum: float) -> None:
    assert exact_return(size, lambda o: optimal_action(o, size)) == pytest.approx(optimum, abs=1e-6)


def test_all_sizes_registered_with_episode_lengths() -> None:
    for size, steps in EPISODE_STEPS.items():
        env = gym.make(room_id(size))
        assert env.spec.max_episode_steps == steps
        assert env.observation_space.shape == (4,) and env.action_space.n == 4


def test_start_at_centre_goal_on_border_and_observation_scaling() -> None:
    env = RoomEnv(size=21)
    for seed in range(50):
        obs, _ = env.reset(seed=seed)
        np.testing.assert_allclose(obs[:2], [0.5, 0.5])
        g = env.goal
        assert (0 in g or 20 in g) and ((g >= 0) & (g <= 20)).all()
        np.testing.assert_allclose(obs[2:], g / 20)


def test_moves_walls_and_rewards() -> None:
    env = RoomEnv(size=3)
    env.reset(options={"goal_index": 0})  # axis 0 at 0, other coordinate 0: goal (0, 0)
    np.testing.assert_array_equal(env.goal, [0, 0])
    obs, r, term, trunc, _ = env.step(0)  # +x from (1,1) -> (2,1)
    np.testing.assert_array_equal(env.agent, [2, 1])
    assert r == -0.001 and not term and not trunc
    env.step(0)  # into the wall: stays
    np.testing.assert_array_equal(env.agent, [2, 1])
    env.step(1), env.step(1), env.step(3)  # -x, -x, -y -> (0, 0)
    obs, r, *_ = env.step(3)  # wall: stays on the goal, rewarded again, episode goes on
    assert r == 1.0 and env.agent.tolist() == [0, 0]
    with pytest.raises(ValueError):
        env.step(4)


def test_goal_draws_cover_exactly_the_enumerated_goals() -> None:
    env = RoomEnv(size=6)
    drawn = {tuple(env.reset(seed=s)[0][2:] * 5) for s in range(400)}
    enumerated = {tuple(env.goal_from_index(k) / 1.0) for k in range(env.num_goals)}
    assert {tuple(np.round(d).astype(int)) for d in drawn} == {tuple(map(int, e)) for e in enumerated}


def test_random_policy_is_far_below_optimum() -> None:
    rng = np.random.default_rng(0)
    assert exact_return(6, lambda o: int(rng.integers(4))) < 10


def test_goal_enumeration_corners_as_the_docstring_says() -> None:
    """goal_from_index's docstring: (0, 0) twice, (L-1, 0) and (0, L-1) once, (L-1, L-1) never."""
    from collections import Counter

    env = RoomEnv(size=21)
    counts = Counter(tuple(int(x) for x in env.goal_from_index(k)) for k in range(env.num_goals))
    assert [counts[(0, 0)], counts[(20, 0)], counts[(0, 20)], counts[(20, 20)]] == [2, 1, 1, 0]
    assert len(counts) == env.num_goals - 1 and max(counts.values()) == 2
