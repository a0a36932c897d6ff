"""A/B of where a peer values its trust evidence: in a separate Evaluate (`--no-values-in-step`, the
earlier protocol) or inside its Step (`values_in_step`, now the default), N=4 HalfCheetah over gRPC,
interleaved repeats, on three schedules: no training, the paper's (8 gradient steps every 8 env
steps) and one gradient step every env step. The compute limit (one learner's own work per
agent-step, x the cores) is measured before and after, in the same invocation. Run from the
repository root on an idle machine:

    PYTHONPATH=. .venv/bin/python benchmarks/studies/values_in_step_ab.py [REPEATS] [STEPS]
"""

import asyncio
import sys

from benchmarks.bench import compute_limit, measure
from orchestrator.config import usable_cores

SCHEDULES = [("no training", False, 1), ("paper: 8 every 8", True, 8), ("1 every 1", True, 1)]


async def main(repeats: int, steps: int) -> None:
    cores = usable_cores()
    limits = {every: [compute_limit("halfcheetah", steps, every=every)] for _, training, every in SCHEDULES if training}
    results: dict[tuple[str, str], list[float]] = {}
    rpcs: dict[tuple[str, str], float] = {}
    for _ in range(repeats):
        for name, training, every in SCHEDULES:
            for mode in ("evaluate", "in step"):
                row = await measure("grpc", "halfcheetah", 4, training, steps, every=every,
                                    values_in_step=mode == "in step")
                results.setdefault((name, mode), []).append(row.agent_steps_per_s)
                rpcs[(name, mode)] = row.rpcs_per_group_step
                print(f"{name} / {mode}: {row.ms_per_group_step:.2f} ms/group step, "
                      f"{row.agent_steps_per_s:.1f} agent-steps/s, {row.rpcs_per_group_step:.2f} RPCs/step", flush=True)
    for every in limits:
        limits[every].append(compute_limit("halfcheetah", steps, every=every))
    print("\n| schedule | trust values | agent-steps/s (repeats) | mean | RPCs per group step | vs compute limit |")
    print("|---|---|---|---|---|---|")
    for name, training, every in SCHEDULES:
        for mode in ("evaluate", "in step"):
            xs = results[(name, mode)]
            mean = sum(xs) / len(xs)
            limit = cores / (sum(limits[every]) / len(limits[every])) if training else float("nan")
            print(f"| {name} | {mode} | {', '.join(f'{x:.1f}' for x in xs)} | {mean:.1f} | "
                  f"{rpcs[(name, mode)]:.2f} | {mean / limit:.2f} |")
    for every, ms in limits.items():
        print(f"compute limit, every={every}: {', '.join(f'{1000 * x:.2f}' for x in ms)} ms of own work per "
              f"agent-step (before, after) -> {cores / (sum(ms) / len(ms)):.1f} agent-steps/s on {cores} cores")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, int(sys.argv[2]) if len(sys.argv) > 2 else 200))
