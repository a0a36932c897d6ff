"""`peerlearn evaluate RUN_DIR [--peer ID] [--episodes N] [--video DIR]`: look at what was learned.

Loads each learner's latest checkpoint of a run (`peers/<peer>/checkpoints/latest`), evaluates its
own deterministic policy as the run did (Room: exactly, every goal once; other tasks: N episodes), and
with `--video` records one whole episode per peer as an animated GIF (Pillow, which matplotlib brings)
for tasks that render images: small frames (Room's grid is 8 pixels a cell) are enlarged, nearest
neighbour, to at least 256 pixels, and a caption under each frame gives the step and the return so far
(also what keeps every frame: Pillow merges identical consecutive frames, and an agent that stays on
its goal draws the same picture for the rest of the episode). A task that cannot render here (no
`rgb_array`, a renderer package missing such as CartPole's pygame, MuJoCo without an OpenGL context)
gets no video and one line saying why; the evaluation table is printed all the same.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

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
    video_skipped: str = ""  # why there is no video (with --video), in one line


class VideoUnavailable(Exception):
    """The task cannot be recorded here (the message says why, and what would fix it)."""


MIN_VIDEO_PIXELS = 256  # smaller frames are enlarged to this (Room-6 renders 48 x 48)


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
    skipped = ""  # the task cannot be recorded: tried once, said once
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
        video = None
        if video_dir is not None and not skipped:
            try:
                video = record_gif(p, video_dir / f"{name}.gif", seed)
            except VideoUnavailable as err:
                skipped = str(err)
        results.append(PeerEvaluation(name, result.mean_return, result.std_return, len(result.returns),
                                      result.exact, tag, video, skipped if video_dir is not None else ""))
    return results


def record_gif(peer: object, path: Path, seed: int, max_frames: int = 1000) -> Path:
    """One whole episode of the peer's deterministic policy, rendered to an animated GIF (frames of at
    least MIN_VIDEO_PIXELS, captioned). VideoUnavailable when the task cannot render here."""
    from PIL import Image

    env_id = peer.env_id  # type: ignore[attr-defined]
    env, obs, first = _first_frame(env_id, peer.config.wrappers, seed)  # type: ignore[attr-defined]
    learner = peer.learner  # type: ignore[attr-defined]
    name = getattr(peer.config, "peer_id", "")  # type: ignore[attr-defined]
    frames, total, done = [_captioned(first, f"{name}  step 0  return 0.00")], 0.0, False
    while not done and len(frames) < max_frames:
        action = learner.suggest(np.asarray(obs, dtype=np.float32)[None], deterministic=True)[0]
        obs, reward, terminated, truncated, _ = env.step(int(action) if learner.is_discrete else action)
        total += float(reward)
        done = terminated or truncated
        frames.append(_captioned(env.render(), f"{name}  step {len(frames)}  return {total:.2f}"))
    env.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames]
    fps = int(env.metadata.get("render_fps", 30))
    images[0].save(path, save_all=True, append_images=images[1:], duration=max(1, 1000 // fps), loop=0)
    return path


def _first_frame(env_id: str, wrappers: list[str], seed: int) -> tuple[Any, Any, np.ndarray]:
    """The task's env reset with `seed`, its first observation and its first frame. A renderer problem
    shows here, so it is turned into one line naming the cause (a missing package by name)."""
    import gymnasium as gym

    from peer_service.envs import make_env

    try:
        env = make_env(env_id, render_mode="rgb_array", wrappers=wrappers)
    except gym.error.DependencyNotInstalled as err:
        raise VideoUnavailable(f"task {env_id} needs a package to render: {err}") from None
    modes = env.metadata.get("render_modes", [])
    if "rgb_array" not in modes:
        env.close()
        raise VideoUnavailable(f"task {env_id} does not render images (render modes: {', '.join(modes) or 'none'})")
    obs, _ = env.reset(seed=seed)
    try:
        frame = cast(np.ndarray, env.render())  # render_mode="rgb_array": one image
    except gym.error.DependencyNotInstalled as err:  # CartPole's pygame, say
        env.close()
        raise VideoUnavailable(f"task {env_id} needs a package to render: {err}") from None
    except Exception as err:  # noqa: BLE001 - renderers fail in their own ways (mujoco.FatalError without OpenGL)
        env.close()
        hint = " (MuJoCo renders through OpenGL: try MUJOCO_GL=egl, or MUJOCO_GL=osmesa)" \
            if "OpenGL" in str(err) or "GL" in type(err).__name__ else ""
        raise VideoUnavailable(f"task {env_id} cannot render here: {type(err).__name__}: {err}{hint}") from None
    return env, obs, frame


def _captioned(frame: np.ndarray, caption: str) -> np.ndarray:
    """The frame enlarged (nearest neighbour, a whole factor) to at least MIN_VIDEO_PIXELS on its short
    side, with a caption strip under it."""
    from PIL import Image, ImageDraw, ImageFont

    frame = np.asarray(frame, dtype=np.uint8)
    factor = -(-MIN_VIDEO_PIXELS // max(1, min(frame.shape[:2])))  # ceil; 1 for frames already large
    if factor > 1:
        frame = frame.repeat(factor, axis=0).repeat(factor, axis=1)
    strip = Image.new("RGB", (frame.shape[1], 24), (255, 255, 255))
    ImageDraw.Draw(strip).text((6, 4), caption, fill=(0, 0, 0), font=ImageFont.load_default(size=15))
    return np.concatenate([frame, np.asarray(strip)], axis=0)


def format_table(results: list[PeerEvaluation]) -> str:
    lines = ["| peer | checkpoint | mean return | std | episodes | video |", "|---|---|---|---|---|---|"]
    for r in results:
        kind = f"{r.episodes} (exact)" if r.exact else str(r.episodes)
        lines.append(f"| {r.peer} | {r.checkpoint} | {r.mean_return:.3f} | {r.std_return:.3f} | {kind} "
                     f"| {r.video or '-'} |")
    skipped = next((r.video_skipped for r in results if r.video_skipped), "")
    if skipped:
        lines.append(f"video: none recorded: {skipped}")
    return "\n".join(lines)
