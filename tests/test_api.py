"""The Python API (peerlearn/api.py): run a group and get its results back, sync and asyncio; serve
your own SB3 models as peers and drive them as a group; the README's example runs as written."""

from __future__ import annotations

import asyncio
import json
import re
import tomllib
from pathlib import Path

import gymnasium as gym
import pytest
import torch as th
from stable_baselines3 import DQN, PPO

from peerlearn.api import RunConfig, arun, run, serve

pytestmark = pytest.mark.timeout(300)
README = Path(__file__).resolve().parents[1] / "README.md"


def test_run_and_arun_return_the_groups_results(tmp_path: Path) -> None:
    config = RunConfig(task="room-6", peers=2, steps=300, eval_every=300, transport="inproc", progress=False,
                       status_port=-1, out=str(tmp_path))
    summary = run(config, name="sync", learner={"learning_starts": 50})
    assert summary.group_steps == 300 and set(summary.final_eval) == {"peer-0", "peer-1"}
    assert (summary.run_dir / "group.csv").exists() and summary.run_dir.name == "sync"

    async def inside_a_running_loop() -> float:
        result = await arun(config, name="async", learner={"learning_starts": 50})
        return result.final_eval["peer-0"]

    assert asyncio.run(inside_a_running_loop()) == summary.final_eval["peer-0"]  # same seed, same run


def test_served_models_join_a_group_as_learner_and_adviser(tmp_path: Path) -> None:
    """A user's DQN learns on as a group member; a PPO model (on-policy) only advises, and its
    suggestions are its own policy's actions."""
    th.set_num_threads(1)
    learner_model = DQN("MlpPolicy", gym.make("CartPole-v1"), learning_starts=50, policy_kwargs={"net_arch": [16]})
    adviser_model = PPO("MlpPolicy", gym.make("CartPole-v1"), n_steps=64, policy_kwargs={"net_arch": [16]})
    with serve(learner_model, gym.make("CartPole-v1"), peer_id="mine", total_steps=200) as a, \
            serve(adviser_model, gym.make("CartPole-v1"), peer_id="ppo", role="adviser") as b:
        summary = run(addresses=[a.address, b.address], steps=200, eval_every=200, eval_episodes=1,
                      progress=False, status_port=-1, out=str(tmp_path), name="served")
    assert summary.group_steps == 200 and list(summary.final_eval) == ["mine"]  # the adviser is not evaluated
    assert learner_model.num_timesteps == 200 and learner_model._n_updates > 0
    follows = (summary.run_dir / "group.csv").read_text().splitlines()[-1]
    assert follows  # the group ran; who followed whom is in group.csv
    # config.toml records the group the peers said they are in the handshake, not RunConfig's defaults
    # (it said task "room-6", peers 3)
    recorded = tomllib.loads((summary.run_dir / "config.toml").read_text())
    assert (recorded["task"], recorded["peers"], recorded["roles"], recorded["algos"]) == (
        "CartPole-v1", 2, ["learner", "adviser"], ["DQN", "PPO"])
    # Served without a checkpoint directory, the learner says in its handshake that it keeps no
    # checkpoints: it is not asked to Save (it refused, and each such peer printed a line about it).
    peers = json.loads((summary.run_dir / "versions.json").read_text())["peers"]
    assert [p["capabilities"]["checkpoints"] for p in peers] == [False, False]
    health = (summary.run_dir / "health.csv").read_text()
    assert "suspect" not in health and "refuses to checkpoint" not in health
    assert json.loads((summary.run_dir / "summary.json").read_text())["errors"] == {}
    assert not (summary.run_dir / "checkpoints").exists()  # nothing to resume from


def test_a_served_env_is_evaluated_with_its_own_wrappers(tmp_path: Path) -> None:
    """Blackjack's observations are a Tuple; flattened (one-hot integers), they travel as floats, and
    the evaluation copy of the user's env keeps the wrapper. Unflattened, the env is refused at once."""
    th.set_num_threads(1)

    def blackjack() -> gym.Env:
        return gym.wrappers.FlattenObservation(gym.make("Blackjack-v1"))

    with serve(DQN("MlpPolicy", blackjack(), learning_starts=50), blackjack(), peer_id="a", total_steps=100) as a, \
            serve(DQN("MlpPolicy", blackjack(), learning_starts=50), blackjack(), peer_id="b", total_steps=100) as b:
        summary = run(addresses=[a.address, b.address], steps=100, eval_every=100, eval_episodes=5,
                      progress=False, status_port=-1, out=str(tmp_path), name="wrapped")
    assert set(summary.final_eval) == {"a", "b"}  # both evaluated: the copy observes what the model expects
    with pytest.raises(ValueError, match="observations are a Tuple space.*FlattenObservation"):
        serve(DQN("MlpPolicy", blackjack()), gym.make("Blackjack-v1"))


def test_the_readme_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    example = next(b for b in blocks if "peerlearn.api" in b)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, str(README), "exec"), {"__name__": "readme_example"})


def test_a_group_that_cannot_run_is_refused_in_one_line(tmp_path: Path) -> None:
    """Peers on different tasks, or an address nobody serves: a UserError (exit 2 from the CLI) that
    names the peer and what differs, before any step."""
    from peerlearn.api import UserError

    th.set_num_threads(1)
    with serve(DQN("MlpPolicy", gym.make("CartPole-v1")), gym.make("CartPole-v1"), peer_id="cart") as a, \
            serve(DQN("MlpPolicy", gym.make("Acrobot-v1")), gym.make("Acrobot-v1"), peer_id="acro") as b:
        with pytest.raises(UserError, match=r"incompatible group: acro trains on Acrobot-v1, cart on CartPole-v1; "
                                            r"acro observation space"):
            run(addresses=[a.address, b.address], steps=10, progress=False, status_port=-1, out=str(tmp_path))
        with pytest.raises(UserError, match=r"handshake with the peer at 127\.0\.0\.1:1 failed: UNAVAILABLE"):
            run(addresses=[a.address, "127.0.0.1:1"], steps=10, progress=False, status_port=-1, out=str(tmp_path))
    assert list(tmp_path.iterdir()) == []  # refused before the run folder is made


def test_a_groups_record_in_the_words_of_its_settings() -> None:
    """What config.toml records of peers given as addresses: the task's short name where it has one,
    each peer's role (scripted advisers by their role) and algorithm ("" for another implementation)."""
    import gymnasium as gym

    from orchestrator.running.handshake import described
    from peerlearn.messages import Capabilities, PeerInfo

    def info(implementation: str, learns: bool) -> PeerInfo:
        return PeerInfo("peerlearn.v1", implementation, "x", implementation, "peerlearn/Room-6-v0",
                        gym.spaces.Box(0, 1, (4,)), gym.spaces.Discrete(4),
                        Capabilities(acts=learns, learns=learns, checkpoints=learns))

    peers = [info("sb3.DQN", True), info("tabular-q", True), info("scripted-adversary", False),
             info("sb3.PPO.frozen", False), info("lookup-table", False)]
    config = described(RunConfig(steps=7), peers)
    assert (config.task, config.peers, config.steps) == ("room-6", 5, 7)
    assert config.roles == ["learner", "learner", "adversary", "adviser", "adviser"]
    assert config.algos == ["DQN", "", "", "PPO", ""]
    config.validate()
