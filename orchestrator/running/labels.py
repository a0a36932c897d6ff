"""What a peer is, in a few words, for plots and `peerlearn status`: "peer-0 (DQN learner)",
"peer-2 (scripted adversary)", "peer-1 (PPO adviser)". Read from what a peer says of itself in its
handshake (its implementation and whether it learns), so that peers in any language and peers given
as addresses are named too; a run's files (versions.json, config.toml) give the same words later."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path


def describe(implementation: str, learns: bool, attack: str = "") -> str:
    """Algorithm and role from a handshake's `implementation`: "sb3.DQN" (a learner), "sb3.PPO.frozen"
    (a pretrained adviser), "scripted-expert"; any other implementation is named as it calls itself."""
    parts = implementation.split(".")
    if implementation.startswith("scripted-"):
        text = "scripted " + implementation.removeprefix("scripted-")
    elif parts[0] == "sb3" and len(parts) >= 2:
        text = f"{parts[1]} {'learner' if learns and parts[-1] != 'frozen' else 'adviser'}"
    else:
        text = f"{implementation or 'unknown'} {'learner' if learns else 'adviser'}"
    return text + (f", attack {attack}" if attack else "")


def label(name: str, description: str) -> str:
    return f"{name} ({description})" if description else name


def run_labels(run_dir: Path) -> dict[str, str]:
    """Each peer's label in a finished run, by peer id: from versions.json (the handshakes), with the
    attacks of config.toml; a run without versions.json gets the roles config.toml gives. Peers the
    files do not describe are left out (their plain id is their label)."""
    config = _read_toml(run_dir / "config.toml")
    attacks = list(config.get("attacks", []))
    versions = run_dir / "versions.json"
    if versions.exists():
        try:
            peers = json.loads(versions.read_text()).get("peers", [])
        except (OSError, ValueError):
            peers = []
        return {p["peer_id"]: label(p["peer_id"], describe(p.get("implementation", ""),
                                                           bool(p.get("capabilities", {}).get("learns")),
                                                           _at(attacks, i)))
                for i, p in enumerate(peers) if "peer_id" in p}
    learners = _read_toml(run_dir / "learners.toml")
    roles, algos = list(config.get("roles", [])), list(config.get("algos", []))
    out = {}
    for i in range(int(config.get("peers", 0))):
        name, role = f"peer-{i}", _at(roles, i) or "learner"
        if role in ("expert", "adversary"):
            text = f"scripted {role}"
        else:
            algo = learners.get(name, {}).get("algo") or _at(algos, i) or config.get("learner", {}).get("algo", "")
            text = f"{algo} {role}".strip()
        out[name] = label(name, text + (f", attack {_at(attacks, i)}" if _at(attacks, i) else ""))
    return out


def _at(values: list, index: int) -> str:
    return str(values[index]) if index < len(values) and values[index] else ""


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}
