"""How the orchestrator talks to a remote peer: `GrpcPeerClient`, the gRPC transport of `PeerClient`.

`GrpcPeerClient` speaks `peerlearn.v1` over a grpc.aio channel with a deadline on every call; every
failure surfaces as `PeerCallError`, as it does from the in-process client (orchestrator/running/inproc_client.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orchestrator.loop.client import PeerCallError, PeerClient
from peerlearn import wire
from peerlearn.grpc_options import channel_options
from peerlearn.messages import EvalResult, PeerInfo, StepResult
from peerlearn.security import ClientSecurity, classify_error, diagnose_handshake
from peerlearn.tensors import WireError
from peerlearn.v1 import peer_pb2_grpc

Decoded = TypeVar("Decoded")


@dataclass
class Deadlines:
    """Seconds each kind of call may take before the peer counts as abstaining; which kind a call is,
    and whether it is hedged, says peerlearn/wire.py:CALLS."""

    read_s: float = 5.0  # Deadline.READ: GetInfo, Suggest, Evaluate
    step_s: float = 10.0  # Deadline.STEP: Reset, Step (a Step may train 8 gradient steps)
    evaluation_s: float = 300.0  # Deadline.LONG: RunEvaluation, Save, Load
    # A hedged call without a reply after this long is sent again on a second, already open
    # connection and the first reply wins (0 = never). See GrpcPeerClient._hedged.
    hedge_s: float = 1.0

    def seconds(self, kind: wire.Deadline) -> float:
        return {wire.Deadline.READ: self.read_s, wire.Deadline.STEP: self.step_s,
                wire.Deadline.LONG: self.evaluation_s}[kind]


class GrpcPeerClient(PeerClient):
    def __init__(self, address: str, deadlines: Deadlines | None = None, security: ClientSecurity | None = None,
                 expected_peer_id: str | None = None, options: list[tuple[str, int]] | None = None) -> None:
        """`address` may be PEER_ID@HOST:PORT: the peer must then prove that id (TLS certificate
        and GetInfo handshake). `security`: TLS / mutual TLS / bearer token (peerlearn/security.py)."""
        if "@" in address and expected_peer_id is None:
            expected_peer_id, address = address.split("@", 1)
        self.address = address
        self.expected_peer_id = expected_peer_id
        self.deadlines = deadlines or Deadlines()
        self.security = security or ClientSecurity()
        self.options = options or channel_options()
        self._closing: dict[asyncio.Task[None], grpc.aio.Channel] = {}  # old channels closing after a re-dial
        self.spare: grpc.aio.Channel | None = None
        self.hedges = 0  # calls sent a second time on the spare connection
        self.hedges_won = 0  # ... where the spare's reply came first
        self._open_channel()

    def _open_channel(self) -> None:
        self.channel = self.security.channel(self.address, self.options, self.expected_peer_id)
        self.stub = peer_pb2_grpc.PeerServiceStub(self.channel)
        self.health = health_pb2_grpc.HealthStub(self.channel)
        if self.deadlines.hedge_s > 0 and self.spare is None:
            self._open_spare()

    def _open_spare(self) -> None:
        """The hedging connection, dialled now so that it is established (and its retransmission
        timer fresh) by the time a call needs it. Its own TCP connection (grpc_options.py)."""
        self.spare = self.security.channel(self.address, self.options, self.expected_peer_id)
        self.spare_stub = peer_pb2_grpc.PeerServiceStub(self.spare)
        self.spare.get_state(try_to_connect=True)

    def redial(self) -> asyncio.Task[None]:
        """Drop the connection and dial again. After a partition or under loss the old TCP connection
        can sit in exponential retransmission backoff for seconds; a fresh channel retries every
        <= 1 s. Calls still in flight on the old channel get until their deadline, then are cancelled."""
        old = self.channel
        if self.spare is not None:
            # The spare is established already: promote it, and dial a fresh spare.
            self.channel, self.stub = self.spare, self.spare_stub
            self.health = health_pb2_grpc.HealthStub(self.channel)
            self._open_spare()
        else:
            self._open_channel()
            self.channel.get_state(try_to_connect=True)  # dial now, not on the next call
        # Calls still on the old connection may finish within their own deadlines; then it is closed.
        closing = asyncio.create_task(old.close(grace=max(self.deadlines.read_s, self.deadlines.step_s)))
        self._closing[closing] = old
        closing.add_done_callback(lambda done: self._closing.pop(done, None))
        return closing

    async def check_health(self, timeout_s: float = 1.0) -> bool:
        try:
            reply = await self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)  # (grpc_health is untyped: Any)

    async def _hedged(self, name: str, request: Any, timeout: float) -> Any:
        """Hedged call (Dean and Barroso, "The Tail at Scale"): after `hedge_s` without a reply the same
        request goes out on the spare connection and the first good reply wins. On a lossy link one
        lost segment stalls a whole TCP connection for its retransmission backoff (0.2, 0.4, 0.8 ...
        s), long enough to miss deadlines several calls in a row; the spare is not stalled. Safe for
        read-only calls and for Step: the peer replays a repeated step id with the same action instead
        of applying it twice. The connection that answered becomes the primary."""
        primary = asyncio.ensure_future(getattr(self.stub, name)(request, timeout=timeout))
        done, _ = await asyncio.wait({primary}, timeout=self.deadlines.hedge_s)
        if done:
            return primary.result()
        self.hedges += 1
        spare_stub = self.spare_stub
        hedge = asyncio.ensure_future(getattr(spare_stub, name)(
            request, timeout=max(timeout - self.deadlines.hedge_s, 0.001)))
        pending, errors = {primary, hedge}, []
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.cancelled():
                        errors.append(asyncio.CancelledError())
                    elif task.exception() is not None:
                        errors.append(task.exception())
                    else:
                        if task is hedge and self.spare_stub is spare_stub:
                            self.hedges_won += 1
                            self._swap_primary_and_spare()
                        return task.result()
            raise next((e for e in errors if isinstance(e, grpc.aio.AioRpcError)), errors[0])
        finally:
            for task in pending:
                task.cancel()

    def _swap_primary_and_spare(self) -> None:
        # only a hedge swaps, and a hedge goes out on the spare: there is one
        self.channel, self.spare = cast(grpc.aio.Channel, self.spare), self.channel
        self.stub, self.spare_stub = self.spare_stub, self.stub
        self.health = health_pb2_grpc.HealthStub(self.channel)

    async def _call(self, name: str, request: Any, decode: Callable[[Any], Decoded],
                    wait_for_ready: bool = False) -> Decoded:
        """One call under its policy (peerlearn/wire.py:CALLS: deadline, hedged or not); the reply is
        decoded by `decode`, and a reply that does not decode is this peer's BAD_REPLY."""
        policy = wire.CALLS[name]
        timeout = self.deadlines.seconds(policy.deadline)
        self.calls += 1
        try:
            if self.deadlines.hedge_s > 0 and not wait_for_ready and policy.hedged \
                    and timeout > self.deadlines.hedge_s:
                reply = await self._hedged(name, request, timeout)
            else:
                reply = await getattr(self.stub, name)(request, timeout=timeout, wait_for_ready=wait_for_ready)
        except asyncio.CancelledError:
            # grpc.aio raises CancelledError, not AioRpcError, for a call cancelled because its channel
            # was closed (a re-dial). That is this peer's failure; a cancellation of our own task is not.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            raise PeerCallError(self.address, name, "CANCELLED", "connection replaced by a re-dial") from None
        except grpc.aio.AioRpcError as err:
            # auth and TLS handshake failures are reported as such, never as an outage
            code, message = classify_error(err.code().name, err.details() or "")
            if code == "UNAVAILABLE" and name == "GetInfo":  # the handshake: is it TLS, not an outage?
                why = await asyncio.to_thread(diagnose_handshake, self.address, self.security, self.expected_peer_id)
                if why:
                    code, message = "UNAUTHENTICATED", f"authentication failed: {why} ({message})"
            raise PeerCallError(self.address, name, code, message) from err
        try:
            return decode(reply)
        except WireError as err:
            raise PeerCallError(self.address, name, "BAD_REPLY", str(err)) from err

    async def get_info(self, wait_for_ready: bool = False) -> PeerInfo:
        info = await self._call("GetInfo", wire.get_info_request_to_proto(), wire.info_from_proto, wait_for_ready)
        if self.expected_peer_id is not None and info.peer_id != self.expected_peer_id:
            raise PeerCallError(self.address, "GetInfo", "PERMISSION_DENIED",
                                f"authentication failed: expected peer {self.expected_peer_id!r}"
                                f"{' (its TLS certificate)' if self.security.tls else ''}, "
                                f"but the handshake says {info.peer_id!r}")
        return info

    async def suggest(self, states: np.ndarray, deterministic: bool = False) -> np.ndarray:
        return await self._call("Suggest", wire.suggest_request_to_proto(states, deterministic),
                                wire.suggest_reply_from_proto)

    async def evaluate(self, q_states: np.ndarray, q_actions: np.ndarray,
                       v_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return await self._call("Evaluate", wire.evaluate_request_to_proto(q_states, q_actions, v_states),
                                wire.evaluate_reply_from_proto)

    async def reset(self, seed: int | None) -> tuple[np.ndarray, int]:
        return await self._call("Reset", wire.reset_request_to_proto(seed), wire.reset_reply_from_proto)

    async def step(self, step_id: int, action: np.ndarray | None, v_states: np.ndarray | None = None,
                   next_observation_rows: Collection[int] = ()) -> StepResult:
        return await self._call("Step", wire.step_request_to_proto(step_id, action, v_states, next_observation_rows),
                                wire.step_from_proto)

    async def run_evaluation(self, episodes: int, seed: int) -> EvalResult:
        return await self._call("RunEvaluation", wire.run_evaluation_request_to_proto(episodes, seed),
                                wire.eval_from_proto)

    async def save(self, step_id: int, tag: str = "") -> tuple[str, str]:
        return await self._call("Save", wire.save_request_to_proto(step_id, tag), wire.save_reply_from_proto)

    async def load(self, tag: str = "") -> tuple[str, int]:
        return await self._call("Load", wire.load_request_to_proto(tag), wire.load_reply_from_proto)

    async def close(self) -> None:
        for closing, old in list(self._closing.items()):
            closing.cancel()
            await old.close()  # no grace at shutdown
        if self.spare is not None:
            await self.spare.close()
        await self.channel.close()
