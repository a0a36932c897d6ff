"""The run configuration: one typed dataclass, each field documented (it is also the TOML schema).

Each field is declared once, here, with its type, default and docstring; from that declaration come
its TOML key (the name), its `PEERLEARN_<NAME>` variable and its `--name` flag (peerlearn/cli/__init__.py),
with the field's docstring as the flag's help and one text parser per type (peerlearn/settings.py).
"""

from __future__ import annotations

import functools
import json
import math
import os
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from peerlearn.settings import (
    ROLES,
    UserError,
    above,
    at_least,
    attribute_docs,
    check_ranges,
    check_type,
    read_env,
    unknown_names,
)

MODES = ("peer", "single", "random", "early")


# The values each numeric setting may take, checked by RunConfig.validate: a bad value ends the run
# before it starts, with one line, not in its middle with a traceback (temperature 0, eval_every 0).
RANGES: dict[str, tuple[str, Callable[[float], bool]]] = {
    "peers": (">= 1", at_least(1)), "steps": (">= 1", at_least(1)), "follow_steps": (">= 1", at_least(1)),
    "seed": (">= 0 (peer i's seed is seed * 1000 + i)", at_least(0)),
    "temperature": ("> 0", above(0)), "init_trust": ("finite", at_least(-math.inf)),
    "init_agent_value": ("finite", at_least(-math.inf)),
    "reputation_lr": ("in [0, 1]", lambda v: 0 <= v <= 1), "suggestion_buffer": (">= 1", at_least(1)),
    "trust_batch": (">= 1", at_least(1)), "early_fraction": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "eval_every": (">= 1", at_least(1)), "eval_episodes": (">= 0", at_least(0)),
    "log_every": (">= 1", at_least(1)), "checkpoint_every": (">= 0", at_least(0)),
    "status_port": ("-1 (off), 0 (any free port) or a port up to 65535", lambda v: -1 <= v <= 65535),
    "rpc_timeout_s": ("> 0", above(0)), "step_timeout_s": ("> 0", above(0)),
    "hedge_after_s": (">= 0", at_least(0)), "keepalive_s": ("> 0", above(0)),
    "keepalive_timeout_s": ("> 0", above(0)), "max_reconnect_backoff_s": ("> 0", above(0)),
    "eject_after": (">= 1", at_least(1)), "quorum": (">= 0", at_least(0)),
    "pause_timeout_s": (">= 0", at_least(0)), "quarantine_steps": (">= 0", at_least(0)),
    "ban_after": (">= 1", at_least(1)), "probe_max_backoff_s": ("> 0", above(0)),
    "restart_peers": (">= 0", at_least(0)),
    "thompson_discount": ("in (0, 1]", lambda v: 0 < v <= 1),
    "thompson_own_share": ("-1 (1 / candidates) or in [0, 1]", lambda v: v == -1 or 0 <= v <= 1),
}
# The settings that take one of a few words, each with its words: checked by RunConfig.validate.
CHOICES: dict[str, tuple[str, ...]] = {
    "agent_value_self_votes": ("sole_evaluator", "never"),
    "reputation_scale": ("max_abs", "reward_floor"),
    "adviser_choice": ("softmax", "thompson"),
}


@dataclass
class RunConfig:
    # --- the group
    task: str = "room-6"
    """Task of every peer: room-3/6/21/27/33, halfcheetah, hopper, walker2d, ant, or a Gymnasium id."""
    peers: int = 3
    """Number of peers started by `peerlearn run` (ignored by `orchestrate`, which uses --peers addresses)."""
    roles: list[str] = field(default_factory=list)
    """Role of each started peer: learner (default), adviser (a frozen pretrained model), expert or
    adversary (scripted Room advisers)."""
    algos: list[str] = field(default_factory=list)
    """Per started peer, its learner's algorithm ("" = learner.algo or the task's preset): DQN, QRDQN, SAC,
    TQC, CrossQ, TD3 or DDPG; e.g. ["SAC", "TD3"] mixes algorithms as the authors' --mix-agents does. For a
    pretrained peer, its model's algorithm where the zip does not say (PPO, A2C)."""
    wrappers: list[str] = field(default_factory=list)
    """Gymnasium wrappers around every Python peer's env, in order: a class of gymnasium.wrappers or
    module.Class with key=value arguments, e.g. ["FrameStackObservation:stack_size=4"] (docs/your-own-task.md)."""
    pretrained: list[str] = field(default_factory=list)
    """Per started peer, an SB3 model zip it starts from ("" = from scratch): a learner continues it, an
    adviser keeps it frozen (docs/your-own-task.md)."""
    commands: list[str] = field(default_factory=list)
    """Per peer, a shell command that starts a non-Python peer instead of the Python one ("" = Python).
    Placeholders: {port} {peer_id} {task} {seed} {total_steps} {role};
    e.g. "node peers/node/src/main.js --port {port}"."""
    steps: int = 6_000
    """Env steps per acting peer (the budget is per peer, as in the paper)."""
    seed: int = 0
    """Seed of the orchestrator; peer i is seeded with seed * 1000 + i."""
    # --- the method (docs/algorithm.md)
    mode: str = "peer"
    """peer (trust-based advice), single (no advice), random (follow a random peer), early (early advising)."""
    use_critic: bool = True
    """Score suggestions with the asking peer's own critic (false = the --no-critic ablation)."""
    use_trust: bool = True
    """Weigh suggestions by the asking peer's trust in each adviser (false = the --no-trust ablation)."""
    use_agent_values: bool = True
    """Weigh suggestions by the group's agent values (false = the --no-agent-values ablation)."""
    use_advantage: bool = True
    """Update trust from the advantage of the followed action (false = from its value)."""
    follow_steps: int = 10
    """Env steps a peer follows the adviser it picked before it asks again."""
    temperature: float = 1.0
    """Softmax temperature of the adviser choice."""
    init_trust: float = 200.0
    """Trust every peer starts with in every peer."""
    init_agent_value: float = 200.0
    """Agent value every peer starts with."""
    reputation_lr: float = 0.001
    """alpha of the trust and agent-value updates (Eq. 4, 7)."""
    suggestion_buffer: int = 1000
    """Followed suggestions kept per peer for the trust updates."""
    trust_batch: int = 10
    """Entries per trust update; agent values draw max(1, trust_batch // N) per learning peer."""
    values_in_step: bool = True
    """Peers that offer it value the trust and agent-value evidence inside Step (one call per peer and
    step instead of two; orchestrator/loop/evidence.py); false = always a separate Evaluate (the A/B)."""
    stagger_training: bool = False
    """Shift the peers' train_freq windows so that at most as many peers as this machine has cores run
    their gradient steps in the same group step (stagger_phases). Same amount of training per peer; it
    helps only groups much larger than the core count (docs/performance.md, the A/B). Off by default:
    the phases depend on the launching machine's cores, so a seed would no longer fix a run everywhere
    (a resumed run recomputes them). Peers started elsewhere take train_phase in their learner settings."""
    agent_value_aggregation: str = "median"
    """How the learners' evidence becomes agent values: median (robust, a peer's evidence about itself
    excluded), trimmed_mean, or mean (the paper's pooled mean)."""
    agent_value_self_votes: str = "sole_evaluator"
    """Whether a learner's evidence about itself counts in the median / trimmed-mean agent values:
    sole_evaluator (when it is the group's only evaluating peer, e.g. one learner beside pretrained or
    scripted advisers; otherwise nobody ever votes on it and it keeps its start value for ever) or never
    (peerlearn before 2026-12-08). Groups of two or more learners are the same either way."""
    reputation_scale: str = "max_abs"
    """How trust and agent values are normalised over the candidates: max_abs (the paper's x / max|x|)
    or reward_floor (x / max(max|x|, mean |reward| of the asker's recent transitions): values that all
    settle near 0 stay near 0 instead of swinging between -1 and +1)."""
    adviser_choice: str = "softmax"
    """Whom a deciding peer follows: softmax (the paper's: critic + trust + agent values, softmax) or
    thompson (peerlearn's: Thompson sampling over the candidates on the asker's own advantage evidence;
    docs/algorithm.md, "Whom to follow")."""
    thompson_discount: float = 0.999
    """Per step, the weight each asker's past evidence keeps under adviser_choice = thompson. 0.999 gives
    the statistics the memory of the evidence itself (1 - 1/suggestion_buffer: the evidence is drawn
    from the last 1,000 transitions); a peer not followed for a few thousand steps is uncertain again
    and is tried again."""
    thompson_own_share: float = -1.0
    """Under adviser_choice = thompson, the share of decisions on which a peer acts on its own policy
    whatever the posterior says; -1 = random advice's own share, 1 / (candidates). Keeps the own-policy
    data an off-policy learner needs to correct its own greedy actions (docs/algorithm.md)."""
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
    keep_checkpoints: int = 0
    """Checkpoints each peer keeps (the newest max(K, 2); 0 = all). Only the two newest hold the replay
    buffer (what --resume needs); older ones keep the weights only."""
    out: str = "runs"
    """Results root: each run writes <out>/<name>/."""
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
    """How long a ping may go unanswered; too short a timeout drops healthy lossy links (docs/robustness.md)."""
    max_reconnect_backoff_s: float = 1.0
    """Cap of gRPC's reconnect backoff (gRPC's own cap is 120 s); a low cap notices a healed outage soon."""
    progress: bool = True
    """Show the live progress view in the terminal."""
    # --- peer health (orchestrator/loop/health.py)
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
    """How long below_quorum = pause waits for peers to rejoin before it gives up."""
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
    learner_by_peer: dict[str, Any] = field(default_factory=dict)
    """Per-peer overrides on top of `learner`, keyed by the peer's index, for groups of mixed skill:
    e.g. {"0": {"learning_rate": 5e-05}} gives peer-0 a 10 times smaller learning rate than the Room preset."""
    # --- attacks and security (peer_service/attacks.py, peerlearn/security.py, docs/security.md)
    attacks: list[str] = field(default_factory=list)
    """Per started peer, an attack mode for robustness studies ("" = honest), e.g. ["", "", "mirror"]."""
    tls_ca: str = ""
    """CA that signed the peers' certificates: turns TLS on (each peer must present its peer id)."""
    tls_cert: str = ""
    """The orchestrator's client certificate (mutual TLS; `peerlearn certs` makes orchestrator.pem)."""
    tls_key: str = ""
    """The private key of tls_cert."""
    token_files: list[str] = field(default_factory=list)
    """Bearer token file(s): one for every peer, or one per peer (first line = the token)."""
    allow_insecure: bool = False
    """Allow plaintext to peers that are not on loopback (trusted test networks only)."""

    def validate(self) -> RunConfig:
        if self.mode not in MODES:
            raise UserError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.agent_value_aggregation not in ("mean", "median", "trimmed_mean"):
            raise UserError(f"agent_value_aggregation must be mean, median or trimmed_mean, "
                            f"got {self.agent_value_aggregation!r}")
        if self.agent_value_updates not in ("per_env_step", "per_group_step"):
            raise UserError(f"agent_value_updates must be per_env_step or per_group_step, "
                            f"got {self.agent_value_updates!r}")
        if self.below_quorum not in ("continue", "pause"):
            raise UserError(f"below_quorum must be continue or pause, got {self.below_quorum!r}")
        if self.transport not in ("grpc", "inproc"):
            raise UserError(f"transport must be grpc or inproc, got {self.transport!r}")
        check_ranges({name: getattr(self, name) for name in RANGES}, RANGES)
        for name, words in CHOICES.items():
            if getattr(self, name) not in words:
                raise UserError(f"{name} must be one of {', '.join(words)}, got {getattr(self, name)!r}")
        if self.adviser_choice == "thompson" and not self.use_trust:
            raise UserError("adviser_choice 'thompson' learns from the trust evidence: it needs use_trust")
        if self.mode == "peer" and not (self.use_critic or self.use_trust or self.use_agent_values):
            raise UserError("mode 'peer' needs at least one of use_critic, use_trust, use_agent_values")
        if self.roles and len(self.roles) != self.peers:
            raise UserError(f"roles lists {len(self.roles)} entries for {self.peers} peers")
        if self.attacks and len(self.attacks) != self.peers:
            raise UserError(f"attacks lists {len(self.attacks)} entries for {self.peers} peers")
        if self.token_files and len(self.token_files) not in (1, self.peers):
            raise UserError(f"token_files lists {len(self.token_files)} entries: give 1 or {self.peers}")
        if self.commands and len(self.commands) != self.peers:
            raise UserError(f"commands lists {len(self.commands)} entries for {self.peers} peers")
        if self.algos and len(self.algos) != self.peers:
            raise UserError(f"algos lists {len(self.algos)} entries for {self.peers} peers")
        if self.pretrained and len(self.pretrained) != self.peers:
            raise UserError(f"pretrained lists {len(self.pretrained)} entries for {self.peers} peers")
        if self.keep_checkpoints < 0:
            raise UserError(f"keep_checkpoints: expected 0 (all) or a positive count, got {self.keep_checkpoints}")
        for key, overrides in self.learner_by_peer.items():
            if not (key.isdigit() and int(key) < self.peers) or not isinstance(overrides, dict):
                raise UserError(f"learner_by_peer: expected peer indices 0..{self.peers - 1} with a table of "
                                f"learner settings each, got {key!r} = {overrides!r}")
        bad_roles = [r for r in self.roles if r not in ROLES]
        if bad_roles:
            raise UserError(f"roles: expected each of {', '.join(ROLES)}, got {bad_roles[0]!r}")
        return self

    def role(self, index: int) -> str:
        return self.roles[index] if self.roles else "learner"

    def pretrained_of(self, index: int) -> str:
        return self.pretrained[index] if self.pretrained else ""

    def learner_of(self, index: int) -> dict[str, Any]:
        """Peer `index`'s learner settings: `learner`, with its entry of `algos` as `algo`."""
        algo = self.algos[index] if self.algos else ""
        return {**self.learner, **self.learner_by_peer.get(str(index), {}), **({"algo": algo} if algo else {})}

    def command(self, index: int) -> str | None:
        return (self.commands[index] or None) if self.commands else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_toml(cls, path: str | Path) -> RunConfig:
        try:
            text = Path(path).read_text()
        except OSError as err:
            raise UserError(f"config: cannot read {path}: {err.strerror or err}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise UserError(f"config: {path} is not valid TOML: {err}") from None
        return cls.from_dict(data, where=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> RunConfig:
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise UserError(f"{where}: unknown key(s) {unknown_names(unknown, set(known))}; known: "
                            f"{', '.join(sorted(known))}")
        return cls(**{k: check_type(v, known[k], f"{where}: {k}") for k, v in data.items()})

    @classmethod
    def types(cls) -> dict[str, Any]:
        """Field name -> its annotation (what the flag, TOML and environment parsers go by)."""
        return {f.name: f.type for f in fields(cls)}

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> dict[str, Any]:
        """The fields set by non-empty PEERLEARN_<FIELD> variables (peerlearn/settings.py parses them)."""
        return read_env(cls.types(), environ)


@functools.cache
def field_help() -> dict[str, str]:
    """Each RunConfig field's docstring: the help of its flag and its line in the docs."""
    return attribute_docs(RunConfig)


def toml_value(v: Any) -> str:
    """One TOML value; tables inside tables and lists become inline tables (never a Python repr)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)  # nan and inf are TOML spellings too
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    return json.dumps(str(v), ensure_ascii=False)  # JSON string escapes are TOML basic-string escapes


def toml_key(key: str) -> str:
    bare = key and all(c.isascii() and (c.isalnum() or c in "-_") for c in key)
    return key if bare else json.dumps(key, ensure_ascii=False)


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer (the stdlib reads TOML but does not write it): top-level values, then each
    top-level table as a [section]; deeper tables are inline. None (no TOML spelling) is left out."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict) and v is not None]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += ["", f"[{toml_key(k)}]",
                      *(f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items() if vv is not None)]
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
