"""The full state of a Gymnasium env, wrappers included, for checkpoints that resume exactly.

Why by hand: Gymnasium has no state API, and pickling an env does not keep its state. MuJoCo envs
pickle through `EzPickle`, which stores the constructor's arguments and builds a fresh env on load
(the episode in progress, the physics and the RNG are lost). So this walks the wrapper chain and
keeps each layer's own attributes (TimeLimit's step count, the order enforcer's flag, ...); for the
base env, its attributes, and for MuJoCo its full integration state (`mj_getState` with
`mjSTATE_INTEGRATION`: time, qpos, qvel, actuator activations, warm-start accelerations, plugin
and mocap state, controls), not only qpos/qvel.

An attribute that cannot be pickled (a renderer's window, say) is left out and named in
`EnvState.skipped`: it is not part of what the env's next steps depend on for the envs this project
runs (Room, classic control, Box2D-free toy tasks and MuJoCo), and a checkpoint that skipped one says
so instead of claiming more than it keeps.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

# Attributes never kept: the link to the inner env, and MuJoCo's live objects (kept as integration state).
_NEVER = {"env", "model", "data", "mujoco_renderer", "renderer", "viewer", "_viewers", "screen", "clock", "window"}


@dataclass
class EnvState:
    layers: list[dict[str, bytes]]  # per wrapper, outermost first, then the base env: attribute -> pickle
    mujoco: Any = None  # the base env's MuJoCo integration state (a float array), if it is a MuJoCo env
    skipped: list[str] = field(default_factory=list)  # "Layer.attribute" left out because it cannot be pickled


def _layers(env: gym.Env) -> list[Any]:
    chain: list[Any] = [env]
    while isinstance(chain[-1], gym.Wrapper):
        chain.append(chain[-1].env)
    return chain


def _attributes(obj: Any, skipped: list[str]) -> dict[str, bytes]:
    kept: dict[str, bytes] = {}
    for name, value in vars(obj).items():
        if name in _NEVER:
            continue
        try:
            kept[name] = pickle.dumps(value)
        except Exception:  # noqa: BLE001 - any object that does not pickle is named, not fatal
            skipped.append(f"{type(obj).__name__}.{name}")
    return kept


def _mujoco(base: Any) -> tuple[Any, Any] | None:
    model, data = getattr(base, "model", None), getattr(base, "data", None)
    if model is None or data is None or type(data).__name__ != "MjData":
        return None
    import mujoco

    return mujoco, (model, data)


def capture(env: gym.Env) -> EnvState:
    skipped: list[str] = []
    chain = _layers(env)
    state = EnvState([_attributes(layer, skipped) for layer in chain], skipped=skipped)
    found = _mujoco(chain[-1])
    if found is not None:
        mujoco, (model, data) = found
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buffer = _empty(mujoco, model, spec)
        mujoco.mj_getState(model, data, buffer, spec)
        state.mujoco = buffer
    return state


def restore(env: gym.Env, state: EnvState) -> None:
    """Put `state` (from capture() of an env made the same way) into `env`."""
    chain = _layers(env)
    if len(chain) != len(state.layers):
        raise ValueError(f"the env has {len(chain)} layers, the saved state {len(state.layers)}")
    for layer, attributes in zip(chain, state.layers, strict=True):
        for name, blob in attributes.items():
            setattr(layer, name, pickle.loads(blob))
    if state.mujoco is not None:
        found = _mujoco(chain[-1])
        if found is None:
            raise ValueError("the saved state is a MuJoCo env's, this env is not a MuJoCo env")
        mujoco, (model, data) = found
        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(model, data, state.mujoco, spec)
        # Recompute the quantities derived from the state (body positions, contact forces) that some
        # observations read, then set the state again: mj_forward leaves the integration state as it
        # was except for what the next step overwrites anyway, and this makes sure of it.
        mujoco.mj_forward(model, data)
        mujoco.mj_setState(model, data, state.mujoco, spec)


def _empty(mujoco: Any, model: Any, spec: Any) -> Any:
    import numpy as np

    return np.empty(mujoco.mj_stateSize(model, spec), dtype=np.float64)
