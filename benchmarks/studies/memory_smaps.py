"""Where a peer's resident memory grows over a long run: `peerlearn bench memory`'s loop (Room-6,
2 DQN peers over gRPC, no training), with NumPy's transparent-huge-page advice as NumPy sets it
(on, the default) or off, reading the peer's /proc/PID/smaps every tenth of the run and printing,
per mapping that changed, its resident MiB at each reading. The replay buffer's arrays are the
anonymous mappings of 4.6 MiB (observations, next observations: 300,000 x 4 float32) and the
one of 15.7 MiB (the other arrays, adjacent); AnonHugePages shows which are held in 2 MiB pages.
Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/studies/memory_smaps.py [STEPS] [on|off]
"""

import asyncio
import sys
from pathlib import Path
from tempfile import TemporaryDirectory

from benchmarks.bench import _specs
from orchestrator.config import RunConfig
from orchestrator.loop.group import Group
from orchestrator.running.grpc_client import GrpcPeerClient
from orchestrator.running.launcher import LocalPeers

Mapping = tuple[str, str]  # (address range, size and name)


def smaps(pid: int) -> dict[Mapping, tuple[int, int]]:
    """Resident KiB and AnonHugePages KiB of every mapping of the process."""
    out: dict[Mapping, tuple[int, int]] = {}
    current: Mapping | None = None
    rss = 0
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if "-" in head[0] and not head[0].endswith(":"):
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            name = head[5] if len(head) > 5 else "[anon]"
            current = (head[0], f"{(hi - lo) / 2**20:.1f} MiB {name}")
        elif head[0] == "Rss:":
            rss = int(head[1])
        elif head[0] == "AnonHugePages:" and current is not None:
            out[current] = (rss, int(head[1]))
    return out


async def main(steps: int, huge_pages: str) -> None:
    every = steps // 10
    env = {} if huge_pages == "on" else {"NUMPY_MADVISE_HUGEPAGE": "0"}
    with TemporaryDirectory() as tmp:
        async with LocalPeers(_specs("room-6", 2, 100, False, 0), Path(tmp), env=env) as local:
            clients = [GrpcPeerClient(a) for a in local.addresses]
            group = await Group.connect(clients, RunConfig(task="room-6", peers=2, status_port=-1))
            await group.reset()
            readings = []
            for k in range(steps + 1):
                if k % every == 0:
                    readings.append(smaps(local.pids[0]))
                if k < steps:
                    await group.step()
            await group.health.close()
            for c in clients:
                await c.close()
    print(f"NumPy huge-page advice {huge_pages}; peer-0's mappings whose RSS changed after step {every} "
          f"(MiB resident at steps 0, {every}, ..., {steps}; * = held in huge pages at the end):")
    total = 0.0
    for mapping in sorted(set().union(*readings[1:])):
        rss = [r.get(mapping, (0, 0))[0] / 1024 for r in readings]
        if abs(rss[-1] - rss[1]) > 0.05:
            total += rss[-1] - rss[1]
            huge = "*" if readings[-1].get(mapping, (0, 0))[1] else " "
            print(f"{huge} {mapping[1]:>40s}  +{rss[-1] - rss[1]:.2f}  " + " ".join(f"{x:.2f}" for x in rss))
    print(f"growth from step {every} to {steps} in these mappings: {total:.2f} MiB")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, sys.argv[2] if len(sys.argv) > 2 else "on"))
