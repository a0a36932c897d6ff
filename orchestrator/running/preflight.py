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
from peerlearn.settings import UserError


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
