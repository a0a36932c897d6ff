"""`peerlearn evaluate`: a run's checkpoints evaluated again (exactly for Room) and recorded as GIFs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import gymnasium as gym
import pytest
from PIL import Image

from orchestrator.config import RunConfig
from orchestrator.running.evaluate import VideoUnavailable, evaluate_run, format_table
from orchestrator.running.run import run_group
from peerlearn.settings import UserError

pytestmark = pytest.mark.timeout(300)


def test_evaluate_reproduces_the_runs_final_evaluation_and_records_a_video(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The exact evaluation again, and a readable video: Room-6's 48-pixel frames enlarged to 256 and
    more, one frame per step of the whole episode (50 steps, the first frame included); a renderer that
    fails leaves the table and says why in one line."""
    config = RunConfig(task="room-6", peers=2, steps=600, eval_every=600, transport="inproc", progress=False,
                       status_port=-1, out=str(tmp_path), name="run", learner={"learning_starts": 50})
    summary = asyncio.run(run_group(config))
    results = evaluate_run(summary.run_dir, video_dir=tmp_path / "videos")
    final = json.loads((summary.run_dir / "summary.json").read_text())["final_eval"]
    # the exact Room evaluation of the last checkpoint is the run's last evaluation, to the float
    assert {r.peer: round(r.mean_return, 4) for r in results} == {k: round(v, 4) for k, v in final.items()}
    assert all(r.exact and r.episodes == 20 for r in results)  # Room-6: 4 (L-1) goals
    gif = Image.open(tmp_path / "videos" / "peer-1.gif")
    assert gif.n_frames == 51 and gif.size[0] >= 256 and gif.size[1] >= 256, (gif.n_frames, gif.size)
    assert "| peer-0 |" in format_table(results) and "video: " not in format_table(results)

    from peer_service.envs.room import RoomEnv

    def no_renderer(self: object) -> None:
        raise gym.error.DependencyNotInstalled("pygame is not installed, run `pip install pygame`")

    monkeypatch.setattr(RoomEnv, "render", no_renderer)
    table = format_table(evaluate_run(summary.run_dir, video_dir=tmp_path / "none"))
    assert table.count("| peer-") == 2 and not (tmp_path / "none").exists()
    assert table.splitlines()[-1] == ("video: none recorded: task peerlearn/Room-6-v0 needs a package to render: "
                                      "pygame is not installed, run `pip install pygame`")
    monkeypatch.undo()
    only = evaluate_run(summary.run_dir, peer="peer-1", episodes=3)
    assert [r.peer for r in only] == ["peer-1"] and not only[0].exact and only[0].episodes == 3
    with pytest.raises(UserError, match="expected one of the checkpointed peers peer-0, peer-1, got 'peer-9'"):
        evaluate_run(summary.run_dir, peer="peer-9")
    with pytest.raises(UserError, match="expected a run folder"):
        evaluate_run(tmp_path / "nothing")


def test_a_video_whose_renderer_is_missing_says_which_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CartPole renders with pygame, an extra of gymnasium: without it, one line naming the package."""
    from types import SimpleNamespace

    from gymnasium.envs.classic_control.cartpole import CartPoleEnv

    from orchestrator.running.evaluate import record_gif

    def no_pygame(self: object) -> None:
        raise gym.error.DependencyNotInstalled("pygame is not installed")

    monkeypatch.setattr(CartPoleEnv, "render", no_pygame)
    peer = SimpleNamespace(env_id="CartPole-v1", config=SimpleNamespace(wrappers=[]), learner=None)
    with pytest.raises(VideoUnavailable, match=r"^task CartPole-v1 needs a package to render: pygame is not installed"):
        record_gif(peer, tmp_path / "cart.gif", seed=0)
