"""`peerlearn report RUN_DIR...`: the paper's table metric and rliable-style interval estimates.

For every run (a folder with `config.toml`; a folder of runs is expanded) it reads the learners'
`peers/<peer>/evaluations.csv` and `group.csv`, and groups runs by (task, condition). The
condition is the middle of a sweep run name `<task>-<condition>-s<seed>`, else a label built from
the config (mode, components, peers, roles).

Metrics, per run (a group's peers are not independent, so the run is the unit of statistics):
- **average return**: the mean of every evaluation over the whole run (an area under the learning
  curve), averaged over the run's learners: the paper's table metric, reported as
  mean +- std over seeds (and std as % of |mean|, as in the paper);
- **final return**: the last evaluation, averaged over the run's learners.
For each, the interquartile mean over runs (IQM, rliable: `scipy.stats.trim_mean(x, 0.25)` of all
run x task scores) with a 95% percentile confidence interval from a stratified bootstrap (runs are
resampled with replacement within each task; rliable's `StratifiedBootstrap`), in numpy.

Outputs (to `--out`, default `report/`): `report.md` (the table), `summary.csv` (one row per run),
`curves.csv` (evaluation returns per run, peer and step), `follow.csv` (follow rate of each peer
over time), `learning_curves.png` and `follow_rates.png`. `--from-csv DIR` redraws everything
from those CSV files (how docs/results.md is rebuilt from the committed summaries).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# ---------------------------------------------------------------------------- statistics


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of all entries: `scipy.stats.trim_mean(x, 0.25, axis=None)`, i.e. the
    mean after dropping int(0.25 n) of the smallest and of the largest entries."""
    x = np.sort(np.asarray(scores, dtype=np.float64).ravel())
    n = x.size
    if n == 0:
        return math.nan
    cut = int(0.25 * n)
    return float(x[cut : n - cut].mean())


def stratified_bootstrap_ci(
    scores: np.ndarray, statistic=iqm, reps: int = 2000, size: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile CI of `statistic` over a (runs x tasks) score matrix: each bootstrap sample draws
    `runs` rows with replacement independently for every task column (rliable's stratified
    bootstrap). A 1-D input is one task."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim == 1:
        s = s[:, None]
    n, k = s.shape
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(reps, n, k))
    samples = np.take_along_axis(np.broadcast_to(s, (reps, n, k)), idx, axis=1)
    stats = np.array([statistic(samples[r]) for r in range(reps)])
    alpha = (1.0 - size) / 2.0
    lo, hi = np.percentile(stats, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)


def mean_std(x: np.ndarray) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value)."""
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if x.size > 1 else 0.0


def area_under_curve(returns: np.ndarray) -> float:
    """The paper's metric for one peer: the mean of all its evaluation returns over the run."""
    return float(np.mean(returns))


def follow_rates(group_steps: np.ndarray, counts: np.ndarray, windows: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Follow rate of each followed peer over time from cumulative counts (rows: group steps,
    columns: followed peer; counts summed over followers). Returns (window end steps, rates) where
    rates[w, j] = share of the actions executed in window w that came from peer j."""
    t = np.asarray(group_steps, dtype=np.float64)
    c = np.asarray(counts, dtype=np.float64)
    n = t.size
    if n == 0:
        return np.zeros(0), np.zeros((0, c.shape[1] if c.ndim == 2 else 0))
    k = min(windows, n)
    ends_idx = sorted({int(round((w + 1) * n / k)) - 1 for w in range(k)})  # last row of each window
    ends, rates = [], []
    prev = np.zeros(c.shape[1])
    for e in ends_idx:
        d = c[e] - prev
        total = d.sum()
        rates.append(d / total if total > 0 else np.full_like(d, np.nan))
        ends.append(t[e])
        prev = c[e]
    return np.array(ends), np.array(rates)


# ---------------------------------------------------------------------------- reading runs


@dataclass
class RunData:
    name: str
    task: str
    condition: str
    seed: int
    peers: int
    steps: int
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # peer -> (steps, returns)
    follow: list[tuple[float, str, float]] = field(default_factory=list)  # (group step, followed peer, rate)
    roles: dict[str, str] = field(default_factory=dict)
    advice_share: float = math.nan  # share of all executed (post-warm-up) actions that came from another peer

    @property
    def learners(self) -> list[str]:
        return sorted(self.curves)

    def avg_return(self) -> float:
        return float(np.mean([area_under_curve(r) for _, r in self.curves.values()]))

    def final_return(self) -> float:
        return float(np.mean([r[-1] for _, r in self.curves.values()]))

    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The run's learning curve: the learners' evaluations averaged at the steps all share."""
        steps = sorted(set.intersection(*(set(s.tolist()) for s, _ in self.curves.values())))
        vals = [
            np.array([dict(zip(s.tolist(), r.tolist(), strict=True))[x] for x in steps])
            for s, r in self.curves.values()
        ]
        return np.array(steps, dtype=float), np.mean(vals, axis=0)


def condition_label(name: str, task: str, seed: int, cfg: dict) -> str:
    m = re.fullmatch(re.escape(task.replace("/", "_")) + r"-(.+)-s" + str(seed), name)
    if m:
        return m.group(1)
    mode = cfg.get("mode", "peer")
    label = mode
    if mode == "peer":
        comps = "".join(
            c for c, k in (("C", "use_critic"), ("T", "use_trust"), ("V", "use_agent_values")) if cfg.get(k, True)
        )
        label += f"-{comps}" + ("" if cfg.get("use_advantage", True) else "-noadv")
    roles = [r for r in cfg.get("roles", []) if r != "learner"]
    return label + f"-N{cfg.get('peers')}" + ("-" + "-".join(roles) if roles else "")


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


def load_run(run_dir: Path, windows: int = 10, unfinished: bool = False) -> RunData | None:
    """A finished run (its summary.json exists; with `unfinished`, also a running or killed one);
    None when it is unfinished or has no evaluation yet."""
    if not unfinished and not (run_dir / "summary.json").exists():
        return None
    cfg = tomllib.loads((run_dir / "config.toml").read_text())
    task, seed = str(cfg.get("task")), int(cfg.get("seed", 0))
    roles = list(cfg.get("roles") or [])
    run = RunData(
        name=run_dir.name,
        task=task,
        condition=condition_label(run_dir.name, task, seed, cfg),
        seed=seed,
        peers=int(cfg.get("peers", 0)),
        steps=int(cfg.get("steps", 0)),
        roles={f"peer-{i}": r for i, r in enumerate(roles)},
    )
    for path in sorted((run_dir / "peers").glob("*/evaluations.csv")):
        rows = _read_csv(path)
        if rows:
            run.curves[path.parent.name] = (
                np.array([float(r["step"]) for r in rows]),
                np.array([float(r["mean_return"]) for r in rows]),
            )
    if not run.curves:
        return None
    group = run_dir / "group.csv"
    if group.exists():
        rows = _read_csv(group)
        if rows:
            followed = sorted({k.split("/")[2] for k in rows[0] if k.startswith("follow/")})
            t = np.array([float(r["group_step"]) for r in rows])
            counts = np.array(
                [
                    [
                        sum(float(v) for k, v in r.items() if k.startswith("follow/") and k.endswith("/" + b))
                        for b in followed
                    ]
                    for r in rows
                ]
            )
            last = rows[-1]
            pairs = [(k.split("/")[1], k.split("/")[2], float(v)) for k, v in last.items() if k.startswith("follow/")]
            total = sum(x for _, _, x in pairs)
            run.advice_share = sum(x for a, b, x in pairs if a != b) / total if total > 0 else math.nan
            ends, rates = follow_rates(t, counts, windows)
            run.follow = [(float(e), b, float(rates[w, j])) for w, e in enumerate(ends) for j, b in enumerate(followed)]
    return run


def find_runs(paths: list[str | Path]) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "config.toml").exists():
            found.append(p)
        elif p.is_dir():
            found += sorted(d for d in p.iterdir() if (d / "config.toml").exists())
    return found


# ---------------------------------------------------------------------------- CSV round trip


def write_csvs(runs: list[RunData], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "summary.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(
            [
                "run",
                "task",
                "condition",
                "seed",
                "peers",
                "learners",
                "steps_per_peer",
                "avg_return",
                "final_return",
                "advice_share",
                "roles",
            ]
        )
        for r in runs:
            w.writerow(
                [
                    r.name,
                    r.task,
                    r.condition,
                    r.seed,
                    r.peers,
                    len(r.curves),
                    r.steps,
                    f"{r.avg_return():.6g}",
                    f"{r.final_return():.6g}",
                    "" if math.isnan(r.advice_share) else f"{r.advice_share:.4g}",
                    " ".join(f"{k}={v}" for k, v in r.roles.items()),
                ]
            )
    with (out / "curves.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "peer", "step", "return"])
        for r in runs:
            for peer, (s, v) in sorted(r.curves.items()):
                w.writerows([r.name, peer, int(a), f"{b:.6g}"] for a, b in zip(s, v, strict=True))
    with (out / "follow.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "group_step", "followed", "rate"])
        for r in runs:
            w.writerows([r.name, int(t), b, "" if math.isnan(x) else f"{x:.4g}"] for t, b, x in r.follow)


def read_csvs(folder: Path) -> list[RunData]:
    runs: dict[str, RunData] = {}
    for row in _read_csv(folder / "summary.csv"):
        roles = dict(kv.split("=", 1) for kv in row.get("roles", "").split() if "=" in kv)
        runs[row["run"]] = RunData(
            name=row["run"],
            task=row["task"],
            condition=row["condition"],
            seed=int(row["seed"]),
            peers=int(row["peers"]),
            steps=int(row["steps_per_peer"]),
            roles=roles,
            advice_share=float(row["advice_share"]) if row.get("advice_share") else math.nan,
        )
    points: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for row in _read_csv(folder / "curves.csv"):
        points.setdefault((row["run"], row["peer"]), []).append((float(row["step"]), float(row["return"])))
    for (run, peer), pts in points.items():
        arr = np.array(pts)
        runs[run].curves[peer] = (arr[:, 0], arr[:, 1])
    if (folder / "follow.csv").exists():
        for row in _read_csv(folder / "follow.csv"):
            runs[row["run"]].follow.append(
                (float(row["group_step"]), row["followed"], float(row["rate"]) if row["rate"] else math.nan)
            )
    return [r for r in runs.values() if r.curves]


# ---------------------------------------------------------------------------- tables and plots


@dataclass
class Row:
    task: str
    condition: str
    runs: list[RunData]

    @property
    def seeds(self) -> list[int]:
        return sorted(r.seed for r in self.runs)


def group_runs(runs: list[RunData], order: list[str] | None = None) -> list[Row]:
    rows: dict[tuple[str, str], list[RunData]] = {}
    for r in runs:
        rows.setdefault((r.task, r.condition), []).append(r)
    keys = list(rows)
    if order:
        rank = {c: i for i, c in enumerate(order)}
        keys.sort(key=lambda k: (k[0], rank.get(k[1], len(rank)), k[1]))
    else:
        keys.sort()
    return [Row(t, c, sorted(rows[(t, c)], key=lambda r: r.seed)) for t, c in keys]


def _fmt(x: float) -> str:
    return "nan" if math.isnan(x) else f"{x:.2f}"


def markdown_table(rows: list[Row], reps: int = 2000) -> str:
    head = (
        "| task | condition | seeds | steps/peer | avg return (paper metric) mean ± std (std %) "
        "| IQM avg return [95% CI] | final return mean ± std | IQM final return [95% CI] | advice taken |"
    )
    lines = [head, "|" + "---|" * 9]
    for row in rows:
        avg = np.array([r.avg_return() for r in row.runs])
        fin = np.array([r.final_return() for r in row.runs])
        m, s = mean_std(avg)
        fm, fs = mean_std(fin)
        pct = f"{100 * s / abs(m):.0f}%" if m != 0 else "-"
        lo, hi = stratified_bootstrap_ci(avg, reps=reps)
        flo, fhi = stratified_bootstrap_ci(fin, reps=reps)
        steps = sorted({r.steps for r in row.runs})
        shares = [r.advice_share for r in row.runs if not math.isnan(r.advice_share)]
        advice = f"{100 * np.mean(shares):.0f}%" if shares else "-"
        lines.append(
            f"| {row.task} | {row.condition} | {len(row.runs)} ({','.join(map(str, row.seeds))}) "
            f"| {'/'.join(map(str, steps))} | {_fmt(m)} ± {_fmt(s)} ({pct}) "
            f"| {_fmt(iqm(avg))} [{_fmt(lo)}, {_fmt(hi)}] | {_fmt(fm)} ± {_fmt(fs)} "
            f"| {_fmt(iqm(fin))} [{_fmt(flo)}, {_fmt(fhi)}] | {advice} |"
        )
    return "\n".join(lines) + "\n"


def follow_table(rows: list[Row]) -> str:
    """Mean follow rate (over runs) of every followed peer in the first, the middle and the last window,
    for conditions with scripted advisers (expert, adversary)."""
    lines = [
        "| task | condition | followed peer (role) | follow rate, first window | middle window | last window |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if not any(role != "learner" for r in row.runs for role in r.roles.values()):
            continue
        followed = sorted({b for r in row.runs for _, b, _ in r.follow})
        for b in followed:
            first, middle, last = [], [], []
            for r in row.runs:
                pts = sorted((t, x) for t, bb, x in r.follow if bb == b and not math.isnan(x))
                if pts:
                    first.append(pts[0][1])
                    middle.append(pts[len(pts) // 2][1])
                    last.append(pts[-1][1])
            if first:
                role = row.runs[0].roles.get(b, "learner")
                lines.append(
                    f"| {row.task} | {row.condition} | {b} ({role}) | {np.mean(first):.3f} "
                    f"| {np.mean(middle):.3f} | {np.mean(last):.3f} |"
                )
    return "\n".join(lines) + "\n"


def _bootstrap_band(values: np.ndarray, reps: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """95% percentile bootstrap band of the mean over runs (rows) at every step (column)."""
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    means = values[rng.integers(0, n, size=(reps, n))].mean(axis=1)
    return np.percentile(means, 2.5, axis=0), np.percentile(means, 97.5, axis=0)


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
                lo, hi = _bootstrap_band(vals)
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


def report(
    runs: list[RunData],
    out: Path,
    order: list[str] | None = None,
    title: str = "",
    plots: bool = True,
    reps: int = 2000,
) -> str:
    out.mkdir(parents=True, exist_ok=True)
    rows = group_runs(runs, order)
    text = (f"## {title}\n\n" if title else "") + markdown_table(rows, reps=reps)
    text += (
        "\nSeeds: independent runs (the unit of all statistics). Returns are averaged over a run's learners. "
        f"CIs: 95% percentile, stratified bootstrap, {reps} resamples. Advice taken: share of the learners' "
        "executed actions that came from another peer.\n"
    )
    if any(role != "learner" for r in runs for role in r.roles.values()):
        text += (
            "\nFollow rate: share of the learners' executed actions that came from each peer "
            "(self = own policy) in the first, middle and last tenth of the run (warm-up actions excluded), "
            "mean over runs.\n\n" + follow_table(rows)
        )
    if plots:
        plot_learning_curves(rows, out / "learning_curves.png")
        plot_follow_rates(rows, out / "follow_rates.png")
    (out / "report.md").write_text(text)
    return text


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="*", help="run folders, or folders of runs (e.g. a sweep's out)")
    p.add_argument("--out", default="report", help="folder for report.md, CSVs and PNGs (default report/)")
    p.add_argument("--from-csv", help="rebuild the report from a folder with summary.csv/curves.csv/follow.csv")
    p.add_argument("--order", help="comma-separated condition order of the table")
    p.add_argument("--title", default="")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument("--reps", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--unfinished", action="store_true", help="include runs without summary.json (running, killed)")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.from_csv:
        runs = read_csvs(Path(args.from_csv))
    else:
        if not args.runs:
            raise SystemExit("give run folders, or --from-csv DIR")
        runs = [r for r in (load_run(p, unfinished=args.unfinished) for p in find_runs(args.runs)) if r is not None]
        if not runs:
            raise SystemExit(f"no runs with evaluations under {' '.join(args.runs)}")
        write_csvs(runs, out)
    order = [c for c in (args.order or "").split(",") if c] or None
    print(report(runs, out, order=order, title=args.title, plots=not args.no_plots, reps=args.reps))
    return 0
