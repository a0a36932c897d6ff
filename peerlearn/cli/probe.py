"""`peerlearn probe` and `peerlearn status`: small clients that replace grpcurl (not installable here)."""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peerlearn.settings import UserError
from peerlearn.tensors import from_tensor, to_tensor
from peerlearn.v1 import orchestrator_pb2, orchestrator_pb2_grpc, peer_pb2, peer_pb2_grpc
from peerlearn.wire import info_from_proto


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


def status_address(target: str) -> str:
    """HOST:PORT as given, or the address a run folder's status_address names (the run writes it when
    its status service starts), so that `peerlearn status runs/NAME` works as the README suggests."""
    folder = Path(target)
    if not folder.is_dir():
        if ":" not in target:  # neither HOST:PORT nor a folder: say so, not a DNS error about the name
            raise UserError(f"status: expected HOST:PORT or a run folder, got {target!r} (no such folder)")
        return target
    written = folder / "status_address"
    if not written.is_file():
        raise UserError(f"status: {target} has no status_address: {_why_no_status(folder)}")
    return written.read_text().strip()


def _why_no_status(folder: Path) -> str:
    if (folder / "summary.json").exists() or (folder / "stopped.json").exists():
        return "the run has ended (see its summary.json or stopped.json)"
    if not (folder / "config.toml").exists():
        return "it is not a run folder (no config.toml)"
    return "the run has status_port = -1, or its status service has not started yet"


async def status(target: str, timeout: float = 5.0) -> int:
    from orchestrator.running.status import format_status

    address = status_address(target)
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await orchestrator_pb2_grpc.OrchestratorServiceStub(channel).GetStatus(
                orchestrator_pb2.GetStatusRequest(), timeout=timeout)
        except grpc.aio.AioRpcError as err:
            ended = Path(target).is_dir() and (Path(target) / "summary.json").exists()
            hint = " (the run has ended: see its summary.json)" if ended else ""
            print(f"status failed: {err.code().name}: {err.details()}{hint}", file=sys.stderr)
            return 1
    print(format_status(reply))
    return 0
