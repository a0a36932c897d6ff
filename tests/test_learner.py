"""The step-by-step SB3 driver reproduces `model.learn()` bit for bit (docs/algorithm.md, "Smaller
differences").

If an SB3 upgrade changes the private members the driver relies on (`_on_step`, progress, train
windows, gSDE noise), these tests fail loudly instead of letting learning drift silently.
"""

from __future__ import annotations

import hashlib

import gymnasium as gym
import numpy as np
import pytest
import torch as th

from peer_service.learner import SB3Learner
from peer_service.presets import LearnerPreset


def weights_hash(model) -> str:  # type: ignore[no-untyped-def]
    h = hashlib.sha256()
    for name, tensor in sorted(model.policy.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.cpu().numpy().tobytes())
    return h.hexdigest()


def drive(learner: SB3Learner, total: int, defer_training: bool = False) -> None:
    """The peer's loop, on the model's own VecEnv so both runs see the same env stream (learn() runs
    whole train_freq windows, so `total` is a multiple of train_freq). With `defer_training` the
    gradient steps run as the peer runs them with overlap_training: after the step, before any other use."""
    env = learner.model.env
    obs = env.reset()
    for _ in range(total):
        learner.train_pending()  # the peer's settle() before acting
        action = learner.behaviour_action(obs[0])
        new_obs, rewards, dones, infos = env.step(np.array([action]))
        next_obs = infos[0]["terminal_observation"] if dones[0] else new_obs[0]
        truncated = bool(infos[0].get("TimeLimit.truncated", False))
        learner.store(obs[0], action, float(rewards[0]), next_obs, bool(dones[0]) and not truncated, truncated,
                      defer_training=defer_training)
        obs = new_obs
    learner.train_pending()


CASES = {
    "dqn-cartpole": ("CartPole-v1", LearnerPreset(algo="DQN", learning_rate=5e-4, net_arch=(64, 64),
                                                 buffer_size=10_000, learning_starts=200), 3000),
    "sac-sde-pendulum": ("Pendulum-v1", LearnerPreset(algo="SAC", learning_rate=3e-4, net_arch=(32, 32),
                                                      buffer_size=10_000, learning_starts=100, batch_size=64), 400),
    "sac-pendulum": ("Pendulum-v1", LearnerPreset(algo="SAC", learning_rate=3e-4, net_arch=(32, 32), use_sde=False,
                                                  buffer_size=10_000, learning_starts=100, batch_size=64), 304),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("defer_training", [False, True], ids=["in-step", "deferred"])
def test_driver_matches_learn_bit_for_bit(case: str, seed: int, defer_training: bool) -> None:
    th.set_num_threads(1)
    env_id, preset, total = CASES[case]
    reference = SB3Learner(gym.make(env_id), preset, total, seed)
    reference.model.learn(total)
    driven = SB3Learner(gym.make(env_id), preset, total, seed)
    drive(driven, total, defer_training)
    assert driven.model.num_timesteps == reference.model.num_timesteps == total
    assert driven.model._n_updates == reference.model._n_updates > 0
    assert weights_hash(driven.model) == weights_hash(reference.model)


def test_critic_values_shapes_and_v_is_max_q_for_dqn() -> None:
    learner = SB3Learner(gym.make("CartPole-v1"), CASES["dqn-cartpole"][1], 1000, 0)
    states = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    q_all = np.stack([learner.q_values(states, np.full(5, a)) for a in range(2)], axis=1)
    np.testing.assert_allclose(learner.v_values(states), q_all.max(axis=1), rtol=1e-6)
    assert learner.suggest(states, deterministic=True).shape == (5,)
    assert learner.q_values(states[:0], np.zeros(0, np.int64)).shape == (0,)


@pytest.mark.parametrize("phase", [0, 3])
def test_train_phase_shifts_the_window_and_keeps_the_schedule(phase: int) -> None:
    """A learner with train_phase p trains at the env steps t with (t + p) % train_freq == 0 (past
    learning_starts), train_freq gradient steps each time: the same amount of training, shifted."""
    th.set_num_threads(1)
    preset = LearnerPreset(algo="SAC", learning_rate=3e-4, net_arch=(32, 32), buffer_size=1_000, learning_starts=16,
                           batch_size=16, train_freq=8, gradient_steps=8, train_phase=phase)
    learner = SB3Learner(gym.make("Pendulum-v1"), preset, 64, 0)
    obs = np.zeros(3, np.float32)
    trained_at = []
    for t in range(1, 65):
        steps, _ = learner.store(obs, learner.behaviour_action(obs), 0.0, obs, False, False)
        if steps:
            assert steps == 8
            trained_at.append(t)
    assert trained_at == [t for t in range(17, 65) if (t + phase) % 8 == 0]
    assert learner.model._n_updates == 8 * len(trained_at)


def test_stagger_phases_put_at_most_cores_peers_in_one_burst() -> None:
    from orchestrator.config import stagger_phases

    assert stagger_phases(4, 8, 2) == [0, 4, 0, 4]
    assert stagger_phases(2, 8, 2) == [0, 0]  # no more peers than cores: nothing to stagger
    assert stagger_phases(4, 1, 2) == [0, 0, 0, 0]  # one gradient step every step: no window to shift
    for peers, freq, cores in [(8, 8, 2), (5, 8, 2), (32, 8, 2), (16, 8, 4), (3, 4, 1)]:
        phases = stagger_phases(peers, freq, cores)
        assert all(0 <= p < freq for p in phases)
        per_step = [sum((t + p) % freq == 0 for p in phases) for t in range(freq)]
        assert sum(per_step) == peers
        assert max(per_step) <= max(cores, -(-peers // freq))
