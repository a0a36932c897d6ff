"""Build docs/results.md from the committed run CSVs (results/<experiment>/runs/<run>/), nothing else:

    python -m orchestrator.experiments.page   # rewrites docs/results.md, each experiment's report, the README block

It lives with the experiments' code (under the import contracts); results/ holds only data and pictures.

For every experiment: the table of `peerlearn report` (the paper's metric and the final return, mean
± std and IQM with 95% stratified-bootstrap CIs), each of the paper's claims read as a probability of
improvement P(X > Y) with its bootstrap CI and a verdict by a fixed rule (stats.verdict: holds when
the whole CI is above 1/2, does not hold when below, undecided otherwise), the figures, and which
runs of its grid are still missing. The verdicts are computed, never written by hand.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from orchestrator.experiments import choice
from orchestrator.experiments.choice import trust_at_work
from orchestrator.experiments.report import markdown_table, report
from orchestrator.experiments.rundata import RunData, find_runs, group_runs, load_run, read_csvs, write_csvs
from orchestrator.experiments.stats import holm, improvement_ci, probability_of_improvement, rank_sum_p, verdict
from orchestrator.experiments.sweep import Claim, load_grid

ROOT = Path(__file__).resolve().parents[2]  # the repository: the page reads its committed results
PAGE = ROOT / "docs" / "results.md"


@dataclass
class Experiment:
    key: str  # results/<key>/
    title: str
    intro: str
    commands: list[str]
    folders: list[str]  # committed run folders (relative to the repository)
    expected: list[str]  # run names the experiment's grid(s) ask for
    order: list[str]
    claims: list[tuple[str, str, str]] = field(default_factory=list)  # (X, Y, the paper's claim)
    # Seeds of a first reading that was later extended with more seeds: its verdicts stay on the page,
    # so that a reader sees what the extension changed.
    first_seeds: list[int] = field(default_factory=list)
    label: str = ""  # a few words for the README's summary table (default: the key)
    # Two learners whose returns over a run's last quarter differ by less than this count as equal in
    # "Who is chosen, by peer": the task's return scale sets it.
    equal_within: float = 1.0
    example_run: str = ""  # one trust-choice run whose reputations the section draws (its first seed)
    # The grid file whose [claims] (declared before its runs) the section reads: primary (Holm over them)
    # and secondary (each on its own). Sections without one read `claims`, the paper's, as before.
    grid: str = ""
    # (role, threshold, above, label): per run, from which window the share of the learners' executed
    # actions that followed the peer of that role stays above (or below) the threshold.
    onset: tuple[str, float, bool, str] | None = None


def grid_runs(grid: str) -> list[str]:
    return [c.name for c in load_grid(ROOT / grid).configs()]


def declared_experiment(grid: str, **fields: object) -> Experiment:
    """An experiment whose grid file declares its claims: its key, command, folder and expected runs come
    from the grid file (`results`), the rest (title, label, intro, order, ...) from `fields`."""
    results = load_grid(ROOT / grid).results
    return Experiment(key=Path(results).name, commands=[f"peerlearn sweep --grid {grid} --jobs 2 --nice 10"],
                      folders=[f"{results}/runs"], expected=grid_runs(grid), grid=grid, **fields)  # type: ignore[arg-type]


def authors_runs(seeds: list[int]) -> list[str]:
    return [f"room-21-authors-{c}-s{s}" for c in ("peer", "single") for s in seeds]


EXPERIMENTS = [
    Experiment(
        key="room21-120k",
        example_run="room-21-peer-s0",
        title="Room-21, 2 DQN peers, 120,000 env steps per peer, beside the authors' code",
        label="Room-21, 120k steps",
        intro=(
            "peerlearn's four conditions (peer learning, single agent, random advice, early advising with "
            "advice for the first 50% of the budget) and the authors' code (kramerlab/PeerLearning cc4d51d, "
            "unchanged, its default 10,000-step turns and the arguments of its Experiments.md; peer learning "
            "and single agent) at the same budget, task and evaluation: the exact return of the deterministic "
            "own policy (every one of the 80 goals once) every 10,000 own steps. The authors' code differs "
            "from peerlearn by design (docs/algorithm.md): its DQN acts greedily after warm-up, its peers "
            "take turns, its agent values are the pooled mean."
        ),
        commands=[
            "peerlearn sweep --grid configs/experiments/room21-120k.toml --jobs 2 --nice 10",
            "EXACT_EVERY=10000 benchmarks/authors_code/run.sh AUTHORS_CHECKOUT AUTHORS_PYTHON runs/authors-120k 1 "
            "120000 \"0 1 2 3 4\" && python benchmarks/authors_code/to_runs.py runs/authors-120k "
            "results/authors-120k 120000",
        ],
        folders=["results/room21-120k/runs", "results/authors-120k/runs"],
        expected=grid_runs("configs/experiments/room21-120k.toml") + authors_runs([0, 1, 2, 3, 4]),
        order=["peer", "single", "random", "early", "authors-peer", "authors-single"],
        claims=[
            ("peer", "single", "peer learning beats a single agent"),
            ("peer", "random", "trust-based choice beats random advice"),
            ("peer", "early", "peer learning beats early advising"),
            ("authors-peer", "authors-single", "peer learning beats a single agent (the authors' code)"),
            ("peer", "authors-peer", "(not a claim) peerlearn's peer learning vs the authors'"),
            ("single", "authors-single", "(not a claim) peerlearn's single DQN vs the authors'"),
        ],
    ),
    Experiment(
        key="room21-compat",
        example_run="room-21-peer-compat-s0",
        title="Room-21 at 120,000 steps, the authors'-code-compatible condition",
        label="Room-21, compatible settings",
        intro=(
            "The designed differences that are settings, switched to the authors' choices for peers and "
            "single agent alike: DQN greedy after warm-up (exploration_initial_eps = exploration_final_eps "
            "= 0) and agent values from the pooled mean. What is left between this row and the authors' "
            "code is the scheduling (lock-step vs turns), warm-up credit and termination masking."
        ),
        commands=["peerlearn sweep --grid configs/experiments/room21-compat.toml --jobs 2 --nice 10"],
        folders=["results/room21-compat/runs", "results/authors-120k/runs"],
        expected=grid_runs("configs/experiments/room21-compat.toml"),
        order=["peer-compat", "single-compat", "authors-peer", "authors-single"],
        claims=[("peer-compat", "single-compat", "peer learning beats a single agent (compatible settings)")],
    ),
    Experiment(
        key="room21-av-rate",
        title="Agent-value update rate: per env step (the authors') vs per group step",
        label="Room-21, agent-value rate",
        intro=(
            "The authors' code updates the agent values after every env step of every peer; peerlearn did "
            "it once per group step until December 2026 (N times slower with N acting peers). Default now: "
            "per env step (`agent_value_updates`). This is the A/B at 120,000 steps, same seeds."
        ),
        commands=["peerlearn sweep --grid configs/experiments/room21-av-rate.toml --jobs 2 --nice 10"],
        folders=["results/room21-av-rate/runs", "results/room21-120k/runs"],
        expected=grid_runs("configs/experiments/room21-av-rate.toml"),
        order=["peer", "peer-av-per-group-step"],
        claims=[("peer", "peer-av-per-group-step", "(A/B) the authors' rate vs the old rate")],
    ),
    Experiment(
        key="room21-adversary-60k",
        example_run="room-21-adversarial-s0",
        title="The adversary setting (`DQN DQN Adversarial`), 60,000 env steps per peer",
        label="Room-21 with an adversary, 60k steps",
        intro=(
            "Two DQN learners and a scripted adviser that walks toward the mirrored goal; the paper's claim "
            "is that trust learns to ignore it. N = 3, so an adviser followed by chance gets 1/N of the "
            "choices; the question asked here is whether the adversary's share of the learners' executed "
            "actions falls below 1/(2N) = 1/6, and from which step."
        ),
        commands=["peerlearn sweep --grid configs/experiments/room21-adversary-60k.toml --jobs 2 --nice 10"],
        folders=["results/room21-adversary-60k/runs"],
        expected=grid_runs("configs/experiments/room21-adversary-60k.toml"),
        order=["adversarial", "adversarial_mean", "single"],
        claims=[
            ("adversarial", "single", "a group with an adversary still beats a single agent"),
            ("adversarial_mean", "single", "the same, with the paper's pooled-mean agent values"),
        ],
    ),
    declared_experiment(
        "configs/experiments/room21-choice-adversary-60k.toml",
        example_run="room-21-trust-s0",
        title="Whom to follow with an adversary among the advisers, with controls, 60,000 env steps per peer",
        label="Room-21, adversary with controls, 60k",
        intro=(
            "The choice where it has something to find. Two DQN learners and the scripted adversary (it walks "
            "toward the mirrored goal), under the paper's trust choice (peerlearn's median agent values, and the "
            "paper's pooled mean), random advice with the same adversary, peerlearn's Thompson rule, and the "
            "paper's rule with peerlearn's normalisation floor; and the two learners alone without the "
            "adversary (`pair`), which says what the adversary costs. The claims were declared in the grid file "
            "before any run (docs/algorithm.md, \"Whom to follow\", describes the rules)."
        ),
        order=["trust", "trust_mean", "trust_fixed", "thompson", "random", "pair"],
        onset=("adversary", 1 / 6, False, "below 1/(2N) = 0.167"),
    ),
    declared_experiment(
        "configs/experiments/room21-expert-30k.toml",
        example_run="room-21-trust-s0",
        title="An expert among novices: whom to follow, 30,000 env steps per peer",
        label="Room-21, an expert among novices, 30k",
        intro=(
            "Two fresh DQN learners and the scripted Room expert (it walks straight to the goal), under the "
            "paper's trust choice, random advice, peerlearn's Thompson rule and the paper's rule with peerlearn's "
            "normalisation floor, against one learner alone. The return is the learners' (the expert is not "
            "evaluated). The question besides the claims: from which step does the expert get more than half of "
            "the learners' executed actions, and keep it? The claims were declared in the grid file before any run."
        ),
        order=["trust", "trust_fixed", "thompson", "random", "single"],
        onset=("expert", 0.5, True, "above 1/2"),
    ),
    declared_experiment(
        "configs/experiments/room21-lone-learner-30k.toml",
        example_run="room-21-sole-s0",
        title="A lone learner beside an expert: the self-vote fix, 30,000 env steps per peer",
        label="Room-21, a lone learner beside an expert, 30k",
        intro=(
            "One DQN learner and the scripted expert. The expert casts no agent-value votes, so with "
            "peerlearn's median rule before December 2026 nobody voted on the learner and its agent value kept "
            "its start of 200 (`never`); `sole` counts the learner's own evidence (the default now); `mean` is "
            "the paper's pooled mean; `random` is random advice. The claims were declared in the grid file "
            "before any run."
        ),
        order=["sole", "never", "mean", "random"],
        onset=("expert", 0.5, True, "above 1/2"),
    ),
    declared_experiment(
        "configs/experiments/room21-mixed-skill-60k.toml",
        example_run="room-21-trust-s0",
        title="Mixed skill: a weaker and a stronger learner, 60,000 env steps per peer",
        label="Room-21, mixed skill, 60k",
        intro=(
            "Two DQN learners, peer-0 with a 10 times smaller learning rate than the Room preset (the weaker), "
            "peer-1 with the preset, under the paper's trust choice, the paper's rule with peerlearn's "
            "normalisation floor, peerlearn's Thompson rule and random advice, against the weaker learner "
            "alone. The primary claims are about the weaker learner's own return (peer-0's paper metric); "
            "they were declared in the grid file before any run."
        ),
        order=["trust", "trust_fixed", "thompson", "random", "weak_alone"],
    ),
    Experiment(
        key="room21-group-size-30k",
        example_run="room-21-N4-s0",
        title="Group size on Room-21: N = 2, 4, 8 at 30,000 env steps per peer",
        label="Room-21, group size, 30k steps",
        intro="Advantage off, as in the paper's group-size study; a single DQN at the same budget.",
        commands=["peerlearn sweep --grid configs/experiments/room21-group-size-30k.toml --jobs 2 --nice 10"],
        folders=["results/room21-group-size-30k/runs"],
        expected=grid_runs("configs/experiments/room21-group-size-30k.toml"),
        order=["N2", "N4", "N8", "single"],
        claims=[("N4", "N2", "a larger group learns better (4 vs 2)"),
                ("N8", "N4", "a larger group learns better (8 vs 4)"),
                ("N2", "single", "2 peers beat a single agent")],
    ),
    Experiment(
        key="pendulum-10k",
        title="Pendulum-v1 (a task the paper did not use), 2 SAC peers, 10,000 env steps per peer",
        label="Pendulum-v1, 10k steps",
        intro=(
            "Peer learning vs a single SAC vs random advice, and a mixed SAC + TD3 group (the authors' "
            "--mix-agents) beside the pure SAC group. No paper preset: rl-zoo3's tuned hyper-parameters "
            "(the `zoo` extra; without it a learner falls back to SB3's defaults, and learners.toml says which). "
            "These runs were made before the sweep kept learners.toml; their model checkpoints (not committed) "
            "carry rl-zoo3's values, not SB3's: SAC's learning rate 0.001 (SB3: 0.0003), TD3's gamma 0.98 "
            "(SB3: 0.99). 10 evaluation episodes every 2,000 own steps. The grid first had seeds 0-2, "
            "the issue's minimum; at 3 runs against 3 the exact rank-sum test cannot go below p = 0.05, so "
            "no claim could be decided, and seeds 3-4 were added after seeing them (the first reading is "
            "kept below the main table)."
        ),
        commands=['pip install -e ".[zoo]" && peerlearn sweep --grid configs/experiments/pendulum-10k.toml --jobs 2'],
        folders=["results/pendulum-10k/runs"],
        expected=grid_runs("configs/experiments/pendulum-10k.toml"),
        order=["peer", "single", "random", "mixed-sac-td3"],
        claims=[("peer", "single", "peer learning beats a single agent"),
                ("peer", "random", "trust-based choice beats random advice"),
                ("mixed-sac-td3", "peer", "(not a claim) a mixed SAC + TD3 group vs the pure SAC group")],
        first_seeds=[0, 1, 2],
    ),
    Experiment(
        key="hopper-20k",
        example_run="hopper-peer-s0",
        title="Hopper-v5, 4 SAC peers vs a single SAC, 20,000 env steps per peer (small)",
        label="Hopper-v5, 20k steps",
        intro=(
            "2% of the paper's budget: a check that the method runs and what it does early on MuJoCo, "
            "not a test of the paper's Hopper result. 10 evaluation episodes every 5,000 own steps."
        ),
        commands=["peerlearn sweep --grid configs/experiments/hopper-20k.toml --jobs 2 --nice 10"],
        folders=["results/hopper-20k/runs"],
        expected=grid_runs("configs/experiments/hopper-20k.toml"),
        order=["peer", "single"],
        claims=[("peer", "single", "peer learning beats a single agent")],
        # About 3% of the ~300 that SAC reached at 20,000 steps in an earlier measurement on this machine;
        # set before any run of this grid was read.
        equal_within=10.0,
    ),
]


def load(ex: Experiment, windows: int = 10) -> list[RunData]:
    """The experiment's finished runs, follow rates in `windows` windows of each run."""
    paths = find_runs([ROOT / f for f in ex.folders if (ROOT / f).exists()])
    runs = [r for r in (load_run(p, windows=windows) for p in paths) if r is not None]
    return [r for r in runs if r.condition in ex.order]


@dataclass
class ClaimRow:
    """One claim read on one experiment's runs: the cells of its row in the claims tables."""

    text: str
    pair: str  # "X vs Y"
    runs: str  # "n vs m"
    improvement: str  # P(X > Y) [95% CI], or "-"
    p: str
    verdict: str  # holds / does not hold / undecided / no verdict yet (too few runs)
    p_value: float = math.nan  # the rank-sum p as a number, for the correction over all claims
    family: str = "paper"  # paper (the page's family of the paper's claims), primary or secondary (a grid's)
    holm_p: float = math.nan  # for a primary claim: Holm over its grid's primary family

    @property
    def is_paper_claim(self) -> bool:
        """Rows marked "(not a claim)" compare two codes, "(A/B)" two settings: not the paper's claims;
        a grid's own declared claims have their own family."""
        return self.family == "paper" and not self.text.startswith(("(not a claim)", "(A/B)"))


def claim_rows(ex: Experiment, runs: list[RunData], claims: list[tuple[str, ...]] | None = None,
               family: str = "paper") -> list[ClaimRow]:
    """Each claim (X, Y, text[, peer]) read on the runs: by the paper metric of the run's learners, or of
    one learner where the claim names it."""
    rows = []
    for x, y, text, *peer in (ex.claims if claims is None else claims):
        metric = {c: np.array([r.avg_return(*peer) for r in runs if r.condition == c]) for c in (x, y)}
        a, b = (v[np.isfinite(v)] for v in (metric[x], metric[y]))
        if a.size < 2 or b.size < 2:
            rows.append(ClaimRow(text, f"{x} vs {y}", f"{a.size} vs {b.size}", "-", "-",
                                 "no verdict yet (too few runs)"))
            continue
        p = probability_of_improvement(a, b)
        lo, hi = improvement_ci(a, b)
        p_value = rank_sum_p(a, b)
        rows.append(ClaimRow(text, f"{x} vs {y}", f"{a.size} vs {b.size}", f"{p:.2f} [{lo:.2f}, {hi:.2f}]",
                             f"{p_value:.3f}", verdict(a, b), p_value))
    for row in rows:
        row.family = family
    return rows


def declared_rows(ex: Experiment, runs: list[RunData]) -> list[ClaimRow]:
    """The grid's declared claims: the primary ones with Holm over their family (the grid's), then the
    secondary ones, each read on its own."""
    grid = load_grid(ROOT / ex.grid)
    def tuples(claims: list[Claim]) -> list[tuple[str, ...]]:
        return [(c.x, c.y, c.text, *([c.peer] if c.peer else [])) for c in claims]

    primary = claim_rows(ex, runs, tuples(grid.primary), "primary")
    for row, adjusted in zip(primary, holm([r.p_value for r in primary]), strict=True):
        row.holm_p = adjusted
    return primary + claim_rows(ex, runs, tuples(grid.secondary), "secondary")


def declared_tables(rows: list[ClaimRow]) -> str:
    primary = [r for r in rows if r.family == "primary"]
    secondary = [r for r in rows if r.family == "secondary"]
    k = len(primary)
    lines = [f"**Primary claims**, declared in the grid file before any of its runs was read; Holm over these {k}:\n",
             "| claim | X vs Y | runs | P(X > Y), paper metric [95% CI] | rank-sum p | Holm p | verdict "
             "| holds after Holm |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r.text} | {r.pair} | {r.runs} | {r.improvement} | {r.p} | {p_cell(r.holm_p)} | {bold_verdict(r)} | "
              f"{'-' if math.isnan(r.holm_p) else ('**yes**' if r.holm_p < 0.05 and r.verdict == 'holds' else 'no')} |"
              for r in primary]
    text = "\n".join(lines) + "\n"
    if secondary:
        text += ("\n**Secondary claims**, declared with them and read each on its own (no adjustment: support for "
                 "the primary ones, not findings of their own):\n\n" + claims_table(secondary))
    return text


# Said wherever the verdicts of a grid that was extended after a first look at its results are shown.
EXTENDED_CAVEAT = ("This grid was extended after a first look at its results. Adding runs because the first "
                   "ones decided nothing (optional stopping) raises the chance of a false *holds* above the "
                   "nominal 5%: read its verdicts as weaker than their p-values say.")


def caveats(ex: Experiment, complete: bool) -> str:
    """What a summary row must say of its grid: still missing runs, or extended after a first look."""
    return ("" if complete else ", interim") + (", extended after a first look" if ex.first_seeds else "")


def p_cell(p: float) -> str:
    """A p-value in a table: three decimals, '-' where the row has none."""
    return "-" if math.isnan(p) else f"{p:.3f}"


def bold_verdict(row: ClaimRow) -> str:
    return row.verdict if row.verdict.startswith("no verdict") else f"**{row.verdict}**"


def claims_table(rows: list[ClaimRow]) -> str:
    lines = ["| claim | X vs Y | runs | P(X > Y), paper metric [95% CI] | rank-sum p | verdict |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r.text} | {r.pair} | {r.runs} | {r.improvement} | {r.p} | {bold_verdict(r)} |" for r in rows]
    return "\n".join(lines) + "\n"


def at_a_glance(read: list[tuple[int, Experiment, bool, list[ClaimRow]]]) -> str:
    """Every claim of every section in one table, so that a reader sees the state of the evidence first,
    with each paper claim's p-value adjusted for the number of claims read on the page (Holm)."""
    rows = [r for _, _, _, rs in read for r in rs]
    family = [r.p_value if r.is_paper_claim else math.nan for r in rows]
    adjusted_all = holm(family)
    adjusted = iter(adjusted_all)
    lines = ["| claim | section | X vs Y | runs | verdict | rank-sum p | Holm p |", "|---|---|---|---|---|---|---|"]
    for number, ex, complete, section_rows in read:
        where = f"{number} (`{ex.key}`)" + caveats(ex, complete)
        for r in section_rows:
            holm_p = next(adjusted)
            if r.family == "secondary":
                continue
            if r.family == "primary":
                holm_p = r.holm_p
            lines.append(f"| {r.text} | {where} | {r.pair} | {r.runs} | {bold_verdict(r)} | {r.p} | {p_cell(holm_p)} |")
    k = sum(not math.isnan(p) for p in family)
    passing = sum(p < 0.05 for p in adjusted_all if not math.isnan(p))
    return ("**The claims at a glance** (the verdicts of the sections below; *interim* where the grid still has "
            "missing runs; *extended after a first look* where runs were added on seeing the first ones, which "
            "makes its verdicts weaker than their p-values say):\n\n" + "\n".join(lines) + "\n\n"
            f"Each verdict reads its claim on its own at the 5% level. Read together, {k} paper claims "
            "give several chances of a false *holds*: the Holm column adjusts each claim's rank-sum p for "
            f"all {k} (rows in parentheses compare two codes or two settings and are left out), and a claim "
            "whose Holm p is below 0.05 holds with the chance of any false *holds* among them kept at 5%. "
            f"{passing} of the {k} pass it. With 5 runs against 5 the exact test's smallest p is 1/252 = 0.004 "
            f"(every run of X above every run of Y), which the adjustment raises to as much as {k}/252 = "
            f"{k / 252:.3f}: at these seed counts only a near-complete separation passes, and more seeds are "
            "what would let the claims hold together. The sections that declared their own claims in their grid "
            "files (the choice grids) list their primary claims here with Holm over each grid's own primary family "
            "instead; their secondary claims are in their sections.\n\n")


README = ROOT / "README.md"
README_BEGIN = "<!-- results: written by python -m orchestrator.experiments.page from the committed runs -->"
README_END = "<!-- /results -->"


def readme_block(read: list[tuple[int, Experiment, bool, list[ClaimRow]]],
                 leans: dict[str, dict[str, int]] | None = None) -> str:
    """The paper's claims as the page reads them now, for the README: the answer to "does it work?"
    where a reader lands, generated with the page so that it is never a number copied by hand."""
    rows = [(number, ex, complete, r) for number, ex, complete, rs in read for r in rs if r.is_paper_claim]
    adjusted = holm([r.p_value for *_, r in rows])
    lines = ["| the paper's claim | experiment | runs | P(X > Y) [95% CI] | verdict | Holm p |",
             "|---|---|---|---|---|---|"]
    for (number, ex, complete, r), holm_p in zip(rows, adjusted, strict=True):
        where = f"{ex.label or ex.key} (§{number}{caveats(ex, complete)})"
        lines.append(f"| {r.text} | {where} | {r.runs} | {r.improvement} | {bold_verdict(r)} | {p_cell(holm_p)} |")
    passing = sum(p < 0.05 for p in adjusted if not math.isnan(p))
    counted = sum(not math.isnan(p) for p in adjusted)
    choice_part = random_advice_line() + choice_block(read)
    return (f"{README_BEGIN}\n" + "\n".join(lines) + "\n\n"
            "Each verdict reads its claim on its own (holds: the bootstrap CI of P(X > Y) above 1/2 and an exact "
            f"rank-sum test at 5%); adjusted for the {counted} claim{'' if counted == 1 else 's'} together (Holm), "
            f"{passing} pass{'es' if passing == 1 else ''}. "
            "*Interim*: the grid still has runs to make. *Extended after a first look*: runs were added on seeing "
            "the first ones (optional stopping), so its verdicts are weaker than their p-values say.\n"
            + ("\n" + choice_part.rstrip("\n") + "\n" if choice_part else "") + trust_at_work(leans or {}) + README_END)


def random_advice_line() -> str:
    """How much of peer learning's gain on Room-21 (two equal learners, 120k) random advice already gets,
    from the committed runs: the sentence the README owes its reader before any claim about the choice."""
    ex = next((e for e in EXPERIMENTS if e.key == "room21-120k"), None)
    runs = load(ex) if ex is not None else []
    means = {c: np.array([r.avg_return() for r in runs if r.condition == c]) for c in ("peer", "random", "single")}
    if any(v.size < 2 for v in means.values()):
        return ""
    peer, rand, single = (float(means[c].mean()) for c in ("peer", "random", "single"))
    if peer <= single:
        return ""
    return (f"**What the choice adds.** On Room-21 with two equal learners (120k steps, §1) random advice scores "
            f"{rand:.1f} against the trust choice's {peer:.1f} and a single agent's {single:.1f} (means of the "
            f"paper metric): random advice alone gets {100 * (rand - single) / (peer - single):.0f}% of the gain "
            f"(random vs single: rank-sum p = {rank_sum_p(means['random'], means['single']):.3f}; trust vs random: "
            f"p = {rank_sum_p(means['peer'], means['random']):.3f}). With equal learners there is little to "
            "choose between; the choice grids of docs/results.md put the choice where peers differ.\n\n")


def choice_block(read: list[tuple[int, Experiment, bool, list[ClaimRow]]]) -> str:
    """The primary claims of the grids that declared their own (the choice grids), for the README."""
    rows = [(number, ex, complete, r) for number, ex, complete, rs in read for r in rs if r.family == "primary"]
    if not rows:
        return ""
    lines = ["| whom to follow (declared before the runs) | experiment | runs | P(X > Y) [95% CI] | verdict | "
             "Holm p (per grid) |", "|---|---|---|---|---|---|"]
    for number, ex, complete, r in rows:
        where = f"{ex.label or ex.key} (§{number}{caveats(ex, complete)})"
        lines.append(f"| {r.text} | {where} | {r.runs} | {r.improvement} | {bold_verdict(r)} | {p_cell(r.holm_p)} |")
    return "\n".join(lines) + "\n\n"


def update_readme(text: str, block: str) -> str:
    """README text with its results block replaced (the markers stay); unchanged if it has none."""
    if README_BEGIN not in text or README_END not in text:
        return text
    head, rest = text.split(README_BEGIN, 1)
    return head + block + rest.split(README_END, 1)[1]


def selection_over_time(runs: list[RunData], ex: Experiment, leans: dict[str, dict[str, int]] | None = None) -> str:
    """The section's choice readings (orchestrator/experiments/choice.py), its figure in results/<key>/;
    `leans` collects, per experiment, whether the choice leaned to the better learner (for the README)."""
    folders = [ROOT / f for f in ex.folders if (ROOT / f).exists()]
    # The README's one line is about Room-21, where one margin (a return of 1) applies to every section.
    room21 = ex.key.startswith("room21-") and not ex.grid  # the choice grids answer their own questions
    tally = None if leans is None or not room21 else leans.setdefault(ex.label or ex.key, {})
    return choice.selection_over_time(runs, folders, ROOT / "results" / ex.key, f"../results/{ex.key}", tally,
                                      ex.equal_within)


def learner_settings_line(ex: Experiment, runs: list[RunData]) -> str:
    """Where each condition's learner settings came from (paper, rl-zoo3, sb3-defaults), as the runs'
    learners.toml records them; empty when no run of the section has one (runs collected before the
    sweep kept it). A condition whose runs disagree is the thing to see: rl-zoo3 missing from the
    environment of some of them, for example."""
    sources: dict[str, set[str]] = {}
    unrecorded = 0
    for path in find_runs([ROOT / f for f in ex.folders if (ROOT / f).exists()]):
        run = next((r for r in runs if r.name == path.name), None)
        if run is None or run.condition.startswith("authors-"):
            continue
        try:
            learners = tomllib.loads((path / "learners.toml").read_text())
        except (OSError, tomllib.TOMLDecodeError):
            unrecorded += 1
            continue
        sources.setdefault(run.condition, set()).update(
            f"{v.get('source', 'pretrained' if 'pretrained' in v else '?')} ({v.get('algo', v.get('role', '?'))})"
            for v in learners.values())
    if not sources:
        return ""
    parts = [f"{c}: {', '.join(sorted(sources[c]))}" for c in ex.order if c in sources]
    text = "Learner settings, as the runs' learners.toml records them (source and algorithm): " + "; ".join(parts)
    if unrecorded:
        plural = "s" if unrecorded > 1 else ""
        text += f"; not recorded for {unrecorded} run{plural} (collected before the sweep kept it)"
    return text + ".\n"


def section(number: int, ex: Experiment, read: list[tuple[int, Experiment, bool, list[ClaimRow]]] | None = None,
            leans: dict[str, dict[str, int]] | None = None) -> str:
    """The experiment's section of the page; its claims are also appended to `read` (for the summary)."""
    runs = load(ex)
    have = {r.name for r in runs}
    missing = [name for name in ex.expected if name not in have]
    text = f"## {number}. {ex.title}\n\n{ex.intro}\n\n```bash\n" + "\n".join(ex.commands) + "\n```\n\n"
    if not runs:
        return text + f"**Not run yet**: 0 of {len(ex.expected)} runs.\n\n"
    out = ROOT / "results" / ex.key
    write_csvs(runs, out)
    table = report(runs, out, order=ex.order, plots=True)
    rows = declared_rows(ex, runs) if ex.grid else claim_rows(ex, runs)
    if read is not None and rows:
        read.append((number, ex, not missing, rows))
    text += table + "\n" + learner_settings_line(ex, runs) + "\n" + (declared_tables(rows) if ex.grid
                                                                       else claims_table(rows))
    if ex.first_seeds and any(r.seed not in ex.first_seeds for r in runs):
        text += (f"\nThe first reading, seeds {', '.join(map(str, ex.first_seeds))} only:\n\n"
                 + claims_table(claim_rows(ex, [r for r in runs if r.seed in ex.first_seeds]))
                 + f"\n{EXTENDED_CAVEAT}\n")
    text += f"\n![learning curves](../results/{ex.key}/learning_curves.png)\n"
    if ex.key == "room21-adversary-60k":
        # 30 windows (2,000 steps of a 60,000-step run): "from which step" asks for more than tenths.
        text += ("\nThe adversary's share per run, in 30 windows of the run (2,000 group steps each at 60,000 "
                 "steps); the last column is the end of the first window from which the share stays below "
                 "1/(2N):\n\n" + choice.adversary_onset(load(ex, windows=30)))
        text += choice.adversary_share_plot(runs, ROOT / "results" / ex.key, f"../results/{ex.key}")
        if (out / "follow_rates.png").exists():
            text += f"\n![follow rates](../results/{ex.key}/follow_rates.png)\n"
    if ex.onset is not None:
        role, threshold, above, label = ex.onset
        text += (f"\nThe {role}'s share of the learners' executed actions per run, in 30 windows of the run; the last "
                 f"column is the end of the first window from which the share stays {label}:\n\n"
                 + choice.share_onset(load(ex, windows=30), role, threshold, above, label))
    if ex.key in ("room21-120k", "room21-compat", "room21-adversary-60k", "room21-group-size-30k", "hopper-20k",
                  "room21-choice-adversary-60k", "room21-expert-30k", "room21-lone-learner-30k",
                  "room21-mixed-skill-60k"):
        text += selection_over_time(runs, ex, leans)
    if ex.example_run:
        text += choice.one_run([ROOT / f for f in ex.folders if (ROOT / f).exists()], ex.example_run, out,
                               f"../results/{ex.key}")
    if missing:
        text += (f"\n**Missing** ({len(missing)} of {len(ex.expected)} runs, still to run; the sweep continues "
                 f"them): {', '.join(missing)}.\n")
    return text + "\n"


HEADER = """# Results

Generated by `python -m orchestrator.experiments.page` from the run CSVs committed under
`results/<experiment>/runs/` (each run's `config.toml`, `summary.json`, `group.csv`, every peer's
`evaluations.csv`, and where kept `learners.toml` and `decisions_summary.csv`); nothing on this page
is typed by hand except the prose. Each experiment is one
grid under `configs/experiments/`, run by a resumable `peerlearn sweep` that copies every finished
run's CSVs there.

**How to read it.** Budgets are env steps *per peer* (a group of N uses N times the steps of a single
agent), as in the paper. Room-21 is evaluated exactly: the deterministic own policy from each of the
80 equally likely goals (optimum 85.99; a policy that reaches no goal scores -0.1). Per run:
- *avg return*, the paper's table metric: the mean of a peer's evaluations over the run (an area
  under its learning curve), averaged over the run's learners. The evaluation of the untrained
  network at step 0 is drawn on the curves but left out of the metric (the authors' first evaluation
  comes after 10,000 own steps);
- *final return*: the last evaluation, averaged over the learners.

The run is the unit of statistics (a group's peers are not independent). Over runs: mean ± sample
std (and std as % of the mean, as the paper reports), the interquartile mean (IQM) with a 95%
percentile CI from a stratified bootstrap (rliable's definitions, `orchestrator/experiments/stats.py`). A claim
"X beats Y" is read as the probability of improvement P(X > Y) (a run of X against a run of Y, all
pairs) with a bootstrap CI; the verdict is *holds* when the whole CI is above 1/2 and an exact
one-sided rank-sum test (Mann-Whitney U) agrees at the 5% level, *does not hold* in the mirror case,
*undecided* otherwise. The test is there because a bootstrap of 2-3 runs that happen to agree gives a
CI of [1, 1]: a verdict needs enough runs for the exact test to reach 5% at all (its smallest p is
1 / C(n+m, n) for n against m runs: 3 against 4 gives 0.029, 2 against 5 gives 0.048, 3 against 3 only
0.050, which is not below 5%). An *undecided* is not evidence of no effect. Verdicts on a grid with
missing runs are interim: they are read again, by the same rule, as runs come in.

Scale: the paper trains 1,000,000 steps per peer; a 2-core machine runs a 2-peer Room-21 group at
~120,000 steps per peer in 17-25 minutes. The earlier 5,000-step experiments are in the last section.
"""


def old_results() -> str:
    """The 5,000-step experiments (before trust could act), rebuilt from their committed CSVs."""
    text = ("## Earlier: the first 5,000 steps (before trust and agent values can act)\n\n"
            "Trust and agent values start at 200 and move by 0.001 per update, so below ~10,000 steps per "
            "peer the choice between peers is close to uniform whatever the advice is worth. These runs "
            "(commit 4ded447 and after; agent values then updated once per group step) are kept for the "
            "record, their metric recomputed without the step-0 evaluation:\n\n")
    for key, order in (("room21-baselines", ["peer", "single", "random", "early", "authors-peer", "authors-single"]),
                       ("room21-adversary", ["adversarial", "adversarial_mean"]),
                       ("room21-group-size", ["N2", "N4", "N8", "N16"]),
                       ("room21-ablation", None), ("hopper-baselines", ["peer", "single", "random", "early"])):
        folder = ROOT / "results" / key
        if not (folder / "summary.csv").exists():
            continue
        runs = read_csvs(folder)
        if key == "room21-baselines":  # the authors' code at the same 5,000 steps (run.sh, to_runs.py)
            runs += [r for r in (load_run(p) for p in find_runs([ROOT / "results/authors-code/runs"])) if r]
        text += f"`results/{key}/` ({', '.join(map(str, sorted({r.steps for r in runs})))} steps per peer):\n\n"
        text += markdown_table(group_runs(runs, order)) + "\n"
    return text


FOOTER = """## What is not here, and why

- **The paper's budgets** (1,000,000 steps per peer), Room-27, Walker2d, Ant and HalfCheetah: a
  1M-step 2-peer Room-21 group would take ~3 hours per run on this machine, a 4-peer MuJoCo group
  days. The largest budgets that fit are above; sections marked *Missing* list the runs the sweep
  still has to make (each session restarts it: `peerlearn sweep --grid ... --list` shows where every
  run stands).
- **LeCTR**, the paper's external Room baseline: its code is not public.
- **The ablation** (7 subsets of critic, trust, agent values x advantage) at a long budget: not run;
  only the 2,000-step run of the earlier section exists.
- **Group size with the advantage on.** Section 5 follows the paper's group-size setting (advantage
  off), in which trust moves toward the level of the values and the choice stays near uniform at every
  N, so it compares groups that follow each other almost at random. Where trust separates the peers
  (advantage on, section 1's figure of one run shows when) group size was not varied.
- **Seeds.** Every grid has 5 seeds (the av-rate A/B 3, read against room21-120k's 5); the paper used
  10. Grids planned with 3 were raised to 5 because 3 runs against 3 cannot reach p < 0.05 with the
  exact test; Pendulum-v1 was raised after its first 3 seeds had run (both readings are shown).
  Undecided verdicts may turn with more runs; the grids can be extended by adding seeds to their files.
- **Determinism.** A run seed fixes every peer's env and learner seeds (`seed * 1000 + i`). Since
  December 2026 a run continued from a checkpoint is the uninterrupted run (docs/robustness.md,
  "Exact resume"); a run of the earlier grids that was continued started a fresh episode there, so it
  is not bit-identical to an uninterrupted run with the same seed.
"""


def status_table() -> str:
    """How far each experiment's grid is: the page is rebuilt as runs come in, so say where it stands."""
    lines = ["| experiment | runs in | planned |", "|---|---|---|"]
    for ex in EXPERIMENTS:
        have = {r.name for r in load(ex)} & set(ex.expected)
        lines.append(f"| {ex.title} | {len(have)} | {len(ex.expected)} |")
    return ("**Where the grids stand** (this page is rebuilt whenever runs come in; an experiment with "
            "missing runs is interim):\n\n" + "\n".join(lines) + "\n\n")


def main() -> None:
    read: list[tuple[int, Experiment, bool, list[ClaimRow]]] = []
    leans: dict[str, dict[str, int]] = {}  # per experiment: does the choice lean to the better learner?
    sections = ""
    for k, ex in enumerate(EXPERIMENTS, start=1):
        print(f"{ex.key}...")
        sections += section(k, ex, read, leans)
    text = HEADER + "\n" + status_table() + at_a_glance(read) + sections + old_results() + "\n" + FOOTER
    PAGE.write_text(text)
    print(f"wrote {PAGE.relative_to(ROOT)}")
    if README.exists():
        README.write_text(update_readme(README.read_text(), readme_block(read, leans)))
        print(f"updated {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
