"""`peerlearn bench`'s measuring parts: the wrapper that times the authors' loop (against a stand-in
checkout with their module layout; their real code needs its own venv, not in CI), and the RPC count
of a real gRPC group, which must stay O(N)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench import measure
from benchmarks.bench_authors import AUTHORS_TASKS, authors_args

pytestmark = pytest.mark.timeout(300)

# A checkout with the authors' layout: callbacks.PeerEvalCallback, whose _on_step their loop calls
# once per env step of the acting peer, and a run_peer.py that trains peers in turns.
FAKE_CALLBACKS = """
class PeerEvalCallback:
    def __init__(self, model):
        self.model = model
    def _on_step(self):
        return True
"""
FAKE_RUN_PEER = """
import sys, time
from types import SimpleNamespace
import callbacks
steps = int(sys.argv[sys.argv.index("--steps") + 1])
peers = [SimpleNamespace(num_timesteps=0) for _ in range(int(sys.argv[sys.argv.index("--agent-count") + 1]))]
for peer in peers:  # one turn each, as their PeerGroup.learn does
    cb = callbacks.PeerEvalCallback(peer)
    for _ in range(steps):
        peer.num_timesteps += 1
        time.sleep(0.002 if peer.num_timesteps > 5 else 0.02)  # warm-up steps are slower: must not count
        cb._on_step()
"""


def test_authors_wrapper_times_only_steps_past_each_peers_warmup(tmp_path: Path) -> None:
    (tmp_path / "callbacks.py").write_text(FAKE_CALLBACKS)
    (tmp_path / "run_peer.py").write_text(FAKE_RUN_PEER)
    script = Path(__file__).parents[1] / "benchmarks" / "authors_throughput.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path), "5", "--", "--agent-count", "3",
                          "--steps", "40"], capture_output=True, text=True, timeout=120, check=True)
    timing = json.loads(out.stdout.strip().splitlines()[-1])
    # 3 peers x (40 - 5 warm-up) steps; the first timed step of each turn spans the switch of turns.
    assert timing["agent_steps"] == 3 * 35
    per_step = timing["seconds"] / timing["agent_steps"]
    assert 0.002 <= per_step < 0.012, per_step  # the 20 ms warm-up steps are not in the total


def test_authors_arguments_follow_their_experiments_rows() -> None:
    args = authors_args("hopper", 4, 1, 100, "out")
    value = {a: args[i + 1] for i, a in enumerate(args[:-1]) if a.startswith("--")}
    assert value["--env"] == "Hopper-v4" and value["--env_args"] == "terminate_when_unhealthy=False"
    assert (value["--train_freq"], value["--gradient_steps"], value["--batch-size"]) == ("8", "8", "256")
    assert args[args.index("--net-arch") + 1: args.index("--net-arch") + 3] == ["150", "200"]
    assert value["--steps"] == "1000" and value["--wandb"] == "disabled"
    for flag in ("--use-critic", "--use-trust", "--use-agent-value", "--use-advantage"):
        assert value[flag] == "True"  # their flags given without a value turn the option off
    assert set(AUTHORS_TASKS) >= {"hopper", "halfcheetah"}


def test_group_step_rpc_count_is_linear_in_the_group_size() -> None:
    row = asyncio.run(measure("grpc", "room-6", 3, True, steps=30, warmup=20))
    assert row.ms_per_group_step > 0
    assert abs(row.suggest_share + row.evaluate_share + row.step_share - 1) < 1e-6
    # One Step per peer, at most one Suggest per asked adviser and one Evaluate per learner.
    assert 3 * 1 <= row.rpcs_per_group_step <= 3 * 3, row.rpcs_per_group_step


def test_memory_reports_rss_beyond_the_replay_buffer_without_numpy_huge_pages() -> None:
    """`bench memory` starts its peers with NumPy's huge-page advice off, so the replay buffer is
    resident as far as it is written and the RSS beyond it is the column to watch for leaks."""
    from benchmarks.bench import memory

    rows = asyncio.run(memory("room-6", 200, 100))
    assert [r["group_step"] for r in rows] == [0, 100, 200]
    for r in rows:
        beyond = float(r["peer_rss_mib"]) - float(r["replay_buffer_filled_mib"])  # type: ignore[arg-type]
        assert abs(float(r["peer_rss_beyond_buffer_mib"]) - beyond) < 1e-9  # type: ignore[arg-type]
    # Room-6: 2 x 4 float32 observations + int64 action + 3 float32 = 52 bytes per transition.
    assert abs(float(rows[-1]["replay_buffer_filled_mib"]) - 200 * 52 / 2**20) < 1e-9  # type: ignore[arg-type]
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    if thp.exists() and "[always]" not in thp.read_text():  # with THP always, the kernel uses them anyway
        assert all(r["peer_huge_pages_mib"] == 0 for r in rows)


@pytest.mark.parametrize("fork_server", [True, False], ids=["forked", "own-interpreter"])
def test_local_peers_env_reaches_the_peer_processes(tmp_path: Path, fork_server: bool) -> None:
    """`LocalPeers(env=...)` (how bench memory turns NumPy's huge pages off) sets the variables in the
    peers' processes, forked or started in their own interpreter; the launcher's own stay set too."""
    from benchmarks.bench import _specs
    from orchestrator.running.launcher import LocalPeers

    async def environ() -> bytes:
        async with LocalPeers(_specs("room-6", 1, 100, False, 0), tmp_path, fork_server=fork_server,
                              env={"PEERLEARN_TEST_MARK": "42"}) as local:
            return Path(f"/proc/{local.pids[0]}/environ").read_bytes()

    variables = asyncio.run(environ()).split(b"\0")
    assert b"PEERLEARN_TEST_MARK=42" in variables and b"OMP_NUM_THREADS=1" in variables
