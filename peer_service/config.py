"""The settings of one peer, declared once (type, default, docstring): `peerlearn peer` makes its
flags and PEERLEARN_* variables from these classes (peer_service/main.py), and `peerlearn run`
passes every peer its settings as those flags, so what a started peer runs with is what the run's
config.toml records. Torch-free, so that `--help` stays fast."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class PeerConfig:
    """Everything a peer needs to start; `peerlearn peer` fills it from flags or PEERLEARN_* env vars."""

    peer_id: str = "peer-0"
    """Identity in the group (the name in the orchestrator's tables and the TLS certificate's)."""
    task: str = "room-6"
    """room-3/6/21/27/33, halfcheetah, hopper, walker2d, ant, or their Gymnasium ids."""
    seed: int = 0
    """Seed of the learner and the environment."""
    total_steps: int = 10_000
    """Env steps this peer will take in the run (sets SB3's schedules, e.g. DQN's epsilon decay)."""
    role: str = "learner"
    """learner (an SB3 off-policy learner), adviser (a frozen pretrained model, suggests only), or a
    scripted Room adviser: expert / adversary (advise only)."""
    checkpoint_dir: str | None = None
    """Where Save writes its checkpoints."""
    learner_overrides: dict[str, Any] = field(default_factory=dict)
    """Overrides of the paper's learner preset, e.g. {"learning_starts": 500} (flag --learner)."""
    attack: str = ""
    """Lie to the group, for robustness studies: mirror, random, garbage, inverse_critic,
    self_promote[:C], subtle_bias[:P], turncoat[:K], collude:PEER[:C]; empty = honest."""
    collude_board: str = ""
    """With attack collude: a directory the colluding peers share to tell each other their suggestions."""
    overlap_training: bool = False
    """Reply to Step before its gradient steps and run them while the group prepares the next round;
    same update order (every other call runs pending training first). Helps when peers have spare
    cores or sit across a network, not on a saturated machine (docs/performance.md)."""
    wrappers: list[str] = field(default_factory=list)
    """Gymnasium wrappers around the task's env, in order: a class of gymnasium.wrappers or module.Class,
    with key=value arguments, e.g. ["FrameStackObservation:stack_size=4", "NormalizeObservation"]."""
    pretrained: str = ""
    """An SB3 / sb3-contrib model zip to start from: a learner continues training it (off-policy
    algorithms; empty replay buffer, its own warm-up); role adviser keeps it frozen and only suggests
    (any algorithm, PPO and A2C included). Its algorithm is read from the zip, or learner setting algo."""
    keep_checkpoints: int = 0
    """Checkpoints kept (the newest max(K, 2); 0 = all). Only the two newest hold the replay buffer."""


@dataclass
class ServeSettings:
    """How the peer process serves (not part of what it learns)."""

    host: str = "127.0.0.1"
    """Address to bind; 0.0.0.0 in containers."""
    port: int = 50051
    """Port; 0 picks a free one."""
    port_file: str | None = None
    """Write the bound port to this file once serving."""
    torch_threads: int = 1
    """Torch threads of this peer (peers share the cores)."""
    exit_with_parent: bool = False
    """Stop when the process that started this peer dies (no orphans after kill -9)."""
    tls_cert: str | None = None
    """Server certificate, PEM; CN/SAN = peer id."""
    tls_key: str | None = None
    """Its private key, PEM."""
    tls_ca: str | None = None
    """CA that signs the clients' certificates (mutual TLS)."""
    require_client_cert: bool = False
    """Mutual TLS: only clients with a certificate from tls_ca."""
    allowed_clients: str = "orchestrator"
    """With mutual TLS: comma-separated client certificate names allowed to call."""
    token_file: str | None = None
    """Bearer tokens accepted, one per line (also PEERLEARN_TOKEN)."""
    allow_insecure: bool = False
    """Allow plaintext on a non-loopback host (trusted test networks only)."""
