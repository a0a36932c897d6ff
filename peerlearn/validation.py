"""Checks of batches against a space, used on both sides of the wire: a peer checks requests, the
orchestrator checks replies (a buggy or lying peer must not poison the group). A failed check
raises `WireError` with what was expected and what came."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from peerlearn.tensors import WireError

# Upper bound on the batch of any request: a group of 64 peers asks for far less.
MAX_BATCH = 4096


def empty_batch(space: gym.Space[Any]) -> np.ndarray:
    """A batch of no rows of `space`: what an unset batch field of a request or a reply stands for
    (int64 for a Discrete space, whose shape is (), else float32)."""
    shape = tuple(space.shape or ())
    return np.zeros((0, *shape), dtype=np.float32 if shape else np.int64)


def check_states(states: np.ndarray, space: gym.Space[Any], name: str) -> np.ndarray:
    """A batch of observations: shape (B, *obs_shape), float, finite. Returns float32."""
    shape = space.shape or ()
    if states.ndim != 1 + len(shape) or tuple(states.shape[1:]) != tuple(shape):
        raise WireError(f"{name}: expected shape (B, {', '.join(map(str, shape))}), got {tuple(states.shape)}")
    if states.shape[0] > MAX_BATCH:
        raise WireError(f"{name}: batch of {states.shape[0]} exceeds the limit of {MAX_BATCH}")
    if not np.issubdtype(states.dtype, np.floating):
        raise WireError(f"{name}: expected FLOAT32 or FLOAT64 observations, got {states.dtype}")
    # Cast before the finiteness check: a finite FLOAT64 beyond float32's range (e.g. 3.5e38) becomes
    # Inf in float32, and the learner sees the float32 values, so those are the ones that must be finite.
    with np.errstate(over="ignore"):
        as_float32 = states.astype(np.float32, copy=False)
    if not np.isfinite(as_float32).all():
        raise WireError(f"{name}: contains NaN or Inf, or values beyond float32's range")
    return as_float32


def check_actions(actions: np.ndarray, space: gym.Space[Any], batch: int | None, name: str) -> np.ndarray:
    """A batch of actions (batch=None: one action). Returns int64 for Discrete, float32 for Box."""
    if isinstance(space, gym.spaces.Discrete):
        if not np.issubdtype(actions.dtype, np.integer):
            raise WireError(f"{name}: a Discrete({space.n}) action must be INT32 or INT64, got {actions.dtype}")
        if batch is None:
            if actions.shape not in ((), (1,)):
                raise WireError(f"{name}: expected shape () or (1,), got {tuple(actions.shape)}")
        elif actions.shape != (batch,):
            raise WireError(f"{name}: expected shape ({batch},), got {tuple(actions.shape)}")
        flat = actions.reshape(-1).astype(np.int64)
        lo, hi = int(space.start), int(space.start + space.n - 1)
        if flat.size and (flat.min() < lo or flat.max() > hi):
            raise WireError(f"{name}: action out of range [{lo}, {hi}]: {flat.tolist()[:8]}")
        return flat if batch is not None else flat.reshape(())
    if isinstance(space, gym.spaces.Box):
        want = tuple(space.shape) if batch is None else (batch, *space.shape)
        if tuple(actions.shape) != want:
            raise WireError(f"{name}: expected shape {want}, got {tuple(actions.shape)}")
        if not np.issubdtype(actions.dtype, np.floating):
            raise WireError(f"{name}: expected FLOAT32 or FLOAT64 actions, got {actions.dtype}")
        if not np.isfinite(actions).all():
            raise WireError(f"{name}: contains NaN or Inf")
        tol = 1e-5
        if (actions < space.low - tol).any() or (actions > space.high + tol).any():
            raise WireError(f"{name}: action outside the bounds [{space.low.min()}, {space.high.max()}]")
        clipped: np.ndarray = np.clip(actions, space.low, space.high)  # numpy's stubs: Any for Any bounds
        return clipped.astype(np.float32)
    raise WireError(f"{name}: unsupported action space {space}")


def check_values(values: np.ndarray, batch: int, name: str) -> np.ndarray:
    """Critic outputs: shape (batch,), float, finite."""
    if values.shape != (batch,):
        raise WireError(f"{name}: expected shape ({batch},), got {tuple(values.shape)}")
    if not np.issubdtype(values.dtype, np.floating) or not np.isfinite(values).all():
        raise WireError(f"{name}: expected finite floats")
    return values.astype(np.float64)
