"""Tensor and space codecs for the wire: numpy <-> `peerlearn.v1.Tensor` / `Space`.

Tensors travel as dtype + shape + little-endian bytes (zero-copy `frombuffer` on decode), which is
measurably cheaper than `repeated float` (40-90 us per call; docs/performance.md, "Costs of the
building blocks"). Decoding validates everything a hostile or buggy sender can get wrong, and raises
`WireError` with a readable message.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from peerlearn.v1 import tensor_pb2 as pb

# Largest tensor accepted from the wire: far above any batch the orchestrator sends.
MAX_ELEMENTS = 1 << 22
# Most dimensions a tensor may have (numpy's own limit is 64).
MAX_DIMS = 32

_DTYPE_TO_NUMPY: dict[pb.DType, np.dtype[Any]] = {
    pb.DTYPE_FLOAT32: np.dtype("<f4"),
    pb.DTYPE_FLOAT64: np.dtype("<f8"),
    pb.DTYPE_INT32: np.dtype("<i4"),
    pb.DTYPE_INT64: np.dtype("<i8"),
}
_NUMPY_TO_DTYPE = {dt.newbyteorder("="): code for code, dt in _DTYPE_TO_NUMPY.items()}


class WireError(ValueError):
    """A message from the wire is malformed (the server answers INVALID_ARGUMENT)."""


def to_tensor(array: np.ndarray | float | int) -> pb.Tensor:
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.int64)
    code = _NUMPY_TO_DTYPE.get(arr.dtype.newbyteorder("="))
    if code is None:
        if np.issubdtype(arr.dtype, np.integer):
            arr, code = arr.astype(np.int64), pb.DTYPE_INT64
        else:
            arr, code = arr.astype(np.float32), pb.DTYPE_FLOAT32
    data = np.ascontiguousarray(arr, dtype=_DTYPE_TO_NUMPY[code]).tobytes()
    return pb.Tensor(dtype=code, shape=list(arr.shape), data=data)


def from_tensor(tensor: pb.Tensor, name: str = "tensor", max_elements: int = MAX_ELEMENTS) -> np.ndarray:
    """Decode a tensor, checking dtype, shape and byte count. The result is read-only."""
    dtype = _DTYPE_TO_NUMPY.get(tensor.dtype)
    if dtype is None:
        raise WireError(f"{name}: unsupported dtype {tensor.dtype}; expected one of FLOAT32, FLOAT64, INT32, INT64")
    shape = tuple(int(d) for d in tensor.shape)
    if any(d < 0 for d in shape):
        raise WireError(f"{name}: negative dimension in shape {shape}")
    # numpy refuses more than 64 dimensions, and dimensions whose product overflows even when
    # another dimension is 0: bound both before asking it (found by tests/test_hostile_input.py)
    if len(shape) > MAX_DIMS or any(d > max_elements for d in shape):
        raise WireError(f"{name}: shape {shape[:8]}{'...' if len(shape) > 8 else ''} has more than {MAX_DIMS} "
                        f"dimensions or a dimension above {max_elements}")
    count = math.prod(shape)
    if count > max_elements:
        raise WireError(f"{name}: {count} elements exceed the limit of {max_elements}")
    if len(tensor.data) != count * dtype.itemsize:
        raise WireError(f"{name}: shape {shape} of {dtype.name} needs {count * dtype.itemsize} bytes, "
                        f"got {len(tensor.data)}")
    return np.frombuffer(tensor.data, dtype=dtype).reshape(shape)


def space_to_proto(space: gym.Space[Any]) -> pb.Space:
    if isinstance(space, gym.spaces.Discrete):
        return pb.Space(discrete=pb.DiscreteSpace(n=int(space.n), start=int(space.start)))
    if isinstance(space, gym.spaces.Box):
        dtype = _NUMPY_TO_DTYPE.get(np.dtype(space.dtype).newbyteorder("="), pb.DTYPE_FLOAT32)
        return pb.Space(box=pb.BoxSpace(shape=list(space.shape), low=to_tensor(space.low.astype(np.float64)),
                                        high=to_tensor(space.high.astype(np.float64)), dtype=dtype))
    raise TypeError(f"unsupported space {space!r}: peerlearn.v1 carries Box and Discrete spaces")


def space_from_proto(space: pb.Space) -> gym.Space[Any]:
    kind = space.WhichOneof("kind")
    if kind == "discrete":
        if space.discrete.n <= 0:
            raise WireError(f"discrete space needs n > 0, got {space.discrete.n}")
        return gym.spaces.Discrete(int(space.discrete.n), start=int(space.discrete.start))
    if kind == "box":
        low = from_tensor(space.box.low, "box.low")
        high = from_tensor(space.box.high, "box.high")
        shape = tuple(int(d) for d in space.box.shape)
        if low.shape != shape or high.shape != shape:
            raise WireError(f"box bounds of shape {low.shape}/{high.shape} do not match shape {shape}")
        dtype = _DTYPE_TO_NUMPY.get(space.box.dtype, np.dtype(np.float32))
        return gym.spaces.Box(low=low.astype(dtype), high=high.astype(dtype), shape=shape, dtype=dtype)
    raise WireError("space has neither box nor discrete set")


def spaces_equal(a: gym.Space[Any], b: gym.Space[Any]) -> bool:
    """Same kind, shape and bounds (dtype differences are tolerated: values are converted)."""
    if isinstance(a, gym.spaces.Discrete) and isinstance(b, gym.spaces.Discrete):
        return bool(a.n == b.n and a.start == b.start)  # numpy integers compare to numpy bools
    if isinstance(a, gym.spaces.Box) and isinstance(b, gym.spaces.Box):
        return (a.shape == b.shape and np.array_equal(a.low.astype(np.float64), b.low.astype(np.float64))
                and np.array_equal(a.high.astype(np.float64), b.high.astype(np.float64)))
    return False
