"""The peer's gRPC server: `PeerService` plus health and reflection, assembled in one `serve()`.

The lock-step calls (GetInfo, Suggest, Evaluate, Step) run on the event loop itself: they are short
(a Step's gradient steps are milliseconds) and arrive one round at a time, and the hand-off to a
worker thread and back cost more than the work it kept off the loop (docs/performance.md has the
A/B). Long calls (Reset, RunEvaluation, Save, Load: seconds of
evaluation episodes or disk) run on one worker thread so that health checks keep answering; while
the worker holds the learner every call queues behind it (the learner is not thread-safe). Which
call is which is declared once, for client and server, in peerlearn/wire.py:CALLS, as is every
message's conversion. `PEERLEARN_INLINE_CALLS=0` sends every call to the worker (the A/B).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from peer_service.peer import Peer
from peer_service.validation import PeerError, status_of
from peerlearn import wire
from peerlearn.grpc_options import SERVER_OPTIONS
from peerlearn.security import MalformedRequestGuard, ServerSecurity
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import peer_pb2_grpc, tensor_pb2

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

    async def _run(self, name: str, context: grpc.aio.ServicerContext, work: Callable[[], Reply],
                   small: bool = True) -> Reply:
        """Run one call's work where its policy says (peerlearn/wire.py:CALLS): on the event loop if the
        call may run inline and its batch is `small`, else on the worker; errors become status codes."""
        policy = wire.CALLS[name]

        def guarded() -> Reply:
            remaining = context.time_remaining()
            if policy.read_only and remaining is not None and remaining <= 0:
                # The caller has given up while this call waited for the worker: skip the work.
                raise PeerError(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before the call started")
            return work()

        try:
            if policy.inline and small and self.inline and self.worker_jobs == 0:
                return guarded()  # nothing else can touch the learner while this holds the loop
            return await self._on_worker(guarded)
        except Exception as err:  # a bug must not kill the server either: report it and keep serving
            status = status_of(err)
            if status is None:
                log.exception("internal error")
                status = grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}"
            await context.abort(*status)
        raise AssertionError("unreachable: context.abort raises")

    async def GetInfo(self, request: pb.GetInfoRequest, context: grpc.aio.ServicerContext) -> pb.PeerInfo:
        return await self._run("GetInfo", context, lambda: wire.info_to_proto(self.peer.info()))

    async def Suggest(self, request: pb.SuggestRequest, context: grpc.aio.ServicerContext) -> pb.SuggestReply:
        def work() -> pb.SuggestReply:
            return wire.suggest_reply_to_proto(self.peer.suggest(*wire.suggest_request_from_proto(request)))
        return await self._run("Suggest", context, work, small=_rows(request.states) <= INLINE_MAX_ROWS)

    async def Evaluate(self, request: pb.EvaluateRequest, context: grpc.aio.ServicerContext) -> pb.EvaluateReply:
        def work() -> pb.EvaluateReply:
            batches = wire.evaluate_request_from_proto(request, self.peer.observation_space, self.peer.action_space)
            return wire.evaluate_reply_to_proto(*self.peer.evaluate(*batches))
        rows = _rows(request.q_states) + _rows(request.v_states)
        return await self._run("Evaluate", context, work, small=rows <= INLINE_MAX_ROWS)

    async def Reset(self, request: pb.ResetRequest, context: grpc.aio.ServicerContext) -> pb.ResetReply:
        return await self._run("Reset", context, lambda: wire.reset_reply_to_proto(
            *self.peer.reset(wire.reset_request_from_proto(request))))

    async def Step(self, request: pb.StepRequest, context: grpc.aio.ServicerContext) -> pb.StepReply:
        def work() -> pb.StepReply:
            return wire.step_to_proto(self.peer.step(*wire.step_request_from_proto(request)))
        if not self.peer.config.overlap_training:
            return await self._run("Step", context, work, small=_rows(request.v_states) <= INLINE_MAX_ROWS)
        try:
            return await self._run("Step", context, work, small=False)
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
        episodes, seed = wire.run_evaluation_request_from_proto(request)
        if episodes < 0 or episodes > 10_000:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"episodes must be in 0..10000, got {episodes}")
        return await self._run("RunEvaluation", context, lambda: wire.eval_to_proto(
            self.peer.run_evaluation(episodes, seed)))

    async def Save(self, request: pb.SaveRequest, context: grpc.aio.ServicerContext) -> pb.SaveReply:
        return await self._run("Save", context, lambda: wire.save_reply_to_proto(
            *self.peer.save(*wire.save_request_from_proto(request))))

    async def Load(self, request: pb.LoadRequest, context: grpc.aio.ServicerContext) -> pb.LoadReply:
        return await self._run("Load", context, lambda: wire.load_reply_to_proto(
            *self.peer.load(wire.load_request_from_proto(request))))


def _rows(tensor: tensor_pb2.Tensor) -> int:
    """The batch size a tensor declares (before decoding: a lie is caught when it is decoded)."""
    return int(tensor.shape[0]) if len(tensor.shape) else 0


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
             f", attack {attack.spec}" if (attack := getattr(peer, "attack", None)) else "")
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
