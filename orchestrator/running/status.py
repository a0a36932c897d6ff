"""The orchestrator's own small gRPC service: health plus a read-only `GetStatus` snapshot, so a
group running in containers or on other machines can be watched with `peerlearn status ADDRESS`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orchestrator.running.labels import describe, label
from peerlearn.grpc_options import SERVER_OPTIONS
from peerlearn.v1 import orchestrator_pb2 as pb
from peerlearn.v1 import orchestrator_pb2_grpc

if TYPE_CHECKING:
    from orchestrator.loop.group import Group

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["OrchestratorService"].full_name


def snapshot(group: Group | None, run_name: str, total_steps: int, finished: bool) -> pb.GroupStatus:
    if group is None:
        return pb.GroupStatus(run_name=run_name, total_steps=total_steps, finished=finished)
    peers = []
    reputations = group.reputations.snapshot()
    for m in group.members:
        state = "finished" if finished else group.health.state(m.index)
        peers.append(pb.PeerStatus(
            peer_id=m.name, state=state, steps=m.steps, last_episode_return=m.last_episode_return,
            last_eval_return=m.last_eval_return, trust=list(reputations.trust[m.index]),
            follow_counts=list(map(int, m.follow_counts)), following=m.following,
            description=describe(m.info.implementation, m.info.capabilities.learns)))
    return pb.GroupStatus(run_name=run_name, env_id=group.members[0].info.env_id, step=group.t,
                          total_steps=total_steps, steps_per_second=group.steps_per_second,
                          agent_values=list(reputations.agent_values), peers=peers, finished=finished)


class StatusServicer(orchestrator_pb2_grpc.OrchestratorServiceServicer):
    def __init__(self, run_name: str, total_steps: int) -> None:
        self.group: Group | None = None
        self.run_name = run_name
        self.total_steps = total_steps
        self.finished = False

    async def GetStatus(self, request: pb.GetStatusRequest, context: grpc.aio.ServicerContext) -> pb.GroupStatus:
        return snapshot(self.group, self.run_name, self.total_steps, self.finished)


async def start_status_server(servicer: StatusServicer, host: str, port: int) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(options=SERVER_OPTIONS, maximum_concurrent_rpcs=16)
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, bound


def format_status(status: pb.GroupStatus) -> str:
    """Plain-text rendering for `peerlearn status`: each peer named with what it is, and the trust and
    follow matrices with the peer names over their columns."""
    lines = [f"run {status.run_name}  env {status.env_id}  step {status.step}/{status.total_steps}  "
             f"{status.steps_per_second:.1f} group steps/s  {'finished' if status.finished else 'running'}"]
    names = [p.peer_id for p in status.peers]
    labels = [label(p.peer_id, p.description) for p in status.peers]
    width = max([12, *(len(x) + 2 for x in labels)])
    lines.append(f"{'peer':<{width}}{'state':<11}{'steps':>8}{'episode':>10}{'eval':>10}  following")
    for p, name in zip(status.peers, labels, strict=True):
        following = names[p.following] if 0 <= p.following < len(names) else "-"
        ev = "-" if math.isnan(p.last_eval_return) else f"{p.last_eval_return:.2f}"
        ep = "-" if math.isnan(p.last_episode_return) else f"{p.last_episode_return:.2f}"
        lines.append(f"{name:<{width}}{p.state:<11}{p.steps:>8}{ep:>10}{ev:>10}  {following}")
    if status.agent_values:
        lines.append("agent values: " + " ".join(f"{n}={v:.2f}" for n, v in zip(names, status.agent_values,
                                                                                  strict=False)))
    if status.peers:
        row = max(len(n) for n in names) + 2
        column = max([9, *(len(n) + 2 for n in names)])
        header = " " * (row + 2) + "".join(f"{n:>{column}}" for n in names)
        lines += ["trust of each peer (row) in each peer (column):", header]
        lines += [f"  {p.peer_id:<{row}}" + "".join(f"{t:>{column}.2f}" for t in p.trust) for p in status.peers]
        lines += ["who follows whom (share of own steps):", header]
        for p in status.peers:
            total = max(sum(p.follow_counts), 1)
            lines.append(f"  {p.peer_id:<{row}}" + "".join(f"{c / total:>{column}.2f}" for c in p.follow_counts))
    return "\n".join(lines)
