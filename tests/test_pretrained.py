"""Pretrained SB3 zips as peers (peer_service/pretrained.py): detected and loaded with their own class,
continued as learners (off-policy) or kept as frozen advisers whose suggestions are the model's own."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN, PPO

from peer_service.learner import SB3Learner
from peer_service.pretrained import FrozenAdviser, detect_algorithm, is_off_policy, load_model


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    th.set_num_threads(1)
    root = tmp_path_factory.mktemp("zips")
    dqn = DQN("MlpPolicy", gym.make("CartPole-v1"), learning_starts=50, policy_kwargs={"net_arch": [16]}, seed=0)
    dqn.learn(200)
    dqn.save(root / "dqn.zip")
    ppo = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64, batch_size=32, policy_kwargs={"net_arch": [16]}, seed=0)
    ppo.learn(64)
    ppo.save(root / "ppo.zip")
    return {"dqn": root / "dqn.zip", "ppo": root / "ppo.zip"}


def test_algorithm_is_read_from_the_zip_or_must_be_named(zips: dict[str, Path]) -> None:
    assert detect_algorithm(zips["dqn"]) == "DQN"
    assert detect_algorithm(zips["ppo"]) is None  # PPO and A2C save the same policy class
    with pytest.raises(ValueError, match="name it"):
        load_model(zips["ppo"])
    assert type(load_model(zips["ppo"], "PPO")).__name__ == "PPO"
    with pytest.raises(ValueError, match="no such file"):
        load_model(zips["dqn"].with_name("missing.zip"))


def test_a_frozen_adviser_suggests_the_models_own_actions(zips: dict[str, Path]) -> None:
    model = load_model(zips["ppo"], "PPO")
    adviser = FrozenAdviser(model)
    states = np.stack([gym.make("CartPole-v1").observation_space.sample() for _ in range(6)]).astype(np.float32)
    expected, _ = model.predict(states, deterministic=True)
    np.testing.assert_array_equal(adviser.suggest(states, deterministic=True), expected)
    assert not is_off_policy(model) and adviser.suggest(states, deterministic=False).shape == (6,)


def test_a_pretrained_off_policy_model_continues_as_a_learner(zips: dict[str, Path]) -> None:
    env = gym.make("CartPole-v1")
    model = load_model(zips["dqn"], env=env)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    learner = SB3Learner.from_model(model, env, total_steps=500)
    states = np.stack([env.observation_space.sample() for _ in range(4)]).astype(np.float32)
    greedy, _ = model.predict(states, deterministic=True)
    np.testing.assert_array_equal(learner.suggest(states, deterministic=True), greedy)  # its own weights
    assert learner.preset.source == "pretrained" and learner.num_timesteps == 0 and learner.in_warmup
    obs, _ = env.reset(seed=0)
    for _ in range(120):  # warm-up (learning_starts 50), then training windows
        action = learner.behaviour_action(obs)
        nxt, r, term, trunc, _ = env.step(int(action))
        learner.store(obs, action, float(r), nxt, term, trunc)
        obs = env.reset()[0] if term or trunc else nxt
    assert model._n_updates > 0
    assert any(not th.equal(before[k], v) for k, v in model.policy.state_dict().items())  # it went on learning


def test_a_run_with_a_pretrained_adviser_and_a_pretrained_learner(zips: dict[str, Path], tmp_path: Path) -> None:
    """`pretrained` and `roles` per peer, as a user gives them in TOML or flags: the DQN zip learns on,
    the PPO zip (algorithm named in algos) only advises and is followed."""
    import asyncio
    import json

    from orchestrator.config import RunConfig
    from orchestrator.running.run import run_group

    config = RunConfig(task="CartPole-v1", peers=2, steps=300, eval_every=300, eval_episodes=1,
                       roles=["learner", "adviser"], algos=["", "PPO"],
                       pretrained=[str(zips["dqn"]), str(zips["ppo"])], out=str(tmp_path), name="pre",
                       progress=False, status_port=-1).validate()
    run_dir = asyncio.run(run_group(config)).run_dir
    versions = json.loads((run_dir / "versions.json").read_text())
    assert [p["implementation"] for p in versions["peers"]] == ["sb3.DQN", "sb3.PPO.frozen"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert list(summary["final_eval"]) == ["peer-0"] and not summary["errors"]
    last = (run_dir / "group.csv").read_text().splitlines()
    header, row = last[0].split(","), last[-1].split(",")
    assert int(row[header.index("follow/peer-0/peer-1")]) > 0  # the frozen adviser was followed


def test_a_model_of_another_task_is_refused_in_one_line(zips: dict[str, Path], tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """A CartPole model offered to Room-6: `peerlearn run` says which peer and why in one line, exit 2,
    before any peer starts and before it makes a run folder (the peer refused it only after it
    started); a file that is no model zip, too. The peer itself still refuses it (`peerlearn peer`)."""
    from peerlearn.cli import main

    code = main(["run", "--task", "room-6", "--peers", "2", "--roles", "learner,adviser", "--pretrained",
                 f",{zips['dqn']}", "--steps", "100", "--out", str(tmp_path), "--status-port", "-1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    assert f"pretrained: peer-1's model {zips['dqn']} does not fit the task room-6: its observation space is " \
           "Box(" in err[0], err[0]
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written
    (tmp_path / "notes.zip").write_text("not a zip")
    code = main(["run", "--peers", "1", "--pretrained", str(tmp_path / "notes.zip"), "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"peerlearn run: error: pretrained: expected an SB3 model zip for peer-0, got "
                                 f"'{tmp_path / 'notes.zip'}' (it has no readable data file with the model's spaces)"]
    from peer_service.envs import make_env

    with pytest.raises(ValueError, match="does not fit the task: Observation spaces do not match"):
        load_model(zips["dqn"], env=make_env("room-6"))
