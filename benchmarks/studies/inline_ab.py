"""A/B of where a peer runs its lock-step calls: on its worker thread (PEERLEARN_INLINE_CALLS=0, the
earlier default) or on the event loop itself (=1, now the default), N=4 HalfCheetah over gRPC,
interleaved repeats, with and without training. Run from the repository root on an idle machine:

    PYTHONPATH=. .venv/bin/python benchmarks/studies/inline_ab.py [REPEATS] [STEPS]
"""

import asyncio
import os
import sys

from benchmarks.bench import measure


async def main(repeats: int, steps: int) -> None:
    for training in (False, True):
        results: dict[str, list[float]] = {"worker": [], "inline": []}
        for _ in range(repeats):
            for mode in ("worker", "inline"):
                os.environ["PEERLEARN_INLINE_CALLS"] = "1" if mode == "inline" else "0"
                row = await measure("grpc", "halfcheetah", 4, training, steps)
                results[mode].append(row.ms_per_group_step)
                print(f"training={training} {mode}: {row.ms_per_group_step:.2f} ms/group step", flush=True)
        for mode, xs in results.items():
            each = ", ".join(f"{x:.2f}" for x in xs)
            print(f"SUMMARY training={training} {mode}: mean {sum(xs) / len(xs):.2f} ms ({each})")


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, int(sys.argv[2]) if len(sys.argv) > 2 else 200))
