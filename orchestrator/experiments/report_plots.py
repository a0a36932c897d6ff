"""The report's figures: learning curves with a bootstrap band of the mean over runs, and follow rates
over time (orchestrator/experiments/report.py draws them into `--out`)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from orchestrator.experiments.stats import bootstrap_band

if TYPE_CHECKING:
    from orchestrator.experiments.rundata import Row


def plot_learning_curves(rows: list[Row], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r.task for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(6.5 * len(tasks), 4.2), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for row in (r for r in rows if r.task == task):
            curves = [r.curve() for r in row.runs]
            common = sorted(set.intersection(*(set(s.tolist()) for s, _ in curves)))
            vals = np.array([[dict(zip(s.tolist(), v.tolist(), strict=True))[x] for x in common] for s, v in curves])
            mean = vals.mean(axis=0)
            (line,) = ax.plot(common, mean, marker="o", ms=3, label=f"{row.condition} (n={len(row.runs)})")
            if len(row.runs) > 1:
                lo, hi = bootstrap_band(vals)
                ax.fill_between(common, lo, hi, alpha=0.15, color=line.get_color())
        ax.set_title(task)
        ax.set_xlabel("env steps per peer")
        ax.set_ylabel("evaluation return (mean over runs, 95% CI)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_follow_rates(rows: list[Row], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if any(len({b for _, b, _ in run.follow}) > 1 for run in r.runs)]
    if not rows:
        return None
    cols = min(4, len(rows))
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for ax, row in zip(axes.ravel(), rows, strict=False):
        followed = sorted({b for r in row.runs for _, b, _ in r.follow})
        for b in followed:
            by_t: dict[float, list[float]] = {}
            for r in row.runs:
                for t, bb, x in r.follow:
                    if bb == b and not math.isnan(x):
                        by_t.setdefault(t, []).append(x)
            ts = sorted(by_t)
            role = row.runs[0].roles.get(b, "")
            ax.plot(ts, [np.mean(by_t[t]) for t in ts], marker=".", label=f"{b} {role}".strip())
        ax.set_title(f"{row.task} {row.condition}", fontsize=9)
        ax.set_xlabel("group step")
        ax.set_ylabel("share of executed actions")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(rows) :]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
