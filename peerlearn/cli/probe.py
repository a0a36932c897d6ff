"""`peerlearn probe` and `peerlearn status`: small clients that replace grpcurl (not installable here)."""

from __future__ import annotations

import sys

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peerlearn.messages import info_from_proto
from peerlearn.tensors import from_tensor, to_tensor
from peerlearn.v1 import orchestrator_pb2, orchestrator_pb2_grpc, peer_pb2, peer_pb2_grpc


async def probe(address: str, timeout: float = 5.0) -> int:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=timeout)
            print(f"health: {health_pb2.HealthCheckResponse.ServingStatus.Name(health.status)}")
            stub = peer_pb2_grpc.PeerServiceStub(channel)
            info = info_from_proto(await stub.GetInfo(peer_pb2.GetInfoRequest(), timeout=timeout))
            print(f"peer: {info.peer_id} ({info.implementation}, {info.language}) speaks {info.protocol_version}")
            print(f"env: {info.env_id}  observations {info.observation_space}  actions {info.action_space}")
            print(f"capabilities: {vars(info.capabilities)}  steps so far: {info.last_step_id}")
            if info.capabilities.advises:
                state = info.observation_space.sample()[None].astype(np.float32)
                reply = await stub.Suggest(peer_pb2.SuggestRequest(states=to_tensor(state), deterministic=True),
                                           timeout=timeout)
                print(f"suggest at a random state: {from_tensor(reply.actions, 'actions').tolist()}")
        except grpc.aio.AioRpcError as err:
            print(f"probe failed: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    return 0


async def status(address: str, timeout: float = 5.0) -> int:
    from orchestrator.running.status import format_status

    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await orchestrator_pb2_grpc.OrchestratorServiceStub(channel).GetStatus(
                orchestrator_pb2.GetStatusRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            print(f"status failed: {err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    print(format_status(reply))
    return 0
