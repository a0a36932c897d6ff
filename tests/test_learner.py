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


# Every further algorithm a peer can run, once each (seed 0, training in the step): the same
# private-member contract, so each gets its bit-identity check against learn().
MORE = {
    "qrdqn-cartpole": ("CartPole-v1", LearnerPreset(algo="QRDQN", learning_rate=5e-4, net_arch=(32, 32),
                                                   buffer_size=5_000, learning_starts=200, batch_size=64), 1200),
    "td3-noise-pendulum": ("Pendulum-v1", LearnerPreset(algo="TD3", learning_rate=1e-3, net_arch=(32, 32),
                                                        buffer_size=5_000, learning_starts=100, batch_size=64,
                                                        action_noise_std=0.1), 304),
    "ddpg-pendulum": ("Pendulum-v1", LearnerPreset(algo="DDPG", learning_rate=1e-3, net_arch=(32, 32),
                                                   buffer_size=5_000, learning_starts=100, batch_size=64), 304),
    "tqc-pendulum": ("Pendulum-v1", LearnerPreset(algo="TQC", learning_rate=3e-4, net_arch=(32, 32), use_sde=False,
                                                  buffer_size=5_000, learning_starts=100, batch_size=64), 304),
    "crossq-pendulum": ("Pendulum-v1", LearnerPreset(algo="CrossQ", learning_rate=1e-3, net_arch=(32, 32),
                                                     use_sde=False, buffer_size=5_000, learning_starts=100,
                                                     batch_size=64), 304),
}


@pytest.mark.parametrize("case", sorted(MORE))
def test_every_algorithm_driver_matches_learn_bit_for_bit(case: str) -> None:
    th.set_num_threads(1)
    env_id, preset, total = MORE[case]
    reference = SB3Learner(gym.make(env_id), preset, total, 0)
    reference.model.learn(total)
    driven = SB3Learner(gym.make(env_id), preset, total, 0)
    drive(driven, total)
    assert driven.model._n_updates == reference.model._n_updates > 0
    assert weights_hash(driven.model) == weights_hash(reference.model)


@pytest.mark.parametrize("case", sorted(MORE))
def test_every_algorithm_answers_q_v_and_suggestions(case: str) -> None:
    """Q of given actions and V of states have one finite value per row; V is Q of the learner's own
    action (DQN family: the best action; TD3/DDPG: the actor's deterministic action)."""
    env_id, preset, _ = MORE[case]
    env = gym.make(env_id)
    learner = SB3Learner(env, preset, 1000, 0)
    states = np.stack([env.observation_space.sample() for _ in range(5)]).astype(np.float32)
    actions = learner.suggest(states, deterministic=False)
    assert actions.shape[0] == 5 and env.action_space.contains(actions[0].astype(env.action_space.dtype))
    q, v = learner.q_values(states, actions), learner.v_values(states)
    assert q.shape == v.shape == (5,) and np.isfinite(q).all() and np.isfinite(v).all()
    if learner.is_discrete:
        q_all = np.stack([learner.q_values(states, np.full(5, a)) for a in range(env.action_space.n)], axis=1)
        np.testing.assert_allclose(v, q_all.max(axis=1), rtol=1e-5)
    elif preset.algo in ("TD3", "DDPG"):
        np.testing.assert_allclose(v, learner.q_values(states, learner.suggest(states, deterministic=True)),
                                   rtol=1e-4, atol=1e-5)


def test_unknown_algorithm_is_refused_with_the_known_ones() -> None:
    preset = LearnerPreset(algo="PPO", learning_rate=1e-3, net_arch=(8,), buffer_size=100, learning_starts=10)
    with pytest.raises(ValueError, match="unknown algorithm 'PPO'; known: DQN, QRDQN, SAC, TQC, CrossQ, TD3, DDPG"):
        SB3Learner(gym.make("CartPole-v1"), preset, 100, 0)


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


def test_hyper_parameters_resolve_paper_then_zoo_then_sb3_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The paper's preset where it has one (another algorithm of the same kind keeps its settings, as
    the authors' --mix-agents); otherwise rl-zoo3's tuned values, which ship with peerlearn; otherwise
    SB3's defaults, read from the algorithm's constructor. Unknown names are refused with the valid ones."""
    import inspect

    from stable_baselines3 import DQN

    from peer_service import presets

    room = presets.preset_for("room-21")
    assert (room.algo, room.learning_rate, room.net_arch, room.source) == ("DQN", 5e-4, (256, 256), "paper")
    assert presets.preset_for("room-21", "qr-dqn").algo == "QRDQN"
    assert presets.preset_for("hopper", "td3").learning_rate == 3e-4  # the paper's MuJoCo setting
    assert presets.preset_for("CartPole-v1", discrete=True).source == "rl-zoo3"  # no extra installed
    corridor = presets.preset_for("tests.user_envs.corridor:Corridor-v0", discrete=True)
    assert corridor.source == "sb3-defaults"  # a task rl-zoo3 does not know

    monkeypatch.setattr(presets, "zoo_preset", lambda env_id, algo: None)
    cartpole = presets.preset_for("CartPole-v1", discrete=True)
    dqn_defaults = {k: p.default for k, p in inspect.signature(DQN.__init__).parameters.items()}
    assert (cartpole.algo, cartpole.source, cartpole.net_arch) == ("DQN", "sb3-defaults", None)
    assert cartpole.learning_rate == dqn_defaults["learning_rate"]
    assert cartpole.target_update_interval == dqn_defaults["target_update_interval"]
    assert presets.preset_for("Pendulum-v1", discrete=False).algo == "SAC"
    with pytest.raises(ValueError, match="no preset for task 'Pendulum-v1' and no algorithm given"):
        presets.preset_for("Pendulum-v1")

    tuned = room.with_overrides(algo="QRDQN", policy_kwargs={"n_quantiles": 10}, max_grad_norm=5)
    assert tuned.extra == {"policy_kwargs": {"n_quantiles": 10}, "max_grad_norm": 5}
    with pytest.raises(ValueError, match=r"unknown setting\(s\) learnin_rate \(did you mean learning_rate\?\) for "
                                         r"DQN; known: .*learning_rate"):
        room.with_overrides(learnin_rate=1e-3)
    with pytest.raises(ValueError, match="unknown setting"):
        room.with_overrides(ent_coef=0.1)  # a SAC argument, not DQN's
    with pytest.raises(ValueError, match="sde_sample_freq is not applied by a peer"):
        presets.preset_for("Pendulum-v1", "SAC").with_overrides(sde_sample_freq=4)  # refused, not ignored


def test_zoo_hyper_parameters_ship_with_peerlearn() -> None:
    """rl-zoo3's own files, shipped as package data: CartPole-v1's tuned DQN (rl-zoo3 2.9.2) without
    rl-zoo3 installed, and every entry of every file makes a preset (an update of the files that a peer
    could not run fails here, not in a user's run)."""
    from peer_service import presets, zoo

    cartpole = presets.preset_for("CartPole-v1", discrete=True)
    assert (cartpole.source, cartpole.learning_rate, cartpole.batch_size, cartpole.train_freq,
            cartpole.gradient_steps, cartpole.target_update_interval, cartpole.net_arch) == (
        "rl-zoo3", 2.3e-3, 64, 256, 128, 10, (256, 256))
    assert cartpole.notes == ("tuned for 50000 steps (n_timesteps; a run's budget is its own steps)",)
    assert presets.zoo_preset("CartPole-v1", "TD3") is None and presets.zoo_preset("atari", "DQN") is None
    for algo in ("DQN", "QRDQN", "SAC", "TD3", "TQC", "DDPG", "CrossQ"):
        for env_id in zoo._entries(algo):
            if env_id not in ("default", "atari"):
                assert presets.zoo_preset(env_id, algo).source == "rl-zoo3", (algo, env_id)


def test_zoo_settings_a_peer_cannot_apply_are_noted_not_dropped() -> None:
    """Each rl-zoo3 key that is not a constructor argument is translated or comes back as a note:
    lin_ schedules, policy_kwargs written as Python, normal and OU action noise, episode train_freq,
    wrappers, normalisation, parallel envs."""
    from peer_service import presets, zoo

    settings, notes = zoo.translate({
        "n_timesteps": 2e4, "policy": "MlpPolicy", "gamma": 0.98, "noise_type": "normal", "noise_std": 0.1,
        "learning_rate": "lin_1e-3", "policy_kwargs": "dict(net_arch=[400, 300], log_std_init=-2, use_expln=True)",
        "train_freq": [1, "episode"], "normalize": "{'norm_obs': True}", "frame_stack": 4, "n_envs": 1,
        "env_wrapper": [{"rl_zoo3.wrappers.HistoryWrapper": {"horizon": 2}}], "sde_sample_freq": 64})
    assert settings == {"gamma": 0.98, "learning_rate": "lin_1e-3", "net_arch": [400, 300], "log_std_init": -2,
                        "policy_kwargs": {"use_expln": True}, "train_freq": 1, "action_noise_std": 0.1}
    assert [n.split(":")[0] for n in notes] == [
        "tuned for 20000 steps (n_timesteps; a run's budget is its own steps)", "train_freq [1, 'episode']",
        "normalize {'norm_obs'", "frame_stack 4", "env_wrapper [rl_zoo3.wrappers.HistoryWrapper]",
        "sde_sample_freq 64"]  # n_envs 1 and MlpPolicy are what a peer does anyway
    _, notes = zoo.translate({"noise_type": "ornstein-uhlenbeck", "noise_std": 0.5, "policy": "MultiInputPolicy"})
    assert notes[0].startswith("policy MultiInputPolicy: not applied") and "Gaussian noise of the same std" in notes[1]
    preset = presets.zoo_preset("LunarLanderContinuous-v3", "SAC")
    assert repr(preset.learning_rate) == "lin_0.00073" and preset.learning_rate(0.5) == pytest.approx(3.65e-4)


def test_learners_toml_records_every_constructor_argument_the_model_gets() -> None:
    """recorded_settings (learners.toml) and the model a learner builds agree on every argument: the
    preset's values, SB3's defaults for the rest, policy_kwargs as the policy gets them."""
    from peer_service import presets
    from peer_service.learner import recorded_settings

    preset = presets.preset_for("Pendulum-v1", "TD3").with_overrides(learning_starts=10, buffer_size=500)
    record = recorded_settings(preset)
    model = SB3Learner(gym.make("Pendulum-v1"), preset, total_steps=1000, seed=0).model
    assert (record["algo"], record["source"], record["policy"]) == ("TD3", "rl-zoo3", "MlpPolicy")
    for name in ("learning_rate", "buffer_size", "learning_starts", "batch_size", "gamma", "tau", "gradient_steps",
                 "policy_delay", "target_policy_noise", "target_noise_clip", "optimize_memory_usage", "n_steps"):
        assert record[name] == getattr(model, name), name
    assert record["train_freq"] == model.train_freq.frequency and record["action_noise_std"] == 0.1
    assert record["policy_kwargs"] == {"net_arch": [400, 300]} == model.policy_kwargs
    assert record["stats_window_size"] == model._stats_window_size
