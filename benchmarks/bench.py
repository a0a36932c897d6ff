"""`peerlearn bench`: the group step measured side by side (tables printed and written as CSV).

- overhead:  the same group (same seeds) over gRPC and in process, N peers, with and without
             training: ms per group step, the share of each round, RPCs per step, gRPC/in-process;
- reference: our lock-step gRPC group against the reference loop: the authors' code itself given its
             checkout and venv (`--authors`, `--authors-python`; benchmarks/authors_throughput.py),
             and always an in-repo stand-in of its schedule (peers train one after another in one
             process, advice computed in process), reported as such;
- compute:   the learners' own work (env step + updates) per agent-step, divided over the cores:
             the throughput no scheduling can beat, and how close the group gets;
- startup:   time from launching N peer processes to the first group step, and peak memory per peer.
Ratios are only compared within one invocation (the machine is shared and noisy, docs/performance.md).
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import numpy as np

from benchmarks.bench_authors import run_authors
from orchestrator.config import RunConfig, stagger_phases, usable_cores
from orchestrator.loop.client import PeerClient
from orchestrator.loop.group import Group
from orchestrator.running.grpc_client import Deadlines, GrpcPeerClient
from orchestrator.running.launcher import LocalPeers, PeerSpec
from orchestrator.running.run import inproc_clients


@dataclass
class Row:
    bench: str
    transport: str
    peers: int
    training: bool
    ms_per_group_step: float
    suggest_share: float
    evaluate_share: float
    step_share: float
    rpcs_per_group_step: float
    agent_steps_per_s: float
    note: str = ""


def _overrides(warmup: int, training: bool, every: int = 1) -> dict[str, object]:
    # One gradient step per env step on average when training (the setting); none otherwise.
    # every=8 is the paper's schedule (8 gradient steps every 8 env steps), the authors' code's.
    return {"learning_starts": warmup, "train_freq": every, "gradient_steps": every if training else 0}


def _specs(task: str, n: int, warmup: int, training: bool, seed: int, every: int = 1,
           stagger: bool = False) -> list[PeerSpec]:
    phases = stagger_phases(n, every, usable_cores()) if stagger else [0] * n
    return [PeerSpec(f"peer-{i}", task, seed * 1000 + i, 10**6,
                     learner_overrides={**_overrides(warmup, training, every), "train_phase": phases[i]})
            for i in range(n)]


async def _timed(group: Group, steps: int, turns: int | None = None) -> tuple[float, dict[str, float], float]:
    for key in group.round_seconds:
        group.round_seconds[key] = 0.0
    calls0 = sum(m.client.calls for m in group.members)
    t0 = time.perf_counter()
    n = len(group.members)
    for k in range(steps):
        # Reference schedule: one peer acts (and trains) at a time, in turns of `turns` steps.
        await group.step(only={(k // turns) % n} if turns else None)
    elapsed = time.perf_counter() - t0
    calls = sum(m.client.calls for m in group.members) - calls0
    return elapsed, dict(group.round_seconds), calls / steps


async def measure(transport: str, task: str, n: int, training: bool, steps: int, warmup: int = 100,
                  seed: int = 0, turns: int | None = None, overlap_training: bool = False, every: int = 1,
                  values_in_step: bool = True, stagger: bool = False) -> Row:
    """`overlap_training=False` starts the peers with their gradient steps inside Step (for the A/B);
    `values_in_step=False` sends trust evidence in a separate Evaluate (the A/B of that)."""
    specs = _specs(task, n, warmup, training, seed, every, stagger)
    config = RunConfig(task=task, peers=n, steps=10**6, seed=seed, transport=transport, status_port=-1,
                       progress=False, rpc_timeout_s=30, step_timeout_s=60, values_in_step=values_in_step)
    with TemporaryDirectory(prefix="peerlearn-bench-") as tmp:
        # PEERLEARN_OVERLAP_TRAINING is read by the peers.
        local = LocalPeers(specs, Path(tmp), env={"PEERLEARN_OVERLAP_TRAINING": "1" if overlap_training else "0"}) \
            if transport == "grpc" else None
        try:
            if local is not None:
                await local.start()
                clients: list[PeerClient] = [GrpcPeerClient(a, Deadlines(30, 60, 300)) for a in local.addresses]
            else:
                clients = inproc_clients(specs)
            group = await Group.connect(clients, config)
            await group.reset()
            for _ in range(warmup + 10):  # past warm-up: advice and training are on from here
                await group.step()
            elapsed, rounds, rpcs = await _timed(group, steps, turns)
            await group.health.close()
            for c in clients:
                await c.close()
        finally:
            if local is not None:
                local.stop()
    total = max(sum(rounds.values()), 1e-9)
    agent_steps = steps if turns else steps * n
    return Row("overhead" if not turns else "reference", transport, n, training, 1000 * elapsed / steps,
               rounds["suggest"] / total, rounds["evaluate"] / total, rounds["step"] / total, rpcs,
               agent_steps / elapsed)


def compute_limit(task: str, steps: int, seed: int = 0, every: int = 1, start_at: float | None = None) -> float:
    """Seconds of one learner's own work per agent-step (env step + updates), in this process.
    `start_at` (a time.time()): wait for it after the warm-up, so copies in other processes time together."""
    import torch

    from peer_service.peer import Peer, PeerConfig

    torch.set_num_threads(1)
    peer = Peer(PeerConfig(task=task, seed=seed, total_steps=10**6, learner_overrides=_overrides(100, True, every)))
    peer.reset(seed)
    for k in range(1, 111):
        peer.step(k, None)
    if start_at is not None:
        time.sleep(max(0.0, start_at - time.time()))
    t0 = time.perf_counter()
    for k in range(111, 111 + steps):
        peer.step(k, None)
    return (time.perf_counter() - t0) / steps


def _status_mib(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of /proc/PID/status in MiB (VmRSS: resident now; VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _huge_pages_mib(pid: int) -> float:
    """Anonymous memory of the process held in transparent huge pages (2 MiB each), in MiB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("AnonHugePages:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def startup(task: str, n: int, fork_server: bool = True) -> tuple[float, float]:
    """Seconds from launching n peer processes to the end of the first group step; peak MiB per peer.
    `fork_server=False`: every peer imports torch in its own interpreter (the A/B of launcher.py's)."""
    with TemporaryDirectory(prefix="peerlearn-bench-") as tmp:
        t0 = time.perf_counter()
        async with LocalPeers(_specs(task, n, 100, True, 0), Path(tmp), fork_server=fork_server) as local:
            clients = [GrpcPeerClient(a) for a in local.addresses]
            group = await Group.connect(clients, RunConfig(task=task, peers=n, status_port=-1))
            await group.reset()
            await group.step()
            first = time.perf_counter() - t0
            for _ in range(200):
                await group.step()
            rss = max(_status_mib(pid, "VmHWM") for pid in local.pids)
            await group.health.close()
            for c in clients:
                await c.close()
    return first, rss


async def memory(task: str, steps: int, every: int) -> list[dict[str, object]]:
    """Resident memory of 2 peers and the orchestrator over a long run without training (the RPC
    path at full speed). The replay buffer is pre-allocated by SB3 and its pages are touched as it
    fills, so its size is reported beside the growth, and what is resident beyond it.

    The peers run with NumPy's transparent-huge-page advice off (NUMPY_MADVISE_HUGEPAGE=0). With it
    on (NumPy's default on Linux, for arrays of 4 MiB and more) each replay-buffer array becomes
    resident 2 MiB at a time, ahead of the data, and RSS climbs in steps that look like a leak
    (docs/performance.md); with 4 KiB pages the buffer's share is exactly what has been written."""
    rows: list[dict[str, object]] = []
    with TemporaryDirectory(prefix="peerlearn-bench-") as tmp:
        async with LocalPeers(_specs(task, 2, 100, False, 0), Path(tmp), env={"NUMPY_MADVISE_HUGEPAGE": "0"}) as local:
            clients = [GrpcPeerClient(a) for a in local.addresses]
            group = await Group.connect(clients, RunConfig(task=task, peers=2, status_port=-1))
            await group.reset()
            info = group.members[0].info
            # (a Box observation space has a shape; gymnasium types it Optional)
            obs_dim = int(np.prod(info.observation_space.shape))  # type: ignore[arg-type]
            # What SB3's ReplayBuffer keeps per transition: observation and next observation (float32),
            # the action (int64 for Discrete, float32 per dimension for Box), reward, done and timeout.
            action_bytes = 4 * int(np.prod(info.action_space.shape)) if info.action_space.shape else 8
            per_transition = 2 * 4 * obs_dim + action_bytes + 3 * 4
            for k in range(steps + 1):
                if k % every == 0:
                    peer_rss = max(_status_mib(p) for p in local.pids)
                    buffer_mib = per_transition * k / 2**20
                    rows.append({"group_step": k, "peer_rss_mib": peer_rss,
                                 "orchestrator_rss_mib": _status_mib(os.getpid()),
                                 "replay_buffer_filled_mib": buffer_mib,
                                 "peer_rss_beyond_buffer_mib": peer_rss - buffer_mib,
                                 "peer_huge_pages_mib": max(_huge_pages_mib(p) for p in local.pids)})
                if k < steps:
                    await group.step()
            await group.health.close()
            for c in clients:
                await c.close()
    return rows


def print_table(rows: Sequence[Mapping[str, object]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for key in rows[0]:
        table.add_column(key)
    for r in rows:
        table.add_row(*(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()))
    Console().print(table)


def write_csv(rows: Sequence[Mapping[str, object]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


async def run_benchmarks(which: list[str], task: str, ns: list[int], steps: int, out: Path,
                         authors: Path | None = None, authors_python: str | None = None) -> None:
    cores = usable_cores()
    rows: list[dict[str, Any]]  # one table after another, each row's values of mixed types
    if "overhead" in which:
        rows = []
        for training in (False, True):
            for n in ns:
                g = await measure("grpc", task, n, training, steps)
                i = await measure("inproc", task, n, training, steps)
                rows.append({"peers": n, "training": training, "grpc_ms": g.ms_per_group_step,
                             "inproc_ms": i.ms_per_group_step, "grpc/inproc": g.ms_per_group_step / i.ms_per_group_step,
                             "grpc_ms_per_peer": g.ms_per_group_step / n, "suggest%": 100 * g.suggest_share,
                             "evaluate%": 100 * g.evaluate_share, "step%": 100 * g.step_share,
                             "rpcs/step": g.rpcs_per_group_step, "rpcs/step/peer": g.rpcs_per_group_step / n})
                print_table(rows[-1:], f"overhead {task} N={n} training={training}")
        print_table(rows, f"overhead: {task}, gRPC vs in-process ({steps} group steps each)")
        write_csv(rows, out / "overhead.csv")
    if "reference" in which or "compute" in which:
        n = 4
        per_step = compute_limit(task, steps)
        limit = cores / per_step
        ours = await measure("grpc", task, n, True, steps)
        overlapped = await measure("grpc", task, n, True, steps, overlap_training=True)
        rows = [{"schedule": "lock-step gRPC group (ours, default: training inside Step)",
                 "agent_steps_per_s": ours.agent_steps_per_s,
                 "vs_reference": 0.0, "vs_compute_limit": ours.agent_steps_per_s / limit},
                {"schedule": "lock-step gRPC group, training overlapping the next round (--overlap-training)",
                 "agent_steps_per_s": overlapped.agent_steps_per_s,
                 "vs_reference": 0.0, "vs_compute_limit": overlapped.agent_steps_per_s / limit}]
        if "reference" in which:
            ref = await measure("inproc", task, n, True, steps, turns=max(steps // n, 1))
            rows.append({"schedule": "reference stand-in (turns, one process)",
                         "agent_steps_per_s": ref.agent_steps_per_s,
                         "vs_reference": 1.0, "vs_compute_limit": ref.agent_steps_per_s / limit})
            for row in rows[:2]:
                row["vs_reference"] = float(row["agent_steps_per_s"]) / ref.agent_steps_per_s
        rows.append({"schedule": f"compute limit ({per_step * 1000:.2f} ms/agent-step x {cores} cores)",
                     "agent_steps_per_s": limit, "vs_reference": float("nan"), "vs_compute_limit": 1.0})
        print_table(rows, f"throughput: {task}, N=4, one gradient step per env step")
        write_csv(rows, out / "throughput.csv")
    if "reference" in which and authors is not None:
        rows = await authors_table(task, steps, authors, authors_python or "python3")
        print_table(rows, f"the authors' code against ours: {task}, 4 SAC peers, the paper's schedule")
        write_csv(rows, out / "authors.csv")
    if "startup" in which:
        rows = []
        for n in [k for k in (4, 8, 16) if k <= max(ns)] or [4]:
            first, rss = await startup(task, n)
            plain, plain_rss = await startup(task, n, fork_server=False)
            rows.append({"peers": n, "seconds_to_first_group_step": first, "peak_rss_mib_per_peer": rss,
                         "without_fork_server_s": plain, "without_fork_server_rss_mib": plain_rss})
        print_table(rows, f"start-up and memory: {task}")
        write_csv(rows, out / "startup.csv")
    if "memory" in which:
        rows = await memory(task, steps, max(steps // 10, 1))
        print_table(rows, f"memory over {steps} group steps without training: {task}, 2 peers")
        write_csv(rows, out / "memory.csv")
    (out / "bench.json").write_text(json.dumps({"task": task, "ns": ns, "steps": steps, "cores": cores,
                                                "time": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2))


async def authors_table(task: str, steps: int, authors: Path, python: str) -> list[dict[str, object]]:
    """The authors' code (default torch threads, as it runs; and one thread) beside our gRPC group and
    the in-repo stand-in, all on the paper's schedule (8 gradient steps every 8 env steps)."""
    n = 4
    ours = await measure("grpc", task, n, True, steps, every=8)
    stand_in = await measure("inproc", task, n, True, steps, turns=max(steps // n, 1), every=8)
    theirs = run_authors(authors, python, task, n)
    theirs_one = run_authors(authors, python, task, n, threads=1)
    named = [("lock-step gRPC group (ours)", ours.agent_steps_per_s),
             ("in-repo stand-in (turns, one process)", stand_in.agent_steps_per_s),
             ("authors' code, torch's default threads (as it runs)", theirs),
             ("authors' code, one torch thread", theirs_one)]
    per_step = compute_limit(task, max(steps, 200), every=8)
    cores = usable_cores()
    named.append((f"compute limit ({per_step * 1000:.2f} ms/agent-step x {cores} cores)", cores / per_step))
    return [{"schedule": name, "agent_steps_per_s": rate, "ours_vs_this": ours.agent_steps_per_s / rate}
            for name, rate in named]


def main(which: list[str], task: str, ns: list[int], steps: int, out: str, authors: str | None = None,
         authors_python: str | None = None) -> int:
    asyncio.run(run_benchmarks(which, task, ns, steps, Path(out), Path(authors) if authors else None,
                               authors_python))
    print(f"CSV written to {out}/")
    return 0

