"""Run one group end to end: peers (started here, given as addresses, or in-process), the status
service, the loop with a live view, periodic evaluation, checkpoints, results and plots."""

from __future__ import annotations

import asyncio
import json
import math
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import RunConfig
from orchestrator.group import Group
from orchestrator.launcher import LocalPeers, PeerSpec
from orchestrator.progress import LiveView
from orchestrator.results import RunRecorder, new_run_dir
from orchestrator.status import StatusServicer, start_status_server
from orchestrator.transport import Deadlines, GrpcPeerClient, InprocPeerClient, PeerClient


@dataclass
class RunSummary:
    run_dir: Path
    final_eval: dict[str, float]
    group_steps: int
    seconds: float
    status_address: str | None
    peer_pids: list[int]
    plots: list[Path]


def peer_specs(config: RunConfig, run_dir: Path) -> list[PeerSpec]:
    return [PeerSpec(peer_id=f"peer-{i}", task=config.task, seed=config.seed * 1000 + i,
                     total_steps=config.steps, role=config.role(i),
                     checkpoint_dir=str(run_dir / "peers" / f"peer-{i}" / "checkpoints"),
                     learner_overrides=json.dumps(config.learner), command=config.command(i))
            for i in range(config.peers)]


def inproc_clients(specs: list[PeerSpec]) -> list[PeerClient]:
    from peer_service.peer import Peer, PeerConfig  # only the in-process transport builds peers here

    if any(s.command for s in specs):
        raise ValueError("--transport inproc runs Python peers only; peers with a command need grpc")
    return [InprocPeerClient(Peer(PeerConfig(peer_id=s.peer_id, task=s.task, seed=s.seed, total_steps=s.total_steps,
                                             role=s.role, checkpoint_dir=s.checkpoint_dir,
                                             learner_overrides=json.loads(s.learner_overrides))))
            for s in specs]


async def run_group(config: RunConfig, addresses: list[str] | None = None) -> RunSummary:
    config.validate()
    run_dir = new_run_dir(config)
    recorder = RunRecorder(run_dir, config)
    deadlines = Deadlines(read_s=config.rpc_timeout_s, step_s=config.step_timeout_s)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with AsyncExitStack() as stack:
        pids: list[int] = []
        if addresses is None and config.transport == "inproc":
            clients = inproc_clients(peer_specs(config, run_dir))
        else:
            if addresses is None:
                local = await stack.enter_async_context(LocalPeers(peer_specs(config, run_dir), run_dir / "logs"))
                addresses, pids = local.addresses, local.pids
            clients = [GrpcPeerClient(a, deadlines) for a in addresses]
        for c in clients:
            stack.push_async_callback(c.close)

        status = StatusServicer(run_dir.name, config.steps)
        status_address = None
        if config.status_port >= 0:
            server, port = await start_status_server(status, "127.0.0.1", config.status_port)
            stack.push_async_callback(server.stop, 1.0)
            status_address = f"127.0.0.1:{port}"
            (run_dir / "status_address").write_text(status_address + "\n")

        group = await Group.connect(clients, config, recorder)
        status.group = group
        recorder.start(group)
        await group.reset()
        view = LiveView(config.steps, f"{run_dir.name}", enabled=config.progress)
        if config.progress and status_address:
            view.console.print(f"status: peerlearn status {status_address}    results: {run_dir}")
        try:
            with view:
                await group.run(config.steps, on_step=view.update)
                view.update(group, force=True)
            await group.checkpoint()
        finally:
            status.finished = True
            plots = recorder.close(group)
        final = {m.name: m.last_eval_return for m in group.members if not math.isnan(m.last_eval_return)}
        summary = RunSummary(run_dir=run_dir, final_eval=final, group_steps=group.t,
                             seconds=loop.time() - started, status_address=status_address, peer_pids=pids,
                             plots=plots)
        (run_dir / "summary.json").write_text(json.dumps(
            {"final_eval": final, "group_steps": group.t, "peer_pids": pids, "seconds": round(summary.seconds, 2),
             "steps_per_second": round(group.steps_per_second, 2),
             "round_seconds": {k: round(v, 3) for k, v in group.round_seconds.items()},
             "errors": {m.name: m.errors for m in group.members if m.errors}}, indent=2))
        return summary
