"""rl-zoo3's tuned hyper-parameters, shipped with peerlearn: `zoo_hyperparams/<algo>.yml` are rl-zoo3
2.9.2's files, copied verbatim (MIT; zoo_hyperparams/README.md says why they are copied and how to update
them). A task rl-zoo3 has an entry for gets them without any extra installed, and an installed rl-zoo3
changes nothing: a run's settings never depend on what else happens to be installed.

An entry mixes constructor arguments of the algorithm with settings of how rl-zoo3 trains. A peer applies
the arguments; every other key is translated here, and whatever a peer cannot apply comes back as a
note (the run prints it at start, learners.toml records it), never dropped in silence:

- constructor arguments (gamma, batch_size, ent_coef, ...): applied as given;
- `learning_rate: lin_<x>`: a linear schedule from x to 0 over the run's steps (presets.LinearSchedule);
- `policy_kwargs` (Python text, "dict(net_arch=[256, 256])"): evaluated with only `dict` and `torch.nn`
  in reach; net_arch and log_std_init become the preset's fields, the rest goes to the policy;
- `noise_type: normal` with `noise_std`: Gaussian action noise of that std (action_noise_std);
  `ornstein-uhlenbeck`: Gaussian noise of the same std instead (a peer has no OU noise), noted;
- `train_freq: [n, "episode"]`: every n env steps (a peer trains by steps), noted;
- `n_timesteps`: rl-zoo3's budget, noted; the run's `steps` is the budget, and schedules
  (exploration_fraction, lin_) stretch over it as they do with rl-zoo3's `-n`;
- `policy` other than MlpPolicy, `n_envs` > 1, `normalize`, `frame_stack`, `env_wrapper`,
  `vec_env_wrapper`, `callback`, `env_kwargs`, `eval_env_kwargs`, `replay_buffer_class`,
  `replay_buffer_kwargs`, `sde_sample_freq`, `use_sde_at_warmup`: not applied, noted. Wrappers a task
  needs are named in the run's `wrappers`, the same for every peer, since peers exchange observations.

rl-zoo3's `atari` and `default` entries are not used: a task gets an entry only under its own id.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

ZOO_VERSION = "2.9.2"

# Keys a peer cannot apply, with what to do instead (the end of the note).
NOT_APPLIED = {
    "normalize": "a peer's observations and rewards are not normalised; NormalizeObservation in wrappers "
                 "normalises each peer's own",
    "frame_stack": "name FrameStackObservation:stack_size=N in wrappers if the task needs it",
    "env_wrapper": "name the wrappers the task needs in wrappers",
    "vec_env_wrapper": "a peer steps one env, not a vector of them",
    "n_envs": "a peer steps one env",
    "callback": "a peer runs no SB3 callbacks",
    "env_kwargs": "the task is made with its own arguments",
    "eval_env_kwargs": "the task is made with its own arguments",
    "replay_buffer_class": "a peer uses its algorithm's own replay buffer",
    "replay_buffer_kwargs": "a peer uses its algorithm's own replay buffer",
    # SB3 arguments that collect_rollouts applies and a peer's step-by-step driver does not (learner.py)
    "sde_sample_freq": "gSDE noise is drawn once per train_freq window",
    "use_sde_at_warmup": "warm-up actions are uniform",
}


@functools.cache
def _entries(algo: str) -> dict[str, dict[str, Any]]:
    import yaml  # a dependency of peerlearn for these files (pyproject.toml)

    path = resources.files("peer_service") / "zoo_hyperparams" / f"{algo.lower()}.yml"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return yaml.safe_load(text) or {}


def zoo_entry(env_id: str, algo: str) -> dict[str, Any] | None:
    """rl-zoo3's entry for (env_id, algo) as written in its file, or None."""
    if env_id in ("default", "atari"):
        return None
    entry = _entries(algo).get(env_id)
    return dict(entry) if entry else None


def translate(entry: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An entry as learner settings (LearnerPreset.with_overrides' names) and notes on what was not
    applied as written (the table in this module's docstring)."""
    settings: dict[str, Any] = {}
    notes: list[str] = []
    for key, value in entry.items():
        if key == "n_timesteps":
            notes.append(f"tuned for {int(value)} steps (n_timesteps; a run's budget is its own steps)")
        elif key == "policy":
            if value != "MlpPolicy":
                notes.append(f"policy {value}: not applied (a peer runs MlpPolicy on a flat observation)")
        elif key in ("noise_type", "noise_std"):
            continue  # below, as a pair
        elif key in NOT_APPLIED:
            if _differs(key, value):
                notes.append(f"{key} {_spelling(value)}: not applied ({NOT_APPLIED[key]})")
        elif key == "policy_kwargs":
            settings.update(_policy_kwargs(value))
        elif key == "train_freq" and isinstance(value, (list, tuple)):
            settings[key] = int(value[0])
            if len(value) > 1 and value[1] != "step":
                notes.append(f"train_freq {list(value)}: every {int(value[0])} env steps instead (a peer trains "
                             "by steps)")
        else:
            settings[key] = value
    noise = entry.get("noise_type")
    if noise is not None:
        settings["action_noise_std"] = float(entry.get("noise_std", 0.1))
        if noise != "normal":
            notes.append(f"noise_type {noise}: Gaussian noise of the same std instead (a peer has no other "
                         "action noise)")
    return settings, notes


def _differs(key: str, value: Any) -> bool:
    """Whether a key rl-zoo3 sets (NOT_APPLIED) asks for anything other than what a peer does anyway."""
    if key == "n_envs":
        return value != 1
    if key == "sde_sample_freq":
        return value > 0  # -1, SB3's default: once per rollout
    return bool(value)


def _policy_kwargs(value: Any) -> dict[str, Any]:
    """rl-zoo3's policy_kwargs (Python text, evaluated as rl-zoo3 does, with nothing but dict and
    torch.nn in reach: it is rl-zoo3's own file) as the preset's net_arch / log_std_init and the rest."""
    if isinstance(value, str):
        import torch.nn as nn

        value = eval(value, {"__builtins__": {}, "dict": dict, "nn": nn})
    kwargs = dict(value)
    out: dict[str, Any] = {}
    if isinstance(kwargs.get("net_arch"), list):  # a dict (separate actor and critic) stays a policy argument
        out["net_arch"] = kwargs.pop("net_arch")
    if "log_std_init" in kwargs:
        out["log_std_init"] = kwargs.pop("log_std_init")
    if kwargs:
        out["policy_kwargs"] = kwargs
    return out


def _spelling(value: Any) -> str:
    """A value as short text for a note: wrapper lists by their class names."""
    if isinstance(value, list):
        return "[" + ", ".join(next(iter(v)) if isinstance(v, dict) else str(v) for v in value) + "]"
    return str(value)
