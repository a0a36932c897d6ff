"""`peerlearn sweep`: a tiny grid (2 conditions x 2 seeds) end to end, resumable, then `peerlearn report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.experiments.sweep import grid_from_dict, run_grid

pytestmark = pytest.mark.timeout(240)

GRID = """
out = "{out}"
tasks = ["room-3"]
seeds = [0, 1]

[base]
peers = 2
steps = 60
eval_every = 30
log_every = 10
checkpoint_every = 0
learner = {{learning_starts = 20, net_arch = [16], batch_size = 8, gradient_steps = 1}}

[conditions.peer]
mode = "peer"

[conditions.single]
mode = "single"
peers = 1
"""


def test_grid_names_order_and_overrides(tmp_path: Path) -> None:
    import tomllib

    grid = grid_from_dict(tomllib.loads(GRID.format(out=tmp_path)))
    configs = grid.configs()
    assert [c.name for c in configs] == [
        "room-3-peer-s0",
        "room-3-single-s0",
        "room-3-peer-s1",
        "room-3-single-s1",
    ]
    assert [c.peers for c in configs] == [2, 1, 2, 1] and {c.transport for c in configs} == {"inproc"}
    assert (
        configs[1].mode == "single" and configs[2].seed == 1 and configs[0].learner["learning_starts"] == 20
    )
    with pytest.raises(ValueError, match="unknown grid keys"):
        grid_from_dict({"sedes": [0]})


def test_modes_pick_conditions_of_a_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--modes with a grid runs only the named conditions (in the grid's order); a name the grid does
    not have is a user error (exit 2, one line naming the grid's conditions)."""
    from peerlearn.cli import main

    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(GRID.format(out=tmp_path / "sweep"))
    assert main(["sweep", "--grid", str(grid_file), "--modes", "single", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[1].rsplit("/", 1)[1] for line in listed] == ["room-3-single-s0", "room-3-single-s1"]
    assert main(["sweep", "--grid", str(grid_file), "--modes", "single,random", "--list"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "modes: expected conditions of" in err[0] and "(peer, single), got 'random'" in err[0]


def test_tiny_sweep_end_to_end_resumes_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    grid_file = tmp_path / "grid.toml"
    grid_file.write_text(GRID.format(out=out))
    cmd = [sys.executable, "-m", "peerlearn.cli", "sweep", "--grid", str(grid_file), "--jobs", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=200, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "4 runs: 4 ran, 0 already finished, 0 failed" in proc.stdout
    names = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert names == ["room-3-peer-s0", "room-3-peer-s1", "room-3-single-s0", "room-3-single-s1"]
    assert json.loads((out / "room-3-peer-s1" / "summary.json").read_text())["group_steps"] == 60

    # resumable: a finished run (summary.json) is skipped; one cut off before its first checkpoint is
    # redone from scratch (a cut-off run with a checkpoint continues: the test below)
    (out / "room-3-single-s1" / "summary.json").unlink()
    __import__("shutil").rmtree(out / "room-3-single-s1" / "checkpoints")
    (out / "room-3-single-s1" / "stale-file").write_text("x")
    grid = grid_from_dict(__import__("tomllib").loads(GRID.format(out=out)))
    outcome = run_grid(grid.configs(), jobs=2, progress=False)
    assert outcome == {
        "room-3-peer-s0": "skipped",
        "room-3-single-s0": "skipped",
        "room-3-peer-s1": "skipped",
        "room-3-single-s1": "ok",
    }
    assert (
        not (out / "room-3-single-s1" / "stale-file").exists() and not (out / "room-3-single-s1-2").exists()
    )

    rep = subprocess.run(
        [
            sys.executable,
            "-m",
            "peerlearn.cli",
            "report",
            str(out),
            "--out",
            str(tmp_path / "rep"),
            "--reps",
            "200",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert (
        "| room-3 | peer | 2 (0,1) | 60 |" in rep.stdout
        and "| room-3 | single | 2 (0,1) | 60 |" in rep.stdout
    )
    for f in ["report.md", "summary.csv", "curves.csv", "follow.csv", "learning_curves.png"]:
        assert (tmp_path / "rep" / f).exists(), f


def test_a_cut_off_run_continues_from_its_checkpoint_and_results_are_collected(tmp_path: Path) -> None:
    """A run killed after a checkpoint is continued from it (not redone); every finished run's CSVs are
    copied to RESULTS/runs/<name>/, which report reads as it reads the run."""
    import csv
    import tomllib

    from orchestrator.experiments.rundata import load_run
    from orchestrator.experiments.sweep import checkpointed_step

    out, results = tmp_path / "sweep", tmp_path / "results"
    data = tomllib.loads(GRID.format(out=out))
    data["seeds"], data["conditions"] = [0], {"peer": {"mode": "peer"}}
    data["base"] |= {"checkpoint_every": 20}
    # The session that was cut off: it had reached its checkpoint at group step 40 of 60.
    short = grid_from_dict({**data, "base": {**data["base"], "steps": 40}}).configs()
    assert run_grid(short, progress=False) == {"room-3-peer-s0": "ok"}
    run_dir = out / "room-3-peer-s0"
    (run_dir / "summary.json").unlink()
    assert checkpointed_step(run_dir) == 40

    outcome = run_grid(grid_from_dict(data).configs(), progress=False, results=str(results))
    assert outcome == {"room-3-peer-s0": "ok"}
    assert json.loads((run_dir / "summary.json").read_text())["group_steps"] == 60
    with (run_dir / "group.csv").open() as f:
        steps = [int(r["group_step"]) for r in csv.DictReader(f)]
    assert steps == list(range(10, 61, 10))  # the first 40 steps kept, not redone, none twice
    evals = (run_dir / "peers" / "peer-0" / "evaluations.csv").read_text().splitlines()
    # 40: the closing evaluation of the short run stands in for the cut-off session's last point
    assert [line.split(",")[0] for line in evals[1:]] == ["0", "30", "40", "60"]

    kept = results / "runs" / "room-3-peer-s0"
    assert sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file()) == [
        "config.toml", "decisions_summary.csv", "group.csv", "learners.toml", "peers/peer-0/evaluations.csv",
        "peers/peer-1/evaluations.csv", "summary.json"]
    assert 'out = "runs/sweep"' in (kept / "config.toml").read_text()  # no path of this machine in the result
    loaded = load_run(kept)
    assert loaded is not None and loaded.avg_return() == load_run(run_dir).avg_return()


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="kernel without autogroup scheduling")
def test_nice_workers_are_nice_against_other_sessions() -> None:
    """Under autogroup scheduling niceness counts only inside a session: a --nice worker (its own
    session) gets its session's autogroup niceness too, or it would take a full share of the CPU."""
    from orchestrator.experiments.sweep import nice_session

    proc = subprocess.run(["cat", "/proc/self/autogroup"], start_new_session=True, capture_output=True, text=True,
                          preexec_fn=lambda: nice_session(7), timeout=10)
    assert proc.stdout.strip().endswith("nice 7"), proc.stdout


def test_a_run_another_sweep_holds_is_left_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two sweeps on one grid: a run the other holds is neither resumed twice nor deleted (a run cut off
    before its first checkpoint would otherwise be started again from an empty folder); --list names the
    holder; once the holder is gone (its lock dies with it) the run is taken."""
    from orchestrator.experiments.sweep import hold_run
    from peerlearn.cli import main

    out = tmp_path / "sweep"
    grid = tmp_path / "grid.toml"
    text = GRID.format(out=out).replace("seeds = [0, 1]", "seeds = [0]").replace("steps = 60", "steps = 30")
    grid.write_text(text.split("[conditions.single]")[0])
    live = out / "room-3-peer-s0"
    (live / "peers").mkdir(parents=True)
    (live / "peers" / "marker").write_text("the other sweep's run")
    # the other sweep: a child process holding the run's lock, as a sweep and its worker do
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from orchestrator.experiments.sweep import hold_run; "
         f"assert isinstance(hold_run(Path({str(out)!r}), 'room-3-peer-s0'), int); print('held', flush=True); "
         "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert main(["sweep", "--grid", str(grid)]) == 0
        printed = capsys.readouterr().out
        assert "1 left to another sweep" in printed and f"held by another sweep (pid {holder.pid})" in printed
        assert (live / "peers" / "marker").exists() and not (live / "summary.json").exists()
        main(["sweep", "--grid", str(grid), "--list"])
        assert f"running (pid {holder.pid})" in capsys.readouterr().out
        assert hold_run(out, "room-3-peer-s0") == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
    assert main(["sweep", "--grid", str(grid)]) == 0
    assert (live / "summary.json").exists() and "1 ran" in capsys.readouterr().out
