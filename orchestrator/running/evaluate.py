"""`peerlearn evaluate RUN_DIR [--peer ID] [--episodes N] [--video DIR]`: look at what was learned.

Loads each learner's latest checkpoint of a run (`peers/<peer>/checkpoints/latest`), evaluates its
own deterministic policy as the run did (Room: exactly, every goal once; other tasks: N episodes), and
with `--video` records one episode per peer as an animated GIF (Pillow, which matplotlib brings) for
tasks that render images (Room does; MuJoCo needs an OpenGL context, CartPole needs pygame).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from peerlearn.settings import UserError


@dataclass
class PeerEvaluation:
    peer: str
    mean_return: float
    std_return: float
    episodes: int
    exact: bool
    checkpoint: str
    video: Path | None = None


def checkpointed_peers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "peers").glob("*") if (p / "checkpoints" / "latest").exists())


def evaluate_run(run_dir: Path, peer: str | None = None, episodes: int | None = None,
                 video_dir: Path | None = None, seed: int = 0) -> list[PeerEvaluation]:
    from peer_service.config import PeerConfig
    from peer_service.peer import Peer
    from peer_service.pretrained import detect_algorithm

    config_file = run_dir / "config.toml"
    if not config_file.exists():
        raise UserError(f"run_dir: expected a run folder with config.toml, got {str(run_dir)!r}")
    config = tomllib.loads(config_file.read_text())
    available = checkpointed_peers(run_dir)
    if peer is not None and peer not in available:
        raise UserError(f"peer: expected one of the checkpointed peers {', '.join(available) or '(none)'}, "
                        f"got {peer!r}")
    if not available:
        raise UserError(f"run_dir: {run_dir} has no peer checkpoint (peers/<peer>/checkpoints/latest)")
    results = []
    for name in [peer] if peer else available:
        root = run_dir / "peers" / name / "checkpoints"
        tag = (root / "latest").read_text().strip()
        overrides = dict(config.get("learner", {}))
        algo = detect_algorithm(root / tag / "model.zip")  # mixed groups: each checkpoint knows its own
        if algo:
            overrides["algo"] = algo
        p = Peer(PeerConfig(peer_id=name, task=str(config["task"]), seed=seed, checkpoint_dir=str(root),
                            total_steps=int(config.get("steps", 10_000)), learner_overrides=overrides,
                            wrappers=list(config.get("wrappers", []))))
        p.load(tag)
        result = p.run_evaluation(episodes if episodes is not None else int(config.get("eval_episodes", 0)),
                                  seed)
        video = record_gif(p, video_dir / f"{name}.gif", seed) if video_dir is not None else None
        results.append(PeerEvaluation(name, result.mean_return, result.std_return, len(result.returns),
                                      result.exact, tag, video))
    return results


def record_gif(peer: object, path: Path, seed: int, max_frames: int = 1000) -> Path:
    """One episode of the peer's deterministic policy, rendered to an animated GIF."""
    import gymnasium as gym
    from PIL import Image

    from peer_service.envs import make_env

    env = make_env(peer.env_id, render_mode="rgb_array", wrappers=peer.config.wrappers)  # type: ignore[attr-defined]
    if "rgb_array" not in env.metadata.get("render_modes", []):
        raise UserError(f"video: task {peer.env_id} does not render images "  # type: ignore[attr-defined]
                        f"(render modes: {', '.join(env.metadata.get('render_modes', [])) or 'none'})")
    learner = peer.learner  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=seed)
    try:
        frames = [env.render()]
    except gym.error.DependencyNotInstalled as err:  # CartPole's pygame, say: the first frame tells
        raise UserError(f"video: task {peer.env_id} needs a package to render: {err}") from None  # type: ignore[attr-defined]
    done = False
    while not done and len(frames) < max_frames:
        action = learner.suggest(np.asarray(obs, dtype=np.float32)[None], deterministic=True)[0]
        obs, _, terminated, truncated, _ = env.step(int(action) if learner.is_discrete else action)
        frames.append(env.render())
        done = terminated or truncated
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames]
    fps = int(env.metadata.get("render_fps", 30))
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, 1000 // fps), loop=0)
    return path


def format_table(results: list[PeerEvaluation]) -> str:
    lines = ["| peer | checkpoint | mean return | std | episodes | video |", "|---|---|---|---|---|---|"]
    for r in results:
        kind = f"{r.episodes} (exact)" if r.exact else str(r.episodes)
        lines.append(f"| {r.peer} | {r.checkpoint} | {r.mean_return:.3f} | {r.std_return:.3f} | {kind} "
                     f"| {r.video or '-'} |")
    return "\n".join(lines)
