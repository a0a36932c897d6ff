"""The peer's gRPC server: `PeerService` plus health and reflection, assembled in one `serve()`.

The lock-step calls (GetInfo, Suggest, Evaluate, Step) run on the event loop itself: they are short
(a Step's gradient steps are milliseconds) and arrive one round at a time, and the hand-off to a
worker thread and back cost more than the work it kept off the loop (docs/performance.md has the
A/B). Long calls (Reset, RunEvaluation, Save, Load: seconds of
evaluation episodes or disk) run on one worker thread so that health checks keep answering; while
the worker holds the learner every call queues behind it (the learner is not thread-safe).
`PEERLEARN_INLINE_CALLS=0` sends every call to the worker (the A/B).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from peer_service.peer import Peer
from peer_service.validation import PeerError
from peerlearn.grpc_options import SERVER_OPTIONS
from peerlearn.messages import eval_to_proto, info_to_proto, step_to_proto
from peerlearn.security import MalformedRequestGuard, ServerSecurity
from peerlearn.tensors import WireError, from_tensor, to_tensor
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import peer_pb2_grpc, tensor_pb2
from peerlearn.validation import empty_batch

log = logging.getLogger("peerlearn.peer")
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PeerService"].full_name
# Bounded concurrency: beyond this many RPCs in flight the server answers RESOURCE_EXHAUSTED.
MAX_CONCURRENT_RPCS = 64
# Suggest/Evaluate batches up to this many rows run inline on the event loop (a lock-step group sends N
# states per Suggest and N + ~2 x trust_batch per Evaluate); larger ones go to the worker, where they
# count toward MAX_CONCURRENT_RPCS: an inline call never yields, so a flood of inline calls would be
# queued and served one by one, never refused. Those are cheap (milliseconds); heavy ones are refused.
INLINE_MAX_ROWS = 256
Reply = TypeVar("Reply")


class PeerServicer(peer_pb2_grpc.PeerServiceServicer):
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="peer-worker")
        # Overlap training runs gradient steps on the worker after Step returns, so it keeps the worker.
        self.inline = os.environ.get("PEERLEARN_INLINE_CALLS", "1") != "0" and not peer.config.overlap_training
        self.worker_jobs = 0  # calls on the worker or queued for it; only the event loop changes it

    async def _on_worker(self, work: Callable[[], Reply]) -> Reply:
        self.worker_jobs += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.executor, work)
        finally:
            self.worker_jobs -= 1

    async def _run(self, context: grpc.aio.ServicerContext, work: Callable[[], Reply],
                   read_only: bool, short: bool = False) -> Reply:
        def guarded() -> Reply:
            remaining = context.time_remaining()
            if read_only and remaining is not None and remaining <= 0:
                # The caller has given up while this call waited for the worker: skip the work.
                raise PeerError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the call started")
            return work()

        try:
            if short and self.inline and self.worker_jobs == 0:
                return guarded()  # nothing else can touch the learner while this holds the loop
            return await self._on_worker(guarded)
        except PeerError as err:
            await context.abort(err.code, err.message)
        except WireError as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        except Exception as err:  # a bug must not kill the server: report it and keep serving
            log.exception("internal error")
            await context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
        raise AssertionError("unreachable: context.abort raises")

    async def GetInfo(self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext) -> pb.PeerInfo:
        return await self._run(context, lambda: info_to_proto(self.peer.info()), read_only=True, short=True)

    async def Suggest(self, request: pb.SuggestRequest, context: grpc.aio.ServicerContext) -> pb.SuggestReply:
        def work() -> pb.SuggestReply:
            states = from_tensor(request.states, "states")
            return pb.SuggestReply(actions=to_tensor(self.peer.suggest(states, request.deterministic)))
        return await self._run(context, work, read_only=True, short=_rows(request.states) <= INLINE_MAX_ROWS)

    async def Evaluate(self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext) -> pb.EvaluateReply:
        def work() -> pb.EvaluateReply:
            obs, act = self.peer.observation_space, self.peer.action_space
            q, v = self.peer.evaluate(_batch(request, "q_states", obs), _batch(request, "q_actions", act),
                                      _batch(request, "v_states", obs))
            return pb.EvaluateReply(q_values=to_tensor(q), v_values=to_tensor(v))
        rows = _rows(request.q_states) + _rows(request.v_states)
        return await self._run(context, work, read_only=True, short=rows <= INLINE_MAX_ROWS)

    async def Reset(self, request: pb.ResetRequest, context: grpc.aio.ServicerContext) -> pb.ResetReply:
        def work() -> pb.ResetReply:
            obs, last = self.peer.reset(request.seed if request.has_seed else None)
            return pb.ResetReply(observation=to_tensor(obs), last_step_id=last)
        return await self._run(context, work, read_only=False)

    async def Step(self, request: pb.StepRequest, context: grpc.aio.ServicerContext) -> pb.StepReply:
        def work() -> pb.StepReply:
            action = from_tensor(request.action, "action") if request.HasField("action") else None
            v_states = from_tensor(request.v_states, "v_states") if request.HasField("v_states") else None
            return step_to_proto(self.peer.step(request.step_id, action, v_states, request.next_observation_rows))
        if not self.peer.config.overlap_training:
            return await self._run(context, work, read_only=False, short=_rows(request.v_states) <= INLINE_MAX_ROWS)
        try:
            return await self._run(context, work, read_only=False)
        finally:
            # The Step's gradient steps run now, on the worker, while the reply travels and the
            # orchestrator prepares the next round; any call queued behind them waits for them, so
            # updates keep their order (peer.py, settle). Only with overlap_training: otherwise
            # they already ran inside Step, and a worker hand-off per Step would be pure overhead.
            try:
                self.executor.submit(self.peer.settle_quietly)
            except RuntimeError:  # shutting down: nothing more will use the learner
                pass

    async def RunEvaluation(self, request: pb.RunEvaluationRequest,
                            context: grpc.aio.ServicerContext) -> pb.RunEvaluationReply:
        if request.episodes < 0 or request.episodes > 10_000:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"episodes must be in 0..10000, got {request.episodes}")
        return await self._run(context, lambda: eval_to_proto(
            self.peer.run_evaluation(request.episodes, request.seed)), read_only=False)

    async def Save(self, request: pb.SaveRequest, context: grpc.aio.ServicerContext) -> pb.SaveReply:
        def work() -> pb.SaveReply:
            location, tag = self.peer.save(request.step_id, request.tag)
            return pb.SaveReply(location=location, tag=tag)
        return await self._run(context, work, read_only=False)

    async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext) -> pb.LoadReply:
        def work() -> pb.LoadReply:
            tag, last = self.peer.load(request.tag)
            return pb.LoadReply(tag=tag, last_step_id=last)
        return await self._run(context, work, read_only=False)


def _rows(tensor: tensor_pb2.Tensor) -> int:
    """The batch size a tensor declares (before decoding: a lie is caught when it is decoded)."""
    return int(tensor.shape[0]) if len(tensor.shape) else 0


def _batch(request: Any, field: str, space: Any) -> Any:
    """An unset batch field means an empty batch of the space's shape; shapes are checked by the peer."""
    if not request.HasField(field):
        return empty_batch(space)
    return from_tensor(getattr(request, field), field)


async def serve(peer: Peer, host: str = "127.0.0.1", port: int = 0, port_file: str | None = None,
                grace_s: float = 2.0, stop: asyncio.Event | None = None,
                security: ServerSecurity | None = None) -> None:
    """Serve one peer until SIGTERM/SIGINT (or `stop` is set), then shut down gracefully.

    `security` (peerlearn/security.py): TLS / mutual TLS / bearer tokens; without TLS only a
    loopback host is served unless it allows insecure."""
    if not 0 <= port <= 65535:  # gRPC would bind port % 65536 without a word
        raise ValueError(f"port must be 0 (any free port) to 65535, got {port}")
    security = security or ServerSecurity()
    security.check(host)
    server = grpc.aio.server(options=SERVER_OPTIONS, maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS,
                             interceptors=[*security.interceptors(), MalformedRequestGuard()])
    servicer = PeerServicer(peer)
    peer_pb2_grpc.add_PeerServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    credentials = security.credentials()
    bound = server.add_secure_port(f"{host}:{port}", credentials) if credentials else \
        server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"could not bind {host}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("peer %s serving %s on %s:%d (%s%s%s)", peer.config.peer_id, peer.env_id, host, bound,
             "mutual TLS" if security.require_client_cert else "TLS" if security.tls else "plaintext",
             ", bearer token" if security.tokens else "",
             f", attack {peer.attack.spec}" if getattr(peer, "attack", None) else "")
    log.info("peer %s: gradient steps %s", peer.config.peer_id,
             "overlap the next round (overlap_training)" if peer.config.overlap_training else "run inside Step")
    if port_file:
        tmp = Path(port_file + ".tmp")
        tmp.write_text(str(bound))
        tmp.replace(port_file)  # atomic: a reader never sees a half-written port
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # not the main thread (tests)
            pass
    await stop.wait()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(grace_s)
    servicer.executor.shutdown(wait=True)
