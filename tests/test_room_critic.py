"""The scripted advisers' exact critic (peer_service/envs/room_critic.py) against value iteration on
the grid, and against the scripted moves it claims to value."""

from __future__ import annotations

import numpy as np
import pytest

from peer_service.envs import room_critic
from peer_service.envs.room import GOAL_REWARD, STEP_REWARD, optimal_action

GAMMA = 0.99


def value_iteration(size: int, target: tuple[int, int], gamma: float = GAMMA, sweeps: int = 4000) -> np.ndarray:
    """Q*(x, y, a) of the Room with `target` as the rewarding cell, by plain value iteration."""
    xs, ys = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    next_cells, rewards = [], []
    for dx, dy in room_critic.MOVES:
        nx, ny = np.clip(xs + dx, 0, size - 1), np.clip(ys + dy, 0, size - 1)
        next_cells.append((nx, ny))
        rewards.append(np.where((nx == target[0]) & (ny == target[1]), GOAL_REWARD, STEP_REWARD))
    v = np.zeros((size, size))
    for _ in range(sweeps):
        q = np.stack([r + gamma * v[nx, ny] for r, (nx, ny) in zip(rewards, next_cells, strict=True)], axis=-1)
        v = q.max(axis=-1)
    return q


def observations(size: int, target: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
    goal = np.broadcast_to(np.array(target), cells.shape)
    return cells, (np.concatenate([cells, goal], axis=1) / (size - 1)).astype(np.float32)


# Border goals (every real goal), a corner, and an inner cell (the off-border formula).
@pytest.mark.parametrize("size,target", [(6, (0, 3)), (6, (5, 5)), (7, (6, 1)), (6, (2, 3)), (3, (1, 1))])
def test_q_matches_value_iteration(size: int, target: tuple[int, int]) -> None:
    q_star = value_iteration(size, target)
    cells, obs = observations(size, target)
    for action in range(4):
        got = room_critic.q_values(obs, np.full(len(obs), action), size, mirror=False, gamma=GAMMA)
        want = q_star[cells[:, 0], cells[:, 1], action]
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=f"action {action}")
    np.testing.assert_allclose(room_critic.v_values(obs, size, False, GAMMA), q_star.max(axis=-1).ravel(), atol=1e-9)


@pytest.mark.parametrize("mirror", [False, True])
def test_v_is_the_value_of_the_scripted_move(mirror: bool) -> None:
    """Evaluate's V must be Q of the peer's own policy (docs/protocol.md): the scripted move is optimal."""
    size = 21
    rng = np.random.default_rng(0)
    obs = np.concatenate([rng.integers(0, size, (300, 4)) / (size - 1), rng.random((300, 4))]).astype(np.float32)
    moves = np.array([optimal_action(o, size, toward_mirror=mirror) for o in obs])
    q = room_critic.q_values(obs, moves, size, mirror, GAMMA)
    np.testing.assert_allclose(q, room_critic.v_values(obs, size, mirror, GAMMA), rtol=0, atol=1e-9)


def test_adversary_values_the_mirrored_goal() -> None:
    size = 21
    # Agent at the centre, goal (20, 6): the mirror target is round((1, 0.3)) -> (1, 0) -> 1 - . = (0, 1) -> (0, 20).
    obs = np.array([[0.5, 0.5, 1.0, 0.3]], np.float32)
    toward_goal, toward_mirror = np.array([0]), np.array([1])
    honest = room_critic.q_values(obs, toward_goal, size, False, GAMMA)
    liar = room_critic.q_values(obs, toward_mirror, size, True, GAMMA)
    assert honest[0] > room_critic.q_values(obs, toward_mirror, size, False, GAMMA)[0]
    assert liar[0] > room_critic.q_values(obs, toward_goal, size, True, GAMMA)[0]
    # 10 + 10 steps to (0, 20) and 10 + 4 to (20, 6): the liar's target is farther, so it is worth less.
    assert room_critic.v_values(obs, size, True, GAMMA)[0] < room_critic.v_values(obs, size, False, GAMMA)[0]


def test_empty_batches() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert room_critic.q_values(empty, np.zeros(0, np.int64), 6, False, GAMMA).shape == (0,)
    assert room_critic.v_values(empty, 6, True, GAMMA).shape == (0,)
