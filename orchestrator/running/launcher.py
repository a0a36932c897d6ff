"""Start local peer processes for `peerlearn run`, and always stop them again (by PID).

Each peer binds port 0 on loopback and writes the port it got to a file, so there is no race for
free ports. Python peers are forked from a fork server that has imported torch and the learners
once (orchestrator/running/forkserver.py; `PEERLEARN_FORK_SERVER=0` starts each with its own interpreter).
`LocalPeers` is an async context manager: whatever happens inside (normal end, error,
Ctrl-C), every process it started is terminated, then killed if it does not exit in time.
"""

from __future__ import annotations

import asyncio
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orchestrator.running.forkserver import ForkedProcess, ForkServer
from peer_service.config import PeerConfig
from peer_service.main import declared_settings, peer_argv
from peerlearn.settings import UserError, env_name


@dataclass
class PeerSpec(PeerConfig):
    """A peer to start on this machine: its settings are a PeerConfig's (declared once, there; a Python
    peer gets them as `peerlearn peer` flags), plus, for a peer in another language, its command.

    `command` is a shell command template started instead of the Python peer. Placeholders: {port}
    {peer_id} {task} {seed} {total_steps} {role} {checkpoint_dir}. The launcher picks the port;
    {checkpoint_dir} is the run's folder for this peer's checkpoints ("" if none)."""

    command: str | None = None

    def peer_config(self) -> PeerConfig:
        """The settings of this peer (its process gets them as flags, an in-process peer as they are)."""
        return PeerConfig(**{f.name: getattr(self, f.name) for f in fields(PeerConfig)})


# PEERLEARN_* variables of `peerlearn peer` that a started peer may inherit from this process: they
# tune the process (threads, when gradient steps run) but never change what it learns or says.
# Every other peer setting (role, attack, learner, task, seed, ...) comes from the run's config as a
# flag, and is removed from the peers' environment: an exported PEERLEARN_ATTACK in the shell must
# not turn an honest run into an attack study that config.toml does not record.
PASS_THROUGH = ("overlap_training", "torch_threads")


def peer_setting_variables() -> list[str]:
    """The PEERLEARN_* names of every `peerlearn peer` setting (peer_service/config.py)."""
    return [env_name(name) for name in declared_settings().types]


def inherited_variables(environ: dict[str, str] | None = None) -> tuple[dict[str, str], list[str]]:
    """(the peer variables started peers inherit, the ones they are not given) for this environment."""
    environ = dict(os.environ if environ is None else environ)
    passed = {env_name(n) for n in PASS_THROUGH}
    present = [v for v in peer_setting_variables() if environ.get(v, "").strip()]
    return {v: environ[v] for v in present if v in passed}, [v for v in present if v not in passed]


class PeerStartError(RuntimeError):
    pass


class PeerRefusedSettings(PeerStartError, UserError):
    """A peer that exited with 2 at start: its settings are wrong (a user error, one line, exit 2)."""


class LocalPeers:
    def __init__(self, specs: list[PeerSpec], log_dir: Path, start_timeout_s: float = 60.0,
                 fork_server: bool | None = None, env: dict[str, str] | None = None) -> None:
        """`env`: variables set for the peers on top of this process's environment."""
        self.specs = specs
        self.env = env or {}
        self.log_dir = log_dir
        self.start_timeout_s = start_timeout_s
        if fork_server is None:
            fork_server = os.environ.get("PEERLEARN_FORK_SERVER", "1").lower() not in ("0", "false", "no")
        self.use_fork_server = fork_server and any(s.command is None for s in specs)
        self.fork_server: ForkServer | None = None
        self.processes: list[subprocess.Popen | ForkedProcess] = []
        self.addresses: list[str] = []
        self.commands: list[list[str] | str] = []
        self.restarts: list[int] = [0] * len(specs)
        self.all_pids: list[int] = []  # every process ever started, restarts included
        self._stopping = False
        self._tmp = tempfile.TemporaryDirectory(prefix="peerlearn-ports-")

    async def __aenter__(self) -> LocalPeers:
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        if self.use_fork_server:
            self.fork_server = ForkServer(self._env(), self.log_dir / "forkserver.log")  # closed by stop()
            await self.fork_server.wait_ready()  # here, not in spawn: Ctrl-C must not wait for its imports
        port_files = []
        for spec in self.specs:
            port_file = Path(self._tmp.name) / f"{spec.peer_id}.port"
            port_files.append(port_file)
            if spec.command:
                # Foreign peers know nothing of port files: give them a free port and write it ourselves.
                port = free_port()
                port_file.write_text(str(port))
                cmd: list[str] | str = spec.command.format(port=port, peer_id=spec.peer_id, task=spec.task,
                                                           seed=spec.seed, total_steps=spec.total_steps,
                                                           role=spec.role,
                                                           checkpoint_dir=spec.checkpoint_dir or "")
            else:
                # Every setting as a flag, empty ones too: a flag wins over any variable (peer_service/main.py).
                cmd = [sys.executable, "-m", "peer_service", *peer_argv(spec.peer_config(), skip=PASS_THROUGH),
                       "--host", "127.0.0.1", "--port", "0", "--port-file", str(port_file), "--exit-with-parent"]
            self.commands.append(cmd)
            self.processes.append(self._spawn(len(self.commands) - 1))
        deadline = time.monotonic() + self.start_timeout_s
        for spec, proc, port_file in zip(self.specs, self.processes, port_files, strict=True):
            while not port_file.exists():
                if proc.poll() is not None:
                    log_file = self.log_dir / f"{spec.peer_id}.log"
                    tail = log_file.read_text()[-2000:]
                    lines = [line for line in tail.splitlines() if line.strip()]
                    if proc.returncode == 2 and lines:
                        reason = lines[-1].removeprefix("peerlearn peer: error: ")
                        raise PeerRefusedSettings(f"{spec.peer_id} refused its settings: {reason} "
                                                  f"(its log: {log_file})")
                    raise PeerStartError(f"peer {spec.peer_id} exited with {proc.returncode} at start:\n{tail}")
                if time.monotonic() > deadline:
                    raise PeerStartError(f"peer {spec.peer_id} did not start within {self.start_timeout_s} s")
                await asyncio.sleep(0.05)
            bound = port_file.read_text().strip()
            self.addresses.append(f"127.0.0.1:{bound}")
            cmd = self.commands[len(self.addresses) - 1]
            if isinstance(cmd, list):  # a restart must come back on the same port
                cmd[cmd.index("--port") + 1] = bound
        await asyncio.gather(*(wait_healthy(a, max(deadline - time.monotonic(), 1.0)) for a in self.addresses))

    async def supervise(self, max_restarts: int, on_restart: Callable[[int, int], None] | None = None,
                        poll_s: float = 0.2) -> None:
        """Restart crashed peers on their port, with backoff (0.5 s doubling to 8 s) and a limit.

        Runs until cancelled. `on_restart(index, exit_code)` is told about every restart.
        """
        due: dict[int, float] = {}
        while not self._stopping:
            for i, proc in enumerate(self.processes):
                if proc.poll() is None or self.restarts[i] >= max_restarts:
                    continue
                now = time.monotonic()
                if i not in due:
                    due[i] = now + min(0.5 * 2 ** self.restarts[i], 8.0)
                elif now >= due[i]:
                    del due[i]
                    self.restarts[i] += 1
                    if on_restart is not None:
                        on_restart(i, cast(int, proc.returncode))  # poll() above saw it exit
                    self.processes[i] = self._spawn(i)
            await asyncio.sleep(poll_s)

    def _env(self) -> dict[str, str]:
        """This process's environment without the peer settings a run decides (PASS_THROUGH), plus
        `env`, which the code starting the peers sets on purpose (e.g. bench's overlap A/B)."""
        _, withheld = inherited_variables()
        inherited = {k: v for k, v in os.environ.items() if k not in withheld}
        return {**inherited, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **self.env}

    def _spawn(self, i: int) -> subprocess.Popen | ForkedProcess:
        """Start peer i. A new session: Ctrl-C in the terminal reaches only us, and we stop the peers
        in order (by PID; a shell command's whole process group is signalled)."""
        cmd = self.commands[i]
        env = self._env()
        log_path = self.log_dir / f"{self.specs[i].peer_id}.log"
        python_peer = isinstance(cmd, list) and cmd[:3] == [sys.executable, "-m", "peer_service"]
        if python_peer and self.fork_server is not None and self.fork_server.alive():
            try:
                forked = self.fork_server.spawn(list(cmd[3:]), log_path, env)
                self.all_pids.append(forked.pid)
                return forked
            except (RuntimeError, OSError, queue.Empty) as err:  # start it the slow way instead
                with log_path.open("a") as log:
                    log.write(f"fork server unavailable ({err}); starting a new interpreter\n")
        with log_path.open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                    shell=isinstance(cmd, str))
        self.all_pids.append(proc.pid)
        return proc

    def stop(self, grace_s: float = 5.0) -> None:
        self._stopping = True
        for proc in self.processes:
            _signal_group(proc, signal.SIGTERM)
        end = time.monotonic() + grace_s
        for proc in self.processes:
            try:
                proc.wait(timeout=max(end - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
            _signal_group(proc, signal.SIGKILL)  # children a shell command left behind
        if self.fork_server is not None:
            self.fork_server.close()
        self._tmp.cleanup()


def _signal_group(proc: subprocess.Popen | ForkedProcess, sig: int) -> None:
    """Signal the peer's process group (it leads its own session), falling back to the PID."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        if proc.poll() is None:
            proc.send_signal(sig)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(address: str, timeout_s: float) -> None:
    """Block until the server's grpc.health.v1 says SERVING (wait_for_ready: start-up only)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s, wait_for_ready=True)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise PeerStartError(f"{address} reports {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}")

