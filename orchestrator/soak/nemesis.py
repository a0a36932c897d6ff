"""The nemesis' schedule: which fault, on whom, when and for how long, drawn from one seed.

Pure (no processes): the driver executes a schedule, and the tests check that it is seeded and that
faults never overlap, so every recovery is attributed to one fault.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

# Faults on one peer, on the orchestrator, and on the run folder's disk.
PEER_KINDS = ("peer_kill", "peer_stop", "partition", "loss", "latency", "reset")
KINDS = (*PEER_KINDS, "orchestrator_kill", "disk_full")

# How long a fault lasts (s), drawn uniformly. A kill is instantaneous: what follows (the restart,
# the --resume) is the system's recovery, measured by the checkers.
DURATION_S: dict[str, tuple[float, float]] = {
    "peer_kill": (0.0, 0.0),
    "peer_stop": (10.0, 30.0),
    "partition": (10.0, 30.0),
    "loss": (20.0, 40.0),
    "latency": (20.0, 40.0),
    "reset": (5.0, 15.0),
    "orchestrator_kill": (0.0, 0.0),
    "disk_full": (15.0, 30.0),
}
GAP_S = (30.0, 90.0)  # start to start, as the issue asks
QUIET_S = 20.0  # at least this long between the end of one fault and the next: recoveries do not overlap


@dataclass
class Fault:
    at_s: float  # seconds after the nemesis starts
    kind: str
    target: str  # a peer's name, "orchestrator" or "disk"
    duration_s: float
    params: dict[str, float] = field(default_factory=dict)

    def record(self) -> dict[str, object]:
        return asdict(self)


def schedule(seed: int, seconds: float, peers: list[str], kinds: tuple[str, ...] = KINDS,
             warmup_s: float = 60.0) -> list[Fault]:
    """Faults from `warmup_s` until `seconds`, one every 30-90 s (start to start), none overlapping."""
    rng = random.Random(seed)
    faults: list[Fault] = []
    at = warmup_s
    while True:
        kind = rng.choice(kinds)
        low, high = DURATION_S[kind]
        duration = round(rng.uniform(low, high), 1)
        target = rng.choice(peers) if kind in PEER_KINDS else ("disk" if kind == "disk_full" else "orchestrator")
        params: dict[str, float] = {}
        if kind == "loss":
            params["loss_p"] = 0.3
        elif kind == "latency":
            params["delay_s"] = round(rng.uniform(0.05, 0.3), 3)  # per forwarded chunk, each way
        if at + duration > seconds:
            return faults
        faults.append(Fault(round(at, 1), kind, target, duration, params))
        at = max(at + rng.uniform(*GAP_S), at + duration + QUIET_S)
