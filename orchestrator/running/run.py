"""Run one group end to end: peers (started here, given as addresses, or in-process), the status
service, the loop with a live view, periodic evaluation, checkpoints, results and plots."""

from __future__ import annotations

import asyncio
import json
import math
import pickle
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from orchestrator.config import RunConfig, stagger_phases, usable_cores
from orchestrator.loop.client import PeerClient
from orchestrator.loop.group import Group
from orchestrator.loop.health import QuorumLost
from orchestrator.running.grpc_client import Deadlines, GrpcPeerClient
from orchestrator.running.handshake import described_by_peers
from orchestrator.running.inproc_client import InprocPeerClient
from orchestrator.running.interrupt import Interrupt, StopRequested, last_checkpoint_step
from orchestrator.running.launcher import LocalPeers, PeerSpec
from orchestrator.running.learners import start_lines, write_learner_settings
from orchestrator.running.preflight import check_local_peers, check_status_port, learner_preset
from orchestrator.running.progress import LiveView
from orchestrator.running.recorder import RunRecorder, new_run_dir
from orchestrator.running.status import StatusServicer, start_status_server
from peerlearn.grpc_options import channel_options
from peerlearn.security import ClientSecurity, read_tokens
from peerlearn.settings import RunStopped, UserError


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
    def attack(i: int) -> str:
        return config.attacks[i] if config.attacks else ""

    # Colluding peer processes tell each other their suggestions through a folder of the run (attacks.py).
    board = str(run_dir / "collusion") if any(attack(i).startswith("collude") for i in range(config.peers)) else ""
    learner = [config.learner_of(i) for i in range(config.peers)]
    if config.stagger_training and "train_phase" not in config.learner:
        # the task's train_freq unless the config sets it
        train_freq = int(config.learner.get("train_freq") or learner_preset(config, 0).train_freq)
        for overrides, phase in zip(learner, stagger_phases(config.peers, train_freq, usable_cores()), strict=True):
            overrides["train_phase"] = phase
    return [PeerSpec(peer_id=f"peer-{i}", task=config.task, seed=config.seed * 1000 + i,
                     total_steps=config.steps, role=config.role(i),
                     checkpoint_dir=str(run_dir / "peers" / f"peer-{i}" / "checkpoints"),
                     learner_overrides=learner[i], command=config.command(i),
                     attack=attack(i), collude_board=board if attack(i).startswith("collude") else "",
                     keep_checkpoints=config.keep_checkpoints, pretrained=config.pretrained_of(i),
                     wrappers=list(config.wrappers))
            for i in range(config.peers)]


def inproc_clients(specs: list[PeerSpec]) -> list[PeerClient]:
    from peer_service.peer import Peer  # only the in-process transport builds peers here

    if any(s.command for s in specs):
        raise ValueError("--transport inproc runs Python peers only; peers with a command need grpc")
    import torch

    torch.set_num_threads(1)  # one thread per peer, as in peer processes (no OpenMP spinning on busy cores)
    return [InprocPeerClient(Peer(s.peer_config())) for s in specs]


def client_security(config: RunConfig, index: int) -> ClientSecurity:
    """How the orchestrator reaches peer `index` (docs/security.md)."""
    token = None
    if config.token_files:
        path = config.token_files[index if len(config.token_files) > 1 else 0]
        token = read_tokens(path, env=False)[0]
    return ClientSecurity(tls_ca=config.tls_ca or None, tls_cert=config.tls_cert or None,
                          tls_key=config.tls_key or None, token=token, allow_insecure=config.allow_insecure)


def grpc_clients(config: RunConfig, addresses: list[str], expected: list[str | None]) -> list[PeerClient]:
    """A client per peer address, with the run's deadlines, security and channel options; `expected`:
    the peer id each must answer with (None: any)."""
    deadlines = Deadlines(read_s=config.rpc_timeout_s, step_s=config.step_timeout_s, hedge_s=config.hedge_after_s)
    options = channel_options(config.keepalive_s, config.keepalive_timeout_s, config.max_reconnect_backoff_s)
    return [GrpcPeerClient(a, deadlines, client_security(config, i), expected_peer_id=e, options=options)
            for i, (a, e) in enumerate(zip(addresses, expected, strict=True))]


def write_peer_table(run_dir: Path, specs: list[PeerSpec], local: LocalPeers) -> None:
    """peers.json: address and current PID of every local peer (for users and fault tests)."""
    table = [{"peer_id": s.peer_id, "address": a, "pid": p.pid, "restarts": r}
             for s, a, p, r in zip(specs, local.addresses, local.processes, local.restarts, strict=True)]
    (run_dir / "peers.json").write_text(json.dumps(table, indent=2))


def load_resume_state(run_dir: Path) -> dict:
    finished = run_dir / "summary.json"
    if finished.exists():  # refused before anything is written: its results stay as they are
        raise UserError(f"resume: {run_dir} is a finished run (it has a summary.json), so there is nothing to "
                        "resume; nothing was changed")
    path = run_dir / "checkpoints" / "orchestrator.pkl"
    if not path.exists():
        raise UserError(f"resume: expected a run folder with checkpoints/orchestrator.pkl, got {run_dir}: the run "
                        "stopped before its first checkpoint (see checkpoint_every), so there is nothing to resume")
    return pickle.loads(path.read_bytes())


async def run_group(config: RunConfig, addresses: list[str] | None = None,
                    resume_dir: Path | None = None, handle_signals: bool = False) -> RunSummary:
    """Run a group; with `resume_dir`, continue that run from its last checkpoint. With
    `handle_signals` (the CLI), Ctrl-C and SIGTERM stop it at a step boundary with a checkpoint and
    raise RunInterrupted (orchestrator/running/interrupt.py)."""
    if not handle_signals:
        return await _run_group(config, addresses, resume_dir, None)
    task = asyncio.current_task()
    assert task is not None
    interrupt = Interrupt(task, addresses)
    with interrupt.installed():
        try:
            return await _run_group(config, addresses, resume_dir, interrupt)
        except asyncio.CancelledError:
            if not interrupt.requested:
                raise
            raise interrupt.stopped_at_once() from None


async def _run_group(config: RunConfig, addresses: list[str] | None, resume_dir: Path | None,
                     interrupt: Interrupt | None) -> RunSummary:
    # First, so that a finished run is refused before anything below prints or writes.
    resume_state = load_resume_state(Path(resume_dir)) if resume_dir is not None else None
    if addresses is None:
        check_local_peers(config)  # the peers start here: ask their code about the settings first
    else:
        config.validate()
    check_status_port(config)  # before any peer starts and any run folder is made
    if addresses is not None and resume_dir is None:  # config.toml records the peers, not the defaults
        config = await described_by_peers(config, grpc_clients(config, addresses, [None] * len(addresses)))
    run_dir = Path(resume_dir) if resume_dir is not None else new_run_dir(config)
    if resume_state is not None:
        print(f"peerlearn: resuming {run_dir} from group step {resume_state['t']} (its last checkpoint), "
              f"to {config.steps}", file=sys.stderr, flush=True)
    if interrupt is not None:
        interrupt.run_dir = run_dir
    recorder = RunRecorder(run_dir, config)
    if addresses is None:
        settings = write_learner_settings(run_dir, config)
        if config.progress:  # the terminal's start-up lines, as the status line below (--no-progress: quiet)
            for line in start_lines(settings, config, run_dir):
                print(line, file=sys.stderr)
    loop = asyncio.get_running_loop()
    started = loop.time()
    status = StatusServicer(run_dir.name, config.steps)
    async with AsyncExitStack() as stack:
        pids: list[int] = []
        if addresses is None and config.transport == "inproc":
            clients = inproc_clients(peer_specs(config, run_dir))
        else:
            expected: list[str | None] = [None] * len(addresses or [])
            if addresses is None:
                specs = peer_specs(config, run_dir)
                local = await stack.enter_async_context(LocalPeers(specs, run_dir / "logs"))
                addresses, pids = local.addresses, local.all_pids
                write_peer_table(run_dir, specs, local)
                if config.restart_peers > 0:
                    def restarted(index: int, code: int) -> None:
                        write_peer_table(run_dir, specs, local)
                        if status.group is not None:
                            recorder.health_event(status.group, status.group.members[index],
                                                  f"process exited ({code}) and was restarted")

                    supervisor = asyncio.create_task(local.supervise(config.restart_peers, restarted))
                    stack.callback(supervisor.cancel)
                expected = [s.peer_id for s in specs]
            clients = grpc_clients(config, addresses, expected)
        for c in clients:
            stack.push_async_callback(c.close)

        status_address = None
        if config.status_port >= 0:
            try:
                server, port = await start_status_server(status, "127.0.0.1", config.status_port)
            except RuntimeError as err:  # grpc: "Failed to bind to address ..."
                raise UserError(f"status_port: expected a free port (or 0 = any, -1 = off), got {config.status_port}, "
                                f"which is in use ({err})") from None
            stack.push_async_callback(server.stop, 1.0)
            status_address = f"127.0.0.1:{port}"
            (run_dir / "status_address").write_text(status_address + "\n")

        group: Group | None = None
        stopped = ""  # why the run stopped before its budget (QuorumLost, "interrupted"), if it did
        saved = False  # interrupted: whether every peer and the orchestrator checkpointed where it stopped
        try:  # from here on, whatever happens (Ctrl-C during start-up included), results are closed
            group = await Group.connect(clients, config, recorder)
            status.group = group
            recorder.start(group, resume_state)
            if resume_state is not None:
                await group.restore(resume_state)
            else:
                await group.reset()
            view = LiveView(config.steps, f"{run_dir.name}", enabled=config.progress, start=group.t)
            if config.progress and status_address:
                view.console.print(f"status: peerlearn status {status_address}    results: {run_dir}")
            with view:
                if interrupt is not None:  # from here a first Ctrl-C ends the current step and checkpoints
                    interrupt.stepping = True
                    interrupt.say = lambda line: view.console.print(line, markup=False, highlight=False, soft_wrap=True)
                try:
                    await group.run(config.steps, on_step=_on_step(view, interrupt, config.steps))
                except QuorumLost as err:  # the results so far are written below, then the run says why
                    stopped = str(err)
                except StopRequested:
                    stopped = "interrupted"
                view.update(group, force=True)
            if not stopped:
                await group.checkpoint()
            elif stopped == "interrupted":
                # the loop's own checkpoint_every may have saved this step: a second Save only rewrites buffers
                saved = last_checkpoint_step(run_dir) == group.t or await group.checkpoint()
        finally:
            status.finished = True
            plots = recorder.close(group)
        final = {m.name: m.last_eval_return for m in group.members if not math.isnan(m.last_eval_return)}
        summary = RunSummary(run_dir=run_dir, final_eval=final, group_steps=group.t,
                             seconds=loop.time() - started, status_address=status_address, peer_pids=pids,
                             plots=plots)
        # summary.json marks a finished run (sweeps skip it, reports read it); a stopped one, which
        # --resume can continue from its last checkpoint, writes the same record as stopped.json.
        (run_dir / ("stopped.json" if stopped else "summary.json")).write_text(json.dumps(
            {"final_eval": final, "group_steps": group.t, "peer_pids": pids, "seconds": round(summary.seconds, 2),
             "steps_per_second": round(group.steps_per_second, 2),
             "round_seconds": {k: round(v, 3) for k, v in group.round_seconds.items()},
             "max_step_seconds": round(group.max_step_seconds, 3),
             "health_events": [list(e) for e in group.health.events],
             "invalid_replies": {m.name: m.invalid_replies for m in group.members if m.invalid_replies},
             "errors": {m.name: m.errors for m in group.members if m.errors},
             **({"stopped": stopped} if stopped else {})}, indent=2))
        if interrupt is not None and stopped == "interrupted":
            raise interrupt.stopped_at_boundary(group.t, saved)
        if stopped:
            raise RunStopped(f"stopped at group step {group.t}: {stopped}; the results so far are in {run_dir}")
        return summary


def _on_step(view: LiveView, interrupt: Interrupt | None, steps: int) -> Callable[[Group], None]:
    """After each group step (its evaluation and periodic checkpoint done): the live view, then a
    requested stop, which ends the loop at this boundary."""
    def on_step(group: Group) -> None:
        view.update(group)
        if interrupt is not None:
            interrupt.stop_if_requested(group.t, steps)

    return on_step
