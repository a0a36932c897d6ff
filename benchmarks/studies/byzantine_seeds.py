"""Byzantine figures over several seeds, outside the test suite (docs/security.md).

Two studies, each a list of (label, peers, steps, aggregation, reputation_lr) run for several seeds:

- `collude_subtle`: a subtle_bias learner and a colluding pair in a 4-peer Room-6 group, 2,000 steps,
  alpha 0.01 (the suite's scale), seeds 0-4: an earlier session's single-seed figures, now with
  intervals.
- `paper_alpha`: the suite's claims at the paper's alpha = 0.001, with a budget long enough for the
  reputations to forget their optimistic initial value of 200: the 6-peer bad-adviser group (and the
  same 2 honest learners alone, for the return margin), and a self-promoting learner among 4 under
  the median and the mean.

Every finished run is appended to results/byzantine/seeds.jsonl (resumable: runs already there are
skipped); `summary` prints mean and a 95% t-interval over seeds (kept as
results/byzantine/seeds_summary.txt). The group is the test suite's (benchmarks/studies/byzantine.py).
Run from the repository root:

    PYTHONPATH=. .venv/bin/python benchmarks/studies/byzantine_seeds.py collude_subtle paper_alpha
    PYTHONPATH=. .venv/bin/python benchmarks/studies/byzantine_seeds.py summary
"""

from __future__ import annotations

import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.studies.byzantine import ATTACKERS, HONEST, follow_rate, run_group_inproc

# Two-sided 95% Student t quantiles by degrees of freedom (scipy is not a dependency of peerlearn).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
# The runs are data: they stay in results/, beside the summary docs/security.md quotes.
OUT = Path(__file__).resolve().parents[2] / "results" / "byzantine" / "seeds.jsonl"
COLLUDERS = [("learner", "collude:peer-3-collude"), ("learner", "collude:peer-2-collude")]
PAPER_STEPS, PAPER_WINDOW = 30_000, 5_000
SEEDS5, SELF = [0, 1, 2, 3, 4], [HONEST, HONEST, HONEST, ("learner", "self_promote")]
STUDIES: dict[str, list[tuple[str, list[tuple[str, str]], int, str, float, list[int]]]] = {
    "collude_subtle": [
        ("subtle_bias, median", [HONEST, HONEST, HONEST, ("learner", "subtle_bias")], 2000, "median", 0.01, SEEDS5),
        ("collude, median", [HONEST, HONEST, *COLLUDERS], 2000, "median", 0.01, SEEDS5),
        ("collude, mean", [HONEST, HONEST, *COLLUDERS], 2000, "mean", 0.01, SEEDS5),
    ],
    "paper_alpha": [
        ("bad advisers, median", [HONEST, HONEST, *ATTACKERS], PAPER_STEPS, "median", 0.001, [0, 1, 2]),
        ("clean, median", [HONEST, HONEST], PAPER_STEPS, "median", 0.001, [0, 1, 2]),
        ("self_promote, median", SELF, PAPER_STEPS, "median", 0.001, [0, 1, 2]),
        ("self_promote, mean", SELF, PAPER_STEPS, "mean", 0.001, [0, 1, 2]),
    ],
}


def window_of(study: str) -> int:
    return PAPER_WINDOW if study == "paper_alpha" else 1000


def one_run(study: str, label: str, peers: list[tuple[str, str]], steps: int, aggregation: str, lr: float,
            seed: int) -> dict[str, Any]:
    r = run_group_inproc(peers, steps, aggregation, seed, window_of(study), lr)
    honest = r["honest"]
    rates = []  # per window: every peer's follow rate by the honest learners (their own row excluded)
    for end, counts in r["windows"]:
        c = np.array(counts)
        rates.append({"end": end, "rates": [follow_rate(c, target, honest) for target in range(len(peers))]})
    return {"study": study, "label": label, "seed": seed, "steps": steps, "aggregation": aggregation, "lr": lr,
            "names": r["names"], "honest": honest, "windows": rates, "agent_values": r["agent_values"],
            "returns": {str(k): v for k, v in r["returns"].items()}, "turned_at": r["turned_at"]}


def done() -> set[tuple[str, str, int]]:
    if not OUT.exists():
        return set()
    return {(d["study"], d["label"], d["seed"]) for d in map(json.loads, OUT.read_text().splitlines())}


def run(studies: list[str]) -> None:
    finished = done()
    jobs = [(s, label, peers, steps, agg, lr, seed)
            for s in studies for label, peers, steps, agg, lr, seeds in STUDIES[s]
            for seed in seeds if (s, label, seed) not in finished]
    jobs.sort(key=lambda j: -j[3] * len(j[2]))  # longest first: two workers finish together
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(one_run, *job) for job in jobs]
        for job, future in zip(jobs, futures, strict=True):
            result = future.result()
            with OUT.open("a") as f:
                f.write(json.dumps(result) + "\n")
            print(f"done: {job[0]} / {job[1]} / seed {job[6]}", flush=True)


def interval(xs: list[float]) -> str:
    a = np.array(xs, dtype=float)
    if len(a) < 2:
        return f"{a.mean():.3f} (n=1)"
    half = T975[len(a) - 1] * a.std(ddof=1) / np.sqrt(len(a))
    return f"{a.mean():.3f} ± {half:.3f} (n={len(a)})"


def summary() -> None:
    runs = [json.loads(line) for line in OUT.read_text().splitlines()]
    for label in dict.fromkeys(r["label"] for r in runs):
        group = [r for r in runs if r["label"] == label]
        first = group[0]
        print(f"\n## {first['study']}: {label} (alpha {first['lr']}, {first['steps']} steps, "
              f"seeds {[r['seed'] for r in group]})")
        for w in range(len(first["windows"])):
            end = first["windows"][w]["end"]
            cells = [f"{name}: {interval([r['windows'][w]['rates'][i] for r in group])}"
                     for i, name in enumerate(first["names"])]
            print(f"  follow rate, window ending {end}: " + "; ".join(cells))
        late = [np.mean([w["rates"] for w in r["windows"][len(r["windows"]) // 2:]], axis=0) for r in group]
        print("  follow rate, second half: " + "; ".join(
            f"{name}: {interval([x[i] for x in late])}" for i, name in enumerate(first["names"])))
        print("  agent values at the end: " + "; ".join(
            f"{name}: {interval([r['agent_values'][i] for r in group])}" for i, name in enumerate(first["names"])))
        print("  honest learners' mean exact return: "
              + interval([float(np.mean([r["returns"][str(i)] for i in r["honest"]])) for r in group]))


if __name__ == "__main__":
    args = sys.argv[1:] or ["summary"]
    if args == ["summary"]:
        summary()
    else:
        run(args)
