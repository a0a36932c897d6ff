"""How the trust-based choice behaved in a set of runs, read from the files a sweep keeps (group.csv's
select_prob columns, decisions_summary.csv, the follow counts): the probability of choosing another
peer over time, who is chosen by peer beside each learner's return, what moves the choice (the spread
of each normalised component), where trust ended, one run's reputations drawn over time, and an
adversary's share of the executed actions. docs/results.md
(orchestrator/experiments/page.py) prints these as Markdown with their figures."""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from orchestrator.experiments.decisions import COMPONENTS, read_summary
from orchestrator.experiments.rundata import RunData, find_runs
from orchestrator.running.plots import choice_figure


@dataclass
class Selection:
    """A trust-choice run's selection probabilities (group.csv's select_prob columns, runs since
    December 2026): prob[a][b][k] = mean probability that asker a chose adviser b over its decisions
    in the window ending at steps[k] (NaN where a made no decision)."""

    run: str
    steps: np.ndarray
    names: list[str]
    prob: dict[str, dict[str, np.ndarray]]
    folder: Path
    last: dict[str, str]  # group.csv's last row: where trust ended
    use_advantage: bool

    @property
    def askers(self) -> list[str]:
        return [a for a in self.names if not np.all(np.isnan(self.prob[a][a]))]

    def other(self) -> np.ndarray:
        """Per window, the probability of choosing another peer than oneself, averaged over askers."""
        per_asker = [1.0 - self.prob[a][a] for a in self.askers]
        return np.nanmean(per_asker, axis=0)

    def share(self, late: float = 0.75) -> dict[str, float]:
        """Per adviser, the probability of being chosen over the windows from `late` of the run on,
        averaged over askers: who the group follows, whoever asks."""
        window = self.steps >= late * self.steps.max()
        return {b: float(np.nanmean([np.nanmean(self.prob[a][b][window]) for a in self.askers]))
                for b in self.names}


def read_selections(folders: list[Path]) -> list[Selection]:
    """The selection probabilities of the trust-choice runs in `folders` (single agents choose nothing,
    random and early advice ignore the softmax they still log)."""
    found = []
    for folder in folders:
        for run_dir in find_runs([folder]):
            path = run_dir / "group.csv"
            config = tomllib.loads((run_dir / "config.toml").read_text())
            if not path.exists() or config.get("mode", "peer") != "peer":
                continue
            with path.open() as f:
                rows = list(csv.DictReader(f))
            if not rows or not any(k.startswith("select_prob/") for k in rows[0]):
                continue
            names = sorted({k.split("/")[1] for k in rows[0] if k.startswith("select_prob/")})
            prob = {a: {b: np.array([float(r[f"select_prob/{a}/{b}"] or "nan") for r in rows]) for b in names}
                    for a in names}
            found.append(Selection(run_dir.name, np.array([float(r["group_step"]) for r in rows]), names, prob,
                                   run_dir, rows[-1], bool(config.get("use_advantage", True))))
    return sorted(found, key=lambda sel: sel.run)


def selection_over_time(runs: list[RunData], folders: list[Path], out_dir: Path, link: str,
                        tally: dict[str, int] | None = None, equal_within: float = 1.0) -> str:
    """P(choose another peer) over time, one line per run (figure out_dir/selection.png, linked from the
    page as link/selection.png), then who is chosen by peer and what moves the choice. `tally` collects
    whether the choice leaned to the better learner; learners within `equal_within` of each other's
    return count as equal (a task's return scale sets it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    found = [sel for sel in read_selections(folders) if sel.askers]
    if not found:
        return ""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for sel in found:
        ax.plot(sel.steps, sel.other(), lw=1, label=sel.run)
    ax.set_xlabel("group step (= env steps per peer)")
    ax.set_ylabel("P(choose another peer), per decision")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "selection.png", dpi=90)
    plt.close(fig)
    whole = [float(np.nanmean(sel.other())) for sel in found]
    late = [float(np.nanmean(sel.other()[sel.steps >= 0.75 * sel.steps.max()])) for sel in found]
    # A uniform choice among n candidates (the asker itself included) picks another peer (n-1)/n of the time.
    sizes = sorted({len(sel.names) for sel in found})
    uniform = ", ".join(f"{(n - 1) / n:.2f} for {n} peers" for n in sizes)
    widths = sorted({int(sel.steps[1] - sel.steps[0]) for sel in found if len(sel.steps) > 1})
    width = "/".join(f"{w:,}" for w in widths) or "one"
    return (f"\n![selection probability]({link}/selection.png)\n\nProbability that a "
            f"learner's softmax picks *another* peer, mean over its decisions in each {width}-step window (one "
            f"line per run). Over each whole run: {', '.join(f'{x:.2f}' for x in whole)}; over its last "
            f"quarter: {', '.join(f'{x:.2f}' for x in late)} (a uniform choice gives {uniform}).\n"
            + selection_by_peer(runs, found, tally=tally, equal_within=equal_within)
            + component_spreads(found) + trust_levels(found))


def one_run(folders: list[Path], name: str, out_dir: Path, link: str) -> str:
    """What the choice saw over one run (the figure a run writes as plots/trust.png, redrawn from its
    committed group.csv into out_dir/choice_<name>.png); empty when the run is not in `folders` yet."""
    import matplotlib.pyplot as plt

    found = [d for d in find_runs(folders) if d.name == name]
    fig = choice_figure(found[0] / "group.csv") if found else None
    if fig is None:
        return ""
    fig.savefig(out_dir / f"choice_{name}.png", dpi=80)
    plt.close(fig)
    roles = tomllib.loads((found[0] / "config.toml").read_text()).get("roles", [])
    named = "".join(f"; peer-{i} is the {role}" for i, role in enumerate(roles) if role != "learner")
    return (f"\nWhat the choice saw over one run, {name} (the first seed, taken by its number, not its look{named}): "
            "top, each learner's trust in every peer, divided by the largest |trust| as the softmax sees it, and "
            "the group's agent values scaled the same way; bottom, each learner's probability of choosing each "
            f"peer, mean over its decisions in each window.\n\n![what the choice saw]({link}/choice_{name}.png)\n")


def selection_by_peer(runs: list[RunData], found: list[Selection], late: float = 0.75,
                      tally: dict[str, int] | None = None, equal_within: float = 1.0) -> str:
    """Who the group chooses, by peer, beside how good each learner is over the same last quarter.
    Self-or-other hides it: agent values are the group's, so both learners favour the same peer, which
    is its own suggestion for one of them and another peer's for the other, and the two averages cancel."""
    by_name = {r.name: r for r in runs}
    lines = ["| run | chosen, last quarter (mean over askers) | learner's eval return, last quarter | the group "
             "leans to the best learner |", "|---|---|---|---|"]
    tally = {"yes": 0, "no": 0, "no preference": 0} if tally is None else tally  # filled for the README
    for key in ("yes", "no", "no preference"):
        tally.setdefault(key, 0)
    two_learners_only = True  # every group: two learners, no adviser or adversary
    for sel in found:
        share = sel.share(late)
        run = by_name.get(sel.run)
        returns = {}
        if run is not None:
            for peer, (steps, values) in run.curves.items():
                returns[peer] = float(np.mean(values[steps >= late * steps.max()]))
        learners = [b for b in sel.names if b in returns]
        two_learners_only &= len(sel.names) == len(learners) == 2
        verdict = "-"
        if len(learners) >= 2:
            by_return = sorted(learners, key=lambda b: returns[b], reverse=True)
            by_share = sorted(sel.names, key=lambda b: share[b], reverse=True)  # an adversary too
            # Learners within `equal_within` of each other (1 on Room-21, whose optimum is 85.99) count
            # as equal: nothing to pick between, and a near-uniform choice is then the right one. A lead
            # in the choice under 0.05 counts as none.
            if returns[by_return[0]] - returns[by_return[1]] < equal_within:
                verdict = "equal learners"
            elif share[by_share[0]] - share[by_share[1]] < 0.05:
                verdict = "no preference"
            else:
                verdict = "yes" if by_share[0] == by_return[0] else "no"
            tally[verdict] = tally.get(verdict, 0) + 1
        chosen_text = ", ".join(f"{b} {share[b]:.2f}" for b in sel.names)
        returns_text = ", ".join(f"{b} {returns[b]:.1f}" for b in learners) or "-"
        lines.append(f"| {sel.run} | {chosen_text} | {returns_text} | {verdict} |")
    differ = tally["yes"] + tally["no"] + tally["no preference"]
    why = (": for one of them that is its own suggestion and for the other another peer's, which is why the "
           "self-or-other average above stays near uniform even where the choice is not" if two_learners_only else "")
    random_advice = (" Where the learners are equal a near-uniform choice is the right one, and random advice makes "
                     "it by design: the trust choice can gain over random advice only in runs where they differ."
                     if two_learners_only else "")
    return ("\nWho is chosen, by peer: the probability of each peer being chosen over the last quarter of the "
            "run, whoever asks, beside each learner's mean evaluation return over the same quarter. Agent "
            f"values are the group's, so the learners lean towards the same peer{why}.\n\n" + "\n".join(lines)
            + f"\n\nIn {differ} of {len(found)} runs the best learner leads the next by a return of "
            f"{equal_within:g} or more over the last quarter; in {tally['yes']} of those the group leans to it (a "
            f"lead in the choice of 0.05 or more), in {tally['no']} to another peer, in {tally['no preference']} to "
            f"none.{random_advice}\n")


def component_spreads(found: list[Selection], late: float = 0.75) -> str:
    """What moves the choice: per run, how far apart each normalised component puts the candidates of
    a decision (largest minus smallest; each lies in [-1, 1]), mean over the last quarter's decisions,
    from the run's decisions_summary.csv (orchestrator/experiments/decisions.py)."""
    lines = ["| run | critic | trust | agent value | most likely candidate's probability |", "|---|---|---|---|---|"]
    spreads: dict[str, list[float]] = {c: [] for c in COMPONENTS}
    for sel in found:
        rows = read_summary(sel.folder)
        if not rows:
            continue
        end = max(int(r["group_step"]) for r in rows)
        rows = [r for r in rows if int(r["group_step"]) > late * end]
        weight = np.array([float(r["decisions"]) for r in rows])
        cells = []
        for c in (*COMPONENTS, "top_probability"):
            key = c if c == "top_probability" else f"spread_{c}"
            values = np.array([float(r[key]) if r[key] else np.nan for r in rows])
            mean = float(np.sum(values * weight) / weight.sum()) if not np.isnan(values).any() else math.nan
            cells.append("off" if math.isnan(mean) else f"{mean:.3f}")
            if c in spreads and not math.isnan(mean):
                spreads[c].append(mean)
        lines.append(f"| {sel.run} | " + " | ".join(cells) + " |")
    if len(lines) == 2:
        return ""
    reading = ""
    if spreads["critic"] and max(spreads["critic"]) < 0.01 and max(spreads["trust"] + spreads["agent_values"]) > 0.05:
        reading = (" The critic hardly moves the choice: its spread stays below 0.01 in every run (the suggestions "
                   "are the same action, or the asker's Q-values of them differ by a small fraction of their size, "
                   "and each is divided by the largest). Trust and agent values are what separate the candidates.")
    return ("\nWhat moves the choice: how far apart each normalised component puts a decision's candidates "
            "(largest minus smallest; each lies in [-1, 1] and the three are added before the softmax), mean over "
            "the last quarter's decisions, from each run's decisions_summary.csv." + reading + "\n\n"
            + "\n".join(lines) + "\n")


def trust_levels(found: list[Selection]) -> str:
    """Where raw trust ended in each run (every learner's trust in every peer, group.csv's last row),
    and, for runs without the advantage, why that level keeps the normalised trust near 1."""
    parts = []
    advantage_off = False
    for sel in found:  # read_selections kept each run's last row and setting: nothing is read again
        values = [float(sel.last[k]) for a in sel.askers for b in sel.names if sel.last.get(k := f"trust/{a}/{b}")]
        if values:
            parts.append(f"{sel.run} {min(values):.2f} to {max(values):.2f}")
        advantage_off |= not sel.use_advantage
    if not parts:
        return ""
    why = ""
    if advantage_off:
        why = (" Without the advantage (use_advantage = false) the trust target is r + gamma V(s'): the value of "
               "where the followed action led, not how much better it was than the asker's own value there. It "
               "moves trust toward the level of the values, not toward 0, and once the peers learn it is much the "
               "same whoever was followed: divided by the largest, every peer's trust stays near 1 and the choice "
               "near uniform. With the advantage the target is near 0 for a peer as good as the asker, and the "
               "peers separate once trust has come down there.")
    return ("\nWhere trust ended (raw, from its start of 200; every learner's trust in every peer, at each run's "
            f"last log): {'; '.join(parts)}.{why}\n")


def adversary_share_plot(runs: list[RunData], out_dir: Path, link: str, n: int = 3) -> str:
    """The adversary's share of the learners' executed actions over time, one line per run
    (out_dir/adversary_share.png, linked as link/adversary_share.png)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    drawn = 0
    for r in sorted(runs, key=lambda r: (r.condition, r.seed)):
        adversaries = [p for p, role in r.roles.items() if role == "adversary"]
        pts = sorted((t, x) for t, b, x in r.follow if adversaries and b == adversaries[0] and not math.isnan(x))
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", ms=3, lw=1, label=r.name)
            drawn += 1
    if not drawn:
        plt.close(fig)
        return ""
    ax.axhline(1.0 / n, color="grey", lw=0.8, ls=":", label="1/N (chance)")
    ax.axhline(1.0 / (2 * n), color="red", lw=0.8, ls="--", label="1/(2N)")
    ax.set_xlabel("group step (= env steps per peer)")
    ax.set_ylabel("adversary's share of executed actions")
    ax.set_ylim(0, max(0.5, ax.get_ylim()[1]))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / "adversary_share.png", dpi=90)
    plt.close(fig)
    return f"\n![adversary share]({link}/adversary_share.png)\n"


def adversary_onset(runs: list[RunData], n: int = 3) -> str:
    """From which window on the adversary's follow share stays below 1/(2N), per run."""
    threshold = 1.0 / (2 * n)
    return share_onset(runs, "adversary", threshold, above=False, label=f"below 1/(2N) = {threshold:.3f}")


def share_onset(runs: list[RunData], role: str, threshold: float, above: bool, label: str) -> str:
    """Per run, the share of the learners' executed actions that followed the peer of `role` in the first
    and last window, and the end of the first window from which it stays above (or below) `threshold`."""
    lines = [f"| run | {role} share, first window | last window | {label} from the window ending at step |",
             "|---|---|---|---|"]
    for r in sorted(runs, key=lambda r: (r.condition, r.seed)):
        holders = [p for p, peer_role in r.roles.items() if peer_role == role]
        if not holders:
            continue
        pts = sorted((t, x) for t, b, x in r.follow if b == holders[0] and not math.isnan(x))
        if not pts:
            continue
        beyond = (lambda x: x > threshold) if above else (lambda x: x < threshold)
        onset = next((t for k, (t, _) in enumerate(pts) if all(beyond(x) for _, x in pts[k:])), None)
        lines.append(f"| {r.name} | {pts[0][1]:.3f} | {pts[-1][1]:.3f} | "
                     f"{'never' if onset is None else int(onset)} |")
    return "\n".join(lines) + "\n" if len(lines) > 2 else ""


def trust_at_work(leans: dict[str, dict[str, int]]) -> str:
    """One line for the README: does the choice lean to the better learner, where one is better (the
    tallies of selection_by_peer, per Room-21 experiment: one margin of 1 return applies to them all)?
    Descriptive, not a verdict."""
    kinds = ("yes", "no", "no preference")  # runs whose learners differ; "equal learners" are not counted
    differ = {k: t for k, t in leans.items() if sum(t.get(kind, 0) for kind in kinds)}
    if not differ:
        return ""
    total = {kind: sum(t.get(kind, 0) for t in differ.values()) for kind in kinds}
    per = "; ".join(f"{k}: {t.get('yes', 0)} of {sum(t.get(kind, 0) for kind in kinds)}" for k, t in differ.items())
    return ("\nTrust at work (docs/results.md, \"Who is chosen, by peer\"): in the Room-21 trust-choice runs where "
            "the best learner ended ahead of the next (by a return of 1 or more over the last quarter), the group's "
            f"choice leaned to the best one in {total['yes']} of {sum(total.values())} runs ({per}), to another "
            f"peer in {total['no']}, to none in {total['no preference']}. A description of the runs, not a test.\n")
