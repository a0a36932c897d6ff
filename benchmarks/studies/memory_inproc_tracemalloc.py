"""Memory of the group loop without gRPC (docs/performance.md): 2 Room-6 peers and the orchestrator in
one process, no training, RSS and tracemalloc over 40,000 steps after a 5,000-step warm-up.

    PYTHONPATH=. .venv/bin/python benchmarks/studies/memory_inproc_tracemalloc.py
"""

import asyncio
import tracemalloc
from pathlib import Path

from benchmarks.bench import _specs
from orchestrator.config import RunConfig
from orchestrator.loop.group import Group
from orchestrator.running.run import inproc_clients


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(steps: int = 40_000) -> None:
    clients = inproc_clients(_specs("room-6", 2, 100, False, 0))
    config = RunConfig(task="room-6", peers=2, steps=10**9, status_port=-1, progress=False, transport="inproc")
    group = await Group.connect(clients, config)
    await group.reset()
    for _ in range(5000):
        await group.step()
    tracemalloc.start(10)
    before, rss_before = tracemalloc.take_snapshot(), rss_mib()
    for _ in range(steps):
        await group.step()
    after, rss_after = tracemalloc.take_snapshot(), rss_mib()
    print(f"RSS {rss_before:.1f} -> {rss_after:.1f} MiB over {steps} steps (both peers + orchestrator, one process)")
    for stat in after.compare_to(before, "lineno")[:8]:
        print(stat)


asyncio.run(main())
