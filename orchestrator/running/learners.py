"""The learner settings of the Python peers a run starts here: learners.toml (every setting of every
learner, pretrained ones included) and the lines printed at start that say where they came from
(the paper's preset, rl-zoo3's tuned values, SB3's defaults, a model zip) and how to change them.

Written from the same code the peers resolve their settings with (peer_service/presets.py), so
what is printed and recorded is what the peers run with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.config import RunConfig, to_toml
from orchestrator.running.preflight import learner_preset

HOW_TO_OVERRIDE = "change any with --learner '{\"learning_rate\": 0.001}' (docs/your-own-task.md)"


def learner_settings(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Every setting each Python learner or adviser started here runs with, by peer id."""
    from peer_service.learner import recorded_settings
    from peer_service.pretrained import saved_settings

    out: dict[str, dict[str, Any]] = {}
    for i in range(config.peers):
        if config.command(i) or config.role(i) not in ("learner", "adviser"):
            continue  # a foreign peer's settings are its own; scripted roles do not learn
        path = config.pretrained_of(i)
        if path:
            out[f"peer-{i}"] = {"pretrained": path, "role": config.role(i),
                                **saved_settings(path, config.learner_of(i).get("algo") or None)}
        else:
            out[f"peer-{i}"] = recorded_settings(learner_preset(config, i))
    return out


def write_learner_settings(run_dir: Path, config: RunConfig) -> dict[str, dict[str, Any]]:
    """learners.toml: the resolved learner settings (config.toml keeps what the user set, so that a
    resumed run resolves them again the same way). Returns them."""
    settings = learner_settings(config)
    if settings:
        (run_dir / "learners.toml").write_text(
            "# Every setting each learner runs with: where the values came from (source: paper, rl-zoo3,\n"
            "# sb3-defaults, pretrained), then every argument of the algorithm's SB3 constructor (the preset's\n"
            "# value or SB3's default; unset ones, None, are left out) and what rl-zoo3 sets that a peer does not\n"
            "# apply (notes). A replay buffer larger than the run is allocated only up to its steps (same results).\n"
            "# Not read back: config.toml is the input.\n"
            + to_toml(settings))
    return settings


def describe(settings: dict[str, Any], config: RunConfig, peer: str) -> str:
    """Where one learner's settings came from, in words."""
    algo, task = settings.get("algo", "?"), config.task
    source = settings.get("source")
    if source == "pretrained":
        return f"{algo} {settings.get('role', 'learner')}, the settings saved in {settings.get('pretrained')}"
    if source == "paper":
        text = f"{algo}, the paper's preset for {task}"
    elif source == "rl-zoo3":
        from peer_service.zoo import ZOO_VERSION

        text = f"{algo}, rl-zoo3's tuned settings for {task} (rl-zoo3 {ZOO_VERSION}, shipped with peerlearn)"
    else:
        text = (f"{algo}, stable-baselines3's defaults (neither the paper nor rl-zoo3 has settings for {task} with "
                f"{algo}; defaults seldom learn in a short run)")
    index = int(peer.rsplit("-", 1)[1])
    yours = sorted(set(config.learner_of(index)) - {"algo", "train_phase"})
    return text + (f", with your {', '.join(yours)}" if yours else "")


def start_lines(settings: dict[str, dict[str, Any]], config: RunConfig, run_dir: Path) -> list[str]:
    """What is printed at start: one line naming each learner's source (peers with the same one
    together) and how to override, then one line per thing to know: rl-zoo3 settings not applied as
    written, and a warm-up as long as the run (such a learner never trains)."""
    if not settings:
        return []
    groups: dict[str, list[str]] = {}
    for peer, values in settings.items():
        groups.setdefault(describe(values, config, peer), []).append(peer)
    parts = [f"{', '.join(peers)}: {text}" for text, peers in groups.items()]
    lines = [f"learners: {'; '.join(parts)}. Every value: {run_dir / 'learners.toml'}; {HOW_TO_OVERRIDE}"]
    said: set[tuple[str, ...]] = set()
    for peer, values in settings.items():
        notes = tuple(values.get("notes", ()))
        if notes and notes not in said:
            said.add(notes)
            lines.append(f"  rl-zoo3's {values['algo']} settings for {config.task}: " + "; ".join(notes))
        starts = values.get("learning_starts")
        if values.get("role") != "adviser" and isinstance(starts, int) and starts >= config.steps:
            lower = json.dumps({"learning_starts": max(1, config.steps // 10)})
            lines.append(f"  {peer}: learning_starts {starts} is not below the run's {config.steps} steps, so it "
                         f"never trains: lower it (--learner '{lower}') or run longer")
    return lines
