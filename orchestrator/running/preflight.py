"""Checks of a run's settings against the Python peers it will start here, before any of them starts.

`RunConfig.validate` checks the settings on their own (types, choices, list lengths). What only the
peers' own code can judge (does the task exist, does its learner have a preset, is an attack or a
learner setting known) is asked here, of that code, so that a user sees one clear line (exit 2)
instead of a traceback in a peer's log. A group of given addresses (`peerlearn orchestrate`) skips
this: its peers, maybe on other machines with the user's own env, judge their settings themselves.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

from orchestrator.config import RunConfig
from peer_service.attacks import parse_attack
from peer_service.envs import MUJOCO_KWARGS, check_spaces, make_env, resolve_env_id
from peer_service.presets import LearnerPreset, preset_for
from peerlearn.settings import UserError, port_taken


def check_local_peers(config: RunConfig) -> RunConfig:
    """What the Python peers would refuse only after they started (in their logs, as tracebacks):
    a task without a learner preset, an unknown learner setting, an unknown attack."""
    config.validate()
    if all(config.command(i) for i in range(config.peers)):
        return config  # foreign peers only: the task and settings are theirs to judge
    _check_mujoco(config.task)
    try:
        make_env(config.task).close()
    except ValueError as err:
        raise UserError(f"task: {err}") from None
    try:
        observations, actions = _spaces(config.task, tuple(config.wrappers))
    except ValueError as err:
        raise UserError(f"wrappers: {err}") from None
    try:
        check_spaces(observations, actions, config.task)
    except ValueError as err:
        raise UserError(f"task: {err}") from None
    for i in range(config.peers):
        if config.command(i):
            continue
        path = config.pretrained_of(i)
        if path and not Path(path).is_file():
            raise UserError(f"pretrained: expected an SB3 model zip for peer-{i}, got {path!r} (no such file)")
        if path:
            _check_pretrained_fits(config, i, observations, actions)
        if config.role(i) == "adviser" and not path:
            raise UserError(f"roles: peer-{i} is an adviser, which needs a pretrained model (pretrained)")
        if config.role(i) == "learner" and not path:
            try:
                learner_preset(config, i)
            except ValueError as err:
                raise UserError(f"learner: {err}") from None
    for attack in config.attacks:
        try:
            parse_attack(attack)
        except ValueError as err:
            raise UserError(f"attacks: {err}") from None
    return config


def check_status_port(config: RunConfig) -> None:
    """A status port in use is refused before any peer starts or any run folder is made (the status
    service is only started after the peers)."""
    if config.status_port > 0 and port_taken("127.0.0.1", config.status_port):
        raise UserError(f"status_port: expected a free port (or 0 = any, -1 = off), got {config.status_port}, "
                        "which is in use or not allowed")


def _check_pretrained_fits(config: RunConfig, index: int, observations: Any, actions: Any) -> None:
    """A model saved for other spaces than the task's (a CartPole zip offered to Room-6) is refused here,
    with the spaces that differ; its peer would refuse it only after it started (SB3's load checks the
    model's spaces against the env's, as here)."""
    path = config.pretrained_of(index)
    saved = _saved_spaces(path)
    if saved is None:
        raise UserError(f"pretrained: expected an SB3 model zip for peer-{index}, got {path!r} (it has no "
                        "readable data file with the model's spaces)")
    for what, model_space, task_space in (("observation", saved[0], _as_a_model_sees(observations)),
                                          ("action", saved[1], actions)):
        if model_space != task_space:
            raise UserError(f"pretrained: peer-{index}'s model {path} does not fit the task {config.task}: its "
                            f"{what} space is {_one_line(model_space)}, the task's is {_one_line(task_space)}")


def _one_line(space: Any) -> str:
    return " ".join(str(space).split())  # a Box prints its bounds padded to columns


@functools.cache
def _saved_spaces(path: str) -> tuple[Any, Any] | None:
    """The observation and action spaces an SB3 zip was saved with (its `data` entry; the weights are
    not read), or None for a file that is not such a zip."""
    import zipfile

    from stable_baselines3.common.save_util import json_to_data

    try:
        with zipfile.ZipFile(path) as archive:
            data = json_to_data(archive.read("data").decode())
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return None
    spaces = data.get("observation_space"), data.get("action_space")
    return None if None in spaces else spaces


def _as_a_model_sees(observations: Any) -> Any:
    """SB3 feeds channel-last images to a model transposed (VecTransposeImage), and saves that space."""
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage

    if is_image_space(observations) and not is_image_space_channels_first(observations):
        return VecTransposeImage.transpose_space(observations)
    return observations


def learner_preset(config: RunConfig, index: int) -> LearnerPreset:
    """The learner settings peer `index` will resolve (peer_service/presets.py), for validation and
    for settings the orchestrator needs (train_freq for stagger_training, learners.toml)."""
    overrides = config.learner_of(index)
    discrete = _is_discrete(config.task, tuple(config.wrappers))
    return preset_for(config.task, overrides.get("algo"), discrete=discrete).with_overrides(**overrides)


def _is_discrete(task: str, wrappers: tuple[str, ...]) -> bool:
    """Whether the task's (wrapped) action space is discrete."""
    import gymnasium as gym

    return isinstance(_spaces(task, wrappers)[1], gym.spaces.Discrete)


@functools.cache
def _spaces(task: str, wrappers: tuple[str, ...]) -> tuple[Any, Any]:
    """The task's (wrapped) observation and action spaces; one env built per task, not per peer."""
    env = make_env(task, wrappers=list(wrappers))
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def _check_mujoco(task: str) -> None:
    """MuJoCo is an extra (pyproject.toml): say so before the peers fail to build their env."""
    if resolve_env_id(task) in MUJOCO_KWARGS and importlib.util.find_spec("mujoco") is None:
        raise UserError(f"task: {task!r} needs MuJoCo, which is not installed: pip install 'peerlearn[mujoco]'")
