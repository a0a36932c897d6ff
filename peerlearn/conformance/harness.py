"""The conformance kit's harness: wire helpers that depend on no peer implementation (tensors,
spaces), and `PeerUnderTest`, the live peer every check talks to. The checks are in checks/."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import grpc
import numpy as np
import pytest

from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import peer_pb2_grpc
from peerlearn.v1 import tensor_pb2 as tpb

PROTOCOL_VERSION = "peerlearn.v1"
SERVICE = "peerlearn.v1.PeerService"
MAX_ELEMENTS = 1 << 22
# Steps the kit takes at most while waiting for an episode to end.
MAX_EPISODE_STEPS = 5_000
ROOM_ID = re.compile(r"Room-(\d+)-v\d+$")
ROOM_EPISODE_STEPS = {3: 20, 6: 50, 21: 100, 27: 150, 33: 250}

_DTYPES: dict[tpb.DType, np.dtype[Any]] = {
    tpb.DTYPE_FLOAT32: np.dtype("<f4"),
    tpb.DTYPE_FLOAT64: np.dtype("<f8"),
    tpb.DTYPE_INT32: np.dtype("<i4"),
    tpb.DTYPE_INT64: np.dtype("<i8"),
}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}
FLOAT_DTYPES = (tpb.DTYPE_FLOAT32, tpb.DTYPE_FLOAT64)
INT_DTYPES = (tpb.DTYPE_INT32, tpb.DTYPE_INT64)


# -------------------------------------------------------------- wire helpers (independent of any peer)
def encode(array: Any, dtype: str | None = None) -> tpb.Tensor:
    arr = np.asarray(array, dtype=dtype)
    code = _CODES[arr.dtype.newbyteorder("=")]
    return tpb.Tensor(
        dtype=code, shape=list(arr.shape), data=np.ascontiguousarray(arr, _DTYPES[code]).tobytes()
    )


def raw(dtype: int, shape: list[int], data: bytes) -> tpb.Tensor:
    # any int: the kit also sends codes that the DType enum lacks, to see them refused
    return tpb.Tensor(dtype=dtype, shape=shape, data=data)  # type: ignore[arg-type]


def decode(tensor: tpb.Tensor, what: str) -> np.ndarray:
    """Decode a tensor from the peer, failing with a message that says what is wrong with it."""
    dtype = _DTYPES.get(tensor.dtype)
    assert dtype is not None, f"{what}: dtype {tensor.dtype} is not one of FLOAT32, FLOAT64, INT32, INT64"
    shape = tuple(int(d) for d in tensor.shape)
    assert all(d >= 0 for d in shape), f"{what}: negative dimension in shape {shape}"
    count = math.prod(shape)
    assert len(tensor.data) == count * dtype.itemsize, (
        f"{what}: shape {shape} of {dtype.name} needs {count * dtype.itemsize} bytes, got {len(tensor.data)} "
        "(data must be little-endian, C order, exactly prod(shape) * itemsize bytes)"
    )
    return np.frombuffer(tensor.data, dtype=dtype).reshape(shape)


@dataclass
class Space:
    kind: str  # "box" or "discrete"
    shape: tuple[int, ...]
    low: np.ndarray | None = None
    high: np.ndarray | None = None
    n: int = 0
    start: int = 0

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        if self.kind == "discrete":
            return rng.integers(self.start, self.start + self.n, size=batch).astype(np.int64)
        assert self.low is not None and self.high is not None
        low = np.where(np.isfinite(self.low), self.low, -1.0)
        high = np.where(np.isfinite(self.high), self.high, 1.0)
        return rng.uniform(low, high, size=(batch, *self.shape)).astype(np.float32)

    def contains(self, values: np.ndarray, tol: float = 1e-5) -> bool:
        if self.kind == "discrete":
            return bool(((values >= self.start) & (values < self.start + self.n)).all())
        assert self.low is not None and self.high is not None
        return bool(((values >= self.low - tol) & (values <= self.high + tol)).all())


def decode_space(space: Any, what: str) -> Space:
    kind = space.WhichOneof("kind")
    assert kind in ("box", "discrete"), f"{what}: Space has neither box nor discrete set"
    if kind == "discrete":
        assert space.discrete.n > 0, f"{what}: Discrete space needs n > 0, got n={space.discrete.n}"
        return Space("discrete", (), n=int(space.discrete.n), start=int(space.discrete.start))
    box = space.box
    shape = tuple(int(d) for d in box.shape)
    assert all(d > 0 for d in shape), f"{what}: Box shape {shape} has a non-positive dimension"
    assert box.low.dtype == tpb.DTYPE_FLOAT64 and box.high.dtype == tpb.DTYPE_FLOAT64, (
        f"{what}: Box low/high must be FLOAT64 tensors, got dtypes {box.low.dtype}/{box.high.dtype}"
    )
    low, high = decode(box.low, f"{what}.box.low"), decode(box.high, f"{what}.box.high")
    assert low.shape == shape and high.shape == shape, (
        f"{what}: Box bounds have shapes {low.shape}/{high.shape}, expected the space's shape {shape}"
    )
    assert not np.isnan(low).any() and not np.isnan(high).any(), f"{what}: Box bounds contain NaN"
    assert (low <= high).all(), f"{what}: Box low > high somewhere"
    assert box.dtype in _DTYPES, f"{what}: Box element dtype {box.dtype} is not a supported DType"
    return Space("box", shape, low=low, high=high)


def room_size(env_id: str) -> int | None:
    match = ROOM_ID.search(env_id)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------------- the peer under test
class PeerUnderTest:
    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = grpc.insecure_channel(address)
        self.stub = peer_pb2_grpc.PeerServiceStub(self.channel)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            pytest.exit(f"conformance: no gRPC server answers at {address} within {timeout} s", returncode=2)
        self.info = self.call("GetInfo", pb.GetInfoRequest(), "GetInfo (handshake)")
        caps = self.info.capabilities
        self.advises, self.evaluates, self.acts, self.learns = (
            caps.advises,
            caps.evaluates,
            caps.acts,
            caps.learns,
        )
        self.values_in_step = caps.values_in_step
        # unset: as learns (peers written before the field); false: Save and Load refuse
        self.checkpoints = caps.checkpoints if caps.HasField("checkpoints") else caps.learns
        self.obs_space: Space | None = None
        self.act_space: Space | None = None
        try:
            self.obs_space = decode_space(self.info.observation_space, "PeerInfo.observation_space")
            self.act_space = decode_space(self.info.action_space, "PeerInfo.action_space")
        except AssertionError:
            pass  # test_spaces_decode reports it; the checks that need the spaces skip
        self.rng = np.random.default_rng(12345)

    def call(self, method: str, request: Any, what: str, timeout: float | None = None) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=timeout or self.timeout)
        except grpc.RpcError as err:
            pytest.fail(f"{what}: the call failed with {err.code().name}: {err.details()}", pytrace=False)

    def expect(
        self,
        method: str,
        request: Any,
        code: grpc.StatusCode,
        what: str,
        also: tuple[grpc.StatusCode, ...] = (),
    ) -> str:
        """The call must fail with `code` (docs/protocol.md, "Status codes"); returns the details."""
        try:
            getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as err:
            assert err.code() in (code, *also), (
                f"{what}: expected status {code.name}, got {err.code().name}: {err.details()}"
            )
            return err.details() or ""
        pytest.fail(f"{what}: expected status {code.name}, but the call succeeded", pytrace=False)

    def get_info(self) -> Any:
        return self.call("GetInfo", pb.GetInfoRequest(), "GetInfo")

    def states(self, batch: int) -> np.ndarray:
        return self.spaces()[0].sample(self.rng, batch).astype(np.float32)

    def spaces(self) -> tuple[Space, Space]:
        if self.obs_space is None or self.act_space is None:
            pytest.skip("the peer's spaces do not decode (see test_spaces_decode)")
        return self.obs_space, self.act_space

    def still_serving(self, after: str) -> None:
        try:
            self.stub.GetInfo(pb.GetInfoRequest(), timeout=self.timeout)
        except grpc.RpcError as err:
            pytest.fail(
                f"after {after}, the server stopped answering GetInfo: {err.code().name}: {err.details()}",
                pytrace=False,
            )


def needs(p: PeerUnderTest, capability: str) -> None:
    if not getattr(p, capability):
        pytest.skip(f"capabilities.{capability} is false: this check does not apply")


def reset_peer(p: PeerUnderTest, seed: int | None = None) -> tuple[np.ndarray, int]:
    """Reset the peer, check the observation it returns, and return it with last_step_id."""
    obs_space, _ = p.spaces()
    request = pb.ResetRequest(seed=seed, has_seed=True) if seed is not None else pb.ResetRequest()
    reply = p.call("Reset", request, f"Reset(seed={seed})")
    obs = decode(reply.observation, "Reset.observation")
    assert obs.shape == obs_space.shape, (
        f"Reset.observation has shape {obs.shape}, expected the observation shape {obs_space.shape}"
    )
    assert reply.observation.dtype in FLOAT_DTYPES, (
        f"Reset.observation must be float, got {reply.observation.dtype}"
    )
    assert obs_space.contains(obs), f"Reset.observation {obs.tolist()} is outside the observation space"
    return obs, int(reply.last_step_id)
