"""Learner hyper-parameters: the paper's presets where it has one (docs/algorithm.md, "Reference
hyper-parameters"); otherwise rl-zoo3's tuned values for the task and algorithm (shipped with peerlearn:
zoo.py); otherwise stable-baselines3's own defaults. Any SB3 constructor argument can be overridden;
names that are neither a preset field nor an argument of the algorithm are refused with the valid ones."""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field, fields, replace
from typing import Any

from peer_service.algorithms import ALGORITHMS, algorithm
from peer_service.envs import resolve_env_id
from peer_service.zoo import NOT_APPLIED, translate, zoo_entry
from peerlearn.settings import unknown_names

# SB3 arguments a peer's step-by-step driver (learner.py) does not apply: refused, not ignored.
NOT_DRIVEN = {k: v for k, v in NOT_APPLIED.items() if k in ("sde_sample_freq", "use_sde_at_warmup")}


@dataclass(frozen=True)
class LearnerPreset:
    """Settings of one SB3 learner. Field names follow stable-baselines3's constructor arguments."""

    algo: str  # DQN, QRDQN, SAC, TQC, CrossQ, TD3 or DDPG (peer_service/algorithms.py)
    learning_rate: float | LinearSchedule
    net_arch: tuple[int, ...] | None  # hidden layers of actor and critic; None = the SB3 policy's default
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
    # SAC family only (SAC, TQC, CrossQ)
    use_sde: bool = True
    log_std_init: float | None = -3.0  # None = the SB3 policy's default
    # Box actions: std of Gaussian exploration noise in the scaled [-1, 1] action space (SB3's
    # NormalActionNoise; 0 = none, SB3's default). TD3 and DDPG explore only through it.
    action_noise_std: float = 0.0
    source: str = "paper"  # where the values come from: paper, rl-zoo3 or sb3-defaults
    extra: dict[str, Any] = field(default_factory=dict)  # further SB3 constructor arguments, as given
    # rl-zoo3 settings that were not applied as written, and why (zoo.py); said at start, kept in learners.toml
    notes: tuple[str, ...] = ()

    def with_overrides(self, **overrides: Any) -> LearnerPreset:
        """This preset with some settings replaced. A preset field is replaced; any other argument of
        the algorithm's SB3 constructor (policy_kwargs, target_policy_noise, ent_coef, ...) goes to
        `extra`; anything else is refused with the valid names (a misspelt setting silently dropped
        would run a different experiment than the one asked for)."""
        own = {f.name for f in fields(self)} - {"extra", "source", "notes"}
        algo = algorithm(str(overrides.get("algo", self.algo))).name
        sb3 = sb3_arguments(algo) - set(NOT_DRIVEN)
        undriven = sorted(set(overrides) & set(NOT_DRIVEN))
        if undriven:
            raise ValueError(f"{undriven[0]} is not applied by a peer ({NOT_DRIVEN[undriven[0]]}); leave it out")
        unknown = sorted(set(overrides) - own - sb3 - {"extra"})
        if unknown:
            raise ValueError(f"unknown setting(s) {unknown_names(unknown, own | sb3)} for {algo}; known: "
                             f"{', '.join(sorted(own | sb3))}")
        known = {k: v for k, v in overrides.items() if v is not None and k in own}
        if "net_arch" in known:
            known["net_arch"] = tuple(int(x) for x in known["net_arch"])
        known["algo"] = algo
        extra = {**self.extra, **overrides.get("extra", {}),
                 **{k: v for k, v in overrides.items() if k not in own and k != "extra"}}
        return replace(self, **known, extra=extra)


class LinearSchedule:
    """rl-zoo3's `lin_<x>`: a learning rate falling linearly from x to 0 over the run. A class, not a
    closure, so a model that holds it can be saved and loaded."""

    def __init__(self, initial: float) -> None:
        self.initial = float(initial)

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.initial

    def __repr__(self) -> str:
        return f"lin_{self.initial:g}"


def sb3_arguments(algo: str) -> set[str]:
    """The keyword arguments of the algorithm's constructor (those a user may set)."""
    params = inspect.signature(algorithm(algo).load().__init__).parameters
    return set(params) - {"self", "policy", "env", "_init_setup_model", "device", "verbose", "seed",
                          "tensorboard_log"}


ROOM_DQN = LearnerPreset(algo="DQN", learning_rate=5e-4, net_arch=(256, 256), buffer_size=300_000,
                         learning_starts=100)
HALFCHEETAH_SAC = LearnerPreset(algo="SAC", learning_rate=7.3e-4, net_arch=(150, 200), buffer_size=1_000_000,
                                learning_starts=10_000)
MUJOCO_SAC = LearnerPreset(algo="SAC", learning_rate=3e-4, net_arch=(150, 200), buffer_size=1_000_000,
                           learning_starts=100)


def paper_preset(env_id: str) -> LearnerPreset | None:
    if "Room" in env_id:
        return ROOM_DQN
    if env_id.startswith("HalfCheetah"):
        return HALFCHEETAH_SAC
    if env_id.split("-")[0] in {"Hopper", "Walker2d", "Ant"}:
        return MUJOCO_SAC
    return None


def preset_for(task: str, algo: str | None = None, discrete: bool | None = None) -> LearnerPreset:
    """The learner settings of a task: the paper's preset (for the paper's tasks, with `algo` swapped in
    when it is of the same kind), else rl-zoo3's tuned values for (task, algo), else SB3's defaults for
    algo. Without `algo`, DQN for a discrete action space and SAC otherwise (`discrete`; None: the
    paper's tasks only)."""
    env_id = resolve_env_id(task)
    paper = paper_preset(env_id)
    name = algorithm(algo).name if algo else (paper.algo if paper else None)
    if name is not None and discrete is not None and algorithm(name).discrete != discrete:
        # SB3 would refuse it only inside the model's constructor, with an assertion.
        fitting = ", ".join(a.name for a in ALGORITHMS.values() if a.discrete == discrete)
        raise ValueError(f"{name} needs a {'discrete' if algorithm(name).discrete else 'continuous'} action space, "
                         f"and {task}'s is {'discrete' if discrete else 'continuous'}: use {fitting}")
    if paper is not None and name is not None and algorithm(name).discrete == algorithm(paper.algo).discrete:
        # Another algorithm of the same kind on a paper task keeps the paper's settings, as the
        # authors' --mix-agents runs SAC, TD3 and DQN peers with one set of hyper-parameters.
        return replace(paper, algo=name)
    if name is None:
        if discrete is None:
            raise ValueError(f"no preset for task {task!r} and no algorithm given: name one (learner setting "
                             "algo = DQN, QRDQN, SAC, TQC, CrossQ, TD3 or DDPG)")
        name = "DQN" if discrete else "SAC"
    return zoo_preset(env_id, name) or sb3_default_preset(name)


def sb3_default_preset(algo: str) -> LearnerPreset:
    """Stable-baselines3's own defaults for `algo`, read from its constructor (nothing copied by hand)."""
    defaults = {k: p.default for k, p in inspect.signature(algorithm(algo).load().__init__).parameters.items()
                if p.default is not inspect.Parameter.empty}
    own = {f.name for f in fields(LearnerPreset)}
    values = {k: v for k, v in defaults.items() if k in own and k not in ("algo", "net_arch", "log_std_init")}
    train_freq = values.get("train_freq", 1)
    values["train_freq"] = int(train_freq[0] if isinstance(train_freq, tuple) else train_freq)
    return LearnerPreset(algo=algorithm(algo).name, net_arch=None, log_std_init=None, source="sb3-defaults",
                         **{"use_sde": False, "tau": defaults.get("tau", 0.005), **values})


def zoo_preset(env_id: str, algo: str) -> LearnerPreset | None:
    """rl-zoo3's tuned hyper-parameters for (env_id, algo), if it has them (zoo.py: shipped with peerlearn)."""
    entry = zoo_entry(env_id, algorithm(algo).name)
    if entry is None:
        return None
    settings, notes = translate(entry)
    if isinstance(settings.get("learning_rate"), str) and settings["learning_rate"].startswith("lin_"):
        settings["learning_rate"] = LinearSchedule(float(settings["learning_rate"][4:]))
    return replace(sb3_default_preset(algo).with_overrides(**settings), source="rl-zoo3", notes=tuple(notes))
