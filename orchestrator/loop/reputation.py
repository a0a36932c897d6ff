"""The group's reputations and the choice they make: the one owner of whom a peer follows.

Everything the adviser choice knows lives here: each asker's trust in every peer (Eq. 4), the group's
agent values (Eq. 7) with the learners' running estimates behind them, the statistics of peerlearn's
own Thompson rule, how each is updated from the evidence of a step, how the candidates of a decision
are scored and sampled, the snapshot that the recorder and the status service read, and the state
that a checkpoint keeps. The group loop (group.py) keeps the clock: it plans, calls the peers, hands
the evidence over and asks for a choice. Changing the rule is a change to this file (and its settings
in orchestrator/config.py).

The rules (docs/algorithm.md, "Whom to follow"):
- `softmax` (the paper's): normalise each enabled component (the asker's critic, its trust, the
  agent values) over the candidates, add them, sample from softmax(v / T). Two of peerlearn's fixes
  are settings of it: `agent_value_self_votes` and `reputation_scale`.
- `thompson` (peerlearn's own): every asker keeps, per peer, discounted statistics of the advantage
  targets of the transitions where it followed that peer (its own trust evidence, valued by its own
  critic); at a decision it draws one plausible mean per candidate from a normal posterior and
  follows the largest. No optimistic start value to wash out: a peer never followed is tried first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from orchestrator.config import RunConfig
from orchestrator.loop.evidence import Evidence, Kind
from orchestrator.loop.trust import aggregate_agent_values, choose_from, combine, normalise, softmax, update_reputation

# Draws of the Thompson posterior used only to report each candidate's chance of being chosen (the
# decisions.csv and select_prob columns); they use their own generator, never the group's.
REPORT_DRAWS = 256


@dataclass
class Decision:
    """One choice of whom to follow, as the rule saw it (logged to decisions.csv)."""

    candidates: list[int]
    components: dict[str, np.ndarray]  # what scored each candidate, each normalised over the candidates
    probabilities: np.ndarray  # each candidate's chance of being chosen
    followed: int


@dataclass(frozen=True)
class ReputationSnapshot:
    """What the recorder and the status service show: copies, safe to keep."""

    trust: np.ndarray  # (N, N): row i is asker i's raw trust in every peer
    agent_values: np.ndarray  # (N,)
    trust_scaled: np.ndarray  # (N, N): row i as asker i's choice weighs it (normalised; Thompson: posterior means)


class Reputations:
    def __init__(self, n: int, config: RunConfig, evaluators: Sequence[int]) -> None:
        self.n = n
        self.config = config
        self.trust = np.full((n, n), config.init_trust, dtype=np.float64)
        self.agent_values = np.full(n, config.init_agent_value, dtype=np.float64)
        # Each learner's running estimate of every peer's targets (robust aggregation, trust.py).
        self.av_evidence = np.full((n, n), np.nan)
        # A peer's evidence about itself counts when it is the group's only evaluator: otherwise a lone
        # learner beside advisers that have no critic keeps its optimistic start value for ever and
        # every adviser looks worse (docs/algorithm.md). With two or more evaluators nothing changes.
        self.self_votes = config.agent_value_self_votes == "sole_evaluator" and len(evaluators) == 1
        # Thompson statistics per asker and peer: discounted weight, sum and sum of squares of targets.
        self.ts_weight = np.zeros((n, n))
        self.ts_sum = np.zeros((n, n))
        self.ts_squares = np.zeros((n, n))
        self.floor = np.zeros(n)  # each asker's normalisation floor at its last decision (for the snapshot)

    # ------------------------------------------------------------------ update
    def update(self, evidence: list[Evidence]) -> None:
        """Trust from each asker's own evidence (Eq. 4); agent values from the pooled evidence of all
        learners, each scored by its own critic (Eq. 7), one update per round."""
        lr = self.config.reputation_lr
        rounds: dict[int, list[tuple[int, np.ndarray, np.ndarray]]] = {}
        for e in evidence:
            if e.kind is Kind.TRUST:
                self.trust[e.peer] = update_reputation(self.trust[e.peer], e.followed, e.targets, lr)
                if self.config.adviser_choice == "thompson":
                    self._thompson_update(e.peer, e.followed, e.targets)
            else:
                rounds.setdefault(e.round, []).append((e.peer, e.followed, e.targets))
        for r in sorted(rounds):
            self.agent_values = aggregate_agent_values(self.agent_values, rounds[r], lr,
                                                       self.config.agent_value_aggregation,
                                                       exclude_self=not self.self_votes, running=self.av_evidence)

    def _thompson_update(self, asker: int, followed: np.ndarray, targets: np.ndarray) -> None:
        # Discounted once per batch (one batch per asker and step): old evidence fades, so a peer that
        # has not been followed for a while grows uncertain again and is tried again.
        d = self.config.thompson_discount
        self.ts_weight[asker] *= d
        self.ts_sum[asker] *= d
        self.ts_squares[asker] *= d
        ok = np.isfinite(targets)
        np.add.at(self.ts_weight[asker], followed[ok], 1.0)
        np.add.at(self.ts_sum[asker], followed[ok], targets[ok])
        np.add.at(self.ts_squares[asker], followed[ok], targets[ok] ** 2)

    # ------------------------------------------------------------------ choose
    def decide(self, rng: np.random.Generator, asker: int, candidates: list[int], q: np.ndarray | None,
               reward_scale: float = 0.0) -> tuple[int, Decision | None]:
        """The candidate to follow. `q`: the asker's critic values of the candidates' actions (None: not
        available); `reward_scale`: the typical |reward| of the asker's recent transitions (the floor of
        `reputation_scale = "reward_floor"`). Returns the followed peer and the decision to record
        (None when nothing scored the candidates and the draw was uniform)."""
        cfg = self.config
        if cfg.adviser_choice == "thompson":
            return self._thompson(rng, asker, candidates)
        components: dict[str, np.ndarray] = {}
        if cfg.use_critic and q is not None:
            components["critic"] = q
        if cfg.use_trust:
            components["trust"] = self.trust[asker, candidates]
        if cfg.use_agent_values:
            components["agent_values"] = self.agent_values[candidates]
        if not components:
            return candidates[int(rng.integers(len(candidates)))], None
        floors = self._floors(reward_scale)
        self.floor[asker] = floors.get("trust", 0.0)
        probabilities = softmax(combine(components, floors), cfg.temperature)
        followed = candidates[choose_from(rng, probabilities)]
        return followed, Decision(candidates, {k: normalise(v, floors.get(k, 0.0)) for k, v in components.items()},
                                  probabilities, followed)

    def _floors(self, reward_scale: float) -> dict[str, float]:
        """The reputations' normalisation floor: none (the paper's x / max|x|), or with `reward_floor` the
        typical |reward| of the asker's recent transitions, the unit the advantage targets are in. The
        critic's Q values are on the scale of returns and keep the paper's normalisation."""
        if self.config.reputation_scale != "reward_floor":
            return {}
        return {"trust": reward_scale, "agent_values": reward_scale}

    def _posterior(self, asker: int, candidates: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per candidate: posterior mean and standard deviation of its mean target, and whether it has
        evidence at all. Each buffer entry is drawn about `trust_batch` times over its life in the
        buffer, so the weight counts each transition that many times: n_eff = weight / trust_batch."""
        w_all, sums, squares = self.ts_weight[asker], self.ts_sum[asker], self.ts_squares[asker]
        # One noise level for all peers of this asker (the pooled within-peer variance of its targets):
        # a peer with few or identical targets does not get a falsely certain posterior.
        with np.errstate(invalid="ignore", divide="ignore"):
            within = np.where(w_all > 0, squares - np.where(w_all > 0, sums ** 2 / w_all, 0.0), 0.0)
        variance = max(float(within.sum() / w_all.sum()) if w_all.sum() > 0 else 0.0, 1e-12)
        w = w_all[candidates]
        seen = w > 0
        mean = np.divide(sums[candidates], w, out=np.zeros(len(candidates)), where=seen)
        n_eff = np.maximum(w / self.config.trust_batch, 1.0)
        return mean, np.sqrt(variance / n_eff), seen

    def own_share(self, candidates: list[int]) -> float:
        """The share of decisions on which a Thompson asker acts on its own policy whatever the
        posterior says: `thompson_own_share`, or with -1 random advice's own share, 1 / candidates.
        Why: a learner that follows the best adviser nearly always learns only from that adviser's
        actions; an off-policy critic that never sees its own greedy actions fail keeps them
        overestimated, and its own policy falls behind a learner that was never advised (seen on
        Room-6 with the scripted expert, docs/algorithm.md). Random advice keeps 1/N own-policy data."""
        share = self.config.thompson_own_share
        return 1.0 / len(candidates) if share < 0 else share

    def _thompson(self, rng: np.random.Generator, asker: int, candidates: list[int]) -> tuple[int, Decision]:
        mean, std, seen = self._posterior(asker, candidates)
        own = self.own_share(candidates) if asker in candidates else 0.0
        if own > 0 and rng.random() < own:
            return asker, Decision(candidates, {"trust": normalise(mean)}, self._chances(asker, candidates, own),
                                   asker)
        if not seen.all():
            # Peers never followed (or whose evidence has not been valued yet) are tried first, at random.
            unseen = np.flatnonzero(~seen)
            k = int(unseen[int(rng.integers(len(unseen)))])
        else:
            k = int(np.argmax(rng.normal(mean, std)))
        return candidates[k], Decision(candidates, {"trust": normalise(mean)},
                                       self._chances(asker, candidates, own), candidates[k])

    def _chances(self, asker: int, candidates: list[int], own: float) -> np.ndarray:
        """Each candidate's chance of being chosen by the Thompson rule at this decision, for the record
        (decisions.csv, select_prob): the own share, plus the posterior's chance of being the largest,
        estimated from draws of a generator of its own (the group's draws stay as they are)."""
        mean, std, seen = self._posterior(asker, candidates)
        if not seen.all():
            thompson = np.where(~seen, 1.0 / int((~seen).sum()), 0.0)
        else:
            report = np.random.default_rng([asker, *(np.round(mean * 1e6).astype(np.int64) % (2**62))])
            sampled = report.normal(mean, std, size=(REPORT_DRAWS, len(candidates)))
            thompson = np.bincount(sampled.argmax(axis=1), minlength=len(candidates)) / REPORT_DRAWS
        chances = (1.0 - own) * thompson
        if asker in candidates:
            chances[candidates.index(asker)] += own
        return chances

    # ------------------------------------------------------------------ what others read
    def snapshot(self) -> ReputationSnapshot:
        if self.config.adviser_choice == "thompson":
            shown = np.stack([normalise(self._posterior(i, list(range(self.n)))[0]) for i in range(self.n)])
        else:
            shown = np.stack([normalise(row, floor) for row, floor in zip(self.trust, self.floor, strict=True)])
        return ReputationSnapshot(self.trust.copy(), self.agent_values.copy(), shown)

    def state(self) -> dict[str, Any]:
        return {"trust": self.trust.copy(), "agent_values": self.agent_values.copy(),
                "av_evidence": self.av_evidence.copy(),
                "thompson": np.stack([self.ts_weight, self.ts_sum, self.ts_squares]), "floor": self.floor.copy()}

    def restore(self, state: dict[str, Any]) -> None:
        self.trust = np.asarray(state["trust"], dtype=np.float64).copy()
        self.agent_values = np.asarray(state["agent_values"], dtype=np.float64).copy()
        if "av_evidence" in state:
            self.av_evidence = np.asarray(state["av_evidence"], dtype=np.float64).copy()
        if "floor" in state:
            self.floor = np.asarray(state["floor"], dtype=np.float64).copy()
        if "thompson" in state:
            self.ts_weight, self.ts_sum, self.ts_squares = (np.asarray(a, dtype=np.float64).copy()
                                                            for a in state["thompson"])

    @staticmethod
    def legacy_state(state: dict[str, Any]) -> dict[str, Any]:
        """The reputations of an orchestrator checkpoint written before this class existed (trust per
        member, agent values at the top level), so runs cut off then still resume."""
        return {"trust": np.stack([np.asarray(m["trust"], dtype=np.float64) for m in state["members"]]),
                "agent_values": state["agent_values"], **({"av_evidence": state["av_evidence"]}
                                                          if "av_evidence" in state else {})}

