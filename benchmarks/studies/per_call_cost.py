"""What one lock-step call costs a peer process, in CPU: a Suggest of 4 HalfCheetah states sent
3,000 times, one after another, by the orchestrator's client (hedging off), to
  - a real SAC peer (peer_service, as `peerlearn run` starts it),
  - the same peer process (peer_service's server) answering with zeros instead of asking its actor,
  - a bare grpc.aio server and a bare synchronous grpc server of the same service answering zeros;
then the actor's own cost in process, hot (back to back) and with the caches cooled between calls
(a 0.2 ms sleep, or 32 MB of other memory touched), as in a group where 4 processes share 2 cores.
CPU per call is read from /proc (server) and getrusage (client). Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/studies/per_call_cost.py
"""

import asyncio
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np

from benchmarks.bench import _specs
from orchestrator.running.grpc_client import Deadlines, GrpcPeerClient
from orchestrator.running.launcher import LocalPeers

CALLS = 3000
TICKS = os.sysconf("SC_CLK_TCK")
BARE_SERVER = '''
import asyncio, sys
from concurrent.futures import ThreadPoolExecutor
import grpc, numpy as np
from peerlearn.grpc_options import SERVER_OPTIONS
from peerlearn.tensors import from_tensor, to_tensor
from peerlearn.v1 import peer_pb2 as pb, peer_pb2_grpc
kind, port_file = sys.argv[1], sys.argv[2]
def zeros(request):
    return pb.SuggestReply(actions=to_tensor(np.zeros((len(from_tensor(request.states, "s")), 6), np.float32)))
class Aio(peer_pb2_grpc.PeerServiceServicer):
    async def Suggest(self, request, context): return zeros(request)
class Sync(peer_pb2_grpc.PeerServiceServicer):
    def Suggest(self, request, context): return zeros(request)
async def aio():
    server = grpc.aio.server(options=SERVER_OPTIONS)
    peer_pb2_grpc.add_PeerServiceServicer_to_server(Aio(), server)
    port = server.add_insecure_port("127.0.0.1:0"); await server.start(); open(port_file, "w").write(str(port))
    await server.wait_for_termination()
if kind == "sync":
    server = grpc.server(ThreadPoolExecutor(1), options=SERVER_OPTIONS)
    peer_pb2_grpc.add_PeerServiceServicer_to_server(Sync(), server)
    port = server.add_insecure_port("127.0.0.1:0"); server.start(); open(port_file, "w").write(str(port))
    server.wait_for_termination()
else:
    asyncio.run(aio())
'''

STUBBED_PEER = '''
import asyncio, sys
import numpy as np, torch
from benchmarks.bench import _overrides
from peer_service.peer import Peer, PeerConfig
from peer_service.server import serve
torch.set_num_threads(1)
peer = Peer(PeerConfig(task="halfcheetah", total_steps=10**6, learner_overrides=_overrides(100, False)))
peer.suggest = lambda states, deterministic: np.zeros((len(states), 6), np.float32)
asyncio.run(serve(peer, port_file=sys.argv[2]))
'''


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def per_call(label: str, address: str, pid: int) -> None:
    client = GrpcPeerClient(address, deadlines=Deadlines(hedge_s=0))
    states = np.random.default_rng(0).standard_normal((4, 17)).astype(np.float32)
    for _ in range(300):
        await client.suggest(states)
    server0, client0, t0 = cpu_s(pid), own_cpu_s(), time.perf_counter()
    for _ in range(CALLS):
        await client.suggest(states)
    server1, client1, t1 = cpu_s(pid), own_cpu_s(), time.perf_counter()
    await client.close()
    print(f"| {label} | {1e3 * (t1 - t0) / CALLS:.3f} | {1e3 * (server1 - server0) / CALLS:.3f} | "
          f"{1e3 * (client1 - client0) / CALLS:.3f} |", flush=True)


async def real_peer() -> None:
    with TemporaryDirectory() as tmp:
        async with LocalPeers(_specs("halfcheetah", 1, 100, False, 0), Path(tmp)) as local:
            await per_call("SAC peer (peer_service)", local.addresses[0], local.pids[0])


async def server_process(kind: str) -> None:
    labels = {"stub": "the same peer server, Suggest answered with zeros", "aio": "bare grpc.aio server, zeros",
              "sync": "bare grpc (sync) server, zeros"}
    with TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        code = STUBBED_PEER if kind == "stub" else BARE_SERVER
        proc = subprocess.Popen([sys.executable, "-c", code, kind, str(port_file)], stderr=subprocess.DEVNULL)
        try:
            while not port_file.exists() or not port_file.read_text():
                await asyncio.sleep(0.05)
            await per_call(labels[kind], f"127.0.0.1:{port_file.read_text()}", proc.pid)
        finally:
            proc.terminate()
            proc.wait()


def actor_in_process() -> None:
    import torch

    from benchmarks.bench import _overrides
    from peer_service.peer import Peer, PeerConfig

    torch.set_num_threads(1)
    peer = Peer(PeerConfig(task="halfcheetah", total_steps=10**6, learner_overrides=_overrides(100, False)))
    states = np.random.default_rng(0).standard_normal((4, 17)).astype(np.float32)
    other = np.random.default_rng(1).random(4_000_000)  # 32 MB
    print("\n| the actor's Suggest of 4 states, in process | ms of CPU per call |\n|---|---|")
    for label, between in [("back to back (hot caches)", None), ("after a 0.2 ms sleep", lambda: time.sleep(2e-4)),
                           ("after touching 32 MB of other memory", other.sum)]:
        for _ in range(300):
            peer.suggest(states, False)
        spent = 0.0
        for _ in range(CALLS):
            if between is not None:
                between()
            t0 = time.thread_time()
            peer.suggest(states, False)
            spent += time.thread_time() - t0
        print(f"| {label} | {1e3 * spent / CALLS:.3f} |", flush=True)


async def main() -> None:
    print("| server | wall ms per call | server CPU ms per call | client CPU ms per call |\n|---|---|---|---|")
    for _ in range(2):
        await real_peer()
        for kind in ("stub", "aio", "sync"):
            await server_process(kind)
    actor_in_process()


if __name__ == "__main__":
    asyncio.run(main())
