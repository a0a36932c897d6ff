"""`peerlearn report RUN_DIR...`: the paper's table metric and rliable-style interval estimates.

For every run (a folder with `config.toml`; a folder of runs is expanded) it reads the learners'
`peers/<peer>/evaluations.csv` and `group.csv`, and groups runs by (task, condition). The
condition is the middle of a sweep run name `<task>-<condition>-s<seed>`, else a label built from
the config (mode, components, peers, roles). Runs of one condition made with different settings
(steps, learner settings, any config.toml key that changes what is learned: rundata.NOT_SETTINGS
lists those that do not) get the settings that differ in their condition and form rows of their own;
two runs of one setting with the same seed are refused (one experiment twice, not two seeds).

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
import math
from pathlib import Path

import numpy as np

from orchestrator.experiments.report_plots import plot_follow_rates, plot_learning_curves
from orchestrator.experiments.rundata import (
    Row,
    RunData,
    find_runs,
    group_runs,
    load_run,
    read_csvs,
    refuse_repeated_seeds,
    separate_settings,
    write_csvs,
)
from orchestrator.experiments.stats import iqm, mean_std, stratified_bootstrap_ci


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
        refuse_repeated_seeds(runs)
    else:
        if not args.runs:
            raise SystemExit("give run folders, or --from-csv DIR")
        runs = [r for r in (load_run(p, unfinished=args.unfinished) for p in find_runs(args.runs)) if r is not None]
        if not runs:
            raise SystemExit(f"no runs with evaluations under {' '.join(args.runs)}")
        runs = separate_settings(runs)  # a row pools seeds of one setting only
        refuse_repeated_seeds(runs)
        write_csvs(runs, out)
    order = [c for c in (args.order or "").split(",") if c] or None
    print(report(runs, out, order=order, title=args.title, plots=not args.no_plots, reps=args.reps))
    return 0
