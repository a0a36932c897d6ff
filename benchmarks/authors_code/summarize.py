"""Summarise the authors' code runs (run.sh) with peerlearn's report statistics, as a Markdown table.

    python benchmarks/authors_code/summarize.py OUT_DIR > results/authors-code/report.md

Per run: the exact evaluations (step 1 ~ 0, then every 1,000 own steps) of each peer; avg return =
the mean over a peer's evaluations (the paper's metric), averaged over the run's learners; final =
the last evaluation. Over seeds: mean +- sample std and the IQM with a 95% stratified bootstrap CI
(orchestrator/experiments/report.py, the same functions as `peerlearn report`). Also writes OUT_DIR/summary.csv.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from orchestrator.experiments.stats import area_under_curve, iqm, mean_std, stratified_bootstrap_ci


def load(path: Path) -> tuple[float, float]:
    curves: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for peer, step, value in csv.reader(path.open()):
        curves[int(peer)].append((int(step), float(value)))
    # Their first exact evaluation (own step 1) is of the untrained network: a curve point, not part of
    # the metric, as peerlearn's step-0 evaluation (orchestrator/experiments/stats.py:area_under_curve).
    avg = np.mean([area_under_curve(np.array([s for s, _ in sorted(c)]), np.array([v for _, v in sorted(c)]),
                                    first_trained_step=2) for c in curves.values()])
    final = np.mean([sorted(c)[-1][1] for c in curves.values()])
    return float(avg), float(final)


def main(out: Path) -> None:
    rows = []
    for condition in ("peer", "single"):
        runs = sorted(out.glob(f"{condition}-s*.csv"), key=lambda p: int(p.stem.split("-s")[1]))
        if not runs:
            continue
        scores = np.array([load(p) for p in runs])
        seeds = [int(p.stem.split("-s")[1]) for p in runs]
        rows.append((condition, seeds, scores))
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["condition", "seed", "avg_return", "final_return"])
        for condition, seeds, scores in rows:
            for seed, (avg, final) in zip(seeds, scores, strict=True):
                w.writerow([condition, seed, round(avg, 4), round(final, 4)])
    print("| code | condition | seeds | steps/peer | avg return mean ± std (std %) | IQM avg return [95% CI] "
          "| final return mean ± std | IQM final return [95% CI] |")
    print("|---|---|---|---|---|---|---|---|")
    for condition, seeds, scores in rows:
        (m, s), (fm, fs) = mean_std(scores[:, 0]), mean_std(scores[:, 1])
        lo, hi = stratified_bootstrap_ci(scores[:, 0])
        flo, fhi = stratified_bootstrap_ci(scores[:, 1])
        pct = f"{100 * s / abs(m):.0f}%" if m else "-"
        print(f"| authors (cc4d51d) | {condition} | {len(seeds)} ({','.join(map(str, seeds))}) | 5000 "
              f"| {m:.2f} ± {s:.2f} ({pct}) | {iqm(scores[:, 0]):.2f} [{lo:.2f}, {hi:.2f}] "
              f"| {fm:.2f} ± {fs:.2f} | {iqm(scores[:, 1]):.2f} [{flo:.2f}, {fhi:.2f}] |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
