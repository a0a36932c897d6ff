"""The lock-step group loop (docs/algorithm.md; the path of one step through the code: docs/architecture.md).

One group step, top to bottom:
  1. plan      who must decide (every `follow_steps` own steps) and whom each acting peer asks;
  2. Suggest   one batched call per adviser, all advisers concurrently;
  3. Evaluate  one batched call per acting learner, concurrently: Q of its candidate actions and
               V of the suggestion-buffer samples that its trust and the group's agent values need
               (on steps where nobody decides by critic, it runs concurrently with Suggest); peers
               with `values_in_step` value those samples inside the previous Step instead
               (evidence.py), so they get an Evaluate only when they decide by critic;
  4. update    trust (own evidence) and agent values (pooled evidence), then choose by softmax;
  5. Step      one call per acting peer, concurrently; executed transitions enter the buffers.
A missing, late or invalid reply makes that peer abstain from the round; it never stops the group.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

import peerlearn
from orchestrator.config import RunConfig
from orchestrator.loop.buffers import SuggestionBuffer
from orchestrator.loop.client import PeerCallError, PeerClient
from orchestrator.loop.evidence import Evidence, EvidenceDraw, EvidenceLedger, Kind, draw_evidence, evidence_from_values
from orchestrator.loop.health import BANNED, EJECTED, HealthMonitor
from orchestrator.loop.reputation import Decision, Reputations
from peerlearn.messages import EvalResult, PeerInfo, StepResult
from peerlearn.settings import UserError
from peerlearn.tensors import WireError, spaces_equal
from peerlearn.validation import check_actions, check_states, check_values, empty_batch

NOBODY = -1
Scored = tuple[list[int], np.ndarray]  # candidate peer indices and their Q values


@dataclass
class Member:
    """The orchestrator's memory of one peer."""

    index: int
    client: PeerClient
    info: PeerInfo
    follow_counts: np.ndarray  # env steps on which this peer executed peer j's suggestion
    buffer: SuggestionBuffer | None = None
    obs: np.ndarray | None = None
    step_id: int = 0  # the peer's last applied step id
    steps: int = 0  # env steps taken in this run
    following: int = NOBODY
    redecide: bool = True
    invalid_replies: int = 0
    last_episode_return: float = math.nan
    last_eval_return: float = math.nan
    errors: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.info.peer_id

    @property
    def acts(self) -> bool:
        return self.info.capabilities.acts

    @property
    def in_warmup(self) -> bool:
        return self.step_id < self.info.warmup_steps

    @property
    def observation(self) -> np.ndarray:
        """`obs` of a member acting in this step: `Group.step` lets only members that have one act."""
        assert self.obs is not None, f"{self.name} acts without an observation"
        return self.obs


@dataclass
class Plan:
    deciding: bool
    ask: list[int]  # adviser indices to ask (empty: act on own policy)


class Recorder(Protocol):
    """What the loop reports as it runs (orchestrator/running/recorder.py:RunRecorder writes it to the run folder)."""

    def group_row(self, group: Group) -> None: ...
    def step_result(self, group: Group, m: Member, result: StepResult) -> None: ...
    def decision(self, group: Group, m: Member, decision: Decision) -> None: ...
    def evaluation(self, group: Group, m: Member, result: EvalResult) -> None: ...
    def health_event(self, group: Group, m: Member, event: str) -> None: ...
    def checkpoint(self, state: dict[str, Any]) -> object: ...  # False: not written (RunRecorder on a full disk)


class GroupError(UserError):
    """The group cannot run (a peer out of reach, incompatible peers, a checkpoint of another group):
    the user's addresses or settings, said in one line (exit 2)."""


class Group:
    def __init__(self, members: list[Member], config: RunConfig, recorder: Recorder | None = None) -> None:
        self.members = members
        self.config = config
        self.recorder = recorder
        self.rng = np.random.default_rng(config.seed)
        n = len(members)
        # Health state lives with the monitor; it reports each change to _health_event.
        self.health = HealthMonitor(config, [m.client for m in members], [m.name for m in members],
                                    [m.acts for m in members], clock=lambda: self.t, on_event=self._health_event)
        self.advisers: list[int] = []
        self.learners = [m for m in members if m.info.capabilities.learns and m.info.capabilities.evaluates]
        # Trust, agent values and the adviser choice: their one owner (reputation.py).
        self.reputations = Reputations(n, config, [m.index for m in self.learners])
        self.av_batch = max(1, config.trust_batch // n)  # at least one entry per peer (docs/algorithm.md, difference 5)
        self.keeps_reputations = config.mode == "peer" and (config.use_trust or config.use_agent_values)
        self.av_rounds = 1  # agent-value updates in the current step (set per step, evidence_batches)
        self.evidence = EvidenceLedger()  # evidence valued inside a Step waits there for the next step
        self.t = 0
        self.started = time.perf_counter()
        self._t_started = 0
        self.round_seconds = {"suggest": 0.0, "evaluate": 0.0, "step": 0.0}
        self.max_step_seconds = 0.0
        self.cannot_save: set[str] = set()  # peers that answered Save with FAILED_PRECONDITION (noted once)

    # ------------------------------------------------------------------ set-up
    @classmethod
    async def connect(cls, clients: Sequence[PeerClient], config: RunConfig,
                      recorder: Recorder | None = None) -> Group:
        async def handshake(client: PeerClient) -> PeerInfo:
            try:
                return await client.get_info()
            except PeerCallError as err:
                hint = {"UNAVAILABLE": " (is it running at that address?)",
                        "DEADLINE_EXCEEDED": " (is it running at that address?)",
                        "UNAUTHENTICATED": " (check token_files and the TLS settings)",
                        "PERMISSION_DENIED": " (check token_files and the TLS settings)"}.get(err.code, "")
                raise GroupError(f"handshake with the peer at {client.address} failed: {err.code}: "
                                 f"{err.message}{hint}") from None

        infos = await asyncio.gather(*(handshake(c) for c in clients))
        check_compatible(infos)
        n = len(clients)
        members = [Member(index=i, client=c, info=info, follow_counts=np.zeros(n, dtype=np.int64))
                   for i, (c, info) in enumerate(zip(clients, infos, strict=True))]
        obs_shape = tuple(infos[0].observation_space.shape or ())
        for m in members:
            if m.acts:
                m.buffer = SuggestionBuffer(config.suggestion_buffer, obs_shape)
        return cls(members, config, recorder)

    async def reset(self) -> None:
        async def reset_one(m: Member) -> None:
            m.obs, m.step_id = await m.client.reset(self.config.seed * 1000 + m.index)

        await asyncio.gather(*(reset_one(m) for m in self.members if m.acts))

    # ------------------------------------------------------------------ the loop
    async def run(self, steps: int, on_step: Callable[[Group], Awaitable[None] | None] | None = None) -> None:
        try:
            if self.t == 0:
                await self.evaluate_all(force=True)
            while self.t < steps:
                await self.step()
                await self.evaluate_all()
                if self.config.checkpoint_every and self.t % self.config.checkpoint_every == 0:
                    await self.checkpoint()
                if on_step is not None:
                    maybe = on_step(self)
                    if maybe is not None:
                        await maybe
            if self.t % self.config.eval_every != 0:
                await self.evaluate_all(force=True)
        finally:
            await self.health.close()

    async def step(self, only: set[int] | None = None) -> None:
        """One group step. `only` restricts who acts (the reference code's turn-taking, for benchmarks)."""
        await self.health.before_step(self._rejoin)
        usable = self.health.usable
        self.advisers = [m.index for m in self.members if m.info.capabilities.advises and usable(m.index)]
        acting = [m for m in self.members if m.acts and m.obs is not None and usable(m.index)
                  and (only is None or m.index in only)]
        plans = {m.index: self._plan(m) for m in acting}
        # The authors' code updates the agent values after every env step of every peer; a group step
        # is one env step of each acting peer, so it makes that many updates (docs/algorithm.md).
        self.av_rounds = len(acting) if self.config.agent_value_updates == "per_env_step" else 1

        t0 = time.perf_counter()
        cfg = self.config
        if cfg.mode == "peer" and cfg.use_critic and any(p.deciding for p in plans.values()):
            # A decision needs the candidates' Q values: Evaluate waits for the suggestions.
            suggestions = await self._suggest_round(plans)
            t1 = time.perf_counter()
            q_values, evidence = await self._evaluate_round(acting, plans, suggestions)
        else:
            # Otherwise (9 steps in 10) Evaluate only values buffer samples: overlap it with Suggest,
            # two round trips instead of three, same number of calls.
            suggestions, (q_values, evidence) = await asyncio.gather(
                self._suggest_round(plans), self._evaluate_round(acting, plans, {}))
            t1 = time.perf_counter()
        t2 = time.perf_counter()
        # The evidence was drawn from buffers holding the previous step's transition and scored by
        # critics that trained on it (in this step's Evaluate, or inside the previous Step for
        # values_in_step peers): this is the reference's "update after every env step".
        # In member order, as one Evaluate round would give it: Step replies arrive in any order.
        self.reputations.update(self.evidence.take(evidence))
        choices = {m.index: self._choose(m, plans[m.index], suggestions, q_values.get(m.index)) for m in acting}
        await self._step_round(acting, choices)
        t3 = time.perf_counter()

        self.round_seconds["suggest"] += t1 - t0
        self.round_seconds["evaluate"] += t2 - t1
        self.round_seconds["step"] += t3 - t2
        self.max_step_seconds = max(self.max_step_seconds, t3 - t0)
        self.t += 1
        if self.recorder is not None and self.t % self.config.log_every == 0:
            self.recorder.group_row(self)

    # 1. plan ---------------------------------------------------------------
    def _plan(self, m: Member) -> Plan:
        cfg = self.config
        advisers = self.advisers
        if cfg.mode == "single" or m.in_warmup or not advisers:
            return Plan(False, [])
        if cfg.mode == "early":
            others = [a for a in advisers if a != m.index]
            if m.steps >= cfg.early_fraction * cfg.steps or not others:
                return Plan(False, [])
            return Plan(True, [int(self.rng.choice(others))])
        if not (m.redecide or m.following == NOBODY or m.step_id % cfg.follow_steps == 0):
            return Plan(False, [m.following])
        if cfg.mode == "random":
            return Plan(True, [int(self.rng.choice(advisers))])
        return Plan(True, advisers)

    # 2. Suggest round ------------------------------------------------------
    async def _suggest_round(self, plans: dict[int, Plan]) -> dict[tuple[int, int], np.ndarray]:
        askers: dict[int, list[int]] = {}
        for asker, plan in plans.items():
            for adviser in plan.ask:
                askers.setdefault(adviser, []).append(asker)
        if not askers:
            return {}
        space = self.members[0].info.action_space

        async def ask(adviser: int, who: list[int]) -> dict[tuple[int, int], np.ndarray]:
            states = np.stack([self.members[a].observation for a in who]).astype(np.float32)
            member = self.members[adviser]
            try:
                actions = check_actions(await member.client.suggest(states, False), space, len(who), "actions")
            except (PeerCallError, WireError) as err:
                self._failed(member, "Suggest", err)
                return {}
            self.health.on_success(member.index)
            return {(a, adviser): actions[k] for k, a in enumerate(who)}

        results = await asyncio.gather(*(ask(adv, who) for adv, who in askers.items()))
        return {key: act for part in results for key, act in part.items()}

    # 3. Evaluate round -----------------------------------------------------
    async def _evaluate_round(self, acting: list[Member], plans: dict[int, Plan], suggestions: dict[tuple[int, int],
                              np.ndarray]) -> tuple[dict[int, Scored], list[Evidence]]:
        cfg = self.config
        obs_space, act_space = self.members[0].info.observation_space, self.members[0].info.action_space

        async def evaluate(m: Member) -> tuple[int, Scored | None, list[Evidence]]:
            plan = plans.get(m.index, Plan(False, []))
            candidates = [j for j in plan.ask if (m.index, j) in suggestions] if (
                plan.deciding and cfg.mode == "peer" and cfg.use_critic) else []
            draw = None
            if self.keeps_reputations and m.buffer is not None and not self._values_in_step(m):
                draw = draw_evidence(m.buffer, self.rng, self.evidence_batches())
            if not candidates and draw is None:
                return m.index, None, []
            q_states = np.repeat(m.observation[None].astype(np.float32), len(candidates), axis=0) if candidates else \
                empty_batch(obs_space)
            q_actions = np.stack([suggestions[(m.index, j)] for j in candidates]) if candidates else \
                empty_batch(act_space)
            v_states = draw.v_states if draw is not None else empty_batch(obs_space)
            try:
                q, v = await m.client.evaluate(q_states, q_actions, check_states(v_states, obs_space, "v"))
                q = check_values(q, len(candidates), "q_values")
                v = check_values(v, len(v_states), "v_values")
            except (PeerCallError, WireError) as err:
                self._failed(m, "Evaluate", err)
                return m.index, None, []
            self.health.on_success(m.index)
            found = evidence_from_values(draw, v, m.buffer, m.index, m.info.gamma, cfg.use_advantage) \
                if draw is not None and m.buffer is not None else []
            return m.index, ((candidates, q) if candidates else None), found

        learners = [m for m in acting if m.info.capabilities.evaluates and self.health.usable(m.index)]
        results = await asyncio.gather(*(evaluate(m) for m in learners))
        q_values = {i: qc for i, qc, _ in results if qc is not None}
        return q_values, [e for _, _, part in results for e in part]

    def _values_in_step(self, m: Member) -> bool:
        return self.config.values_in_step and m.info.capabilities.values_in_step

    def evidence_batches(self) -> list[tuple[Kind, int]]:
        """What each learner draws from its suggestion buffer this step: one trust batch, and one
        agent-value batch per agent-value update of the step (`av_rounds`)."""
        cfg = self.config
        return ([(Kind.TRUST, cfg.trust_batch)] if cfg.use_trust else []) + \
            ([(Kind.AGENT_VALUES, self.av_batch)] * self.av_rounds if cfg.use_agent_values else [])

    # 4. choose -------------------------------------------------------------
    def _choose(self, m: Member, plan: Plan, suggestions: dict[tuple[int, int], np.ndarray],
                q: tuple[list[int], np.ndarray] | None) -> tuple[int, np.ndarray | None]:
        """The peer to follow and its action; (NOBODY, None) = act on the own policy, untagged."""
        cfg = self.config
        if not plan.ask:
            return (m.index if not m.in_warmup else NOBODY), None
        candidates = [j for j in plan.ask if (m.index, j) in suggestions]
        if not candidates:
            m.redecide = True  # the followed adviser abstained: act alone, decide again next step
            return m.index, None
        if plan.deciding and cfg.mode == "peer" and len(candidates) > 1:
            critic = q[1] if q is not None and q[0] == candidates else None
            followed, decision = self.reputations.decide(self.rng, m.index, candidates, critic,
                                                         reward_scale(m.buffer))
            if decision is not None and self.recorder is not None:
                self.recorder.decision(self, m, decision)
        else:
            followed = candidates[0]
        if plan.deciding:
            m.following, m.redecide = followed, False
        return followed, suggestions[(m.index, followed)]

    # 5. Step round ---------------------------------------------------------
    async def _step_round(self, acting: list[Member], choices: dict[int, tuple[int, np.ndarray | None]]) -> None:
        async def step(m: Member) -> None:
            followed, action = choices[m.index]
            stored = followed != NOBODY and m.buffer is not None and self.config.mode == "peer"
            draw = None
            if self.keeps_reputations and m.buffer is not None and self._values_in_step(m):
                # Drawn now, before the transition exists, from the buffer as it will stand with it.
                draw = draw_evidence(m.buffer, self.rng, self.evidence_batches(), m.obs if stored else None)
            result = await self._step_with_retry(m, action, draw)
            if result is None:
                return
            obs = m.observation
            m.step_id, m.steps = result.step_id, m.steps + 1
            if followed != NOBODY:
                m.follow_counts[followed] += 1
            if stored and m.buffer is not None:
                m.buffer.add(obs, followed, result.reward, result.next_observation, result.terminated)
            if draw is not None and m.buffer is not None:
                try:
                    values = check_values(result.v_values if result.v_values is not None else np.zeros(0),
                                          len(draw.v_states), "Step v_values")
                    self.evidence.defer(evidence_from_values(draw, values, m.buffer, m.index, m.info.gamma,
                                                             self.config.use_advantage))
                except WireError as err:  # the step stands; only its evidence is lost, as a bad Evaluate's
                    self._failed(m, "Step", err)
            m.obs = result.reset_observation if result.done else result.next_observation
            if self.recorder is not None:
                self.recorder.step_result(self, m, result)
            if result.episode_return is not None:
                m.last_episode_return = result.episode_return

        await asyncio.gather(*(step(m) for m in acting if self.health.usable(m.index)))

    async def _step_with_retry(self, m: Member, action: np.ndarray | None,
                               draw: EvidenceDraw | None = None) -> StepResult | None:
        step_id = m.step_id + 1
        for attempt in range(2):  # one retry: the peer replays an already applied step id
            try:
                result = await (m.client.step(step_id, action) if draw is None else
                                m.client.step(step_id, action, draw.v_states, draw.next_observation_rows))
                check_states(result.next_observation[None], m.info.observation_space, "next_observation")
                if result.done and result.reset_observation is None:
                    raise WireError("episode ended without reset_observation")
                self.health.on_success(m.index)
                return result
            except (PeerCallError, WireError) as err:
                # Retry only a quick transport failure (a reset connection): a timed-out retry would
                # cost a frozen peer's group a second deadline. A lost reply is healed at rejoin.
                code = getattr(err, "code", "")
                if code in ("ALREADY_EXISTS", "FAILED_PRECONDITION"):
                    # The peer's counter or episode differs from ours (a reply was lost, or it
                    # restarted): re-handshake at the next step boundary instead of failing again.
                    self._failed(m, "Step", err)
                    self.health.resync(m.index)
                    return None
                if attempt == 1 or code != "UNAVAILABLE":
                    self._failed(m, "Step", err)
                    return None
        return None

    # ------------------------------------------------------------------ evaluation, checkpoints
    async def evaluate_all(self, force: bool = False) -> None:
        due = [m for m in self.members if m.acts and m.info.capabilities.learns and self.health.usable(m.index)
               and (force or (m.steps > 0 and m.steps % self.config.eval_every == 0))]

        async def run(m: Member) -> None:
            try:
                result: EvalResult = await m.client.run_evaluation(self.config.eval_episodes,
                                                                   self.config.seed * 1000 + m.index + 10_000)
            except PeerCallError as err:
                self._failed(m, "RunEvaluation", err)
                return
            m.last_eval_return = result.mean_return
            if self.recorder is not None:
                self.recorder.evaluation(self, m, result)

        if due:
            await asyncio.gather(*(run(m) for m in due))

    async def checkpoint(self) -> bool:
        """Checkpoint every learner at this step boundary, then the orchestrator's own state.

        The orchestrator's state is written only when every learner saved, so `--resume` always
        finds a consistent set (peers' checkpoints named by step id + trust, buffers, counters).
        """
        async def save(m: Member) -> str | None:
            try:
                return (await m.client.save(m.step_id))[1]
            except PeerCallError as err:
                if err.code == "FAILED_PRECONDITION":
                    # A prompt, well-formed refusal (a peer without a checkpoint directory that did not
                    # say so in its handshake, say): the peer is healthy, the run just has no complete
                    # checkpoint to resume from.
                    if m.name not in self.cannot_save:
                        self.cannot_save.add(m.name)
                        m.errors.append(f"step {self.t}: Save: {err}")
                        self.health.note(m.index, "refuses to checkpoint (FAILED_PRECONDITION; summary.json says "
                                                  "why): this run cannot be resumed")
                    return None
                self._failed(m, "Save", err)
                return None

        learners = [m for m in self.members if m.info.capabilities.learns]
        # A learner that said in its handshake that it keeps no checkpoints is not asked; the set is then
        # incomplete, so the orchestrator's own state is not written either (nothing to resume from).
        tags = await asyncio.gather(*(save(m) for m in learners
                                      if self.health.usable(m.index) and m.info.capabilities.checkpoints))
        saved = [tag for tag in tags if tag is not None]
        if len(saved) != len(learners):  # a learner not asked, or one that did not save
            return False
        if self.recorder is not None:
            # A recorder that could not write it (a full disk) says so: then no checkpoint of this step exists.
            written = self.recorder.checkpoint(self.state_dict(dict(zip([m.index for m in learners], saved,
                                                                        strict=True))))
            return written is not False
        return True

    def state_dict(self, tags: dict[int, str]) -> dict[str, Any]:
        return {"t": self.t, "rng": self.rng.bit_generator.state, "reputations": self.reputations.state(),
                "pending_evidence": self.evidence.state(),
                "members": [{"name": m.name, "tag": tags.get(m.index), "step_id": m.step_id, "steps": m.steps,
                             "follow_counts": m.follow_counts.copy(),
                             "last_eval_return": m.last_eval_return,
                             # the episode in progress and the follow state: an exact resume continues both
                             "obs": None if m.obs is None else m.obs.copy(), "following": m.following,
                             "redecide": m.redecide, "last_episode_return": m.last_episode_return,
                             "buffer": m.buffer.state() if m.buffer is not None else None}
                            for m in self.members]}

    async def restore(self, state: dict[str, Any]) -> None:
        """Continue from an orchestrator checkpoint: peers load their checkpoint of that step; trust,
        agent values, buffers, counters, the follow state and the RNG continue. A peer whose checkpoint
        keeps its episode (GetInfo says it is active at that step) continues it, so the run goes on as
        if never interrupted; another (a peer of another language, an older checkpoint) starts a fresh
        episode (docs/robustness.md, "Exact resume")."""
        names = [m.name for m in self.members]
        if [s["name"] for s in state["members"]] != names:
            raise GroupError(f"checkpoint is of peers {[s['name'] for s in state['members']]}, group has {names}")

        async def load(m: Member, saved: dict[str, Any]) -> None:
            if saved["tag"] is not None:
                _, step_id = await m.client.load(saved["tag"])
                if step_id != saved["step_id"]:
                    raise GroupError(f"{m.name} restored step {step_id}, the orchestrator expected {saved['step_id']}")
            if not m.acts:
                return
            info = await m.client.get_info() if saved.get("obs") is not None else None
            if info is not None and info.episode_active and info.last_step_id == saved["step_id"]:
                m.obs, m.step_id = np.asarray(saved["obs"]).copy(), int(saved["step_id"])
                m.following, m.redecide = int(saved["following"]), bool(saved["redecide"])
                m.last_episode_return = float(saved["last_episode_return"])
            else:
                m.obs, m.step_id = await m.client.reset(None)

        await asyncio.gather(*(load(m, saved) for m, saved in zip(self.members, state["members"], strict=True)))
        self.t = self._t_started = int(state["t"])
        self.started = time.perf_counter()
        self.rng.bit_generator.state = state["rng"]
        self.reputations.restore(state["reputations"] if "reputations" in state else Reputations.legacy_state(state))
        self.evidence.restore(state.get("pending_evidence", []))
        for m, saved in zip(self.members, state["members"], strict=True):
            m.steps = int(saved["steps"])
            m.follow_counts = np.asarray(saved["follow_counts"]).copy()
            m.last_eval_return = float(saved["last_eval_return"])
            if m.buffer is not None and saved["buffer"] is not None:
                m.buffer.restore(saved["buffer"])

    # ------------------------------------------------------------------ health
    def _health_event(self, index: int, what: str) -> None:
        m = self.members[index]
        if self.health.state(index) in (EJECTED, BANNED):  # out of the loop: it follows nobody
            m.following = NOBODY
        if self.recorder is not None:
            self.recorder.health_event(self, m, what)

    async def _rejoin(self, ready: list[int]) -> None:
        await asyncio.gather(*(self._rejoin_one(self.members[i]) for i in ready))

    async def _rejoin_one(self, m: Member) -> None:
        """Re-handshake; restore the latest checkpoint if the peer lost its state; reset its episode."""
        try:
            info = await m.client.get_info()
            if m.acts:
                intact = info.episode_active and info.last_step_id == m.step_id and m.obs is not None
                if not intact:
                    if m.info.capabilities.learns and info.last_step_id < m.step_id:
                        try:
                            await m.client.load("")
                        except PeerCallError as err:
                            if err.code != "NOT_FOUND":
                                raise
                            self.health.note(m.index, "has no checkpoint: continues from its own state")
                    m.obs, m.step_id = await m.client.reset(None)
        except PeerCallError as err:
            self.health.rejoin_failed(m.index, err.code)
            return
        m.following, m.redecide = NOBODY, True
        self.health.rejoined(m.index)

    def _failed(self, m: Member, call: str, err: Exception) -> None:
        """The peer abstains from the rest of this step; repeated failures eject it (health.py)."""
        invalid = isinstance(err, WireError) or getattr(err, "code", "") == "BAD_REPLY"
        if invalid:
            m.invalid_replies += 1
        m.errors.append(f"step {self.t}: {call}: {err}")
        del m.errors[:-20]
        self.health.on_failure(m.index, invalid, timed_out=getattr(err, "code", "") == "DEADLINE_EXCEEDED")

    # ------------------------------------------------------------------ reporting
    @property
    def steps_per_second(self) -> float:
        return (self.t - self._t_started) / max(time.perf_counter() - self.started, 1e-9)

    def follow_matrix(self) -> np.ndarray:
        return np.stack([m.follow_counts for m in self.members])


def reward_scale(buffer: SuggestionBuffer | None) -> float:
    """The typical |reward| of a peer's recent transitions (its suggestion buffer): the unit of its
    advantage evidence, and the normalisation floor of reputation_scale = reward_floor."""
    if buffer is None or len(buffer) == 0:
        return 0.0
    return float(np.mean(np.abs(buffer.rewards[:len(buffer)])))


def check_compatible(infos: list[PeerInfo]) -> None:
    """Refuse a group that cannot work, saying which peer differs and how."""
    first = infos[0]
    problems = []
    ids = [i.peer_id for i in infos]
    if len(set(ids)) != len(ids):
        problems.append(f"peer ids are not unique: {ids}")
    for info in infos:
        if info.protocol_version != peerlearn.PROTOCOL_VERSION:
            problems.append(f"{info.peer_id} speaks {info.protocol_version!r}, expected {peerlearn.PROTOCOL_VERSION!r}")
        if info.env_id != first.env_id:
            problems.append(f"{info.peer_id} trains on {info.env_id}, {first.peer_id} on {first.env_id}")
        if not spaces_equal(info.observation_space, first.observation_space):
            problems.append(f"{info.peer_id} observation space {info.observation_space} != {first.observation_space}")
        if not spaces_equal(info.action_space, first.action_space):
            problems.append(f"{info.peer_id} action space {info.action_space} != {first.action_space}")
    if not any(i.capabilities.acts for i in infos):
        problems.append("no peer acts: a group needs at least one peer with an environment")
    if problems:
        raise GroupError("incompatible group: " + "; ".join(problems))
