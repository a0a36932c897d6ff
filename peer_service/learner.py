"""Drive a stable-baselines3 SAC or DQN learner one env step at a time.

SB3's `learn()` owns the env loop, but a peer must execute actions chosen by the group. This adapter
does exactly what `OffPolicyAlgorithm.collect_rollouts` + `learn` do around each step (acting,
storing, progress and `_on_step`, training at the end of every `train_freq` window, gSDE noise reset
at the start of every window), so a run driven by it is bit-identical to `model.learn()`
(tests/test_learner.py checks this; it fails loudly if an SB3 upgrade changes the private members).
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.logger import Logger

from peer_service.presets import LearnerPreset


class SB3Learner:
    """One SB3 off-policy learner with the per-step interface a peer needs."""

    def __init__(self, env: gym.Env, preset: LearnerPreset, total_steps: int, seed: int) -> None:
        self.preset = preset
        self.total_steps = max(int(total_steps), 1)
        # A buffer larger than the run only costs memory; results are identical up to the budget.
        buffer_size = max(min(preset.buffer_size, self.total_steps), preset.batch_size)
        common: dict[str, Any] = dict(
            learning_rate=preset.learning_rate, buffer_size=buffer_size, learning_starts=preset.learning_starts,
            batch_size=preset.batch_size, gamma=preset.gamma, tau=preset.tau, train_freq=preset.train_freq,
            gradient_steps=preset.gradient_steps, seed=seed, device="cpu", verbose=0, **preset.extra)
        if preset.algo == "DQN":
            self.model: DQN | SAC = DQN(
                "MlpPolicy", env, target_update_interval=preset.target_update_interval,
                exploration_initial_eps=preset.exploration_initial_eps,
                exploration_fraction=preset.exploration_fraction,
                exploration_final_eps=preset.exploration_final_eps,
                policy_kwargs={"net_arch": list(preset.net_arch)}, **common)
        elif preset.algo == "SAC":
            self.model = SAC(
                "MlpPolicy", env, use_sde=preset.use_sde,
                policy_kwargs={"net_arch": list(preset.net_arch), "log_std_init": preset.log_std_init}, **common)
        else:
            raise ValueError(f"unknown algorithm {preset.algo!r}: expected DQN or SAC")
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.model._total_timesteps = self.total_steps
        self.is_discrete = isinstance(self.model.action_space, gym.spaces.Discrete)
        self._noise_due = True  # gSDE: fresh exploration matrix at the start of every train_freq window
        self.training_due = False  # a closed train_freq window whose gradient steps have not run yet
        self.last_losses: dict[str, float] = {}

    # ------------------------------------------------------------------ acting
    @property
    def num_timesteps(self) -> int:
        return int(self.model.num_timesteps)

    @property
    def in_warmup(self) -> bool:
        return self.num_timesteps < self.model.learning_starts

    def behaviour_action(self, observation: np.ndarray) -> np.ndarray:
        """The learner's own action at one state, as `_sample_action` picks it (random in warm-up)."""
        self._begin_window()
        if self.in_warmup:
            action = np.array(self.model.action_space.sample())
        else:
            action, _ = self.model.predict(observation[None], deterministic=False)
            action = action[0]
        return self.to_env_action(action)

    def suggest(self, states: np.ndarray, deterministic: bool) -> np.ndarray:
        """Actions for a batch of states; stochastic = the behaviour policy (SAC actor / epsilon-greedy)."""
        self._begin_window()
        if self.is_discrete:
            greedy = self._policy_actions(states, deterministic=True)
            if deterministic:
                return greedy
            # SB3's DQN.predict draws one epsilon coin for a whole batch; suggestions for different
            # peers' states must be independent, so explore per row.
            explore = np.random.rand(len(states)) < self.model.exploration_rate
            greedy[explore] = [self.model.action_space.sample() for _ in range(int(explore.sum()))]
            return greedy
        return self._policy_actions(states, deterministic)

    @th.no_grad()
    def _policy_actions(self, states: np.ndarray, deterministic: bool) -> np.ndarray:
        """What `policy.predict` computes for a batch, without its per-call `set_training_mode`
        walk over every module (a third of a Suggest's time in profiles); the policy is already in
        eval mode outside `train()`. Same RNG use, so runs stay reproducible."""
        policy = self.model.policy
        actions = policy._predict(th.from_numpy(np.array(states, dtype=np.float32)), deterministic=deterministic)
        actions = actions.numpy()
        if self.is_discrete:
            return actions.reshape(-1).astype(np.int64)
        actions = actions.reshape((-1, *self.model.action_space.shape))
        return policy.unscale_action(actions) if policy.squash_output else np.clip(
            actions, self.model.action_space.low, self.model.action_space.high)

    def to_env_action(self, action: np.ndarray) -> np.ndarray:
        """Round trip through the policy's scaling, as SB3 does before executing a Box action."""
        if self.is_discrete:
            return np.asarray(action, dtype=np.int64)
        policy = self.model.policy
        return policy.unscale_action(policy.scale_action(np.asarray(action, dtype=np.float32)))

    # ------------------------------------------------------------------ critic
    @th.no_grad()
    def q_values(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        if len(states) == 0:
            return np.zeros(0, dtype=np.float32)
        obs = th.from_numpy(np.array(states, dtype=np.float32))  # a writable copy of the wire buffer
        if self.is_discrete:
            q = self.model.q_net(obs)
            idx = th.as_tensor(np.asarray(actions, dtype=np.int64).reshape(-1, 1))
            return q.gather(1, idx).squeeze(1).numpy()
        scaled = th.as_tensor(self.model.policy.scale_action(np.asarray(actions, dtype=np.float32)))
        qs = th.cat(self.model.critic(obs, scaled), dim=1)
        return qs.min(dim=1).values.numpy()

    @th.no_grad()
    def v_values(self, states: np.ndarray) -> np.ndarray:
        """V(x) = Q(x, a'), a' from the own behaviour policy; DQN uses max_a Q (ALGORITHM.md s.3)."""
        if len(states) == 0:
            return np.zeros(0, dtype=np.float32)
        obs = th.from_numpy(np.array(states, dtype=np.float32))  # a writable copy of the wire buffer
        if self.is_discrete:
            return self.model.q_net(obs).max(dim=1).values.numpy()
        actions = self.model.actor(obs)  # a sample, already in the critic's scaled space (no log-prob needed)
        return th.cat(self.model.critic(obs, actions), dim=1).min(dim=1).values.numpy()

    # ------------------------------------------------------------------ learning
    def store(self, obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray,
              terminated: bool, truncated: bool, defer_training: bool = False) -> tuple[int, dict[str, float]]:
        """Store one executed transition and train when a `train_freq` window closes.

        Returns the number of gradient steps run and the latest losses. With `defer_training` the
        gradient steps are left for `train_pending()`, which the caller must run before the learner
        is used again (the peer does, so the order of updates and acting is unchanged); the returned
        count is then the number that will run, and the losses are the previous update's.
        """
        model = self.model
        model.num_timesteps += 1
        buffer_action = np.asarray(action).reshape(1, -1) if not self.is_discrete else np.array([[int(action)]])
        if not self.is_discrete:
            buffer_action = model.policy.scale_action(buffer_action.astype(np.float32))
        model.replay_buffer.add(
            np.asarray(obs)[None], np.asarray(next_obs)[None], buffer_action, np.array([reward], dtype=np.float32),
            np.array([terminated or truncated]), [{"TimeLimit.truncated": truncated and not terminated}])
        model._update_current_progress_remaining(model.num_timesteps, self.total_steps)
        model._on_step()
        if (model.num_timesteps + self.preset.train_phase) % model.train_freq.frequency != 0:
            return 0, {}
        self._noise_due = True
        if not (model.num_timesteps > model.learning_starts and model.gradient_steps > 0):
            return 0, {}
        self.training_due = True
        if defer_training:
            return model.gradient_steps, self.last_losses
        return self.train_pending(), self.last_losses

    def train_pending(self) -> int:
        """Run the gradient steps of the last closed `train_freq` window, if not run yet."""
        if not self.training_due:
            return 0
        self.training_due = False
        model = self.model
        model.train(batch_size=model.batch_size, gradient_steps=model.gradient_steps)
        model.policy.set_training_mode(False)  # train() left it in training mode
        self.last_losses = {"losses/" + k.split("/", 1)[1]: float(v) for k, v in model.logger.name_to_value.items()
                            if k.startswith("train/") and k != "train/n_updates"}
        return model.gradient_steps

    def _begin_window(self) -> None:
        """What `collect_rollouts` does first: with gSDE, draw a new noise matrix (once per window)."""
        if self._noise_due:
            self._noise_due = False
            if self.model.use_sde:
                self.model.actor.reset_noise(1)

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: Path) -> None:
        self.train_pending()
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "model.zip")
        self.model.save_replay_buffer(directory / "replay_buffer.pkl")
        rng = {"numpy": np.random.get_state(), "torch": th.get_rng_state(), "random": random.getstate(),
               "action_space": self.model.action_space.np_random.bit_generator.state}
        (directory / "learner_rng.pkl").write_bytes(pickle.dumps(rng))

    def load(self, directory: Path, env: gym.Env) -> None:
        cls = DQN if self.preset.algo == "DQN" else SAC
        self.model = cls.load(directory / "model.zip", env=env, device="cpu")
        self.model.load_replay_buffer(directory / "replay_buffer.pkl")
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        rng = pickle.loads((directory / "learner_rng.pkl").read_bytes())
        np.random.set_state(rng["numpy"])
        th.set_rng_state(rng["torch"])
        random.setstate(rng["random"])
        self.model.action_space.np_random.bit_generator.state = rng["action_space"]
        self._noise_due = True
        self.training_due = False
