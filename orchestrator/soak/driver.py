"""Run a peer group for a set time while the nemesis injects its schedule; record everything.

The driver is the group's supervisor, as `peerlearn run` or compose's `restart: on-failure` would be:
it starts the peers itself (Python peers through the launcher, the Node peer from its command), puts a
chaos proxy (peerlearn/chaos.py) in front of each, and runs the orchestrator as its own process,
`peerlearn orchestrate`, so that it can be killed with SIGKILL and continued with `--resume`. A peer
that dies is restarted on its port (LocalPeers.supervise); an orchestrator that dies is resumed.

As root the run folder lives on a small tmpfs, so that the disk can be filled (checkpoint writes
fail); without root that fault is left out of the schedule (the history says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from orchestrator.config import RunConfig, to_toml
from orchestrator.running.launcher import LocalPeers, PeerSpec
from orchestrator.running.run import peer_specs
from orchestrator.soak import nemesis, probes
from orchestrator.soak.history import History
from peerlearn.chaos import ChaosProxy
from peerlearn.v1 import orchestrator_pb2, orchestrator_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
NODE_MAIN = ROOT / "peers" / "node" / "src" / "main.js"
CPP_BINARY = ROOT / "peers" / "cpp" / "build" / "peerlearn-cpp-peer"
NODE_COMMAND = (f"exec node {NODE_MAIN} --port {{port}} --peer-id {{peer_id}} --task {{task}} --seed {{seed}} "
                "--total-steps {total_steps} --role {role} --checkpoint-dir={checkpoint_dir} --exit-with-parent")
CPP_COMMAND = (f"exec {CPP_BINARY} --port {{port}} --peer-id {{peer_id}} --task {{task}} --role {{role}} "
               "--exit-with-parent")
SAMPLE_EVERY_S = 10.0
TAIL_EVERY_S = 1.0
PROGRESS_EVERY_S = 2.0


def node_available() -> str:
    """'' if the Node peer can run here, else why not."""
    if shutil.which("node") is None:
        return "`node` is not installed"
    if not (ROOT / "peers" / "node" / "node_modules" / "@grpc" / "grpc-js").is_dir():
        return "peers/node has no node_modules (cd peers/node && npm ci)"
    return ""


def cpp_available() -> str:
    if not CPP_BINARY.exists():
        return ("peers/cpp is not built (make -C peers/cpp needs g++, libgrpc++-dev, protobuf-compiler-grpc; "
                "libgrpc++-dev is missing here)" if shutil.which("g++") else "g++ is not installed")
    return ""


@dataclass
class SoakSettings:
    minutes: float
    seed: int
    out: Path
    python_peers: int = 3
    node: bool = True  # include the Node learner when node is there
    cpp: bool = True  # include the C++ expert when its binary is there
    steps: int = 100_000  # the run's budget (the soak stops it at the end of its time)
    stop_at_step: int = 0  # >0: stop at this group step instead (the fault-free runs)
    faults: bool = True
    disk_mb: int = 384
    kinds: tuple[str, ...] = nemesis.KINDS
    warmup_s: float = 60.0
    run_fields: dict[str, object] = field(default_factory=dict)


def _from_here(command: str) -> str:
    """The command with the repository's folder relative to the working directory, as the configs
    write it (the peers start there; the history and config.toml name no folder of this machine)."""
    try:
        return command.replace(str(ROOT) + "/", str(ROOT.relative_to(Path.cwd())).removeprefix(".") + "/"
                               if ROOT != Path.cwd() else "")
    except ValueError:
        return command


def group_config(s: SoakSettings, node: bool, cpp: bool) -> dict[str, object]:
    """The group's settings (config.toml of the orchestrator, and the peers' flags)."""
    commands = ([""] * s.python_peers + ([_from_here(NODE_COMMAND)] if node else [])
                + ([_from_here(CPP_COMMAND)] if cpp else []))
    roles = ["learner"] * (s.python_peers + int(node)) + (["expert"] if cpp else [])
    fields: dict[str, object] = {
        "task": "room-6", "peers": len(commands), "steps": s.steps, "seed": s.seed, "roles": roles,
        "commands": commands, "eval_every": 2000, "log_every": 100, "checkpoint_every": 500,
        "keep_checkpoints": 2,
        # deadlines as in the fault tests: a frozen peer is ejected in seconds, not a minute
        "rpc_timeout_s": 3.0, "step_timeout_s": 6.0, "eject_after": 3, "probe_max_backoff_s": 0.5,
        "learner": {"buffer_size": 50_000},  # two buffers per learner must fit the small run disk
    }
    fields.update(s.run_fields)
    return fields


class Soak:
    def __init__(self, s: SoakSettings) -> None:
        self.s = s
        s.out.mkdir(parents=True, exist_ok=True)
        self.history = History(s.out / "history.jsonl")
        self.data = s.out / "data"  # the run folder's disk (a tmpfs as root)
        self.run_dir = self.data / "run"
        self.mounted = False
        self.orchestrator: subprocess.Popen[bytes] | None = None
        self.orchestrator_pids: list[int] = []
        self.proxies: list[ChaosProxy] = []
        self.local: LocalPeers | None = None
        self.names: list[str] = []
        self.planned_exit = False  # the nemesis (or the end) stopped the orchestrator, not a crash
        self.resumes = 0
        self.last_step = 0

    # ------------------------------------------------------------------ set-up
    def _mount(self) -> str:
        self.data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return "not root: no tmpfs for the run folder, so no disk_full faults"
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.s.disk_mb}m", "soak", str(self.data)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return f"mount tmpfs failed ({proc.stderr.strip()}): no disk_full faults"
        self.mounted = True
        return ""

    def _orchestrate(self, resume: bool) -> None:
        addresses = ",".join(p.address for p in self.proxies)
        cmd = [sys.executable, "-m", "peerlearn.cli", "orchestrate", "--peers", addresses, "--no-progress"]
        cmd += ["--resume", str(self.run_dir)] if resume else ["--config", str(self.s.out / "group.toml"),
                                                             "--out", str(self.data), "--name", "run"]
        log = (self.s.out / "logs" / "orchestrator.log").open("ab")
        self.orchestrator = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                             start_new_session=True)
        log.close()
        self.orchestrator_pids.append(self.orchestrator.pid)
        self.planned_exit = False
        self.history.add("orchestrator_start", pid=self.orchestrator.pid, resume=resume)

    # ------------------------------------------------------------------ the run
    async def run(self) -> Path:
        s = self.s
        no_disk = self._mount() if s.faults else ""
        node_why, cpp_why = (node_available() if s.node else "not asked"), (cpp_available() if s.cpp else "not asked")
        node, cpp = s.node and not node_why, s.cpp and not cpp_why
        fields = group_config(s, node, cpp)
        (s.out / "group.toml").write_text(to_toml(fields))
        config = RunConfig.from_toml(s.out / "group.toml")
        specs: list[PeerSpec] = peer_specs(config, self.data)
        self.names = [p.peer_id for p in specs]
        kinds = tuple(k for k in s.kinds if not (k == "disk_full" and not self.mounted))
        plan = nemesis.schedule(s.seed, s.minutes * 60, self.names, kinds, s.warmup_s) if s.faults else []
        self.history.add("start", settings={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(s).items()},
                         group=fields, peers=self.names, node=node or node_why, cpp=cpp or cpp_why,
                         disk=f"tmpfs {s.disk_mb} MB" if self.mounted else no_disk, kinds=list(kinds),
                         schedule=[f.record() for f in plan], argv=sys.argv[1:])
        (s.out / "logs").mkdir(exist_ok=True)
        started = time.time()
        try:
            async with LocalPeers(specs, s.out / "logs") as local:
                self.local = local
                for i, address in enumerate(local.addresses):
                    proxy = ChaosProxy(address, seed=s.seed * 100 + i)
                    await proxy.start()
                    self.proxies.append(proxy)
                self.history.add("peers", addresses=local.addresses, proxies=[p.address for p in self.proxies],
                                 pids=local.pids)

                def restarted(i: int, code: int) -> None:
                    self.history.add("peer_restart", peer=self.names[i], exit_code=code,
                                     old_pid=local.processes[i].pid)  # told before the new one starts

                supervisor = asyncio.create_task(local.supervise(10**6, restarted))
                self._orchestrate(resume=False)
                tasks = [asyncio.create_task(self._tail()), asyncio.create_task(self._sample()),
                         asyncio.create_task(self._progress())]
                end = started + s.minutes * 60
                nemesis_task = asyncio.create_task(self._nemesis(plan, time.time()))
                # Ctrl-C or SIGTERM of the soak ends it as its time would: every clean-up step runs in order.
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                try:
                    while time.time() < end and not self._finished() and not stop.is_set() and not (
                            s.stop_at_step and self.last_step >= s.stop_at_step):
                        await asyncio.sleep(1.0)
                        await self._watch_orchestrator()
                finally:
                    nemesis_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await nemesis_task
                    await self._stop_orchestrator()
                    for t in tasks:
                        t.cancel()
                    await self._tail_once()
                    supervisor.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await supervisor
                peer_pids = list(local.all_pids)
        finally:
            for proxy in self.proxies:
                await proxy.close()
            self._keep_results()
        await asyncio.sleep(2.0)  # children told to exit with their parent notice within a second
        every = peer_pids + self.orchestrator_pids
        self.history.add("end", alive=[p for p in every if probes.alive(p)],
                         mentioning=probes.processes_mentioning(str(s.out)), pids=every,
                         seconds=round(time.time() - started, 1))
        self.history.close()
        return s.out

    def _finished(self) -> bool:
        return (self.run_dir / "summary.json").exists()

    async def _watch_orchestrator(self) -> None:
        """A crash (not the nemesis' kill) is recorded as such; either way the run is resumed."""
        proc = self.orchestrator
        if proc is None or proc.poll() is None or self._finished():
            return
        self.history.add("orchestrator_exit", pid=proc.pid, code=proc.returncode, planned=self.planned_exit)
        if not self.planned_exit:
            tail = _short_paths((self.s.out / "logs" / "orchestrator.log").read_text(errors="replace")[-1500:])
            self.history.add("orchestrator_crash", pid=proc.pid, code=proc.returncode, log_tail=tail)
            await asyncio.sleep(2.0)  # as a supervisor's restart backoff
        self.resumes += 1
        resume = (self.run_dir / "checkpoints" / "orchestrator.pkl").exists()
        if not resume:  # died before its first checkpoint: start the run again, in the same folder
            shutil.rmtree(self.run_dir, ignore_errors=True)
        self._orchestrate(resume=resume)

    async def _stop_orchestrator(self) -> None:
        """The end of the soak: Ctrl-C, so that the run stops at a step boundary with a checkpoint."""
        proc = self.orchestrator
        if proc is None or proc.poll() is not None:
            return
        self.planned_exit = True
        self.history.add("stop", pid=proc.pid)
        proc.send_signal(signal.SIGINT)
        for _ in range(1200):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
        else:
            proc.kill()
        self.history.add("orchestrator_exit", pid=proc.pid, code=proc.wait(), planned=True)

    def _keep_results(self) -> None:
        """Copy the run's results (not its checkpoints) out of the tmpfs, then unmount it."""
        keep = self.s.out / "run"
        if self.run_dir.exists():
            shutil.copytree(self.run_dir, keep, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("checkpoints", "tensorboard", "*.pkl", "*.zip"))
        if self.mounted:
            filler = self.data / "filler"
            filler.unlink(missing_ok=True)
            subprocess.run(["umount", str(self.data)], check=False)

    # ------------------------------------------------------------------ observers
    async def _tail(self) -> None:
        while True:
            await self._tail_once()
            await asyncio.sleep(TAIL_EVERY_S)

    async def _tail_once(self) -> None:
        if not hasattr(self, "_tails"):
            self._tails = (probes.CsvTail(self.run_dir / "health.csv", ("unix_time", "peer", "event")),
                           probes.CsvTail(self.run_dir / "group.csv", ("group_step", "time")))
        health, group = self._tails
        self._checkpoint_written()
        for row in health.new_rows():
            self.history.add("health", at=float(row["unix_time"]), step=int(row["group_step"]), peer=row["peer"],
                             event=row["event"])
        for row in group.new_rows():
            self.last_step = max(self.last_step, int(row["group_step"]))
            self.history.add("group", step=int(row["group_step"]), pid=self.orchestrator.pid if self.orchestrator
                             else 0, steps={n: int(row.get(f"steps/{n}", 0) or 0) for n in self.names})

    async def _progress(self) -> None:
        """The orchestrator's group step every PROGRESS_EVERY_S, from its status service: group.csv is
        flushed in batches, so its rows say when a step was written, not when it was made."""
        while True:
            await asyncio.sleep(PROGRESS_EVERY_S)
            proc = self.orchestrator
            address_file = self.run_dir / "status_address"
            if proc is None or proc.poll() is not None or not address_file.exists():
                continue
            try:
                step = await asyncio.to_thread(_status_step, address_file.read_text().strip())
            except (grpc.RpcError, OSError):
                continue
            self.history.add("progress", pid=proc.pid, step=step)

    def _checkpoint_written(self) -> None:
        """A new checkpoints/orchestrator.pkl (written only when every learner saved): its group step."""
        path = self.run_dir / "checkpoints" / "orchestrator.pkl"
        try:
            mtime = path.stat().st_mtime
            if mtime == getattr(self, "_checkpoint_mtime", None):
                return
            step = int(pickle.loads(path.read_bytes())["t"])
        except (OSError, pickle.UnpicklingError, EOFError, KeyError):
            return
        self._checkpoint_mtime = mtime
        self.history.add("checkpoint", step=step)

    async def _sample(self) -> None:
        while True:
            assert self.local is not None
            targets = [("driver", os.getpid())]
            if self.orchestrator is not None and self.orchestrator.poll() is None:
                targets.append(("orchestrator", self.orchestrator.pid))
            for name, proc in zip(self.names, self.local.processes, strict=True):
                targets += [(name, proc.pid)] + [(name, c) for c in probes.children(proc.pid)]
            for label, pid in targets:
                got = probes.usage(pid)
                if got is not None:
                    self.history.add("sample", proc=label, pid=pid, rss_kb=got[0], fds=got[1])
            await asyncio.sleep(SAMPLE_EVERY_S)

    # ------------------------------------------------------------------ the nemesis
    async def _nemesis(self, plan: list[nemesis.Fault], t0: float) -> None:
        for fault in plan:
            await asyncio.sleep(max(0.0, t0 + fault.at_s - time.time()))
            start = self.history.add("fault_start", **fault.record())
            extra: dict[str, object] = {}
            try:
                extra = await self._inject(fault)
            finally:
                self.history.add("fault_end", kind=fault.kind, target=fault.target, started=start["t"], **extra)

    def _peer_pid(self, name: str) -> int:
        assert self.local is not None
        return self.local.processes[self.names.index(name)].pid

    async def _inject(self, fault: nemesis.Fault) -> dict[str, object]:
        kind = fault.kind
        if kind == "peer_kill":
            pid = self._peer_pid(fault.target)
            _signal_group(pid, signal.SIGKILL)
            return {"pid": pid}
        if kind == "peer_stop":
            pid = self._peer_pid(fault.target)
            _signal_group(pid, signal.SIGSTOP)
            try:
                await asyncio.sleep(fault.duration_s)
            finally:
                _signal_group(pid, signal.SIGCONT)
            return {"pid": pid}
        if kind in ("partition", "loss", "latency", "reset"):
            proxy = self.proxies[self.names.index(fault.target)]
            mode = {"partition": "blackhole", "loss": "lossy", "latency": "delay", "reset": "reset"}[kind]
            proxy.loss_p = float(fault.params.get("loss_p", 0.0))
            proxy.set_mode(mode, delay_s=fault.params.get("delay_s"))
            try:
                await asyncio.sleep(fault.duration_s)
            finally:
                proxy.set_mode("pass")
            return {}
        if kind == "orchestrator_kill":
            proc = self.orchestrator
            if proc is None or proc.poll() is not None:
                return {"skipped": "no orchestrator running"}
            if not (self.run_dir / "checkpoints" / "orchestrator.pkl").exists():
                return {"skipped": "no checkpoint yet to resume from"}  # only the warm-up is that short
            self.planned_exit = True
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return {"pid": proc.pid}  # _watch_orchestrator resumes it within a second
        if kind == "disk_full":
            filler = self.data / "filler"
            free = _fill(filler)
            try:
                await asyncio.sleep(fault.duration_s)
            finally:
                filler.unlink(missing_ok=True)
            return {"filled_bytes": free}
        raise ValueError(f"unknown fault {kind}")


def _short_paths(text: str) -> str:
    """A traceback's file names without this machine's folders (the history is committed)."""
    return re.sub(r'File "/(?:[^"/]+/)*([^"/]+/[^"/]+)"', r'File ".../\1"', text)


def _status_step(address: str) -> int:
    with grpc.insecure_channel(address) as channel:  # the orchestrator's own status service, on loopback
        stub = orchestrator_pb2_grpc.OrchestratorServiceStub(channel)
        return int(stub.GetStatus(orchestrator_pb2.GetStatusRequest(), timeout=2.0).step)


def _signal_group(pid: int, sig: int) -> None:
    """A peer leads its own session (the launcher starts it so): signal all its processes."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _fill(path: Path) -> int:
    """Fill the file system of `path` until it has no space left; the bytes written."""
    written = 0
    block = b"\0" * (1 << 20)
    with path.open("wb", buffering=0) as f:
        while True:
            try:
                written += f.write(block) or 0
            except OSError:
                break
        with contextlib.suppress(OSError):  # the last few kB, smaller than a block
            while f.write(b"\0" * 4096):
                written += 4096
    return written
