"""The exact critic of a scripted Room adviser, so an adviser-only peer can answer Evaluate.

The scripted expert walks straight to its target, so its Q-function has a closed form; no learning
and no value iteration are needed. The target is the goal for the expert and the mirrored goal
`1 - round(goal)` for the adversary: the adversary's critic is honest about the task it pretends is
the real one, which makes it a consistent liar (its Q and its suggestions agree).

Values are discounted returns of the infinite-horizon task (no terminal state; the time limit is a
truncation, as SB3's DQN treats it): -0.001 for each step that does not end on the target, +1.0 for
each step that does. From the target the agent stays put by pushing into a wall when the target is
on the border (every real goal is), and otherwise steps off and back (states the env never produces,
but Evaluate accepts any observation in the box). The same formulas are in peers/cpp/src/room.cc;
tests/test_cpp_peer.py checks that both give the same numbers.
"""

from __future__ import annotations

import numpy as np

from peer_service.envs.room import GOAL_REWARD, STEP_REWARD

# The four moves of RoomEnv.step: action a moves axis a // 2 by +1 (a % 2 == 0) or -1.
MOVES = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.int64)


def _grid(states: np.ndarray, size: int, mirror: bool) -> tuple[np.ndarray, np.ndarray]:
    """Agent and target cells (B, 2) of a batch of observations, clipped onto the grid."""
    obs = np.asarray(states, dtype=np.float64).reshape(-1, 4)
    last = size - 1
    goal = obs[:, 2:4]
    target = (1.0 - np.round(goal)) if mirror else goal
    agent = np.clip(np.rint(obs[:, :2] * last), 0, last).astype(np.int64)
    return agent, np.clip(np.rint(target * last), 0, last).astype(np.int64)


def _value_at_distance(distance: np.ndarray, on_border: np.ndarray, gamma: float) -> np.ndarray:
    """V of the best policy at Manhattan distance d from the target (d >= 0)."""
    stay = GOAL_REWARD / (1.0 - gamma)
    # Off the border the agent cannot stay: it alternates step-off (-0.001) and step-back (+1).
    step_off_and_back = (STEP_REWARD + gamma * GOAL_REWARD) / (1.0 - gamma**2)
    at_target = np.where(on_border, stay, step_off_and_back)
    arrival = GOAL_REWARD + gamma * at_target  # the step that ends on the target, and what follows
    d = np.maximum(distance, 1).astype(np.float64)
    walking = STEP_REWARD * (1.0 - gamma ** (d - 1)) / (1.0 - gamma)
    return np.where(distance == 0, at_target, walking + gamma ** (d - 1) * arrival)


def q_values(states: np.ndarray, actions: np.ndarray, size: int, mirror: bool, gamma: float) -> np.ndarray:
    """Q(s, a) of the scripted adviser for a batch of observations and Discrete(4) actions."""
    agent, target = _grid(states, size, mirror)
    moved = np.clip(agent + MOVES[np.asarray(actions, dtype=np.int64).reshape(-1)], 0, size - 1)
    distance = np.abs(moved - target).sum(axis=1)
    on_border = ((target == 0) | (target == size - 1)).any(axis=1)
    reward = np.where(distance == 0, GOAL_REWARD, STEP_REWARD)
    return reward + gamma * _value_at_distance(distance, on_border, gamma)


def v_values(states: np.ndarray, size: int, mirror: bool, gamma: float) -> np.ndarray:
    """V(s) = max_a Q(s, a): the scripted policy is optimal for its target."""
    batch = len(np.asarray(states).reshape(-1, 4))
    if batch == 0:
        return np.zeros(0, dtype=np.float64)
    per_action = [q_values(states, np.full(batch, a), size, mirror, gamma) for a in range(len(MOVES))]
    return np.max(np.stack(per_action, axis=1), axis=1)
