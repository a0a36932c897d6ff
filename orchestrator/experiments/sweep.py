"""A grid of groups (conditions x seeds x tasks) on this machine: `peerlearn sweep`.

    peerlearn sweep --grid configs/experiments/room21-baselines.toml --jobs 2
    peerlearn sweep --tasks room-6 --modes peer,single --seeds 0,1 --steps 3000 --out runs/quick

A grid file names a `base` RunConfig table, the `tasks`, the `seeds` and one table per condition
(RunConfig overrides, e.g. `[conditions.single] mode = "single"` and `peers = 1`). Every run gets
the deterministic name `<task>-<condition>-s<seed>` under `out`; a run is *finished* when its
`summary.json` exists. Rerunning the same command skips finished runs and continues a run that was
cut off (a killed session, Ctrl-C, a reboot) from its last checkpoint (`checkpoint_every` group
steps; `peerlearn run --resume`); a run cut off before its first checkpoint starts again from
scratch. `--list` shows where every run stands. Two sweeps started on the same grid (a second
session, a second terminal) share it: each run is held by the sweep that took it and by its worker
(`hold_run`, a kernel lock that dies with its holder), and the other leaves it alone. With `results`
(grid key or `--results DIR`), each run's small result files (config.toml, learners.toml,
summary.json, group.csv, every peer's evaluations.csv, and decisions_summary.csv made from the run's
decisions.csv) are copied to `DIR/runs/<name>/` the moment it finishes, a folder `peerlearn report`
reads like the run itself: commit it and the run's numbers are kept, whatever happens to the run
folder.

Every group runs in its own worker process (`python -m orchestrator.experiments.sweep --one CONFIG.json`), so
SB3's process-global RNGs make each run deterministic and a crash costs only that run. The
default transport inside a group is `inproc` (all peers of a group are objects in that one process,
one torch thread): on a 2-core machine gRPC's per-call costs and one process per peer only add
overhead; `--transport grpc` runs each peer as its own gRPC server process instead. `--jobs N`
runs N groups at the same time.

Grid vs `peerlearn sweep-ray` (orchestrator/experiments/ray_sweep.py): that one runs modes only and names runs
`<task>-<mode>-s<seed>` too; a condition here whose name is a mode and which sets only `mode`
gives the same run name.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.config import MODES, RunConfig
from orchestrator.experiments.decisions import write_summary as write_decision_summary
from peerlearn.settings import UserError, task_in_name


@dataclass
class Condition:
    name: str
    overrides: dict[str, Any]


@dataclass
class Claim:
    """One comparison a grid declares before any of its runs is read: condition `x` beats condition `y`
    (by the paper metric of the run's learners, or of one learner, `peer`, where given)."""

    x: str
    y: str
    text: str
    peer: str = ""


@dataclass
class Grid:
    base: RunConfig
    tasks: list[str]
    seeds: list[int]
    conditions: list[Condition]
    out: str = "runs/sweep"
    transport: str = "inproc"
    results: str = ""
    # The grid's claims, declared in its file before its runs are read (docs/results.md applies Holm over
    # the primary family and keeps the secondary ones apart). The sweep itself does not use them.
    primary: list[Claim] = field(default_factory=list)
    secondary: list[Claim] = field(default_factory=list)

    def configs(self) -> list[RunConfig]:
        """One validated config per (task, condition, seed), named `<task>-<condition>-s<seed>`, seed-major
        (every condition of seed 0 first: a sweep cut short still compares all conditions)."""
        from orchestrator.running import preflight  # asks the peers' code (torch): not at import, for a fast --help

        configs = []
        for task, seed, cond in itertools.product(self.tasks, self.seeds, self.conditions):
            c = replace(
                self.base,
                task=task,
                seed=seed,
                transport=self.transport,
                out=self.out,
                name=run_name(task, cond.name, seed),
                progress=False,
                status_port=-1,
            )
            c = RunConfig.from_dict({**c.to_dict(), **cond.overrides})
            if c.roles and len(c.roles) != c.peers:
                raise ValueError(f"condition {cond.name}: roles {c.roles} for {c.peers} peers")
            configs.append(preflight.check_local_peers(c))
        if len({c.name for c in configs}) != len(configs):
            raise ValueError("tasks, seeds and conditions must not repeat")
        return configs


def run_name(task: str, condition: str, seed: int) -> str:
    return f"{task_in_name(task)}-{condition}-s{seed}"


def grid_from_dict(data: dict[str, Any]) -> Grid:
    data = dict(data)
    base = RunConfig.from_dict(data.pop("base", {}))
    conds = data.pop("conditions", {"peer": {"mode": "peer"}})
    grid = Grid(
        base=base,
        tasks=list(data.pop("tasks", [base.task])),
        seeds=[int(s) for s in data.pop("seeds", [0])],
        conditions=[Condition(k, dict(v)) for k, v in conds.items()],
        out=str(data.pop("out", "runs/sweep")),
        transport=str(data.pop("transport", "inproc")),
        results=str(data.pop("results", "")),
    )
    claims = dict(data.pop("claims", {}))
    grid.primary = claims_from(claims.pop("primary", []), "primary")
    grid.secondary = claims_from(claims.pop("secondary", []), "secondary")
    if claims:
        raise ValueError(f"unknown keys {sorted(claims)} in [claims]; known: primary, secondary")
    if data:
        raise ValueError(
            f"unknown grid keys {sorted(data)}; known: base, tasks, seeds, conditions, out, transport, results, claims"
        )
    return grid


def claims_from(entries: list[Any], family: str) -> list[Claim]:
    """[[X, Y, text], ...] or [X, Y, text, peer]: X beats Y, as the text says it (on that peer's return)."""
    out = []
    for entry in entries:
        if not (isinstance(entry, list) and len(entry) in (3, 4) and all(isinstance(e, str) for e in entry)):
            raise ValueError(f"claims.{family}: each claim is [X, Y, text] or [X, Y, text, peer] (strings), "
                             f"got {entry!r}")
        out.append(Claim(*entry))
    return out


def load_grid(path: str | Path) -> Grid:
    return grid_from_dict(tomllib.loads(Path(path).read_text()))


def is_finished(run_dir: Path) -> bool:
    return (run_dir / "summary.json").exists()


def nice_session(nice: int) -> None:
    """Make `nice` count against the rest of the machine. With the kernel's autogroup scheduling (the
    default on desktop and many server kernels) CPU time is shared between sessions first and niceness
    only orders processes inside a session; a worker in its own session (start_new_session) would get a
    full session's share whatever its niceness. Setting its session's autogroup niceness restores the
    intended priority; without autogroup the file is absent and plain niceness already works."""
    try:
        Path("/proc/self/autogroup").write_text(str(nice))
    except OSError:
        pass


def checkpointed_step(run_dir: Path) -> int | None:
    """Group step of the run's last orchestrator checkpoint (what a resume continues from), or None."""
    import pickle

    path = run_dir / "checkpoints" / "orchestrator.pkl"
    try:
        return int(pickle.loads(path.read_bytes())["t"])
    except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError):
        return None


def hold_run(out: Path, name: str) -> int | str:
    """Take run `name` for this sweep: an open file descriptor holding an exclusive lock on
    `out/.<name>.lock`, or the PID of the live sweep or worker that holds it. The lock is the kernel's
    (flock), so a sweep or worker that dies releases it and no stale lock is left; the worker inherits
    the descriptor, so a run stays held while its worker runs even if the sweep that started it was
    killed. Without it, a second sweep on the same grid would resume a live run a second time, or delete
    the folder of one that has no checkpoint yet."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        return holder
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


# learners.toml: the learner settings the run resolved (paper preset, rl-zoo3 or SB3 defaults), which
# depend on what was installed when it ran; config.toml holds only what the user set.
RESULT_FILES = ("config.toml", "learners.toml", "summary.json", "group.csv", "peers/*/evaluations.csv")


def collect_results(run_dir: Path, results: Path) -> Path:
    """Copy a finished run's small result files to results/runs/<name>/ (a folder report reads)."""
    target = results / "runs" / run_dir.name
    for pattern in RESULT_FILES:
        for src in run_dir.glob(pattern):
            dst = target / src.relative_to(run_dir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    # The run folder's place on this machine is not part of the result (and may be a private path):
    # the kept config names the sweep's folder as runs/<its name>, as the grid files do.
    write_decision_summary(run_dir, target)  # decisions.csv itself is too large to keep for every run
    config = target / "config.toml"
    if config.exists():
        lines = [f'out = "runs/{run_dir.parent.name}"' if line.startswith("out = ") else line
                 for line in config.read_text().splitlines()]
        config.write_text("\n".join(lines) + "\n")
    return target


def _progress_of(run_dir: Path) -> int:
    """Own env steps of the run's first learner at its last evaluation (flushed as written), 0 if none."""
    try:
        paths = sorted((run_dir / "peers").glob("*/evaluations.csv"))
        last = paths[0].read_text().strip().splitlines()[-1] if paths else ""
        return int(last.split(",")[0])
    except (OSError, IndexError, ValueError):
        return 0


def run_grid(
    configs: list[RunConfig], jobs: int = 1, progress: bool = True, nice: int = 0, poll_s: float = 0.5,
    results: str = "",
) -> dict[str, str]:
    """Run every unfinished config, `jobs` groups at a time, continuing cut-off runs from their last
    checkpoint; returns {name: ok|skipped|held by another sweep (...)|failed (...)}. A run another
    sweep holds (`hold_run`) is left alone."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    outcome: dict[str, str] = {}
    todo = []
    resume: set[str] = set()
    held: dict[str, int] = {}  # lock descriptors of the runs this sweep took
    for c in configs:
        run_dir = Path(c.out) / c.name
        if is_finished(run_dir):
            outcome[c.name] = "skipped"
            if results:
                collect_results(run_dir, Path(results))
            continue
        lock = hold_run(Path(c.out), c.name)
        if isinstance(lock, str):
            outcome[c.name] = f"held by another sweep (pid {lock})"
            continue
        held[c.name] = lock
        if checkpointed_step(run_dir) is not None:
            resume.add(c.name)  # cut off after a checkpoint: continue from it
        elif run_dir.exists():
            shutil.rmtree(run_dir)  # cut off before its first checkpoint: start again under the same name
        todo.append(c)
    total = sum(c.steps for c in configs)
    done_steps = sum(c.steps for c in configs if c.name in outcome)
    running: dict[str, tuple[subprocess.Popen, RunConfig, Path]] = {}
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("group steps · {task.fields[runs]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not progress,
    )
    with bar:
        task = bar.add_task(
            "sweep", total=total, completed=done_steps, runs=f"{len(outcome)}/{len(configs)} runs done"
        )
        pending = list(todo)
        try:
            while pending or running:
                while pending and len(running) < max(1, jobs):
                    c = pending.pop(0)
                    Path(c.out).mkdir(parents=True, exist_ok=True)
                    spec = Path(c.out) / f".{c.name}.json"
                    spec.write_text(json.dumps(c.to_dict()))
                    log = (Path(c.out) / f".{c.name}.log").open("a" if c.name in resume else "w")
                    cmd = [sys.executable, "-m", "orchestrator.experiments.sweep", "--one", str(spec)]
                    if c.name in resume:
                        cmd += ["--resume", str(Path(c.out) / c.name)]
                        if progress:
                            bar.console.print(f"{c.name}: continuing from group step "
                                              f"{checkpointed_step(Path(c.out) / c.name)}")
                    if nice:
                        cmd = ["nice", "-n", str(nice), *cmd]
                    proc = subprocess.Popen(
                        cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ}, start_new_session=True,
                        preexec_fn=(lambda: nice_session(nice)) if nice else None,
                        pass_fds=(held[c.name],),  # the worker holds the run too (see hold_run)
                    )
                    log.close()
                    os.ftruncate(held[c.name], 0)  # the holder a second sweep names: the worker
                    os.pwrite(held[c.name], str(proc.pid).encode(), 0)
                    running[c.name] = (proc, c, spec)
                for name, (proc, c, spec) in list(running.items()):
                    if proc.poll() is None:
                        continue
                    del running[name]
                    ok = proc.returncode == 0 and is_finished(Path(c.out) / name)
                    outcome[name] = (
                        "ok" if ok else f"failed (exit {proc.returncode}, see {c.out}/.{name}.log)"
                    )
                    if ok and results:
                        collect_results(Path(c.out) / name, Path(results))
                    os.close(held.pop(name))
                    done_steps += c.steps
                    spec.unlink(missing_ok=True)
                    if progress:
                        bar.console.print(f"{name}: {outcome[name]}")
                live = sum(_progress_of(Path(c.out) / n) for n, (_, c, _) in running.items())
                bar.update(task, completed=done_steps + live, runs=f"{len(outcome)}/{len(configs)} runs done")
                if running:
                    time.sleep(poll_s)
        finally:
            for proc, _, _ in running.values():  # interrupted: stop the workers we started, by PID
                if proc.poll() is None:
                    proc.terminate()
            for proc, _, _ in running.values():
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
            for fd in held.values():
                os.close(fd)
    return outcome


def run_one(spec: Path, resume_dir: Path | None = None) -> int:
    """Worker: run one group from its config JSON (one torch thread per group process); with
    `resume_dir`, continue that run from its last checkpoint."""
    import asyncio

    import torch

    from orchestrator.running.run import run_group

    torch.set_num_threads(1)
    config = RunConfig.from_dict(json.loads(Path(spec).read_text()))
    summary = asyncio.run(run_group(config, resume_dir=resume_dir))
    print(
        json.dumps(
            {
                "run_dir": str(summary.run_dir),
                "final_eval": summary.final_eval,
                "seconds": round(summary.seconds, 1),
            }
        )
    )
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--grid", help="TOML grid file (base, tasks, seeds, conditions, out, transport)")
    p.add_argument("--tasks", help="comma-separated tasks (instead of a grid file)")
    p.add_argument("--seeds", help="comma-separated seeds, e.g. 0,1,2")
    p.add_argument("--modes", help=f"comma-separated conditions: without a grid file from {', '.join(MODES)}; "
                   "with one, the names of its conditions to run (default: all of them)")
    p.add_argument("--peers", type=int, help="peers per group")
    p.add_argument("--jobs", type=int, default=1, help="groups run at the same time (default 1)")
    p.add_argument(
        "--transport",
        choices=["inproc", "grpc"],
        help="inside each group (default inproc: one process per group)",
    )
    p.add_argument("--nice", type=int, default=0, help="niceness of the worker processes")
    p.add_argument(
        "--results",
        help="copy each finished run's CSV files to RESULTS/runs/<run>/ (to commit; also a grid key)",
    )
    p.add_argument(
        "--list",
        action="store_true",
        help="print every run: done, partial (the step it would continue from) or todo; run nothing",
    )


def _pick_conditions(grid: Grid, path: str, names: list[str]) -> list[Condition]:
    """The grid's conditions named by --modes, in the grid's order (e.g. the claims' runs first)."""
    known = [c.name for c in grid.conditions]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(f"modes: expected conditions of {path} ({', '.join(known)}), got {unknown[0]!r}")
    return [c for c in grid.conditions if c.name in names]


def main(args: argparse.Namespace, base: RunConfig) -> int:
    """`peerlearn sweep`: `base` holds --config/flag settings (they override the grid's base)."""
    if args.grid:
        grid = load_grid(args.grid)
        flags = {k: v for k, v in vars(args).items() if k in {f for f in base.to_dict()} and v is not None}
        flags.pop("out", None)
        grid.base = RunConfig.from_dict({**grid.base.to_dict(), **flags})
        if args.out:
            grid.out = args.out
        if args.modes:
            grid.conditions = _pick_conditions(grid, args.grid, [m for m in args.modes.split(",") if m])
    else:
        if args.peers is not None:
            base.peers = args.peers
        modes = [m for m in (args.modes or base.mode).split(",") if m]
        grid = Grid(
            base=base,
            tasks=[t for t in (args.tasks or base.task).split(",") if t],
            seeds=[0],
            conditions=[Condition(m, {"mode": m, **({"peers": 1} if m == "single" else {})}) for m in modes],
            out=base.out if base.out != "runs" else "runs/sweep",
        )
    if args.seeds:
        grid.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.tasks and args.grid:
        grid.tasks = [t for t in args.tasks.split(",") if t]
    if args.transport:
        grid.transport = args.transport
    if args.results:
        grid.results = args.results
    configs = grid.configs()
    if args.list:
        for c in configs:
            run_dir = Path(c.out) / c.name
            at = checkpointed_step(run_dir)
            state = "done   " if is_finished(run_dir) else (
                f"partial (from step {at})" if at is not None else "todo   ")
            if not is_finished(run_dir) and (Path(c.out) / f".{c.name}.lock").exists():
                lock = hold_run(Path(c.out), c.name)
                if isinstance(lock, str):
                    state += f", running (pid {lock})"
                else:
                    os.close(lock)
            print(f"{state}  {c.out}/{c.name}  ({c.steps} steps)")
        return 0
    outcome = run_grid(configs, jobs=args.jobs, nice=args.nice, results=grid.results)
    failed = [k for k, v in outcome.items() if v.startswith("failed")]
    held = [k for k, v in outcome.items() if v.startswith("held")]
    print(
        f"{len(configs)} runs: {sum(v == 'ok' for v in outcome.values())} ran, "
        f"{sum(v == 'skipped' for v in outcome.values())} already finished, "
        + (f"{len(held)} left to another sweep, " if held else "") + f"{len(failed)} failed"
    )
    for k in held + failed:
        print(f"  {k}: {outcome[k]}")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) in (3, 5) and sys.argv[1] == "--one":
        sys.exit(run_one(Path(sys.argv[2]), Path(sys.argv[4]) if len(sys.argv) == 5 else None))
    raise SystemExit("usage: python -m orchestrator.experiments.sweep --one CONFIG.json (use `peerlearn sweep`)")
