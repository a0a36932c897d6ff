"""`peerlearn report`: statistics on small hand-computed inputs, reading runs, the CSV round trip."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from orchestrator.experiments.report import markdown_table, report
from orchestrator.experiments.rundata import RunData, condition_label, group_runs, load_run, read_csvs, write_csvs
from orchestrator.experiments.stats import area_under_curve, follow_rates, iqm, mean_std, stratified_bootstrap_ci

pytestmark = pytest.mark.timeout(60)


def test_iqm_is_the_25_percent_trimmed_mean() -> None:
    assert iqm(np.array([1.0, 2, 3, 4])) == 2.5  # drop 1 and 4
    assert iqm(np.array([8.0, 1, 7, 2, 6, 3, 5, 4])) == 4.5  # drop 1,2 and 7,8: mean(3,4,5,6)
    assert iqm(np.array([1.0, 2, 3, 100, 5])) == pytest.approx(10 / 3)  # int(1.25)=1 cut: mean(2,3,5)
    assert iqm(np.array([[1.0, 2], [3, 4]])) == 2.5  # all runs x tasks entries together
    assert iqm(np.array([7.0])) == 7.0 and iqm(np.array([1.0, 3])) == 2.0  # too few to trim
    assert math.isnan(iqm(np.array([])))


def test_bootstrap_ci_hand_computed_cases() -> None:
    # Constant scores: every resample is the same.
    assert stratified_bootstrap_ci(np.full(5, 3.0)) == (3.0, 3.0)
    # Two runs {0, 1}: resampled means are 0 (p 1/4), 0.5 (p 1/2), 1 (p 1/4): the 95% interval is [0, 1].
    assert stratified_bootstrap_ci(np.array([0.0, 1.0]), reps=4000) == (0.0, 1.0)
    # ... while an 80% interval only spans [0, 1] too, a 40% one is [0.5, 0.5].
    assert stratified_bootstrap_ci(np.array([0.0, 1.0]), reps=4000, size=0.4) == (0.5, 0.5)


def test_bootstrap_is_stratified_by_task() -> None:
    # Task 0 always scores 0, task 1 always 10, 3 runs each: a stratified resample keeps 3 scores of
    # each task, so the IQM of the 6 scores is always mean(0, 0, 10, 10) = 5. Pooled resampling would not.
    scores = np.array([[0.0, 10.0]] * 3)
    assert stratified_bootstrap_ci(scores, reps=500) == (5.0, 5.0)


def test_bootstrap_ci_is_deterministic_and_covers_the_point_estimate() -> None:
    x = np.array([1.0, 5, 2, 8, 3, 9, 4])
    a, b = stratified_bootstrap_ci(x), stratified_bootstrap_ci(x)
    assert a == b and a[0] <= iqm(x) <= a[1]


def test_paper_metric_and_mean_std() -> None:
    # the step-0 evaluation (the untrained network) is a point of the curve, not of the metric
    assert area_under_curve(np.array([0.0, 10, 20]), np.array([0.0, 2, 4])) == 3.0
    assert area_under_curve(np.array([1.0, 10]), np.array([5.0, 7]), first_trained_step=2) == 7.0
    assert np.isnan(area_under_curve(np.array([0.0]), np.array([5.0])))
    assert mean_std(np.array([1.0, 2, 3])) == (2.0, 1.0)
    assert mean_std(np.array([4.0])) == (4.0, 0.0)
    run = RunData(
        "r",
        "room-21",
        "peer",
        0,
        2,
        100,
        curves={
            "a": (np.array([0.0, 50, 100]), np.array([0.0, 2, 4])),
            "b": (np.array([0.0, 50, 100]), np.array([1.0, 1, 1])),
        },
    )
    assert run.avg_return() == 2.0 and run.final_return() == 2.5  # (3 + 1) / 2 without step 0, (4 + 1) / 2
    steps, curve = run.curve()
    assert steps.tolist() == [0, 50, 100] and curve.tolist() == [0.5, 1.5, 2.5]


def test_follow_rates_from_cumulative_counts() -> None:
    t = np.array([10, 20, 30, 40])
    counts = np.array([[5, 5, 0], [5, 15, 0], [5, 15, 10], [10, 15, 15]])  # cumulative, per followed peer
    ends, rates = follow_rates(t, counts, windows=2)
    assert ends.tolist() == [20, 40]
    assert rates.tolist() == [[0.25, 0.75, 0.0], [0.25, 0.0, 0.75]]
    ends, rates = follow_rates(t, counts, windows=10)  # more windows than rows: one per row
    assert ends.tolist() == [10, 20, 30, 40] and rates[1].tolist() == [0.0, 1.0, 0.0]


def test_condition_label_from_sweep_name_or_config() -> None:
    assert condition_label("room-21-peer-s3", "room-21", 3, {}) == "peer"
    assert condition_label("room-21-CT_noadv-s0", "room-21", 0, {}) == "CT_noadv"
    cfg = {
        "mode": "peer",
        "use_trust": False,
        "use_advantage": False,
        "peers": 3,
        "roles": ["learner", "learner", "adversary"],
    }
    assert condition_label("my-run", "room-21", 0, cfg) == "peer-CV-noadv-N3-adversary"


def _fake_run(root: Path, name: str, seed: int, returns: dict[str, list[float]]) -> Path:
    d = root / name
    (d / "peers").mkdir(parents=True)
    (d / "config.toml").write_text(
        f'task = "room-21"\nseed = {seed}\npeers = 3\nsteps = 200\nmode = "peer"\n'
        'roles = ["learner", "learner", "adversary"]\n'
    )
    for peer, rs in returns.items():
        (d / "peers" / peer).mkdir()
        lines = ["step,time,mean_return,std_return,episodes,exact,returns"]
        lines += [f"{100 * k},0,{r},0,1,1,{r}" for k, r in enumerate(rs)]
        (d / "peers" / peer / "evaluations.csv").write_text("\n".join(lines) + "\n")
    (d / "peers" / "peer-2").mkdir()  # the adversary: no evaluations
    (d / "summary.json").write_text("{}")  # finished
    names = ["peer-0", "peer-1", "peer-2"]
    header = ["group_step", "time", "sps"] + [f"follow/{a}/{b}" for a in names for b in names]
    rows = [[100, 0, 0, 40, 0, 40, 0, 40, 40, 0, 0, 0], [200, 0, 0, 90, 0, 40, 0, 90, 40, 0, 0, 0]]
    (d / "group.csv").write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return d


def test_load_runs_table_and_csv_round_trip(tmp_path: Path) -> None:
    runs_root = tmp_path / "runs"
    _fake_run(runs_root, "room-21-adv-s0", 0, {"peer-0": [0, 10, 20], "peer-1": [0, 0, 30]})
    _fake_run(runs_root, "room-21-adv-s1", 1, {"peer-0": [0, 20, 40], "peer-1": [0, 10, 20]})
    unfinished = _fake_run(runs_root, "room-21-adv-s2", 2, {"peer-0": [0, 1]})
    (unfinished / "summary.json").unlink()
    assert load_run(unfinished) is None and load_run(unfinished, unfinished=True) is not None
    runs = [r for r in (load_run(p) for p in sorted(runs_root.iterdir())) if r is not None]
    assert [r.condition for r in runs] == ["adv", "adv"] and runs[0].learners == ["peer-0", "peer-1"]
    assert runs[0].avg_return() == 15.0 and runs[1].avg_return() == 22.5  # step-0 points left out
    assert runs[0].roles["peer-2"] == "adversary"
    assert runs[0].advice_share == 80 / 260  # the adversary's 40 + 40 of 260 executed actions
    # first window: 160 executed actions, 40 own by each learner, 40 + 40 from the adversary;
    # second window: 100 more, 50 own each, none from the adversary
    first = {b: x for t, b, x in runs[0].follow if t == 100}
    assert first == {"peer-0": 0.25, "peer-1": 0.25, "peer-2": 0.5}
    last = {b: x for t, b, x in runs[0].follow if t == 200}
    assert last == {"peer-0": 0.5, "peer-1": 0.5, "peer-2": 0.0}

    table = markdown_table(group_runs(runs), reps=200)
    assert "| room-21 | adv | 2 (0,1) | 200 | 18.75 ± 5.30 (28%) |" in table
    write_csvs(runs, tmp_path / "csv")
    again = read_csvs(tmp_path / "csv")
    assert again[0].advice_share == pytest.approx(80 / 260, rel=1e-3)
    assert markdown_table(group_runs(again), reps=200) == table
    text = report(again, tmp_path / "out", title="t", reps=200)
    assert "peer-2 (adversary) | 0.500 | 0.000 | 0.000 |" in text
    assert (tmp_path / "out" / "learning_curves.png").exists() and (tmp_path / "out" / "follow_rates.png").exists()


def test_probability_of_improvement_and_verdict() -> None:
    from orchestrator.experiments.stats import improvement_ci, probability_of_improvement, verdict

    # 9 pairs: 3 beats 1; 5 beats 1 and ties 5; 7 beats 1 and 5 -> 4 wins, 1 tie, 4 losses
    assert probability_of_improvement(np.array([3.0, 5, 7]), np.array([1.0, 5, 8])) == 4.5 / 9
    assert probability_of_improvement(np.array([3.0, 6, 7]), np.array([1.0, 5, 8])) == 5 / 9
    assert math.isnan(probability_of_improvement(np.array([2.0]), np.array([])))
    far_apart = (np.array([10.0, 11, 12, 13, 14]), np.array([0.0, 1, 2, 3, 4]))
    assert improvement_ci(*far_apart, reps=500) == (1.0, 1.0)
    assert verdict(*far_apart, reps=500) == "holds"
    assert verdict(far_apart[1], far_apart[0], reps=500) == "does not hold"
    mixed = (np.array([1.0, 4, 2, 5, 3]), np.array([2.0, 3, 4, 1, 5]))
    assert verdict(*mixed, reps=500) == "undecided"
    lo, hi = improvement_ci(*mixed, reps=500)
    assert lo <= probability_of_improvement(*mixed) <= hi
    # few runs decide nothing, however clear they look: 3 vs 3 all wins has p = 1/20
    from orchestrator.experiments.stats import rank_sum_p

    assert rank_sum_p(np.array([4.0, 5, 6]), np.array([1.0, 2, 3])) == 1 / 20
    assert verdict(np.array([4.0, 5, 6]), np.array([1.0, 2, 3]), reps=500) == "undecided"
    assert verdict(np.array([5.0, 6, 7, 8]), np.array([1.0, 2, 3, 4]), reps=500) == "holds"  # p = 1/70
    # the smallest sizes that can decide, as docs/results.md states them: 3 vs 4 (1/35), 5 vs 2 (1/21)
    assert verdict(np.array([5.0, 6, 7]), np.array([1.0, 2, 3, 4]), reps=500) == "holds"
    assert rank_sum_p(np.array([3.0, 4, 5, 6, 7]), np.array([1.0, 2])) == 1 / 21
    assert verdict(np.array([3.0, 4, 5, 6, 7]), np.array([1.0, 2]), reps=500) == "holds"


def test_holm_adjustment_by_hand() -> None:
    from orchestrator.experiments.stats import holm

    # family of 4 (the NaN is not a member): 4 x 0.005, 3 x 0.01, 2 x 0.03, then 0.04 raised to 0.06
    adjusted = holm([0.01, 0.04, 0.03, math.nan, 0.005])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06]) and adjusted[4] == pytest.approx(0.02)
    assert math.isnan(adjusted[3])
    assert holm([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm([]) == []


def test_decision_log_summary_per_window_and_asker(tmp_path: Path) -> None:
    """decisions_summary.csv: per window of log_every group steps and asker, the mean spread of each
    normalised component over a decision's candidates and the mean top probability, by hand."""
    from orchestrator.experiments.decisions import read_summary, summarise, write_summary

    run = tmp_path / "run"
    run.mkdir()
    (run / "config.toml").write_text("log_every = 10\n")
    header = "group_step,peer,candidate,critic,trust,agent_values,probability,followed\n"
    rows = [  # two decisions of peer-0 in window 10, one of peer-1; one decision in window 20 with trust off
        "1,peer-0,peer-0,1,1,0.5,0.6,1", "1,peer-0,peer-1,0.9,0.5,1,0.4,0",
        "1,peer-1,peer-0,1,1,1,0.5,0", "1,peer-1,peer-1,1,1,1,0.5,1",
        "10,peer-0,peer-0,1,1,1,0.3,0", "10,peer-0,peer-1,0.7,0.9,1,0.7,1",
        "11,peer-0,peer-0,-1,,1,0.8,1", "11,peer-0,peer-1,1,,1,0.2,0",
    ]
    (run / "decisions.csv").write_text(header + "\n".join(rows) + "\n")
    summary = summarise(run / "decisions.csv", window=10)
    assert [(r["group_step"], r["asker"], r["decisions"]) for r in summary] == [
        ("10", "peer-0", "2"), ("10", "peer-1", "1"), ("20", "peer-0", "1")]
    first = summary[0]
    assert float(first["spread_critic"]) == pytest.approx((0.1 + 0.3) / 2)
    assert float(first["spread_trust"]) == pytest.approx((0.5 + 0.1) / 2)
    assert float(first["spread_agent_values"]) == pytest.approx(0.5 / 2)
    assert float(first["top_probability"]) == pytest.approx((0.6 + 0.7) / 2)
    assert summary[2]["spread_trust"] == "" and float(summary[2]["spread_critic"]) == 2.0  # trust off: empty
    assert write_summary(run, tmp_path / "kept") and read_summary(tmp_path / "kept") == summary
    assert not write_summary(tmp_path / "kept", tmp_path / "none")  # no decisions.csv (a single agent)


def test_runs_of_other_settings_are_not_pooled_and_a_repeated_seed_is_refused(tmp_path: Path) -> None:
    """Two `peerlearn run`s with seed 0 and other steps got the same config-made condition and were
    pooled as "2 (0,0)". Now each setting is its own row; one setting with its seed twice is refused."""
    import argparse

    from orchestrator.experiments.report import main
    from peerlearn.settings import UserError

    def made(name: str, steps: int, temperature: float = 1.0) -> None:
        d = _fake_run(tmp_path / "runs", name, 0, {"peer-0": [0, 10, 20], "peer-1": [0, 0, 30]})
        text = (d / "config.toml").read_text().replace("steps = 200", f"steps = {steps}")
        (d / "config.toml").write_text(text + f"temperature = {temperature}\nprogress = {name[-1] == '0'}\n".lower())

    made("room-21-peer-s0-20260101-000000", 200)
    made("room-21-peer-s0-20260101-000100", 400, temperature=0.5)
    args = argparse.Namespace(runs=[str(tmp_path / "runs")], out=str(tmp_path / "report"), from_csv=None,
                              order=None, title="", no_plots=True, reps=50, unfinished=False)
    assert main(args) == 0
    table = (tmp_path / "report" / "report.md").read_text()
    assert "| peer-CTV-N3-adversary (steps=200, temperature=1.0) | 1 (0) | 200 |" in table, table
    assert "| peer-CTV-N3-adversary (steps=400, temperature=0.5) | 1 (0) | 400 |" in table, table
    assert "(0,0)" not in table
    made("room-21-peer-s0-20260101-000200", 200)  # the first run's setting and seed again
    with pytest.raises(UserError, match=r"room-21-peer-s0-20260101-000000 and room-21-peer-s0-20260101-000200 "
                                        r"are both room-21 / peer-CTV-N3-adversary \(steps=200, temperature=1.0\) "
                                        r"with seed 0: the same experiment twice"):
        main(args)
