"""Users' own problems: any Gymnasium task (a user's env by `module:EnvId`, CartPole-v1, Pendulum-v1),
hyper-parameters for tasks the paper did not use, and groups that mix algorithms."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.config import RunConfig
from orchestrator.running.run import run_group

pytestmark = pytest.mark.timeout(300)

CORRIDOR = "tests.user_envs.corridor:Corridor-v0"


def _run(tmp_path: Path, name: str, **kw) -> dict:  # type: ignore[no-untyped-def]
    config = RunConfig(out=str(tmp_path), name=name, progress=False, status_port=-1, **kw)
    summary = asyncio.run(run_group(config))
    return json.loads((summary.run_dir / "summary.json").read_text())


def test_a_users_own_env_trains_as_a_group(tmp_path: Path) -> None:
    """An env defined outside peerlearn, named by module:EnvId, with SB3's default DQN settings (a few
    overridden for a short run): both peers learn to walk the corridor (optimum 0.94; the untrained
    greedy policy mostly stands at the wall, -0.4)."""
    summary = _run(tmp_path, "corridor", task=CORRIDOR, peers=2, steps=3000, eval_every=1000, transport="inproc",
                   learner={"learning_starts": 100, "target_update_interval": 100, "learning_rate": 1e-3,
                            "exploration_fraction": 0.5, "train_freq": 1})
    finals = summary["final_eval"]
    assert len(finals) == 2 and min(finals.values()) > 0.9, finals


def test_a_users_env_in_the_working_directory_is_found_as_python_finds_it(tmp_path: Path) -> None:
    """`peerlearn run --task mytask:LineWalk-v0` in the folder that holds mytask.py, as `python -c "import
    mytask"` finds it there: the run and its peer processes import it (the console script did not look in
    the working directory: "No module named 'mytask'"), and the run folder is named without the colon."""
    script = Path(sys.executable).with_name("peerlearn")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable} (peerlearn not installed)")
    source = (Path(__file__).parent / "user_envs" / "corridor.py").read_text()
    (tmp_path / "mytask.py").write_text(source.replace("Corridor-v0", "LineWalk-v0"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEERLEARN_") and k != "PYTHONPATH"}
    proc = subprocess.run([str(script), "run", "--task", "mytask:LineWalk-v0", "--peers", "2", "--steps", "30",
                           "--eval-every", "30", "--eval-episodes", "1", "--checkpoint-every", "0", "--no-progress",
                           "--status-port", "-1"], capture_output=True, text=True, timeout=240, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run] = list((tmp_path / "runs").iterdir())
    assert run.name.startswith("LineWalk-v0-peer-s0-"), run.name
    assert len(json.loads((run / "summary.json").read_text())["final_eval"]) == 2


def test_cartpole_group_over_grpc_with_a_wrapper_and_its_resolved_settings(tmp_path: Path) -> None:
    """A discrete Gymnasium task the paper did not use, every peer its own gRPC server process; a wrapper
    named in config reaches the forked peers (TimeLimit: no episode longer than 30 steps), every learner
    setting that was used is written to learners.toml (rl-zoo3's tuned values, with no extra installed),
    and the line printed at start says where they came from and how to change them."""
    import tomllib

    from orchestrator.running.learners import start_lines

    summary = _run(tmp_path, "cartpole", task="CartPole-v1", peers=2, steps=300, eval_every=300, eval_episodes=2,
                   learner={"learning_starts": 100}, wrappers=["TimeLimit:max_episode_steps=30"])
    assert summary["group_steps"] == 300 and len(summary["final_eval"]) == 2
    assert not summary["errors"], summary["errors"]
    lengths = [int(line.split(",")[1]) for line in
               (tmp_path / "cartpole" / "peers" / "peer-0" / "monitor.csv").read_text().splitlines()[2:]]
    assert lengths and max(lengths) <= 30
    learners = tomllib.loads((tmp_path / "cartpole" / "learners.toml").read_text())
    assert set(learners) == {"peer-0", "peer-1"}
    peer0 = learners["peer-0"]
    assert peer0["algo"] == "DQN" and peer0["learning_starts"] == 100  # the run's override
    assert peer0["source"] == "rl-zoo3" and peer0["batch_size"] == 64 and peer0["train_freq"] == 256
    assert peer0["max_grad_norm"] == 10 and peer0["policy_kwargs"] == {"net_arch": [256, 256]}  # SB3's, rl-zoo3's
    assert peer0["notes"] == ["tuned for 50000 steps (n_timesteps; a run's budget is its own steps)"]
    config = RunConfig(task="CartPole-v1", peers=2, steps=300, learner={"learning_starts": 100})
    lines = start_lines(learners, config, tmp_path / "cartpole")
    assert lines[0].startswith("learners: peer-0, peer-1: DQN, rl-zoo3's tuned settings for CartPole-v1 (rl-zoo3 "
                               "2.9.2, shipped with peerlearn), with your learning_starts. Every value: ")
    assert "--learner '{" in lines[0] and len(lines) == 2 and "tuned for 50000 steps" in lines[1], lines


def test_pendulum_sac_group_over_grpc(tmp_path: Path) -> None:
    """A continuous Gymnasium task the paper did not use, over gRPC (SAC chosen for the Box actions)."""
    summary = _run(tmp_path, "pendulum", task="Pendulum-v1", peers=2, steps=200, eval_every=200, eval_episodes=1,
                   learner={"learning_starts": 100, "batch_size": 32, "net_arch": [32, 32]})
    assert summary["group_steps"] == 200 and len(summary["final_eval"]) == 2 and not summary["errors"]


def test_mixed_sac_td3_group_on_pendulum(tmp_path: Path) -> None:
    """The authors' --mix-agents: a SAC and a TD3 peer in one group, each scoring suggestions with its
    own critic (Evaluate's values: the min of SAC's twin critics, TD3's first critic)."""
    summary = _run(tmp_path, "mixed", task="Pendulum-v1", peers=2, steps=300, eval_every=300, eval_episodes=1,
                   transport="inproc", algos=["SAC", "TD3"],
                   learner={"learning_starts": 100, "batch_size": 32, "net_arch": [32, 32]})
    assert summary["group_steps"] == 300 and len(summary["final_eval"]) == 2
    versions = json.loads((tmp_path / "mixed" / "versions.json").read_text())
    assert [p["implementation"] for p in versions["peers"]] == ["sb3.SAC", "sb3.TD3"]
