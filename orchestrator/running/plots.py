"""PNG plots of a finished run, drawn from its CSV files (so they can be redrawn later:
`python -m orchestrator.running.plots RUN_DIR`). Peers are named with what they are, "peer-0 (DQN
learner)", from the run's versions.json and config.toml (labels.py)."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and in containers
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from orchestrator.running.labels import run_labels  # noqa: E402

# "120k", not "120000": six-digit step labels of narrow panels run into each other.
STEPS_IN_THOUSANDS = FuncFormatter(lambda x, _: f"{x / 1000:g}k" if x else "0")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def learning_curves(run_dir: Path, ax: plt.Axes) -> None:
    labels = run_labels(run_dir)
    for peer_dir in sorted((run_dir / "peers").glob("*")):
        path = peer_dir / "evaluations.csv"
        if not path.exists():
            continue
        rows = _read_csv(path)
        if not rows:
            continue
        steps = np.array([float(r["step"]) for r in rows])
        mean = np.array([float(r["mean_return"]) for r in rows])
        std = np.array([float(r["std_return"]) for r in rows])
        ax.plot(steps, mean, marker="o", ms=3, label=labels.get(peer_dir.name, peer_dir.name))
        ax.fill_between(steps, mean - std, mean + std, alpha=0.15)
    ax.set_xlabel("env steps per peer")
    ax.set_ylabel("evaluation return (own deterministic policy)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)


def _series(rows: list[dict[str, str]], key: str) -> np.ndarray:
    return np.array([float(r[key]) if r.get(key) not in (None, "") else np.nan for r in rows])


def _choice_figure(rows: list[dict[str, str]], names: list[str], askers: list[str], steps: np.ndarray,
                   labels: dict[str, str] | None = None) -> plt.Figure:
    """What each asker's softmax sees, per adviser: its trust normalised by the largest |trust| (the
    scale the choice uses; raw trust only decays from its start of 200 and every line lies on the
    others) and the mean selection probability over its decisions; last panel: the agent values,
    normalised the same way. Runs written before these columns existed get raw trust. Peers are
    named by `labels` (peer id -> "peer-0 (DQN learner)") where given."""
    def name(peer: str) -> str:
        return (labels or {}).get(peer, peer)

    normalised = bool(rows) and f"trust_norm/{names[0]}/{names[0]}" in rows[0]
    fig, axes = plt.subplots(2 if normalised else 1, len(askers) + 1, figsize=(4 * (len(askers) + 1), 6.4 if
                             normalised else 3.6), squeeze=False)
    for col, a in enumerate(askers):
        ax = axes[0][col]
        for b in names:
            ax.plot(steps, _series(rows, f"trust_norm/{a}/{b}" if normalised else f"trust/{a}/{b}"), label=name(b))
        ax.set_title(f"trust of {name(a)}" + (" (normalised)" if normalised else ""), fontsize=9)
        if normalised:
            ax = axes[1][col]
            for b in names:
                ax.plot(steps, _series(rows, f"select_prob/{a}/{b}"), label=name(b))
            ax.set_ylim(0, 1)
            ax.set_title(f"selection probability, decisions of {name(a)}", fontsize=9)
        ax.set_xlabel("group step")
    ax = axes[0][-1]
    values = np.stack([_series(rows, f"agent_value/{b}") for b in names], axis=1)
    scale = np.nanmax(np.abs(values), axis=1, keepdims=True)
    for k, b in enumerate(names):
        ax.plot(steps, values[:, k] / np.where(scale[:, 0] > 0, scale[:, 0], 1.0), label=name(b))
    ax.set_title("agent values (group, normalised)", fontsize=9)
    ax.set_xlabel("group step")
    ax.legend(fontsize=7, title="peer (the colours of every panel)", title_fontsize=7)
    if normalised:
        axes[1][-1].axis("off")
    for ax in axes.flat:
        ax.xaxis.set_major_formatter(STEPS_IN_THOUSANDS)
    fig.tight_layout()
    return fig


def choice_figure(group_csv: Path) -> plt.Figure | None:
    """The figure of plots/trust.png drawn from a run's group.csv (None when it has no rows): what
    each learner's choice sees over the run."""
    rows = _read_csv(group_csv) if group_csv.exists() else []
    if not rows:
        return None
    names = [k.split("/", 1)[1] for k in rows[0] if k.startswith("agent_value/")]
    steps = np.array([float(r["group_step"]) for r in rows])
    askers = [a for a in names if float(rows[-1][f"steps/{a}"]) > 0]
    return _choice_figure(rows, names, askers, steps, run_labels(group_csv.parent))


def write_plots(run_dir: Path) -> list[Path]:
    out = run_dir / "plots"
    out.mkdir(exist_ok=True)
    written = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    learning_curves(run_dir, ax)
    ax.set_title(f"Learning curves: {run_dir.name}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=110)
    plt.close(fig)
    written.append(out / "learning_curves.png")

    group_csv = run_dir / "group.csv"
    trust_fig = choice_figure(group_csv)
    if trust_fig is not None:
        trust_fig.savefig(out / "trust.png", dpi=110)
        plt.close(trust_fig)
        written.append(out / "trust.png")
        rows = _read_csv(group_csv)
        names = [k.split("/", 1)[1] for k in rows[0] if k.startswith("agent_value/")]

        counts = np.array([[float(rows[-1][f"follow/{a}/{b}"]) for b in names] for a in names])
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        labels = run_labels(run_dir)
        ticks = [labels.get(n, n) for n in names]
        fig, ax = plt.subplots(figsize=(1.2 * len(names) + 4, 1.0 * len(names) + 3))
        im = ax.imshow(rates, cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(names)), ticks, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), ticks, fontsize=8)
        ax.set_xlabel("followed peer")
        ax.set_ylabel("acting peer")
        for i in range(len(names)):
            for j in range(len(names)):
                ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if rates[i, j] < 0.6 else "black")
        fig.colorbar(im, ax=ax, label="share of own env steps")
        ax.set_title("who follows whom", fontsize=10)
        fig.tight_layout()
        fig.savefig(out / "follow_matrix.png", dpi=110)
        plt.close(fig)
        written.append(out / "follow_matrix.png")
    return written


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        for p in write_plots(Path(arg)):
            print(p)
