"""Many independent groups (tasks x seeds x conditions) on a Ray cluster: `peerlearn sweep-ray`.

Ray does the scheduling: every group is one Ray task that asks for as many CPUs as the group has
peers, so Ray places it on a node with room; there it runs `run_group` exactly as `peerlearn run`
does (each peer its own gRPC server process on that node's loopback). The finished run folder is
packed and sent back through Ray's object store, and unpacked under the local `out` folder, so the
nodes need no shared filesystem. Groups never talk to each other, so nothing else is coordinated.

    pip install "peerlearn[ray]"
    peerlearn sweep-ray --tasks room-6,room-21 --seeds 0,1,2 --modes peer,single --steps 6000
    peerlearn sweep-ray --address auto ...        # an existing cluster (`ray start --head` / KubeRay)

Every node needs the same peerlearn installation (e.g. the image of deploy/Dockerfile). Results:
`<out>/<sweep name>/<task>-<mode>-s<seed>/` (a normal run folder each) and `sweep.json`.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import tarfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from orchestrator.config import MODES, RunConfig
from peerlearn.settings import task_in_name


@dataclass
class GroupResult:
    """What one group of the sweep sent back."""

    name: str
    task: str
    seed: int
    mode: str
    ok: bool
    run_dir: str = ""
    final_eval: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    node: str = ""
    error: str = ""


def sweep_configs(base: RunConfig, tasks: list[str], seeds: list[int], modes: list[str]) -> list[RunConfig]:
    """One config per (task, seed, mode), named `<task>-<mode>-s<seed>`; everything else from `base`."""
    from orchestrator.running import preflight  # asks the peers' code (torch): not at import, for a fast --help

    for m in modes:
        if m not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {m!r}")
    configs = []
    for task, seed, mode in itertools.product(tasks, seeds, modes):
        c = replace(base, task=task, seed=seed, mode=mode, name=f"{task_in_name(task)}-{mode}-s{seed}",
                    progress=False, status_port=-1, transport="grpc")
        configs.append(preflight.check_local_peers(c))
    if len({c.name for c in configs}) != len(configs):
        raise ValueError("tasks, seeds and modes must not repeat")
    return configs


def run_one_group(config_dict: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """Run one group in a temporary folder on this node; return its summary and the packed run folder.

    Executed inside a Ray worker (a plain function, so it is also testable without Ray)."""
    import asyncio
    import shutil
    import socket
    import tempfile

    from orchestrator.running.run import run_group

    config = RunConfig.from_dict(config_dict)
    work = Path(tempfile.mkdtemp(prefix="peerlearn-sweep-"))
    started = time.monotonic()
    result = GroupResult(name=config.name, task=config.task, seed=config.seed, mode=config.mode, ok=False,
                         node=socket.gethostname())
    packed = b""
    try:
        config.out = str(work)
        summary = asyncio.run(run_group(config))
        result.ok, result.final_eval = True, summary.final_eval
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(summary.run_dir, arcname=config.name)
        packed = buffer.getvalue()
    except Exception as err:  # reported per group; the sweep goes on
        result.error = f"{type(err).__name__}: {err}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
        result.seconds = round(time.monotonic() - started, 2)
    return vars(result), packed


def unpack(packed: bytes, dest: Path) -> Path:
    """Unpack a group's run folder under `dest`; an existing folder of that name is never overwritten."""
    with tarfile.open(fileobj=io.BytesIO(packed), mode="r:gz") as tar:
        top = tar.getnames()[0].split("/")[0]
        target, k = dest / top, 1
        while target.exists():
            k += 1
            target = dest / f"{top}-{k}"
        staging = dest / f".{top}.unpacking"
        tar.extractall(staging, filter="data")
        (staging / top).rename(target)
        staging.rmdir()
    return target


def run_sweep(configs: list[RunConfig], out: str | Path, name: str = "", address: str | None = None,
              cpus_per_group: float | None = None, ray_init: dict[str, Any] | None = None,
              echo: bool = True) -> tuple[Path, list[GroupResult]]:
    """Run every config as a Ray task, gather the run folders into `<out>/<name>/` as they finish."""
    try:
        import ray
    except ImportError as err:
        raise SystemExit('peerlearn sweep-ray needs Ray: pip install "peerlearn[ray]"') from err

    sweep_dir = Path(out) / (name or f"sweep-{time.strftime('%Y%m%d-%H%M%S')}")
    sweep_dir.mkdir(parents=True, exist_ok=False)
    started_ray = False
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, **(ray_init or {}))
        started_ray = True
    results: list[GroupResult] = []
    try:
        remote = ray.remote(run_one_group)
        pending = {remote.options(num_cpus=cpus_per_group if cpus_per_group is not None else c.peers,
                                  name=f"peerlearn:{c.name}").remote(c.to_dict()): c for c in configs}
        if echo:
            print(f"sweep {sweep_dir.name}: {len(configs)} groups on Ray "
                  f"({ray.cluster_resources().get('CPU', 0):g} CPUs); results in {sweep_dir}")
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            config = pending.pop(done[0])
            try:
                summary, packed = ray.get(done[0])
                result = GroupResult(**summary)
            except Exception as err:  # the task itself died (node lost, out of memory, ...)
                result = GroupResult(name=config.name, task=config.task, seed=config.seed, mode=config.mode,
                                     ok=False, error=f"{type(err).__name__}: {err}")
                packed = b""
            if packed:
                result.run_dir = str(unpack(packed, sweep_dir).relative_to(sweep_dir))
            results.append(result)
            if echo:
                evals = ",".join(f"{k} {v:.2f}" for k, v in result.final_eval.items())
                outcome = f"ok in {result.seconds:.0f} s ({evals})" if result.ok else f"FAILED {result.error}"
                print(f"  [{len(results)}/{len(configs)}] {result.name} on {result.node or '?'}: {outcome}")
    finally:
        (sweep_dir / "sweep.json").write_text(json.dumps(
            {"groups": [vars(r) for r in sorted(results, key=lambda r: r.name)],
             "missing": sorted({c.name for c in configs} - {r.name for r in results})}, indent=2))
        if started_ray:
            ray.shutdown()
    return sweep_dir, results


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", help="comma-separated tasks (default: --task, or room-6)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds, e.g. 0,1,2 (default 0)")
    p.add_argument("--modes", help=f"comma-separated conditions from {', '.join(MODES)} "
                                    "(default: --mode, or peer)")
    p.add_argument("--peers", type=int, help="peers per group (default 3)")
    p.add_argument("--address", help="Ray cluster address (auto, ray://host:10001); default: a local Ray")
    p.add_argument("--cpus-per-group", type=float,
                   help="CPUs Ray reserves per group (default: its peer count)")


def main(args: argparse.Namespace, base: RunConfig) -> int:
    if args.peers is not None:
        base.peers = args.peers
    tasks = [t for t in (args.tasks or base.task).split(",") if t]
    modes = [m for m in (args.modes or base.mode).split(",") if m]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    configs = sweep_configs(base, tasks, seeds, modes)
    _, results = run_sweep(configs, base.out, base.name, address=args.address,
                           cpus_per_group=args.cpus_per_group)
    failed = [r.name for r in results if not r.ok]
    if failed:
        print(f"{len(failed)} of {len(configs)} groups failed: {', '.join(failed)}")
    return 1 if failed else 0
