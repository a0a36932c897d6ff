"""The paper's hyper-parameters (ALGORITHM.md section 6) as presets, keyed by task family."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from peer_service.envs import resolve_env_id


@dataclass(frozen=True)
class LearnerPreset:
    """Settings of one SB3 learner. Field names follow stable-baselines3's constructor arguments."""

    algo: str  # "DQN" or "SAC"
    learning_rate: float
    net_arch: tuple[int, ...]
    buffer_size: int
    learning_starts: int
    batch_size: int = 256
    gamma: float = 0.99
    tau: float = 0.02
    train_freq: int = 8
    gradient_steps: int = 8
    # Env steps by which this learner's train_freq windows are shifted (0 = SB3's own windows). Peers of
    # one group on fewer cores than peers stagger their gradient-step bursts with it (stagger_phases).
    train_phase: int = 0
    # DQN only
    target_update_interval: int = 1
    exploration_initial_eps: float = 1.0
    exploration_fraction: float = 0.1
    exploration_final_eps: float = 0.05
    # SAC only
    use_sde: bool = True
    log_std_init: float = -3.0
    extra: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, **overrides: Any) -> LearnerPreset:
        """This preset with some settings replaced; a name that is not a setting is refused (a misspelt
        setting silently dropped would run a different experiment than the one asked for)."""
        unknown = sorted(set(overrides) - set(self.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown learner setting(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(self.__dataclass_fields__))}")
        known = {k: v for k, v in overrides.items() if v is not None}
        if "net_arch" in known:
            known["net_arch"] = tuple(int(x) for x in known["net_arch"])
        return replace(self, **known)


ROOM_DQN = LearnerPreset(algo="DQN", learning_rate=5e-4, net_arch=(256, 256), buffer_size=300_000,
                         learning_starts=100)
HALFCHEETAH_SAC = LearnerPreset(algo="SAC", learning_rate=7.3e-4, net_arch=(150, 200), buffer_size=1_000_000,
                                learning_starts=10_000)
MUJOCO_SAC = LearnerPreset(algo="SAC", learning_rate=3e-4, net_arch=(150, 200), buffer_size=1_000_000,
                           learning_starts=100)


def preset_for(task: str) -> LearnerPreset:
    env_id = resolve_env_id(task)
    if "Room" in env_id:
        return ROOM_DQN
    if env_id.startswith("HalfCheetah"):
        return HALFCHEETAH_SAC
    if env_id.split("-")[0] in {"Hopper", "Walker2d", "Ant"}:
        return MUJOCO_SAC
    raise ValueError(f"no preset for task {task!r}; known: Room-3/6/21/27/33, HalfCheetah, Hopper, Walker2d, Ant "
                     "(or give every learner setting explicitly)")
