"""The math of peer learning, pure and small: scoring, selection, trust and agent-value updates.

Equation numbers are the paper's (docs/algorithm.md); the guards are its differences 4-7
("Where peerlearn differs").
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def normalise(values: np.ndarray, floor: float = 0.0) -> np.ndarray:
    """x / max|x| over the candidates (Eq. 9, footnote 7), guarded; with a `floor`, x / max(max|x|, floor).

    Non-finite entries contribute 0 and do not set the scale; all-zero input gives zeros (the
    reference divides by zero there and gets NaN). The floor keeps values that all settle near 0
    from being blown up to +-1 (reputation.py, `reputation_scale`).
    """
    x = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(x)
    out = np.zeros_like(x)
    if not finite.any():
        return out
    scale = max(float(np.max(np.abs(x[finite]))), floor)
    if scale > 0:
        out[finite] = x[finite] / scale
    return out


def combine(components: Mapping[str, np.ndarray], floors: Mapping[str, float] | None = None) -> np.ndarray:
    """Sum of the normalised enabled components, with equal weight (Eq. 9); `floors` per component (normalise)."""
    if not components:
        raise ValueError("no scoring component: enable at least one of critic, trust, agent values")
    floors = floors or {}
    total = np.zeros(len(next(iter(components.values()))), dtype=np.float64)
    for name, x in components.items():
        total += normalise(x, floors.get(name, 0.0))
    return total


def softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    """Eq. 2; shifted by the max so large values do not overflow."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(values, dtype=np.float64) / temperature
    z = np.exp(z - np.max(z))
    probabilities: np.ndarray = z / z.sum()  # numpy's stubs: Any from a sum
    return probabilities


def choose(rng: np.random.Generator, values: np.ndarray, temperature: float) -> int:
    """Sample the index of the peer to follow from softmax(values / T)."""
    return choose_from(rng, softmax(values, temperature))


def choose_from(rng: np.random.Generator, probabilities: np.ndarray) -> int:
    """Sample an index from given selection probabilities (the same draw `choose` makes)."""
    return int(rng.choice(len(probabilities), p=probabilities))


def td_targets(rewards: np.ndarray, v_next: np.ndarray, v_now: np.ndarray, terminated: np.ndarray,
               gamma: float, advantage: bool) -> np.ndarray:
    """Eq. 8: r + gamma * V(s') (masked at terminations, docs/algorithm.md difference 4), minus V(s) with advantage."""
    target: np.ndarray = rewards + gamma * (1.0 - terminated.astype(np.float64)) * v_next
    return target - v_now if advantage else target


def update_reputation(values: np.ndarray, followed: np.ndarray, targets: np.ndarray, lr: float) -> np.ndarray:
    """Eq. 4 / 7: for every peer j in the batch, v_j += lr * (mean of j's targets - v_j).

    Peers absent from the batch keep their value; non-finite targets are dropped.
    """
    new = np.array(values, dtype=np.float64, copy=True)
    ok = np.isfinite(targets)
    followed, targets = followed[ok], targets[ok]
    for j in np.unique(followed):
        new[j] += lr * (targets[followed == j].mean() - new[j])
    return new



AGGREGATIONS = ("mean", "median", "trimmed_mean")


def aggregate_agent_values(values: np.ndarray, evidence: list[tuple[int, np.ndarray, np.ndarray]], lr: float,
                           method: str = "median", exclude_self: bool = True,
                           running: np.ndarray | None = None, running_rate: float = 0.05) -> np.ndarray:
    """Eq. 7 over the evidence of several evaluating peers.

    `evidence` holds, per evaluating peer k, (k, followed, targets) scored by k's own critic.
    - "mean": the paper's rule: pool every entry, v_j += lr * (mean of j's targets - v_j);
    - "median" / "trimmed_mean": each evaluator k keeps a running estimate running[k, j] of its mean
      target for peer j (rate `running_rate`; without `running`, this step's mean alone); then
      v_j moves toward the median (or the mean without the highest and lowest) of those estimates
      over the evaluators, a peer's evidence about itself excluded. Each step draws only
      max(1, 10 // N) entries per evaluator, so without the running estimates one liar would often be
      the only voice about a peer in a step; with them, one lying evaluator moves v_j at most to the
      edge of the honest evaluators' estimates.
    `running` (N x N, NaN = no evidence yet) is updated in place.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"aggregation must be one of {AGGREGATIONS}, got {method!r}")
    if not evidence:
        return np.array(values, dtype=np.float64, copy=True)
    if method == "mean":
        return update_reputation(values, np.concatenate([f for _, f, _ in evidence]),
                                 np.concatenate([t for _, _, t in evidence]), lr)
    n = len(values)
    estimates = running if running is not None else np.full((n, n), np.nan)
    fresh = np.full((n, n), np.nan)
    seen = np.zeros(n, dtype=bool)
    for k, followed, targets in evidence:
        ok = np.isfinite(targets)
        for j in np.unique(followed[ok]):
            fresh[k, j] = float(targets[ok & (followed == j)].mean())
            seen[j] = True
    if running is not None:
        old = np.isfinite(estimates)
        new_ones = np.isfinite(fresh)
        estimates[new_ones & ~old] = fresh[new_ones & ~old]
        both = new_ones & old
        estimates[both] += running_rate * (fresh[both] - estimates[both])
    else:
        estimates = fresh
    new = np.array(values, dtype=np.float64, copy=True)
    for j in np.flatnonzero(seen):
        column = estimates[:, j].copy()
        if exclude_self:
            column[j] = np.nan
        votes = np.sort(column[np.isfinite(column)])
        if votes.size == 0:
            continue
        if method == "median":
            target = float(np.median(votes))
        else:
            target = float(np.mean(votes[1:-1] if votes.size >= 3 else votes))
        new[j] += lr * (target - new[j])
    return new
