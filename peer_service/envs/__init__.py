"""Environments a peer can own: the Room grid world and Gymnasium v5 MuJoCo tasks."""

from __future__ import annotations

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


def make_env(task: str) -> gym.Env:
    env_id = resolve_env_id(task)
    return gym.make(env_id, **MUJOCO_KWARGS.get(env_id, {}))


def unwrap_room(env: gym.Env) -> RoomEnv | None:
    inner = env.unwrapped
    return inner if isinstance(inner, RoomEnv) else None


__all__ = ["ALIASES", "MUJOCO_KWARGS", "RoomEnv", "make_env", "resolve_env_id", "room_id", "unwrap_room"]
