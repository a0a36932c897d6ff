"""Ctrl-C and SIGTERM of `peerlearn run`, and `--resume` (orchestrator/running/interrupt.py).

A first signal while the group steps ends the step, checkpoints at its boundary, writes stopped.json
and prints the command that continues the run (exit 130); a second stops at once; a signal during
start-up stops the run at once. `--resume` of a finished run is refused and changes nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from orchestrator.running.interrupt import Interrupt, StopRequested
from peerlearn.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from tests.conftest import pid_alive

pytestmark = pytest.mark.timeout(240)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "peerlearn.cli", *args]


def _wait_for_step(run_dir: Path, step: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not (run_dir / "status_address").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    with grpc.insecure_channel((run_dir / "status_address").read_text().strip()) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        while stub.GetStatus(orchestrator_pb2.GetStatusRequest(), timeout=5).step < step:
            assert proc.poll() is None and time.monotonic() < deadline, f"the run never reached step {step}"
            time.sleep(0.05)


def _snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_ctrl_c_checkpoints_at_the_step_boundary_then_resume_continues(tmp_path: Path) -> None:
    run_dir = tmp_path / "int"
    # No periodic checkpoint and no evaluation in the way: the only checkpoint is the interrupt's.
    proc = subprocess.Popen(_cli("run", "--transport", "inproc", "--peers", "2", "--steps", "100000",
                                 "--checkpoint-every", "100000", "--eval-every", "100000", "--out", str(tmp_path),
                                 "--name", "int", "--no-progress"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for_step(run_dir, 20, proc)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out[-3000:]
    stopped = json.loads((run_dir / "stopped.json").read_text())
    t = stopped["group_steps"]
    assert stopped["stopped"] == "interrupted" and t >= 20
    assert pickle.loads((run_dir / "checkpoints" / "orchestrator.pkl").read_bytes())["t"] == t  # at the boundary
    assert not (run_dir / "summary.json").exists()
    assert "Ctrl-C again stops at once" in out
    last = out.strip().splitlines()[-1]
    assert last == (f"peerlearn run: interrupted at group step {t}, checkpoint written (results so far in "
                    f"{run_dir}); continue with: peerlearn run --resume {run_dir}"), out[-3000:]

    resumed = subprocess.run(_cli("run", "--resume", str(run_dir), "--steps", str(t + 10), "--no-progress"),
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"peerlearn: resuming {run_dir} from group step {t} (its last checkpoint), to {t + 10}" \
        in resumed.stderr
    assert json.loads((run_dir / "summary.json").read_text())["group_steps"] == t + 10

    # Now finished: --resume refuses in one line, exit 2, and touches no file.
    before = _snapshot(run_dir)
    again = subprocess.run(_cli("run", "--resume", str(run_dir)), capture_output=True, text=True, timeout=60)
    assert again.returncode == 2, again.stderr[-3000:]
    assert again.stderr.strip() == (f"peerlearn run: error: resume: {run_dir} is a finished run (it has a "
                                    "summary.json), so there is nothing to resume; nothing was changed")
    assert _snapshot(run_dir) == before


# A `mujoco` that the fork server imports for a minute (and the orchestrator not at all), writing
# the fork server's PID first: start-up then waits for the fork server, as on a slow machine.
SLOW_MUJOCO = """
import os, sys, time
from pathlib import Path

if sys.argv[0].endswith("zygote.py"):
    (Path(__file__).parent.parent / "zygote.pid").write_text(str(os.getpid()))
    time.sleep(60)
raise ImportError("No module named mujoco (hidden by the test)")
"""


def test_ctrl_c_during_start_up_stops_the_run_at_once(tmp_path: Path) -> None:
    """Before the fix the launcher waited for the fork server inside the event loop: a Ctrl-C in
    those seconds took effect only when the fork server was ready (2 minutes when it had died)."""
    shadow = tmp_path / "shadow"
    (shadow / "mujoco").mkdir(parents=True)
    (shadow / "mujoco" / "__init__.py").write_text(SLOW_MUJOCO)
    path = os.pathsep.join(p for p in (str(shadow), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(_cli("run", "--peers", "2", "--steps", "100", "--out", str(tmp_path), "--name", "start",
                                 "--no-progress"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": path})
    marker = shadow / "zygote.pid"
    zygote = 0
    try:
        deadline = time.monotonic() + 90
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the fork server never started"
            time.sleep(0.05)
        zygote = int(marker.read_text())
        time.sleep(0.5)  # well inside its minute of imports
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        seconds = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
        if zygote and pid_alive(zygote):
            os.kill(zygote, signal.SIGKILL)
    assert proc.returncode == 130, out[-3000:]
    assert seconds < 15, (seconds, out[-3000:])
    assert not pid_alive(zygote), "the fork server outlived the run"
    assert out.strip().splitlines()[-1].startswith("peerlearn run: interrupted during start-up; peers stopped"), \
        out[-3000:]


def test_a_second_signal_stops_at_once() -> None:
    """The loop's handlers: the first signal while stepping asks for a stop at the next boundary (the
    last step finishes the run anyway); the second cancels the run. Real signals, sent to this
    process while the handlers are installed; afterwards the previous handlers are back."""
    said: list[str] = []
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    async def body() -> None:
        task = asyncio.current_task()
        assert task is not None
        interrupt = Interrupt(task, ["127.0.0.1:1", "127.0.0.1:2"])
        interrupt.say = said.append
        with interrupt.installed():
            interrupt.stepping = True
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.sleep(0.2)  # handled by the loop, not cancelled
            assert interrupt.requested
            interrupt.stop_if_requested(10, 10)  # the last step: the run finishes as it would
            with pytest.raises(StopRequested):
                interrupt.stop_if_requested(5, 10)
            os.kill(os.getpid(), signal.SIGINT)
            with pytest.raises(asyncio.CancelledError):
                await asyncio.sleep(5)
        assert interrupt.resume_command(Path("runs/x")) == \
            "peerlearn orchestrate --peers 127.0.0.1:1,127.0.0.1:2 --resume runs/x"

    asyncio.run(body())
    assert said == ["peerlearn: stopping after this group step to write a checkpoint "
                    "(Ctrl-C again stops at once, without it)"]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
