"""Environments a peer can own: the Room grid world, the paper's MuJoCo tasks (Gymnasium v5) and any
other Gymnasium environment, a user's own included."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import gymnasium as gym

from peer_service.envs.room import EPISODE_STEPS, RoomEnv, register_rooms, room_id

register_rooms()

# The paper's env kwargs (docs/algorithm.md, "Reference hyper-parameters"); v5 replaces the paper's v4, whose
# envs need old mujoco releases (docs/algorithm.md, "Smaller differences").
MUJOCO_KWARGS: dict[str, dict[str, object]] = {
    "HalfCheetah-v5": {},
    "Hopper-v5": {"terminate_when_unhealthy": False},
    "Walker2d-v5": {"terminate_when_unhealthy": False},
    "Ant-v5": {"terminate_when_unhealthy": False},
}

# Short names accepted everywhere a task is named.
ALIASES: dict[str, str] = {f"room-{size}": room_id(size) for size in EPISODE_STEPS}
ALIASES.update({name.split("-")[0].lower(): name for name in MUJOCO_KWARGS})


def resolve_env_id(task: str) -> str:
    return ALIASES.get(task.lower(), task)


def make_env(task: str, render_mode: str | None = None, wrappers: Sequence[str] = ()) -> gym.Env:
    """The task's env: a short name above, any registered Gymnasium id, or gymnasium's `module:EnvId`
    (the module is imported first, so a user's own env registers itself), wrapped by `wrappers` in order
    (wrap_env)."""
    env_id = resolve_env_id(task)
    kwargs: dict[str, Any] = dict(MUJOCO_KWARGS.get(env_id, {}))
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    try:
        env = gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as err:  # registered, but its package is missing
        raise ValueError(f"task {task!r} needs a package that is not installed: {err}") from err
    except (gym.error.Error, ModuleNotFoundError) as err:
        raise ValueError(f"unknown task {task!r}: {err} ({_task_hint(task, err)})") from err
    for spec in wrappers:
        env = wrap_env(env, spec)
    return env


def _task_hint(task: str, err: Exception) -> str:
    """What to do about a task that did not make: a user's module that is not importable needs its folder
    on the path (of the run and of every peer), anything else one of the names a task may have."""
    module = task.partition(":")[0]
    if ":" in task and "No module named" in str(err):
        return (f"the module {module} must be importable by the run and every peer: start peerlearn in the "
                f"folder that holds {module.replace('.', '/')}.py, or add that folder to PYTHONPATH")
    return f"a Gymnasium id such as CartPole-v1, module:EnvId for your own env, or one of {', '.join(ALIASES)}"


def wrap_env(env: gym.Env, spec: str) -> gym.Env:
    """Wrap `env` as a config names it: `Name` or `Name:key=value,key=value`, where Name is a class of
    gymnasium.wrappers (`FrameStackObservation:stack_size=4`, `NormalizeObservation`, `TimeLimit:
    max_episode_steps=200`) or a dotted path to a user's own wrapper (`my_pkg.wrappers.Clip:low=-1`).
    Values are Python literals (numbers, strings in quotes, lists, True/False)."""
    import ast
    import importlib

    name, _, arguments = spec.partition(":")
    kwargs: dict[str, object] = {}
    for item in filter(None, (a.strip() for a in arguments.split(","))):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"wrapper {spec!r}: expected key=value after the name, got {item!r}")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            kwargs[key.strip()] = value.strip()  # a bare word: a string
    module_name, _, cls_name = name.strip().rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name or "gymnasium.wrappers"), cls_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"wrapper {spec!r}: no wrapper {name!r} (a class of gymnasium.wrappers, or "
                         f"module.Class): {err}") from err
    try:
        return cls(env, **kwargs)
    except TypeError as err:
        raise ValueError(f"wrapper {spec!r}: {err}") from err


def check_spaces(observations: gym.Space, actions: gym.Space, task: str) -> None:
    """Refuse spaces a peer cannot carry: each state travels as one array (a Box), each action as an
    index (Discrete) or an array (Box)."""
    if not isinstance(observations, gym.spaces.Box):
        raise ValueError(f"{task}'s observations are a {type(observations).__name__} space, and a peer sends "
                         "each state as one array: flatten them with the wrapper FlattenObservation (--wrappers "
                         "FlattenObservation; a Discrete observation becomes one-hot)")
    if not isinstance(actions, gym.spaces.Discrete | gym.spaces.Box):
        raise ValueError(f"{task}'s actions are a {type(actions).__name__} space; a peer's learners act in a "
                         "Discrete space (DQN, QRDQN) or a Box (SAC, TQC, CrossQ, TD3, DDPG)")


def evaluation_copy(env: gym.Env) -> gym.Env:
    """A second instance of a user's env object for evaluation, with its wrappers: gymnasium rebuilds
    it from its spec (which lists the wrappers), else a deep copy."""
    if env.spec is not None:
        try:
            return gym.make(env.spec)
        except (gym.error.Error, TypeError, ValueError, AttributeError):
            pass  # a wrapper gymnasium cannot rebuild from its spec (say, one given a lambda)
    return copy.deepcopy(env)


def unwrap_room(env: gym.Env) -> RoomEnv | None:
    inner = env.unwrapped
    return inner if isinstance(inner, RoomEnv) else None


__all__ = ["ALIASES", "MUJOCO_KWARGS", "RoomEnv", "check_spaces", "evaluation_copy", "make_env", "resolve_env_id",
           "room_id", "unwrap_room"]
