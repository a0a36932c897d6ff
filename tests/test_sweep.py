"""`peerlearn sweep`: a tiny grid (2 conditions x 2 seeds) end to end, resumable, then `peerlearn report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.sweep import grid_from_dict, run_grid

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

    # resumable: a finished run (summary.json) is skipped; an unfinished one is redone from scratch
    (out / "room-3-single-s1" / "summary.json").unlink()
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
