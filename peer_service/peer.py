"""The peer itself: its environment, its learner and the protocol's state machine, without gRPC.

`Peer` answers every protocol call with plain Python values and raises `PeerError` for requests it
refuses. The gRPC servicer (server.py) and the in-process transport both call it, so both paths
share one implementation of the semantics written in docs/protocol.md.

State machine: CREATED --Reset--> ACTIVE --Step--> ACTIVE (episode ends reset the env by themselves).
Step ids are sequential: the next Step must carry last_step_id + 1; repeating the last id with the
same action replays the stored reply (a retry is never applied twice).
"""

from __future__ import annotations

import json
import pickle
import platform
from collections.abc import Collection
from dataclasses import asdict
from pathlib import Path
from typing import Any

import grpc
import gymnasium as gym
import numpy as np

import peerlearn
from peer_service import env_state
from peer_service.attacks import Attack, parse_attack
from peer_service.config import PeerConfig
from peer_service.envs import check_spaces, evaluation_copy, make_env, resolve_env_id, room_critic, unwrap_room
from peer_service.envs.room import optimal_action
from peer_service.learner import SB3Learner
from peer_service.presets import preset_for
from peer_service.pretrained import FrozenAdviser, is_off_policy, load_model
from peer_service.validation import PeerError
from peerlearn.messages import Capabilities, EvalResult, PeerInfo, StepResult
from peerlearn.settings import ROLES
from peerlearn.validation import check_actions, check_states, empty_batch

# Bound on StepRequest.next_observation_rows (the orchestrator sends at most trust + agent-value batch).
MAX_NEXT_OBSERVATION_ROWS = 1024

# Discount of a scripted adviser's exact critic (the paper's DQN gamma on Room).
SCRIPTED_GAMMA = 0.99
DEFAULT_EVAL_EPISODES = 10


def as_wire_observation(observation: Any) -> np.ndarray:
    """Observations travel as FLOAT32 or FLOAT64 (docs/protocol.md): any other Box (integers of a one-hot
    FlattenObservation, pixels, float16) is sent as float32; the learner keeps the env's own values."""
    array = np.asarray(observation)
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)


class Peer:
    def __init__(self, config: PeerConfig, model: Any | None = None, env: gym.Env | None = None) -> None:
        """A peer from its settings; `model` (a loaded SB3 model) and `env` (a user's env object) are
        for peers served from Python (peerlearn.api.serve) instead of built from the task's name."""
        if config.role not in ROLES:
            raise ValueError(f"unknown role {config.role!r}; expected one of {ROLES}")
        self.config = config
        if env is not None:
            self.env = env
            self.env_id = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
            self.eval_env = evaluation_copy(env)
        else:
            self.env_id = resolve_env_id(config.task)
            self.env = make_env(self.env_id, wrappers=config.wrappers)
            self.eval_env = make_env(self.env_id, wrappers=config.wrappers)
        check_spaces(self.env.observation_space, self.env.action_space, self.env_id)
        if self.eval_env.observation_space != self.env.observation_space:
            raise ValueError(f"the evaluation copy of {self.env_id} observes {self.eval_env.observation_space}, the "
                             f"env {self.env.observation_space}: give the env a spec that lists its wrappers")
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        self.learner: SB3Learner | None = None
        self.adviser: FrozenAdviser | None = None
        self.room_size: int | None = None
        if model is None and config.pretrained:
            model = load_model(config.pretrained, config.learner_overrides.get("algo"), env=self.env)
        if model is not None and config.role == "adviser":
            self.adviser = FrozenAdviser(model)
        elif model is not None and config.role == "learner":
            if not is_off_policy(model):
                raise ValueError(f"a {type(model).__name__} model can join only as a frozen adviser (role "
                                 "adviser): peer learning needs an off-policy learner's replay buffer and Q critic")
            self.learner = SB3Learner.from_model(model, self.env, config.total_steps)
        elif config.role == "adviser":
            raise ValueError("role adviser needs a pretrained model (setting pretrained: an SB3 model zip)")
        elif config.role == "learner":
            preset = preset_for(self.env_id, config.learner_overrides.get("algo"),
                                discrete=isinstance(self.env.action_space, gym.spaces.Discrete)
                                ).with_overrides(**config.learner_overrides)
            self.learner = SB3Learner(self.env, preset, config.total_steps, config.seed)
        else:
            room = unwrap_room(self.env)
            if room is None:
                raise ValueError(f"scripted role {config.role!r} exists only for Room tasks, not {self.env_id}")
            self.room_size = room.size
        self.last_step_id = 0
        self.observation: np.ndarray | None = None
        self.episode_return = 0.0
        self.episode_length = 0
        self._last_reply: StepResult | None = None
        self._last_request_action: np.ndarray | None = None
        self._eval_seeded = False
        self._training_error: str | None = None
        spec = parse_attack(config.attack)
        self.attack = None if spec is None else Attack(spec, config.peer_id, self.action_space,
                                                       self.room_size or _room_size(self.env), config.seed,
                                                       board_dir=config.collude_board or None)

    # ------------------------------------------------------------------ handshake
    def info(self) -> PeerInfo:
        learner = self.learner
        learns = learner is not None
        if learner is not None:
            implementation = f"sb3.{learner.preset.algo}"
        elif self.adviser is not None:
            implementation = f"sb3.{self.adviser.name}.frozen"
        else:
            implementation = f"scripted-{self.config.role}"
        return PeerInfo(
            protocol_version=peerlearn.PROTOCOL_VERSION, peer_id=self.config.peer_id,
            language=f"python/{platform.python_version()}", implementation=implementation, env_id=self.env_id,
            observation_space=self.observation_space, action_space=self.action_space,
            # A scripted adviser evaluates with its exact critic (room_critic.py) but neither acts nor learns.
            # values_in_step: a learner values the trust evidence inside Step, after its gradient steps.
            # Not with overlap_training, whose gradient steps come after the reply (the values would
            # have to wait for them, and the overlap would be gone).
            # checkpoints: without a checkpoint directory (a model served from Python) Save can only
            # refuse, so the peer says so here and the orchestrator does not ask it.
            capabilities=Capabilities(advises=True, evaluates=self.adviser is None, acts=learns, learns=learns,
                                      values_in_step=learns and not self.config.overlap_training,
                                      checkpoints=learns and bool(self.config.checkpoint_dir)),
            gamma=learner.preset.gamma if learner is not None else SCRIPTED_GAMMA,
            warmup_steps=learner.preset.learning_starts if learner is not None else 0,
            last_step_id=self.last_step_id, episode_active=self.observation is not None)

    # ------------------------------------------------------------------ advice and critic
    def suggest(self, states: np.ndarray, deterministic: bool) -> np.ndarray:
        self.settle()
        states = check_states(states, self.observation_space, "states")
        actions = self._honest_suggest(states, deterministic)
        if self.attack is None:
            return actions
        own = None if self.observation is None else np.all(
            states.reshape(len(states), -1) == np.asarray(self.observation, np.float32).reshape(1, -1), axis=1)
        return self.attack.suggest(states, actions, own)

    def _honest_suggest(self, states: np.ndarray, deterministic: bool) -> np.ndarray:
        if self.adviser is not None:
            return self.adviser.suggest(states, deterministic) if len(states) else empty_batch(self.action_space)
        if self.learner is None:
            mirror = self.config.role == "adversary"
            return np.array([optimal_action(s, self.room_size or 2, toward_mirror=mirror) for s in states],
                            dtype=np.int64)
        if len(states) == 0:
            return empty_batch(self.action_space)
        return self.learner.suggest(states, deterministic)

    def evaluate(self, q_states: np.ndarray, q_actions: np.ndarray,
                 v_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.settle()
        if self.adviser is not None:
            raise PeerError(grpc.StatusCode.UNIMPLEMENTED, f"Evaluate: peer {self.config.peer_id} is a frozen "
                            f"{self.adviser.name} adviser without a Q critic (capabilities.evaluates is false)")
        q_states = check_states(q_states, self.observation_space, "q_states")
        q_actions = check_actions(q_actions, self.action_space, len(q_states), "q_actions")
        v_states = check_states(v_states, self.observation_space, "v_states")
        return self._critic(q_states, q_actions, v_states)

    def _critic(self, q_states: np.ndarray, q_actions: np.ndarray,
                v_states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Q and V of validated batches, as the peer reports them (an attack alters them here)."""
        if self.learner is None:
            size, mirror = self.room_size or 2, self.config.role == "adversary"
            q = room_critic.q_values(q_states, q_actions, size, mirror, SCRIPTED_GAMMA).astype(np.float32)
            v = room_critic.v_values(v_states, size, mirror, SCRIPTED_GAMMA).astype(np.float32)
        else:
            q = self.learner.q_values(q_states, q_actions).astype(np.float32)
            v = self.learner.v_values(v_states).astype(np.float32)
        return (q, v) if self.attack is None else self.attack.evaluate(v_states, q, v)

    # ------------------------------------------------------------------ acting
    def reset(self, seed: int | None) -> tuple[np.ndarray, int]:
        self._require_learner("Reset")
        if seed is not None and not 0 <= seed < 2**63:
            raise PeerError(grpc.StatusCode.INVALID_ARGUMENT, f"seed must be in 0..2**63-1, got {seed}")
        self.observation = None  # if the env fails to reset, the next Step waits for another Reset
        self.observation, _ = self.env.reset(seed=seed)
        self.episode_return, self.episode_length = 0.0, 0
        return as_wire_observation(self.observation), self.last_step_id

    def step(self, step_id: int, action: np.ndarray | None, v_states: np.ndarray | None = None,
             next_observation_rows: Collection[int] = ()) -> StepResult:
        """Execute one env step (and its gradient steps). With v_states, also value them afterwards, the
        step's own true next observation in place of `next_observation_rows` (capabilities.values_in_step)."""
        learner = self._require_learner("Step")
        self.settle()
        if self.observation is None:
            raise PeerError(grpc.StatusCode.FAILED_PRECONDITION, "Step before Reset: call Reset first")
        if action is not None:
            action = check_actions(action, self.action_space, None, "action")
        if v_states is not None:  # checked before the step: a bad request must not half-apply
            v_states = check_states(v_states, self.observation_space, "v_states")
        rows = np.asarray(next_observation_rows, dtype=np.int64)
        count = 0 if v_states is None else len(v_states)
        if len(rows) > MAX_NEXT_OBSERVATION_ROWS or not ((rows >= 0) & (rows < count)).all():
            raise PeerError(grpc.StatusCode.INVALID_ARGUMENT, f"next_observation_rows must be at most "
                            f"{MAX_NEXT_OBSERVATION_ROWS} row indices of v_states (0..{count - 1})")
        if step_id == self.last_step_id and self._last_reply is not None:
            if _same_action(action, self._last_request_action):
                replay = StepResult(**{**asdict(self._last_reply), "replayed": True})
                return replay
            raise PeerError(grpc.StatusCode.ALREADY_EXISTS,
                            f"step id {step_id} was already applied with a different action; "
                            f"the next step id is {self.last_step_id + 1}")
        if step_id != self.last_step_id + 1:
            code = grpc.StatusCode.ALREADY_EXISTS if step_id <= self.last_step_id else \
                grpc.StatusCode.FAILED_PRECONDITION
            raise PeerError(code, f"step id {step_id} out of order: the next step id is {self.last_step_id + 1}")
        obs = self.observation
        executed = learner.behaviour_action(obs) if action is None else learner.to_env_action(action)
        env_action = int(executed) if learner.is_discrete else executed
        next_obs, reward, terminated, truncated, _ = self.env.step(env_action)
        grad_steps, losses = learner.store(obs, executed, float(reward), next_obs, terminated, truncated,
                                           defer_training=self.config.overlap_training)
        if self.attack is not None:
            self.attack.observe_step(obs, action, executed, next_obs, step_id)
        self.last_step_id = step_id
        self.episode_return += float(reward)
        self.episode_length += 1
        result = StepResult(step_id=step_id, action=np.asarray(executed), reward=float(reward),
                            next_observation=as_wire_observation(next_obs), terminated=bool(terminated),
                            truncated=bool(truncated), gradient_steps=grad_steps, losses=losses)
        if terminated or truncated:
            result.episode_return, result.episode_length = self.episode_return, self.episode_length
            self.observation, _ = self.env.reset()
            result.reset_observation = as_wire_observation(self.observation)
            self.episode_return, self.episode_length = 0.0, 0
        else:
            self.observation = next_obs
        if v_states is not None:
            result.v_values = self._values_after_step(v_states, np.asarray(next_obs), rows)
        self._last_reply, self._last_request_action = result, action
        return result

    def _values_after_step(self, v_states: np.ndarray, next_obs: np.ndarray, next_rows: np.ndarray) -> np.ndarray:
        """V(v_states) with next_obs in the `next_rows` (both validated by step()), through the same
        critic path as Evaluate: an attack sees the rows as an Evaluate's (s' block, s block), so a
        lying peer lies here exactly as it would there."""
        self.settle()  # with overlap_training the step's gradient steps are still pending
        rows = np.array(v_states, dtype=np.float32, copy=True)
        rows[next_rows] = next_obs
        return self._critic(empty_batch(self.observation_space), empty_batch(self.action_space), rows)[1]

    def run_evaluation(self, episodes: int, seed: int) -> EvalResult:
        learner = self._require_learner("RunEvaluation")
        self.settle()
        room = unwrap_room(self.eval_env)
        exact = episodes == 0 and room is not None
        if exact and room is not None:  # (room again: mypy does not narrow through `exact`)
            starts: list[dict[str, Any] | None] = [{"goal_index": k} for k in range(room.num_goals)]
        else:
            starts = [None] * (episodes or DEFAULT_EVAL_EPISODES)
        returns, lengths = [], []
        for i, options in enumerate(starts):
            first = not self._eval_seeded and i == 0
            obs, _ = self.eval_env.reset(seed=seed if first else None, options=options)
            self._eval_seeded = self._eval_seeded or first
            total, length, done = 0.0, 0, False
            while not done:
                action = learner.suggest(obs[None].astype(np.float32), deterministic=True)[0]
                obs, reward, terminated, truncated, _ = self.eval_env.step(
                    int(action) if learner.is_discrete else action)
                total, length, done = total + float(reward), length + 1, terminated or truncated
            returns.append(total)
            lengths.append(length)
        return EvalResult(returns=returns, lengths=lengths, exact=exact)

    # ------------------------------------------------------------------ checkpoints
    def save(self, step_id: int, tag: str) -> tuple[str, str]:
        learner = self._require_learner("Save")
        self.settle()
        if step_id != self.last_step_id:
            raise PeerError(grpc.StatusCode.FAILED_PRECONDITION,
                            f"Save at step id {step_id}, but the peer is at step {self.last_step_id}")
        tag = tag or f"step-{step_id}"
        _check_tag(tag)
        directory = self._checkpoint_root() / tag
        learner.save(directory)
        state = {"last_step_id": self.last_step_id, "peer_id": self.config.peer_id, "env_id": self.env_id}
        (directory / "peer.json").write_text(json.dumps(state))
        rng = {"env": self.env.unwrapped.np_random.bit_generator.state}
        (directory / "peer_rng.pkl").write_bytes(pickle.dumps(rng))
        # The episode in progress and both envs' full state: a resumed run continues this episode
        # where it stands, so it is the run never interrupted (docs/robustness.md, "Exact resume").
        episode = {"env": env_state.capture(self.env), "eval_env": env_state.capture(self.eval_env),
                   "observation": self.observation, "episode_return": self.episode_return,
                   "episode_length": self.episode_length, "eval_seeded": self._eval_seeded}
        (directory / "episode.pkl").write_bytes(pickle.dumps(episode))
        (self._checkpoint_root() / "latest").write_text(tag)
        prune_checkpoints(self._checkpoint_root(), tag, self.config.keep_checkpoints)
        return str(directory), tag

    def load(self, tag: str) -> tuple[str, int]:
        learner = self._require_learner("Load")
        self.settle()
        root = self._checkpoint_root()
        if not tag:
            latest = root / "latest"
            if not latest.exists():
                raise PeerError(grpc.StatusCode.NOT_FOUND, f"no checkpoint in {root}")
            tag = latest.read_text().strip()
        _check_tag(tag)
        directory = root / tag
        if not (directory / "peer.json").exists():
            raise PeerError(grpc.StatusCode.NOT_FOUND, f"no checkpoint named {tag!r} in {root}")
        learner.load(directory, self.env)
        state = json.loads((directory / "peer.json").read_text())
        self.env.unwrapped.np_random.bit_generator.state = pickle.loads(
            (directory / "peer_rng.pkl").read_bytes())["env"]
        self.last_step_id = int(state["last_step_id"])
        self.observation, self._last_reply = None, None
        episode_file = directory / "episode.pkl"
        if episode_file.exists():
            # The episode continues where the checkpoint left it (GetInfo says episode_active); a
            # checkpoint written before these were kept starts with Reset, as before.
            episode = pickle.loads(episode_file.read_bytes())
            env_state.restore(self.env, episode["env"])
            env_state.restore(self.eval_env, episode["eval_env"])
            self.observation = episode["observation"]
            self.episode_return, self.episode_length = episode["episode_return"], episode["episode_length"]
            self._eval_seeded = episode["eval_seeded"]
        return tag, self.last_step_id

    # ------------------------------------------------------------------ deferred training
    def settle(self) -> None:
        """Run the gradient steps a Step left pending (overlap_training). The server calls this right
        after sending the Step reply; every other call runs it first, so it always happens before the
        learner is used again. A failure is reported by the next call, as the Step's would have been."""
        if self._training_error is not None:
            message, self._training_error = self._training_error, None
            raise PeerError(grpc.StatusCode.INTERNAL, message)
        if self.learner is None or not self.learner.training_due:
            return
        try:
            self.learner.train_pending()
        except Exception as err:  # noqa: BLE001 - reported to the caller, never lost
            raise PeerError(grpc.StatusCode.INTERNAL,
                            f"training after step {self.last_step_id} failed: {type(err).__name__}: {err}") from err

    def settle_quietly(self) -> None:
        """`settle` for the server's background call: a failure is kept for the next caller."""
        try:
            self.settle()
        except PeerError as err:
            self._training_error = err.message

    # ------------------------------------------------------------------ helpers
    def _require_learner(self, call: str) -> SB3Learner:
        if self.learner is None:
            raise PeerError(grpc.StatusCode.UNIMPLEMENTED,
                            f"{call}: peer {self.config.peer_id} is an adviser ({self.config.role}); "
                            "it only answers GetInfo, Suggest and Evaluate")
        return self.learner

    def _checkpoint_root(self) -> Path:
        if not self.config.checkpoint_dir:
            raise PeerError(grpc.StatusCode.FAILED_PRECONDITION,
                            "this peer has no checkpoint directory (start it with --checkpoint-dir)")
        return Path(self.config.checkpoint_dir)


def prune_checkpoints(root: Path, latest: str, keep: int) -> None:
    """After a save: only the two newest checkpoints keep their replay buffer (what --resume needs and
    by far the largest file: a whole run's transitions), older ones keep weights and RNG states; with
    keep > 0, only the newest max(keep, 2) checkpoints (by step id) are kept at all. Two, not one: a run
    killed after its peers saved step N but before the orchestrator recorded step N resumes from the
    checkpoint before, which must still be whole."""
    import shutil

    saved = []
    for peer_json in root.glob("*/peer.json"):
        try:
            saved.append((int(json.loads(peer_json.read_text())["last_step_id"]), peer_json.parent.name))
        except (OSError, ValueError, KeyError):
            continue  # not one of ours, or half written: leave it alone
    older = [tag for _, tag in sorted(saved, reverse=True) if tag != latest]
    for tag in older[1:]:
        (root / tag / SB3Learner.REPLAY_BUFFER).unlink(missing_ok=True)
    if keep > 0:
        for tag in older[max(keep, 2) - 1:]:
            shutil.rmtree(root / tag, ignore_errors=True)


def _room_size(env: Any) -> int | None:
    room = unwrap_room(env)
    return None if room is None else int(room.size)


def _same_action(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _check_tag(tag: str) -> None:
    if len(tag) > 100:
        raise PeerError(grpc.StatusCode.INVALID_ARGUMENT, f"checkpoint tag of {len(tag)} characters: at most 100")
    if not tag.replace("-", "").replace("_", "").replace(".", "").isalnum() or tag.startswith("."):
        raise PeerError(grpc.StatusCode.INVALID_ARGUMENT,
                        f"checkpoint tag {tag!r} may only hold letters, digits, '-', '_' and '.'")
