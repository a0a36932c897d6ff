"""Follow rates of a subtle_bias learner and of a colluding pair in a 4-peer Room-6 group (in process,
seed 0, 2,000 steps, reputation_lr 0.01 as in tests/test_byzantine.py), under the robust median
and the paper's pooled mean. Figures in docs/security.md. Run from the repository root:

    PYTHONPATH=. .venv/bin/python results/byzantine/collude_subtle_bias.py
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from tests.test_byzantine import HONEST, run_group_inproc

COLLUDERS = [("learner", "collude:peer-3-collude"), ("learner", "collude:peer-2-collude")]
JOBS = {
    "subtle_bias (median)": ([HONEST, HONEST, HONEST, ("learner", "subtle_bias")], 2000, "median"),
    "collude (median)": ([HONEST, HONEST, *COLLUDERS], 2000, "median"),
    "collude (mean)": ([HONEST, HONEST, *COLLUDERS], 2000, "mean"),
}


def rates(result: dict, liars: list[int]) -> tuple[list[float], list[float]]:
    """Share of the honest learners' steps (from step 1000 on) spent on each peer's advice."""
    counts = sum(np.array(c) for _, c in result["windows"][1:])
    honest = result["honest"]

    def rate(target: int) -> float:
        rows = [a for a in honest if a != target]
        total = counts[rows].sum()
        return float(counts[rows, target].sum() / total) if total else 0.0

    return [rate(t) for t in liars], [rate(t) for t in honest]


if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = {k: pool.submit(run_group_inproc, *v) for k, v in JOBS.items()}
        for label, future in futures.items():
            r = future.result()
            liars = [i for i in range(len(r["names"])) if i not in r["honest"]]
            liar_rates, honest_rates = rates(r, liars)
            print(f"{label}: names {r['names']}; follow rate by honest learners, steps 1000-2000: "
                  f"liars {[round(x, 3) for x in liar_rates]}, honest {[round(x, 3) for x in honest_rates]}; "
                  f"agent values {[round(v, 2) for v in r['agent_values']]}; "
                  f"returns { {i: round(v, 2) for i, v in r['returns'].items()} }", flush=True)
