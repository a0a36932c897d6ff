"""Pretrained SB3 models as peers: any stable-baselines3 / sb3-contrib `.zip` (a user's own, or one
downloaded from a model hub) joins a group

- as a **learner that continues from it** (off-policy algorithms only: peer learning needs a replay
  buffer and a critic), with an empty replay buffer and its own warm-up, as SB3's
  `learn(reset_num_timesteps=True)` continues a loaded model; or
- as a **frozen adviser**: it suggests its policy's actions and never acts, learns or scores. Every
  model can do that, on-policy ones (PPO, A2C, ...) included; their critic is a state-value
  function, not the Q(s, a) the method scores suggestions with, so nobody scores with it.
"""

from __future__ import annotations

import inspect
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from peer_service.algorithms import ALGORITHMS, algorithm

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

# On-policy algorithms a frozen adviser may come from (their zips name only a shared policy class).
ON_POLICY = {"PPO": "stable_baselines3", "A2C": "stable_baselines3", "TRPO": "sb3_contrib",
             "RecurrentPPO": "sb3_contrib", "MaskablePPO": "sb3_contrib", "ARS": "sb3_contrib"}


def detect_algorithm(path: str | Path) -> str | None:
    """The algorithm a zip was saved from, read from its policy class (`stable_baselines3.dqn.policies`
    -> DQN); None when the class is shared by several algorithms (PPO and A2C both save
    ActorCriticPolicy): then the algorithm must be named."""
    from stable_baselines3.common.save_util import load_from_zip_file

    data, _, _ = load_from_zip_file(str(path), load_data=True, device="cpu")
    module = getattr(data.get("policy_class"), "__module__", "") if data else ""
    parts = module.split(".")
    if len(parts) >= 2 and parts[1] != "common":
        name = parts[1]
        for known in [*ALGORITHMS, *ON_POLICY]:
            if known.lower() == name:
                return known
    return None


def load_model(path: str | Path, algo: str | None = None, env: gym.Env | None = None) -> Any:
    """Load a model zip with its own class (named, or detected from the zip), on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"pretrained model {str(path)!r}: no such file")
    name = algo or detect_algorithm(path)
    if name is None:
        raise ValueError(f"pretrained model {str(path)!r}: its algorithm cannot be read from the file (PPO and "
                         "A2C save the same policy class); name it (learner setting algo, e.g. PPO)")
    cls = model_class(name)
    try:
        return cls.load(str(path), env=env, device="cpu")
    except ValueError as err:  # SB3's check of the model's spaces against the env's
        raise ValueError(f"pretrained model {str(path)!r} does not fit the task: {err} (the model's first, the "
                         "task's second)") from err


def model_class(name: str) -> type[BaseAlgorithm]:
    """The SB3 / sb3-contrib class of an algorithm name, on-policy ones included."""
    on_policy = next((k for k in ON_POLICY if k.lower() == name.lower()), None)
    return getattr(import_module(ON_POLICY[on_policy]), on_policy) if on_policy else algorithm(name).load()


def saved_settings(path: str | Path, algo: str | None = None) -> dict[str, Any]:
    """The settings a model zip was saved with, for learners.toml: its algorithm, its policy class and
    every argument of the algorithm's constructor the zip holds (SB3 saves them as the model's
    attributes). A learner that continues from it runs with these (its replay buffer at most the run's
    steps large); a frozen adviser only acts with its policy."""
    from stable_baselines3.common.save_util import load_from_zip_file

    from peer_service.learner import plain

    name = algo or detect_algorithm(path)
    data, _, _ = load_from_zip_file(str(path), load_data=True, device="cpu")
    data = data or {}
    record: dict[str, Any] = {"algo": name or "unknown", "source": "pretrained"}
    if "policy_class" in data:
        record["policy"] = plain(data["policy_class"])
    if name is None:
        return record
    for key in inspect.signature(model_class(name).__init__).parameters:
        if key in ("self", "policy", "env", "seed", "device", "verbose", "_init_setup_model", "tensorboard_log"):
            continue
        for saved in (key, f"_{key}"):  # SB3 keeps some under a private name (_stats_window_size)
            if saved in data:
                record[key] = plain(data[saved])
                break
    return record


def is_off_policy(model: Any) -> bool:
    return type(model).__name__ in ALGORITHMS


class FrozenAdviser:
    """A model that only suggests: its policy's action per state (stochastic = its behaviour policy)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.is_discrete = isinstance(model.action_space, gym.spaces.Discrete)
        self.name = type(model).__name__

    def suggest(self, states: np.ndarray, deterministic: bool) -> np.ndarray:
        actions, _ = self.model.predict(np.asarray(states, dtype=np.float32), deterministic=deterministic)
        actions = np.asarray(actions)
        if self.is_discrete:
            return actions.reshape(-1).astype(np.int64)
        return actions.reshape((len(states), *self.model.action_space.shape)).astype(np.float32)
