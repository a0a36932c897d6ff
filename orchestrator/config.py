"""The run configuration: one typed dataclass, each field documented (it is also the TOML schema)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

MODES = ("peer", "single", "random", "early")


@dataclass
class RunConfig:
    # --- the group
    task: str = "room-6"
    """Task of every peer: room-3/6/21/27/33, halfcheetah, hopper, walker2d, ant, or a Gymnasium id."""
    peers: int = 3
    """Number of peers started by `peerlearn run` (ignored by `orchestrate`, which uses --peers addresses)."""
    roles: list[str] = field(default_factory=list)
    """Role of each started peer: learner (default), expert or adversary (scripted Room advisers)."""
    commands: list[str] = field(default_factory=list)
    """Per peer, a shell command that starts a non-Python peer instead of the Python one ("" = Python).
    Placeholders: {port} {peer_id} {task} {seed} {total_steps} {role};
    e.g. "node peers/node/src/main.js --port {port}"."""
    steps: int = 6_000
    """Env steps per acting peer (the budget is per peer, as in the paper)."""
    seed: int = 0
    """Seed of the orchestrator; peer i is seeded with seed * 1000 + i."""
    # --- the method (ALGORITHM.md)
    mode: str = "peer"
    """peer (trust-based advice), single (no advice), random (follow a random peer), early (early advising)."""
    use_critic: bool = True
    use_trust: bool = True
    use_agent_values: bool = True
    use_advantage: bool = True
    follow_steps: int = 10
    temperature: float = 1.0
    init_trust: float = 200.0
    init_agent_value: float = 200.0
    reputation_lr: float = 0.001
    """alpha of the trust and agent-value updates (Eq. 4, 7)."""
    suggestion_buffer: int = 1000
    trust_batch: int = 10
    """Entries per trust update; agent values draw max(1, trust_batch // N) per learning peer."""
    values_in_step: bool = True
    """Peers that offer it value the trust and agent-value evidence inside Step (one call per peer and
    step instead of two; orchestrator/evidence.py); false = always a separate Evaluate (the A/B)."""
    stagger_training: bool = False
    """Shift the peers' train_freq windows so that at most as many peers as this machine has cores run
    their gradient steps in the same group step (stagger_phases). Same amount of training per peer;
    measured +8% agent-steps/s at N=8 on 2 cores, nothing at N=4 (docs/performance.md). Off by default:
    the phases depend on the launching machine's cores, so a seed would no longer fix a run everywhere
    (a resumed run recomputes them). Peers started elsewhere take train_phase in their learner settings."""
    agent_value_aggregation: str = "median"
    """How the learners' evidence becomes agent values: median (robust, a peer's evidence about itself
    excluded), trimmed_mean, or mean (the paper's pooled mean)."""
    agent_value_updates: str = "per_env_step"
    """How often the agent values move: per_env_step (the authors' rate: after every env step of every
    acting peer, so N updates per group step of N acting peers, each from fresh draws) or
    per_group_step (one update per group step; peerlearn's rate before 2026-12, N times slower)."""
    early_fraction: float = 0.74
    """Share of the budget during which `early` mode follows random other peers."""
    # --- evaluation, results, transport
    eval_every: int = 1_000
    """Own env steps between evaluations (the paper: 10,000)."""
    eval_episodes: int = 0
    """Episodes per evaluation; 0 = exact for Room (every goal once), 10 otherwise."""
    log_every: int = 100
    """Group steps between rows of group.csv and TensorBoard scalars."""
    checkpoint_every: int = 1_000
    """Group steps between checkpoints of the peers and the orchestrator (for --resume); 0 = only at the end."""
    out: str = "runs"
    name: str = ""
    """Run folder name under `out`; empty = <task>-<mode>-s<seed>-<time>. Existing folders are never reused."""
    transport: str = "grpc"
    """grpc (every peer its own process) or inproc (peers as objects in this process)."""
    status_port: int = 0
    """Port of the orchestrator's status service; 0 = any free port, -1 = off."""
    rpc_timeout_s: float = 5.0
    """Deadline of read-only calls (GetInfo, Suggest, Evaluate); a late reply = the peer abstains."""
    step_timeout_s: float = 10.0
    """Deadline of Reset and Step (a Step may run 8 gradient steps)."""
    hedge_after_s: float = 1.0
    """A Suggest, Evaluate, GetInfo or Step still unanswered after this long is sent again on a second,
    already open connection; the first reply wins (0 = off). Beats TCP's retransmission stalls on
    lossy links; a retried Step is replayed by the peer, never applied twice (docs/robustness.md)."""
    keepalive_s: float = 10.0
    """HTTP/2 keepalive ping interval: notices a dead link without traffic (docs/robustness.md)."""
    keepalive_timeout_s: float = 8.0
    """How long a ping may go unanswered; 1 s dropped healthy links under 30% loss (FACTS.md)."""
    max_reconnect_backoff_s: float = 1.0
    """Cap of gRPC's reconnect backoff (default 120 s; 1 s notices a healed outage within ~1 s)."""
    progress: bool = True
    # --- peer health (orchestrator/health.py)
    eject_after: int = 3
    """Consecutive failing group steps after which a peer is ejected (probed, then re-admitted)."""
    redial_on_timeout: bool = True
    """Re-dial a peer's connection when it misses a deadline: a lossy link's TCP retransmission backoff
    otherwise makes several calls in a row late, and the peer is ejected although it is fine."""
    quorum: int = 1
    """Usable acting peers needed to go on."""
    below_quorum: str = "continue"
    """continue (the remaining peers go on alone) or pause (wait up to pause_timeout_s for rejoins)."""
    pause_timeout_s: float = 60.0
    quarantine_steps: int = 200
    """Group steps a peer ejected for invalid replies waits before it is probed (doubles per strike)."""
    ban_after: int = 3
    """Ejections for invalid replies after which a peer is banned for the rest of the run."""
    probe_max_backoff_s: float = 0.5
    """Cap of the health-probe backoff of an ejected peer (it is re-admitted within ~this of being back)."""
    restart_peers: int = 5
    """How often `peerlearn run` restarts a crashed local peer process (with backoff); 0 = never."""
    learner: dict[str, Any] = field(default_factory=dict)
    """Overrides of the learner preset, e.g. {learning_starts = 500}."""
    # --- attacks and security (peer_service/attacks.py, peerlearn/security.py, docs/security.md)
    attacks: list[str] = field(default_factory=list)
    """Per started peer, an attack mode for robustness studies ("" = honest), e.g. ["", "", "mirror"]."""
    tls_ca: str = ""
    """CA that signed the peers' certificates: turns TLS on (each peer must present its peer id)."""
    tls_cert: str = ""
    """The orchestrator's client certificate (mutual TLS; `peerlearn certs` makes orchestrator.pem)."""
    tls_key: str = ""
    token_files: list[str] = field(default_factory=list)
    """Bearer token file(s): one for every peer, or one per peer (first line = the token)."""
    allow_insecure: bool = False
    """Allow plaintext to peers that are not on loopback (trusted test networks only)."""

    def validate(self) -> RunConfig:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.agent_value_aggregation not in ("mean", "median", "trimmed_mean"):
            raise ValueError(f"agent_value_aggregation must be mean, median or trimmed_mean, "
                             f"got {self.agent_value_aggregation!r}")
        if self.agent_value_updates not in ("per_env_step", "per_group_step"):
            raise ValueError(f"agent_value_updates must be per_env_step or per_group_step, "
                             f"got {self.agent_value_updates!r}")
        if self.below_quorum not in ("continue", "pause"):
            raise ValueError(f"below_quorum must be continue or pause, got {self.below_quorum!r}")
        if self.transport not in ("grpc", "inproc"):
            raise ValueError(f"transport must be grpc or inproc, got {self.transport!r}")
        if self.peers < 1 or self.steps < 1 or self.follow_steps < 1:
            raise ValueError("peers, steps and follow_steps must be >= 1")
        if self.mode == "peer" and not (self.use_critic or self.use_trust or self.use_agent_values):
            raise ValueError("mode 'peer' needs at least one of use_critic, use_trust, use_agent_values")
        if self.roles and len(self.roles) != self.peers:
            raise ValueError(f"roles lists {len(self.roles)} entries for {self.peers} peers")
        if self.attacks and len(self.attacks) != self.peers:
            raise ValueError(f"attacks lists {len(self.attacks)} entries for {self.peers} peers")
        if self.token_files and len(self.token_files) not in (1, self.peers):
            raise ValueError(f"token_files lists {len(self.token_files)} entries: give 1 or {self.peers}")
        if self.commands and len(self.commands) != self.peers:
            raise ValueError(f"commands lists {len(self.commands)} entries for {self.peers} peers")
        return self

    def role(self, index: int) -> str:
        return self.roles[index] if self.roles else "learner"

    def command(self, index: int) -> str | None:
        return (self.commands[index] or None) if self.commands else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_toml(cls, path: str | Path) -> RunConfig:
        data = tomllib.loads(Path(path).read_text())
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for flat configs with one level of tables (no TOML writer in the stdlib)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]", *(f"{kk} = {value(vv)}" for kk, vv in v.items())]
    return "\n".join(lines) + "\n"


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's cpuset), not the host's."""
    return len(os.sched_getaffinity(0))


def stagger_phases(peers: int, train_freq: int, cores: int) -> list[int]:
    """A train_phase per peer so that at most `cores` peers run their gradient-step burst in the same
    group step: peers go round-robin into ceil(peers / cores) groups (at most train_freq), and group g
    trains g * train_freq // groups steps after group 0. Every peer keeps its own schedule (train_freq
    gradient steps every train_freq env steps); only where the window starts moves."""
    groups = max(1, min(-(-peers // max(cores, 1)), train_freq))
    return [(i % groups) * train_freq // groups for i in range(peers)]
