"""A/B of staggered training (`stagger_training`): every peer trains 8 gradient steps every 8 env
steps either in the same group step as all the others (SB3's own windows) or with its window
shifted so that at most as many peers as there are cores train in one group step
(orchestrator/config.py, stagger_phases). N=4 and N=8 HalfCheetah over gRPC on the paper's schedule,
interleaved repeats; the compute limit (one learner's own work per agent-step, x the cores) is
measured before and after, in the same invocation. Run from the repository root on an idle machine:

    PYTHONPATH=. .venv/bin/python benchmarks/studies/stagger_ab.py [REPEATS] [STEPS]
"""

import asyncio
import sys

from benchmarks.bench import compute_limit, measure
from orchestrator.config import usable_cores

GROUPS = (4, 8)
MODES = ("same step", "staggered")


async def main(repeats: int, steps: int) -> None:
    cores = usable_cores()
    limits = [compute_limit("halfcheetah", steps, every=8)]
    results: dict[tuple[int, str], list[float]] = {}
    for _ in range(repeats):
        for n in GROUPS:
            for mode in MODES:
                row = await measure("grpc", "halfcheetah", n, True, steps, every=8, stagger=mode == "staggered")
                results.setdefault((n, mode), []).append(row.agent_steps_per_s)
                print(f"N={n} / {mode}: {row.ms_per_group_step:.2f} ms/group step, "
                      f"{row.agent_steps_per_s:.1f} agent-steps/s", flush=True)
    limits.append(compute_limit("halfcheetah", steps, every=8))
    limit = cores / (sum(limits) / len(limits))
    print("\n| peers | gradient-step bursts | agent-steps/s (repeats) | mean | vs compute limit |")
    print("|---|---|---|---|---|")
    for n in GROUPS:
        for mode in MODES:
            xs = results[(n, mode)]
            mean = sum(xs) / len(xs)
            print(f"| {n} | {mode} | {', '.join(f'{x:.1f}' for x in xs)} | {mean:.1f} | {mean / limit:.2f} |")
    print(f"compute limit: {', '.join(f'{1000 * x:.2f}' for x in limits)} ms of own work per agent-step "
          f"(before, after) -> {limit:.1f} agent-steps/s on {cores} cores")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, int(sys.argv[2]) if len(sys.argv) > 2 else 400))
