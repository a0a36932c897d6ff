"""Drive a stable-baselines3 / sb3-contrib off-policy learner one env step at a time.

SB3's `learn()` owns the env loop, but a peer must execute actions chosen by the group. This adapter
does exactly what `OffPolicyAlgorithm.collect_rollouts` + `learn` do around each step (acting,
storing, progress and `_on_step`, training at the end of every `train_freq` window, gSDE noise reset
at the start of every window), so a run driven by it is bit-identical to `model.learn()`
(tests/test_learner.py checks this; it fails loudly if an SB3 upgrade changes the private members).
"""

from __future__ import annotations

import enum
import inspect
import logging
import pickle
import random
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise

from peer_service.algorithms import algorithm
from peer_service.presets import LearnerPreset

log = logging.getLogger("peerlearn.learner")


def model_arguments(preset: LearnerPreset, action_dims: int | None = None) -> dict[str, Any]:
    """The arguments of the algorithm's SB3 constructor that a preset makes (all but env, seed, device
    and verbose): what SB3Learner builds its model with, and what learners.toml records. `action_dims`
    sizes the Gaussian action noise (None: no noise object; the record keeps action_noise_std)."""
    algo = algorithm(preset.algo)
    kwargs: dict[str, Any] = dict(
        learning_rate=preset.learning_rate, buffer_size=preset.buffer_size, learning_starts=preset.learning_starts,
        batch_size=preset.batch_size, gamma=preset.gamma, tau=preset.tau, train_freq=preset.train_freq,
        gradient_steps=preset.gradient_steps)
    policy_kwargs: dict[str, Any] = {} if preset.net_arch is None else {"net_arch": list(preset.net_arch)}
    if algo.discrete:
        kwargs.update(target_update_interval=preset.target_update_interval,
                      exploration_initial_eps=preset.exploration_initial_eps,
                      exploration_fraction=preset.exploration_fraction,
                      exploration_final_eps=preset.exploration_final_eps)
    if algo.stochastic_actor:
        kwargs["use_sde"] = preset.use_sde
        if preset.log_std_init is not None:
            policy_kwargs["log_std_init"] = preset.log_std_init
    if preset.action_noise_std > 0 and action_dims is not None:
        std = preset.action_noise_std * np.ones(action_dims)
        kwargs["action_noise"] = NormalActionNoise(np.zeros(action_dims), std)
    # The shared preset fields an algorithm does not take are left out (CrossQ has no target network,
    # so no tau); a user's own SB3 arguments (preset.extra) go through as given, and the class
    # refuses the ones it does not know.
    accepted = set(inspect.signature(algo.load().__init__).parameters)
    kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    extra = dict(preset.extra)
    policy_kwargs.update(extra.pop("policy_kwargs", {}))  # a user's policy_kwargs win over the preset's
    return {"policy": "MlpPolicy", "policy_kwargs": policy_kwargs, **kwargs, **extra}


def recorded_settings(preset: LearnerPreset) -> dict[str, Any]:
    """Every setting a learner built from `preset` runs with, for learners.toml: where the values came
    from, then every argument of the algorithm's constructor in its order (the preset's, else SB3's
    default), then what peerlearn adds (train_phase; action_noise_std for Box actions) and rl-zoo3's
    notes. Values without a TOML spelling are written as their Python text (a schedule: lin_0.001)."""
    algo = algorithm(preset.algo)
    given = model_arguments(preset)
    given["buffer_size"] = preset.buffer_size  # as set; a peer allocates at most the run's steps of it
    record: dict[str, Any] = {"algo": algo.name, "source": preset.source}
    for name, parameter in inspect.signature(algo.load().__init__).parameters.items():
        if name in ("self", "env", "seed", "device", "verbose", "_init_setup_model", "tensorboard_log"):
            continue
        value = given[name] if name in given else parameter.default
        if value is not inspect.Parameter.empty:
            record[name] = plain(value)
    record["train_phase"] = preset.train_phase
    if not algo.discrete:
        record["action_noise_std"] = preset.action_noise_std
    if preset.notes:
        record["notes"] = list(preset.notes)
    return record


def plain(value: Any) -> Any:
    """A setting as TOML can hold it: numbers, strings, lists and tables as they are; a class by its
    name; a TrainFreq as [n, unit]; None (SB3's 'not set') stays None, which the writer leaves out;
    anything else (schedules, noise objects) as its Python text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if hasattr(value, "_fields"):  # a namedtuple, e.g. SB3's TrainFreq(frequency, unit)
        return [plain(getattr(value, f)) for f in value._fields]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return plain(value.value)  # e.g. TrainFrequencyUnit.STEP
    if isinstance(value, type):
        return value.__name__
    return repr(value)


class SB3Learner:
    """One SB3 off-policy learner with the per-step interface a peer needs."""

    REPLAY_BUFFER = "replay_buffer.pkl"  # in a checkpoint folder

    def __init__(self, env: gym.Env, preset: LearnerPreset, total_steps: int, seed: int) -> None:
        self.preset = preset
        self.total_steps = max(int(total_steps), 1)
        self.algorithm = algorithm(preset.algo)
        # (the spaces a peer carries, Box and Discrete, have a shape; gymnasium types it Optional)
        kwargs = model_arguments(preset, int(np.prod(env.action_space.shape)))  # type: ignore[arg-type]
        # A buffer larger than the run only costs memory; results are identical up to the budget.
        kwargs["buffer_size"] = max(min(preset.buffer_size, self.total_steps), preset.batch_size)
        self.model: Any = self.algorithm.load()(env=env, seed=seed, device="cpu", verbose=0, **kwargs)
        self._finish_setup()

    @classmethod
    def from_model(cls, model: Any, env: gym.Env, total_steps: int) -> SB3Learner:
        """A learner that continues a loaded off-policy model (a pretrained peer): its weights and
        hyper-parameters, an empty replay buffer (at most `total_steps` large) and its own warm-up,
        as SB3's `learn(reset_num_timesteps=True)` continues a loaded model."""
        self = cls.__new__(cls)
        self.algorithm = algorithm(type(model).__name__)
        self.total_steps = max(int(total_steps), 1)
        model.set_env(env)
        model.num_timesteps = 0
        buffer_size = max(min(int(model.buffer_size), self.total_steps), int(model.batch_size))
        model.replay_buffer = model.replay_buffer_class(
            buffer_size, model.observation_space, model.action_space, device="cpu", n_envs=1,
            optimize_memory_usage=model.optimize_memory_usage, **(model.replay_buffer_kwargs or {}))
        self.preset = LearnerPreset(
            algo=self.algorithm.name, learning_rate=model.learning_rate, net_arch=None, buffer_size=buffer_size,
            learning_starts=int(model.learning_starts), batch_size=int(model.batch_size), gamma=float(model.gamma),
            tau=float(getattr(model, "tau", 0.0)), train_freq=int(model.train_freq.frequency),
            gradient_steps=int(model.gradient_steps), use_sde=bool(getattr(model, "use_sde", False)),
            log_std_init=None, source="pretrained")
        self.model = model
        self._finish_setup()
        return self

    def _finish_setup(self) -> None:
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        self.model._total_timesteps = self.total_steps
        self.is_discrete = isinstance(self.model.action_space, gym.spaces.Discrete)
        self._noise_due = True  # gSDE: fresh exploration matrix at the start of every train_freq window
        self.training_due = False  # a closed train_freq window whose gradient steps have not run yet
        self._own_action: tuple[np.ndarray, np.ndarray] | None = None  # last behaviour action: (env, scaled)
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
        if self.is_discrete:
            return self.to_env_action(action)
        # As SB3's _sample_action: the action in the policy's scaled space, plus exploration noise
        # (clipped to [-1, 1]) where the algorithm has it; that scaled action is what SB3 stores.
        policy = self.model.policy
        scaled = policy.scale_action(np.asarray(action, dtype=np.float32))
        noise = getattr(self.model, "action_noise", None)
        if noise is not None:
            scaled = np.clip(scaled + noise(), -1, 1)
        env_action = policy.unscale_action(scaled)
        self._own_action = (env_action, scaled)  # stored as is if executed (no round-trip rounding)
        return env_action

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
        actions = self._policy_actions(states, deterministic)
        noise = getattr(self.model, "action_noise", None)
        if noise is None or deterministic:
            return actions
        # The behaviour policy of TD3/DDPG is the actor plus exploration noise, drawn per row.
        policy = self.model.policy
        scaled = policy.scale_action(actions.astype(np.float32))
        return policy.unscale_action(np.clip(scaled + np.stack([noise() for _ in range(len(actions))]), -1, 1))

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
    def q_values(self, states: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Q(s, a) of given actions by this learner's critic (peer_service/algorithms.py says which)."""
        if len(states) == 0:
            return np.zeros(0, dtype=np.float32)
        obs = th.from_numpy(np.array(states, dtype=np.float32))  # a writable copy of the wire buffer
        if self.is_discrete:
            acts = th.as_tensor(np.asarray(actions, dtype=np.int64))
        else:
            acts = th.as_tensor(self.model.policy.scale_action(np.asarray(actions, dtype=np.float32)))
        return self.algorithm.q_values(self.model, obs, acts).numpy()

    def v_values(self, states: np.ndarray) -> np.ndarray:
        """V(x) = Q(x, a'), a' from the own behaviour policy; DQN uses max_a Q (docs/algorithm.md,
        "The value function")."""
        if len(states) == 0:
            return np.zeros(0, dtype=np.float32)
        obs = th.from_numpy(np.array(states, dtype=np.float32))  # a writable copy of the wire buffer
        return self.algorithm.v_values(self.model, obs).numpy()

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
        if self.is_discrete:
            buffer_action = np.array([[int(action)]])
        elif self._own_action is not None and np.array_equal(action, self._own_action[0]):
            buffer_action = self._own_action[1].reshape(1, -1)  # its own action: the scaled one SB3 stores
        else:
            buffer_action = model.policy.scale_action(np.asarray(action, dtype=np.float32).reshape(1, -1))
        self._own_action = None
        model.replay_buffer.add(
            np.asarray(obs)[None], np.asarray(next_obs)[None], buffer_action, np.array([reward], dtype=np.float32),
            np.array([terminated or truncated]), [{"TimeLimit.truncated": truncated and not terminated}])
        model._update_current_progress_remaining(model.num_timesteps, self.total_steps)
        model._on_step()
        if (terminated or truncated) and getattr(model, "action_noise", None) is not None:
            model.action_noise.reset()  # as collect_rollouts at an episode end
        if (model.num_timesteps + self.preset.train_phase) % model.train_freq.frequency != 0:
            return 0, {}
        self._noise_due = True
        if not (model.num_timesteps > model.learning_starts and model.gradient_steps != 0):
            return 0, {}
        self.training_due = True
        if defer_training:
            return self._window_gradient_steps(), self.last_losses
        return self.train_pending(), self.last_losses

    def train_pending(self) -> int:
        """Run the gradient steps of the last closed `train_freq` window, if not run yet."""
        if not self.training_due:
            return 0
        self.training_due = False
        model = self.model
        steps = self._window_gradient_steps()
        model.train(batch_size=model.batch_size, gradient_steps=steps)
        model.policy.set_training_mode(False)  # train() left it in training mode
        self.last_losses = {"losses/" + k.split("/", 1)[1]: float(v) for k, v in model.logger.name_to_value.items()
                            if k.startswith("train/") and k != "train/n_updates"}
        return steps

    def _window_gradient_steps(self) -> int:
        """gradient_steps, where -1 (rl-zoo3 uses it) means as many as env steps in the window, as in learn()."""
        model = self.model
        return int(model.gradient_steps if model.gradient_steps >= 0 else model.train_freq.frequency)

    def _begin_window(self) -> None:
        """What `collect_rollouts` does first: with gSDE, draw a new noise matrix (once per window)."""
        if self._noise_due:
            self._noise_due = False
            if getattr(self.model, "use_sde", False):
                self.model.actor.reset_noise(1)

    # ------------------------------------------------------------------ checkpoints
    def save(self, directory: Path) -> None:
        self.train_pending()
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "model.zip")
        self.model.save_replay_buffer(directory / self.REPLAY_BUFFER)
        rng = {"numpy": np.random.get_state(), "torch": th.get_rng_state(), "random": random.getstate(),
               "action_space": self.model.action_space.np_random.bit_generator.state}
        (directory / "learner_rng.pkl").write_bytes(pickle.dumps(rng))
        (directory / "learner_state.pkl").write_bytes(pickle.dumps(self._window_state()))

    def _window_state(self) -> dict[str, Any]:
        """What model.save() leaves out and the next steps depend on: whether a new gSDE noise matrix is
        due, the current one (an attribute of the distribution, not a parameter), and the action noise
        (TD3/DDPG's Ornstein-Uhlenbeck noise keeps its last value)."""
        dist = getattr(getattr(self.model, "actor", None), "action_dist", None)
        matrices = {name: getattr(dist, name).clone() for name in ("exploration_mat", "exploration_matrices")
                    if dist is not None and isinstance(getattr(dist, name, None), th.Tensor)}
        return {"noise_due": self._noise_due, "exploration": matrices,
                "action_noise": getattr(self.model, "action_noise", None)}

    def load(self, directory: Path, env: gym.Env) -> None:
        cls = self.algorithm.load()
        self.model = cls.load(directory / "model.zip", env=env, device="cpu")
        if (directory / self.REPLAY_BUFFER).exists():  # only the newest checkpoint has one (prune_checkpoints)
            self.model.load_replay_buffer(directory / self.REPLAY_BUFFER)
        else:
            log.warning("%s has no replay buffer (an older checkpoint): the learner continues with an empty one",
                        directory)
        self.model.set_logger(Logger(folder=None, output_formats=[]))
        rng = pickle.loads((directory / "learner_rng.pkl").read_bytes())
        np.random.set_state(rng["numpy"])
        th.set_rng_state(rng["torch"])
        random.setstate(rng["random"])
        self.model.action_space.np_random.bit_generator.state = rng["action_space"]
        self._noise_due = True
        self.training_due = False
        window = directory / "learner_state.pkl"
        if window.exists():  # checkpoints written before it was kept start a fresh gSDE window
            state = pickle.loads(window.read_bytes())
            self._noise_due = state["noise_due"]
            dist = getattr(getattr(self.model, "actor", None), "action_dist", None)
            for name, value in state["exploration"].items():
                setattr(dist, name, value)
            if state["action_noise"] is not None:
                self.model.action_noise = state["action_noise"]
