"""orchestrator/experiments/page.py: a section of docs/results.md from committed run folders (tables, claims
with computed verdicts, the adversary's share per run, missing runs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_report import _fake_run


@pytest.fixture
def page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    from orchestrator.experiments import page as module

    monkeypatch.setattr(module, "ROOT", tmp_path)
    return module


def test_section_reports_claims_verdicts_adversary_share_and_missing_runs(page, tmp_path: Path) -> None:  # noqa: ANN001
    runs = tmp_path / "results" / "adv" / "runs"
    for seed, (good, bad) in enumerate([(10, 0), (20, 0), (30, 5), (40, 5)]):
        _fake_run(runs, f"room-21-adversarial-s{seed}", seed, {"peer-0": [0, good, good], "peer-1": [0, good, good]})
        _fake_run(runs, f"room-21-weak-s{seed}", seed, {"peer-0": [0, bad, bad], "peer-1": [0, bad, bad]})
    ex = page.Experiment(key="adv", title="Adversary", intro="intro", commands=["cmd"], folders=["results/adv/runs"],
                         expected=[f"room-21-{c}-s{s}" for c in ("adversarial", "weak") for s in range(5)],
                         order=["adversarial", "weak"], claims=[("adversarial", "weak", "beats weak")])
    ex = page.Experiment(**{**ex.__dict__, "key": "room21-adversary-60k"})
    (tmp_path / "results" / "room21-adversary-60k").mkdir(parents=True)
    text = page.section(1, ex)
    assert "| beats weak | adversarial vs weak | 4 vs 4 | 1.00 [1.00, 1.00] | 0.014 | **holds** |" in text
    # the fake runs' adversary (peer-2) took 0.5 of the actions in the first window and 0 in the last
    assert "| room-21-adversarial-s0 | 0.500 | 0.000 | 200 |" in text
    assert (tmp_path / "results" / "room21-adversary-60k" / "adversary_share.png").exists()
    assert "**Missing** (2 of 10 runs" in text and "room-21-weak-s4" in text


def test_a_section_without_runs_says_so(page) -> None:  # noqa: ANN001
    ex = page.Experiment(key="none", title="Nothing yet", intro="", commands=["cmd"], folders=["results/none/runs"],
                         expected=["a", "b"], order=["peer"])
    assert "**Not run yet**: 0 of 2 runs." in page.section(2, ex)


def _selection_run(runs: Path, name: str, mode: str, p_other: list[float], peers: int = 2,
                   matrix: dict[tuple[str, str], float] | None = None) -> None:
    """A run folder with only what the selection paragraph reads: config.toml's mode and group.csv's
    select_prob columns (each learner picks each other peer with p_other[row] / (peers - 1), or with
    matrix[asker, adviser] in each of 4 rows)."""
    d = runs / name
    d.mkdir(parents=True)
    (d / "config.toml").write_text(f'mode = "{mode}"\npeers = {peers}\n')
    names = [f"peer-{i}" for i in range(peers)]
    header = ["group_step"] + [f"select_prob/{a}/{b}" for a in names for b in names]
    if matrix is not None:
        rows = [[500 * (k + 1)] + [matrix[a, b] for a in names for b in names] for k in range(4)]
    else:
        rows = [[500 * (k + 1)] + [(1 - p) if a == b else p / (peers - 1) for a in names for b in names]
                for k, p in enumerate(p_other)]
    (d / "group.csv").write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")


def test_selection_paragraph_reads_only_the_trust_choice_with_chance_from_the_group_size(page, tmp_path: Path) -> None:  # noqa: ANN001
    runs = tmp_path / "results" / "sel" / "runs"
    _selection_run(runs, "room-21-peer-s0", "peer", [0.48, 0.50, 0.49, 0.51])
    # a single agent and random advice log a softmax too, but choose nothing by it: left out
    _selection_run(runs, "room-21-single-s0", "single", [0.0, 0.0, 0.0, 0.0], peers=1)
    _selection_run(runs, "room-21-random-s0", "random", [0.9, 0.9, 0.9, 0.9])
    (tmp_path / "results" / "sel").mkdir(exist_ok=True)
    ex = page.Experiment(key="sel", title="t", intro="", commands=[], folders=["results/sel/runs"], expected=[],
                         order=["peer"])
    text = page.selection_over_time([], ex)
    assert "Over each whole run: 0.49; over its last quarter: 0.50 (a uniform choice gives 0.50 for 2 peers)" in text
    assert "| room-21-peer-s0 | peer-0 0.50, peer-1 0.50 | - | - |" in text  # no evaluations given: no reading
    assert "random-s0" not in text and "single-s0" not in text
    # 3 peers have their own chance level
    _selection_run(runs, "room-21-peer-s1", "peer", [0.2, 0.2, 0.2, 0.2], peers=3)
    text = page.selection_over_time([], ex)
    assert "0.50 for 2 peers, 0.67 for 3 peers" in text


def _two_learners(name: str, returns: tuple[float, float]):  # type: ignore[no-untyped-def]
    from orchestrator.experiments.rundata import RunData

    steps = np.array([0.0, 1000, 2000, 3000, 4000])
    curves = {p: (steps, np.array([0, 0, 0, r, r])) for p, r in zip(("peer-0", "peer-1"), returns, strict=True)}
    return RunData(name=name, task="room-21", condition="peer", seed=0, peers=2, steps=4000, curves=curves)


def test_who_is_chosen_by_peer_beside_how_good_each_learner_is(page, tmp_path: Path) -> None:  # noqa: ANN001
    """Both learners leaning to peer-1 average to 0.5 as self-or-other; by peer it is 0.7, and it is
    set beside the learners' returns: the better one, an equal pair, no lead in the choice."""
    runs = tmp_path / "results" / "room21-who" / "runs"
    lean = {("peer-0", "peer-0"): 0.3, ("peer-0", "peer-1"): 0.7, ("peer-1", "peer-0"): 0.3, ("peer-1", "peer-1"): 0.7}
    even = {k: 0.5 for k in lean}
    _selection_run(runs, "room-21-peer-s0", "peer", [], matrix=lean)
    _selection_run(runs, "room-21-peer-s1", "peer", [], matrix=lean)
    _selection_run(runs, "room-21-peer-s2", "peer", [], matrix=even)
    _selection_run(runs, "room-21-peer-s3", "peer", [], matrix=lean)
    (tmp_path / "results" / "room21-who").mkdir(exist_ok=True)
    ex = page.Experiment(key="room21-who", title="t", intro="", commands=[], folders=["results/room21-who/runs"],
                         expected=[], order=["peer"])
    data = [_two_learners("room-21-peer-s0", (60.0, 80.0)), _two_learners("room-21-peer-s1", (80.0, 80.5)),
            _two_learners("room-21-peer-s2", (60.0, 80.0)), _two_learners("room-21-peer-s3", (80.0, 60.0))]
    leans: dict = {}
    text = page.selection_over_time(data, ex, leans)
    assert "over its last quarter: 0.50, 0.50, 0.50, 0.50" in text  # self-or-other hides the lean
    # the README's line counts only the runs whose learners differ (s1's are equal)
    line = page.trust_at_work(leans)
    assert "leaned to the best one in 1 of 3 runs (room21-who: 1 of 3), to another peer in 1, to none in 1" in line
    assert page.trust_at_work({}) == "" and page.trust_at_work({"x": {"equal learners": 2}}) == ""
    assert "| room-21-peer-s0 | peer-0 0.30, peer-1 0.70 | peer-0 60.0, peer-1 80.0 | yes |" in text
    assert "| room-21-peer-s1 | peer-0 0.30, peer-1 0.70 | peer-0 80.0, peer-1 80.5 | equal learners |" in text
    assert "| room-21-peer-s2 | peer-0 0.50, peer-1 0.50 | peer-0 60.0, peer-1 80.0 | no preference |" in text
    assert "| room-21-peer-s3 | peer-0 0.30, peer-1 0.70 | peer-0 80.0, peer-1 60.0 | no |" in text
    assert "In 3 of 4 runs the best learner leads" in text
    assert "random advice makes it by design" in text and "self-or-other average above stays near uniform" in text
    assert ("in 1 of those the group leans to it (a lead in the choice of 0.05 or more), in 1 to another peer, "
            "in 1 to none") in text
    # Another task's return scale: its own margin, and it stays out of the README's Room-21 line.
    wide = page.Experiment(key="who", title="t", intro="", commands=[], folders=["results/room21-who/runs"],
                           expected=[], order=["peer"], equal_within=25.0)
    (tmp_path / "results" / "who").mkdir()
    others: dict = {}
    text = page.selection_over_time(data, wide, others)
    assert text.count("| equal learners |") == 4
    assert "In 0 of 4 runs the best learner leads the next by a return of 25 or more" in text
    assert others == {}


def test_an_extended_grid_keeps_its_first_reading(page, tmp_path: Path) -> None:  # noqa: ANN001
    runs = tmp_path / "results" / "ext" / "runs"
    for seed in range(5):
        _fake_run(runs, f"room-21-a-s{seed}", seed, {"peer-0": [0, 10 + seed, 10], "peer-1": [0, 10, 10]})
        _fake_run(runs, f"room-21-b-s{seed}", seed, {"peer-0": [0, 1, 1], "peer-1": [0, 1, 1]})
    ex = page.Experiment(key="ext", title="t", intro="", commands=["cmd"], folders=["results/ext/runs"],
                         expected=[f"room-21-{c}-s{s}" for c in "ab" for s in range(5)], order=["a", "b"],
                         claims=[("a", "b", "a beats b")], first_seeds=[0, 1, 2])
    read: list = []
    text = page.section(1, ex, read)
    main, first = text.split("The first reading, seeds 0, 1, 2 only:")
    # the summary at the top of the page carries the main reading, complete grid: not interim
    summary = page.at_a_glance(read)
    assert ("| a beats b | 1 (`ext`), extended after a first look | a vs b | 5 vs 5 | **holds** | 0.004 | 0.004 |"
            in summary)
    assert "Room (§1, extended after a first look)" in page.readme_block(
        [(n, page.Experiment(**{**e.__dict__, "label": "Room"}), c, r) for n, e, c, r in read])
    assert page.EXTENDED_CAVEAT in first  # said beside the first reading
    assert "| a beats b | a vs b | 5 vs 5 |" in main and "**holds**" in main
    assert "| a beats b | a vs b | 3 vs 3 | 1.00 [1.00, 1.00] | 0.050 | **undecided** |" in first


def test_the_summary_adjusts_the_paper_claims_for_their_number(page) -> None:  # noqa: ANN001
    ex = page.Experiment(key="k", title="t", intro="", commands=[], folders=[], expected=[], order=[])
    row = page.ClaimRow
    rows = [row("x beats y", "x vs y", "5 vs 5", "-", "0.008", "holds", 0.008),
            row("(not a claim) code A vs code B", "a vs b", "5 vs 5", "-", "0.004", "holds", 0.004),
            row("x beats z", "x vs z", "5 vs 5", "-", "0.274", "undecided", 0.274),
            row("x beats w", "x vs w", "5 vs 0", "-", "-", "no verdict yet (too few runs)")]
    text = page.at_a_glance([(1, ex, True, rows)])
    # a family of 2: 2 x 0.008, then 0.274; the code comparison and the row without runs are not members
    assert "| x beats y | 1 (`k`) | x vs y | 5 vs 5 | **holds** | 0.008 | 0.016 |" in text
    assert "| x beats z | 1 (`k`) | x vs z | 5 vs 5 | **undecided** | 0.274 | 0.274 |" in text
    assert "| (not a claim) code A vs code B | 1 (`k`) | a vs b | 5 vs 5 | **holds** | 0.004 | - |" in text
    assert "| x beats w | 1 (`k`) | x vs w | 5 vs 0 | no verdict yet (too few runs) | - | - |" in text
    assert "for all 2 (rows in parentheses" in text and "1 of the 2 pass it" in text


def test_each_section_says_where_its_learner_settings_came_from(page, tmp_path: Path) -> None:  # noqa: ANN001
    runs = tmp_path / "results" / "src" / "runs"
    zoo = '[peer-0]\nalgo = "SAC"\nsource = "rl-zoo3"\n[peer-1]\nalgo = "SAC"\nsource = "rl-zoo3"\n'
    for seed in range(3):
        _fake_run(runs, f"room-21-peer-s{seed}", seed, {"peer-0": [0, 1, 1], "peer-1": [0, 1, 1]})
        _fake_run(runs, f"room-21-single-s{seed}", seed, {"peer-0": [0, 1, 1]})
        if seed:  # seed 0 of each: collected before the sweep kept learners.toml
            (runs / f"room-21-peer-s{seed}" / "learners.toml").write_text(zoo)
            # one single-agent run ran where rl-zoo3 was missing: the line shows the mix
            source = "sb3-defaults" if seed == 2 else "rl-zoo3"
            (runs / f"room-21-single-s{seed}" / "learners.toml").write_text(
                f'[peer-0]\nalgo = "SAC"\nsource = "{source}"\n')
    ex = page.Experiment(key="src", title="t", intro="", commands=[], folders=["results/src/runs"], expected=[],
                         order=["peer", "single"])
    line = page.learner_settings_line(ex, page.load(ex))
    assert line == ("Learner settings, as the runs' learners.toml records them (source and algorithm): "
                    "peer: rl-zoo3 (SAC); single: rl-zoo3 (SAC), sb3-defaults (SAC); "
                    "not recorded for 2 runs (collected before the sweep kept it).\n")
    for learners in runs.glob("*/learners.toml"):
        learners.unlink()
    assert page.learner_settings_line(ex, page.load(ex)) == ""  # nothing recorded: nothing said


def test_the_readme_block_is_rewritten_from_the_claims_and_nothing_else(page) -> None:  # noqa: ANN001
    ex = page.Experiment(key="k", title="t", intro="", commands=[], folders=[], expected=[], order=[], label="Room")
    row = page.ClaimRow
    rows = [row("x beats y", "x vs y", "5 vs 5", "0.96 [0.84, 1.00]", "0.008", "holds", 0.008),
            row("(not a claim) code A vs code B", "a vs b", "5 vs 5", "-", "0.004", "holds", 0.004),
            row("(A/B) rate A vs rate B", "a vs b", "5 vs 3", "-", "0.2", "undecided", 0.2)]
    block = page.readme_block([(1, ex, False, rows)])
    assert "| x beats y | Room (§1, interim) | 5 vs 5 | 0.96 [0.84, 1.00] | **holds** | 0.008 |" in block
    assert "code A" not in block and "rate A" not in block  # only the paper's claims
    assert "adjusted for the 1 claim together (Holm), 1 passes" in block
    readme = f"# title\n\nbefore\n{page.README_BEGIN}\nold table\n{page.README_END}\nafter\n"
    updated = page.update_readme(readme, block)
    assert updated.startswith("# title\n\nbefore\n" + page.README_BEGIN)
    assert updated.endswith(page.README_END + "\nafter\n")
    assert "old table" not in updated and "| x beats y |" in updated
    assert page.update_readme("no markers\n", block) == "no markers\n"


def test_what_moves_the_choice_from_the_kept_decision_summaries(page, tmp_path: Path) -> None:  # noqa: ANN001
    runs = tmp_path / "results" / "moves" / "runs"
    even = {(a, b): 0.5 for a in ("peer-0", "peer-1") for b in ("peer-0", "peer-1")}
    _selection_run(runs, "room-21-peer-s0", "peer", [], matrix=even)
    # 4 windows; the last quarter is the last window only (weights: its decisions)
    lines = ["group_step,asker,decisions,spread_critic,spread_trust,spread_agent_values,top_probability"]
    lines += [f"{500 * k},peer-{a},10,0.5,0.9,0.9,0.9" for k in (1, 2, 3) for a in (0, 1)]
    lines += ["2000,peer-0,30,0.002,0.2,0.4,0.6", "2000,peer-1,10,0.006,0.6,0.4,0.8"]
    (runs / "room-21-peer-s0" / "decisions_summary.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "results" / "moves").mkdir(exist_ok=True)
    ex = page.Experiment(key="moves", title="t", intro="", commands=[], folders=["results/moves/runs"], expected=[],
                         order=["peer"])
    text = page.selection_over_time([], ex)
    assert "| room-21-peer-s0 | 0.003 | 0.300 | 0.400 | 0.650 |" in text
    assert "The critic hardly moves the choice" in text


def test_an_adversary_chosen_most_is_not_a_lean_to_the_best_learner(page, tmp_path: Path) -> None:  # noqa: ANN001
    runs = tmp_path / "results" / "adv3" / "runs"
    names = ("peer-0", "peer-1", "peer-2")  # peer-2: the scripted adversary, no evaluations
    to_adversary = {(a, b): 0.6 if b == "peer-2" else 0.2 for a in names for b in names}
    _selection_run(runs, "room-21-adversarial-s0", "peer", [], peers=3, matrix=to_adversary)
    (tmp_path / "results" / "adv3").mkdir(exist_ok=True)
    ex = page.Experiment(key="adv3", title="t", intro="", commands=[], folders=["results/adv3/runs"], expected=[],
                         order=["adversarial"])
    text = page.selection_over_time([_two_learners("room-21-adversarial-s0", (50.0, 80.0))], ex)
    assert "| room-21-adversarial-s0 | peer-0 0.20, peer-1 0.20, peer-2 0.60 | peer-0 50.0, peer-1 80.0 | no |" in text
    assert "random advice makes it" not in text and "self-or-other average above stays" not in text  # 2 learners only


def _reputation_run(runs: Path, name: str, trust_end: tuple[float, float], advantage: bool) -> None:
    """A 2-learner run folder whose group.csv has every column the choice figure reads, trust ending
    at trust_end[0] (in oneself) and trust_end[1] (in the other peer)."""
    d = runs / name
    d.mkdir(parents=True)
    (d / "config.toml").write_text(f'mode = "peer"\npeers = 2\nuse_advantage = {str(advantage).lower()}\n')
    names = ["peer-0", "peer-1"]
    header = ["group_step"] + [f"steps/{a}" for a in names] + [f"agent_value/{b}" for b in names]
    for prefix in ("trust", "trust_norm", "select_prob"):
        header += [f"{prefix}/{a}/{b}" for a in names for b in names]
    rows = []
    for k, step in enumerate((500, 1000)):
        own, other = (200.0, 200.0) if k == 0 else trust_end
        trust = [own if a == b else other for a in names for b in names]
        scale = max(abs(own), abs(other))
        rows.append([step, step, step, 150.0, 140.0, *trust, *(t / scale for t in trust), *([0.5] * 4)])
    (d / "group.csv").write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")


def test_where_trust_ended_and_one_runs_reputations_are_drawn(page, tmp_path: Path) -> None:  # noqa: ANN001
    runs = tmp_path / "results" / "room21-rep" / "runs"
    _reputation_run(runs, "room-21-peer-s0", (-0.04, -0.1), advantage=True)
    (tmp_path / "results" / "room21-rep").mkdir(exist_ok=True)
    ex = page.Experiment(key="room21-rep", title="t", intro="", commands=[], folders=["results/room21-rep/runs"],
                         expected=[], order=["peer"], example_run="room-21-peer-s0")
    text = page.selection_over_time([], ex)
    assert "at each run's last log): room-21-peer-s0 -0.10 to -0.04." in text
    assert "Without the advantage" not in text  # only where a run left it out
    _reputation_run(runs, "room-21-peer-s1", (60.0, 55.0), advantage=False)
    text = page.selection_over_time([], ex)
    assert "room-21-peer-s1 55.00 to 60.00. Without the advantage (use_advantage = false)" in text
    # the section draws its example run's reputations from the committed group.csv, and only that one
    from orchestrator.experiments import choice

    out = tmp_path / "results" / "room21-rep"
    text = choice.one_run([runs], "room-21-peer-s0", out, "../results/room21-rep")
    assert "![what the choice saw](../results/room21-rep/choice_room-21-peer-s0.png)" in text
    assert [p.name for p in out.glob("choice_*.png")] == ["choice_room-21-peer-s0.png"]
    assert choice.one_run([runs], "room-21-peer-s9", out, "x") == ""  # not run yet: nothing drawn


def test_declared_claims_get_holm_over_their_primary_family_and_secondary_apart(page, tmp_path: Path) -> None:  # noqa: ANN001
    """A grid's [claims] (declared before its runs): primary rows carry Holm over that family only, secondary
    rows are shown apart, unadjusted; the onset reading says when a role's share stays above a threshold."""
    (tmp_path / "grid.toml").write_text(
        'seeds = [0]\n[claims]\nprimary = [["trust", "random", "trust beats random"], '
        '["thompson", "random", "thompson beats random"]]\n'
        'secondary = [["trust", "thompson", "trust beats thompson"]]\n')
    runs = tmp_path / "results" / "ch" / "runs"
    for seed in range(5):
        for condition, level in (("trust", 50), ("thompson", 40), ("random", 10)):
            _fake_run(runs, f"room-21-{condition}-s{seed}", seed,
                      {"peer-0": [0, level + seed, level + seed], "peer-1": [0, level, level]})
    ex = page.Experiment(key="ch", title="Choice", intro="", commands=["cmd"], folders=["results/ch/runs"],
                         expected=[], order=["trust", "thompson", "random"], grid="grid.toml",
                         onset=("adversary", 0.4, True, "above 0.4"))
    read: list = []
    text = page.section(1, ex, read)
    # 5 vs 5, complete separation: p = 1/252 = 0.004 each; Holm over 2 gives 0.008 for both
    row = "| trust beats random | trust vs random | 5 vs 5 | 1.00 [1.00, 1.00] | 0.004 | 0.008 | **holds** | **yes** |"
    assert (row
            in text)
    assert "**Secondary claims**" in text and "| trust beats thompson | trust vs thompson |" in text
    assert [r.family for r in read[0][3]] == ["primary", "primary", "secondary"]
    glance = page.at_a_glance(read)
    assert "trust beats random" in glance and "trust beats thompson" not in glance
    assert "| 0.004 | 0.008 |" in glance  # the grid's own Holm, not the page's paper family
    # the fake runs' adversary took 0.5 of the actions in the first window, 0 in the last: never above 0.4 to the end
    assert "| room-21-trust-s0 | 0.500 | 0.000 | never |" in text
    block = page.choice_block(read)
    assert "| trust beats random | ch (§1) | 5 vs 5 | 1.00 [1.00, 1.00] | **holds** | 0.008 |" in block


def test_a_declared_claim_can_be_about_one_learner(page, tmp_path: Path) -> None:  # noqa: ANN001
    """[X, Y, text, peer]: the claim reads that learner's paper metric, not the run's average."""
    (tmp_path / "grid.toml").write_text(
        'seeds = [0]\n[claims]\nprimary = [["a", "b", "peer-0 gains", "peer-0"], ["a", "b", "the group gains"]]\n')
    runs = tmp_path / "results" / "mix" / "runs"
    for seed in range(5):  # peer-0 is better under a, peer-1 much better under b: the two readings disagree
        _fake_run(runs, f"room-21-a-s{seed}", seed, {"peer-0": [0, 20 + seed, 20], "peer-1": [0, 0, 0]})
        _fake_run(runs, f"room-21-b-s{seed}", seed, {"peer-0": [0, 10 + seed, 10], "peer-1": [0, 90, 90]})
    ex = page.Experiment(key="mix", title="t", intro="", commands=[], folders=["results/mix/runs"], expected=[],
                         order=["a", "b"], grid="grid.toml")
    rows = page.declared_rows(ex, page.load(ex))
    assert (rows[0].text, rows[0].improvement, rows[0].verdict) == ("peer-0 gains", "1.00 [1.00, 1.00]", "holds")
    assert (rows[1].text, rows[1].improvement, rows[1].verdict) == ("the group gains", "0.00 [0.00, 0.00]",
                                                                    "does not hold")
