"""What a run says and records about its learners (orchestrator/running/learners.py): learners.toml
holds every setting of every learner, pretrained ones included, and the lines printed at start say
where the settings came from, how to change them and what would keep a learner from training."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
from stable_baselines3 import DQN, PPO

from orchestrator.config import RunConfig
from orchestrator.running.learners import learner_settings, start_lines

pytestmark = pytest.mark.timeout(120)

CORRIDOR = "tests.user_envs.corridor:Corridor-v0"


def test_pretrained_models_record_the_settings_saved_in_them(tmp_path: Path) -> None:
    env = gym.make("CartPole-v1")
    DQN("MlpPolicy", env, learning_starts=50, batch_size=16, policy_kwargs={"net_arch": [16]}).save(tmp_path / "d.zip")
    PPO("MlpPolicy", env, n_steps=64, batch_size=32).save(tmp_path / "p.zip")
    config = RunConfig(task="CartPole-v1", peers=3, steps=300, roles=["learner", "learner", "adviser"],
                       algos=["", "", "PPO"], pretrained=["", str(tmp_path / "d.zip"), str(tmp_path / "p.zip")])
    settings = learner_settings(config)
    dqn, ppo = settings["peer-1"], settings["peer-2"]
    assert (dqn["algo"], dqn["source"], dqn["role"], dqn["pretrained"]) == (
        "DQN", "pretrained", "learner", str(tmp_path / "d.zip"))
    assert (dqn["learning_starts"], dqn["batch_size"], dqn["policy_kwargs"], dqn["train_freq"]) == (
        50, 16, {"net_arch": [16]}, [4, "step"])  # a TrainFreq as SB3 saved it
    assert (ppo["algo"], ppo["role"], ppo["n_steps"], ppo["batch_size"], ppo["policy"]) == (
        "PPO", "adviser", 64, 32, "ActorCriticPolicy")
    lines = start_lines(settings, config, tmp_path)
    assert lines[0].startswith("learners: peer-0: DQN, rl-zoo3's tuned settings for CartPole-v1 (rl-zoo3 2.9.2, "
                               "shipped with peerlearn); peer-1: DQN learner, the settings saved in ")
    assert "; peer-2: PPO adviser, the settings saved in " in lines[0]


def test_start_lines_name_the_source_and_what_keeps_a_learner_from_training(tmp_path: Path) -> None:
    """SB3's defaults are named as such (they seldom learn in a short run), the paper's preset too, and
    a warm-up as long as the run is said: such a learner would never train."""
    corridor = RunConfig(task=CORRIDOR, peers=2, steps=100)
    lines = start_lines(learner_settings(corridor), corridor, tmp_path)
    assert lines[0].startswith(f"learners: peer-0, peer-1: DQN, stable-baselines3's defaults (neither the paper nor "
                               f"rl-zoo3 has settings for {CORRIDOR} with DQN; defaults seldom learn in a short run)")
    assert lines[1:] == [f"  {p}: learning_starts 100 is not below the run's 100 steps, so it never trains: lower it "
                         "(--learner '{\"learning_starts\": 10}') or run longer" for p in ("peer-0", "peer-1")]
    room = RunConfig(task="room-6", peers=3, steps=600, roles=["learner", "learner", "expert"])
    lines = start_lines(learner_settings(room), room, tmp_path)
    assert lines == [f"learners: peer-0, peer-1: DQN, the paper's preset for room-6. Every value: "
                     f"{tmp_path / 'learners.toml'}; change any with --learner '{{\"learning_rate\": 0.001}}' "
                     "(docs/your-own-task.md)"]  # a scripted expert has no learner settings
