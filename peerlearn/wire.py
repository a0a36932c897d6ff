"""The wire, in one place: every `peerlearn.v1.PeerService` message to and from plain Python, and each
call's policy (which deadline, hedged or not, inline or on the peer's worker).

Both sides convert here, so a field means the same thing to the orchestrator's client
(orchestrator/running/grpc_client.py) and to the peer's server (peer_service/server.py); the
in-process transport skips this module altogether and hands over the same plain values. Laid out as
Flower's `serde.py`: per call, its request and its reply, each `*_to_proto` / `*_from_proto` (a
reply with a dataclass of its own, peerlearn/messages.py, is named by it: `info_`, `step_`, `eval_`).
Decoding raises `WireError` (peerlearn/tensors.py): a client counts it as a bad reply, a server as
INVALID_ARGUMENT (peer_service/validation.py:status_of). docs/protocol.md says what each field means.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import gymnasium as gym
import numpy as np

from peerlearn.messages import Capabilities, EvalResult, PeerInfo, StepResult
from peerlearn.tensors import from_tensor, space_from_proto, space_to_proto, to_tensor
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.validation import empty_batch

# ------------------------------------------------------------------------------------ call policy


class Deadline(enum.Enum):
    """Which of the client's deadlines a call gets (orchestrator/running/grpc_client.py:Deadlines)."""

    READ = "read"  # rpc_timeout_s: the read-only lock-step calls
    STEP = "step"  # step_timeout_s: Reset, and a Step that may run its gradient steps
    LONG = "long"  # seconds of evaluation episodes or disk: RunEvaluation, Save, Load


@dataclass(frozen=True)
class CallPolicy:
    deadline: Deadline
    # Safe to send twice, on the spare connection, when the first copy is slow: read-only calls, and
    # Step, whose repeated step id with the same action the peer replays instead of re-applying.
    hedged: bool
    # Short enough for the peer's event loop (when its batch is small); otherwise the peer's worker
    # thread, so that health checks keep answering during seconds of work.
    inline: bool
    # Changes nothing on the peer: one whose caller's deadline passed while it queued is skipped.
    read_only: bool


# The one table both sides read: the client its deadline and hedging, the server inline and skipping.
CALLS: Mapping[str, CallPolicy] = MappingProxyType({
    "GetInfo": CallPolicy(Deadline.READ, hedged=True, inline=True, read_only=True),
    "Suggest": CallPolicy(Deadline.READ, hedged=True, inline=True, read_only=True),
    "Evaluate": CallPolicy(Deadline.READ, hedged=True, inline=True, read_only=True),
    "Reset": CallPolicy(Deadline.STEP, hedged=False, inline=False, read_only=False),
    "Step": CallPolicy(Deadline.STEP, hedged=True, inline=True, read_only=False),
    "RunEvaluation": CallPolicy(Deadline.LONG, hedged=False, inline=False, read_only=False),
    "Save": CallPolicy(Deadline.LONG, hedged=False, inline=False, read_only=False),
    "Load": CallPolicy(Deadline.LONG, hedged=False, inline=False, read_only=False),
})

# ---------------------------------------------------------------------------------------- GetInfo


def get_info_request_to_proto() -> pb.GetInfoRequest:
    return pb.GetInfoRequest()


def info_to_proto(info: PeerInfo) -> pb.PeerInfo:
    c = info.capabilities
    return pb.PeerInfo(
        protocol_version=info.protocol_version, peer_id=info.peer_id, language=info.language,
        implementation=info.implementation, env_id=info.env_id,
        observation_space=space_to_proto(info.observation_space), action_space=space_to_proto(info.action_space),
        capabilities=pb.Capabilities(advises=c.advises, evaluates=c.evaluates, acts=c.acts, learns=c.learns,
                                     values_in_step=c.values_in_step, checkpoints=c.checkpoints),
        gamma=info.gamma, warmup_steps=info.warmup_steps, last_step_id=info.last_step_id,
        episode_active=info.episode_active)


def info_from_proto(msg: pb.PeerInfo) -> PeerInfo:
    c = msg.capabilities
    return PeerInfo(
        protocol_version=msg.protocol_version, peer_id=msg.peer_id, language=msg.language,
        implementation=msg.implementation, env_id=msg.env_id,
        observation_space=space_from_proto(msg.observation_space),
        action_space=space_from_proto(msg.action_space),
        capabilities=Capabilities(advises=c.advises, evaluates=c.evaluates, acts=c.acts, learns=c.learns,
                                  values_in_step=c.values_in_step,
                                  # a proto3 optional: a peer that predates it checkpoints iff it learns
                                  checkpoints=c.checkpoints if c.HasField("checkpoints") else c.learns),
        gamma=msg.gamma, warmup_steps=msg.warmup_steps, last_step_id=msg.last_step_id,
        episode_active=msg.episode_active)

# ---------------------------------------------------------------------------------------- Suggest


def suggest_request_to_proto(states: np.ndarray, deterministic: bool) -> pb.SuggestRequest:
    return pb.SuggestRequest(states=to_tensor(states), deterministic=deterministic)


def suggest_request_from_proto(msg: pb.SuggestRequest) -> tuple[np.ndarray, bool]:
    return from_tensor(msg.states, "states"), msg.deterministic


def suggest_reply_to_proto(actions: np.ndarray) -> pb.SuggestReply:
    return pb.SuggestReply(actions=to_tensor(actions))


def suggest_reply_from_proto(msg: pb.SuggestReply) -> np.ndarray:
    return from_tensor(msg.actions, "actions")

# --------------------------------------------------------------------------------------- Evaluate


def evaluate_request_to_proto(q_states: np.ndarray, q_actions: np.ndarray,
                              v_states: np.ndarray) -> pb.EvaluateRequest:
    return pb.EvaluateRequest(q_states=to_tensor(q_states), q_actions=to_tensor(q_actions),
                              v_states=to_tensor(v_states))


def evaluate_request_from_proto(msg: pb.EvaluateRequest, observation_space: gym.Space[Any],
                                action_space: gym.Space[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q_states, q_actions, v_states); an unset part is an empty batch of its space's shape (the peer
    checks the shapes)."""
    return (_batch(msg, "q_states", observation_space), _batch(msg, "q_actions", action_space),
            _batch(msg, "v_states", observation_space))


def _batch(msg: pb.EvaluateRequest, name: str, space: gym.Space[Any]) -> np.ndarray:
    if not msg.HasField(name):
        return empty_batch(space)
    return from_tensor(getattr(msg, name), name)


def evaluate_reply_to_proto(q_values: np.ndarray, v_values: np.ndarray) -> pb.EvaluateReply:
    return pb.EvaluateReply(q_values=to_tensor(q_values), v_values=to_tensor(v_values))


def evaluate_reply_from_proto(msg: pb.EvaluateReply) -> tuple[np.ndarray, np.ndarray]:
    return from_tensor(msg.q_values, "q_values"), from_tensor(msg.v_values, "v_values")

# ------------------------------------------------------------------------------------------ Reset


def reset_request_to_proto(seed: int | None) -> pb.ResetRequest:
    # proto3 has no "unset" for a scalar: has_seed says whether the seed is meant (only a run's first Reset)
    return pb.ResetRequest(seed=seed or 0, has_seed=seed is not None)


def reset_request_from_proto(msg: pb.ResetRequest) -> int | None:
    return msg.seed if msg.has_seed else None


def reset_reply_to_proto(observation: np.ndarray, last_step_id: int) -> pb.ResetReply:
    return pb.ResetReply(observation=to_tensor(observation), last_step_id=last_step_id)


def reset_reply_from_proto(msg: pb.ResetReply) -> tuple[np.ndarray, int]:
    return from_tensor(msg.observation, "observation"), msg.last_step_id

# ------------------------------------------------------------------------------------------- Step


def step_request_to_proto(step_id: int, action: np.ndarray | None, v_states: np.ndarray | None = None,
                          next_observation_rows: Collection[int] = ()) -> pb.StepRequest:
    msg = pb.StepRequest(step_id=step_id, next_observation_rows=[int(r) for r in next_observation_rows])
    if action is not None:  # unset: the peer acts on its own behaviour policy
        msg.action.CopyFrom(to_tensor(action))
    if v_states is not None:  # values in Step (capabilities.values_in_step)
        msg.v_states.CopyFrom(to_tensor(v_states))
    return msg


def step_request_from_proto(msg: pb.StepRequest) -> tuple[int, np.ndarray | None, np.ndarray | None, Sequence[int]]:
    """(step_id, action, v_states, next_observation_rows); the rows are the message's own container,
    bounds-checked by the peer."""
    action = from_tensor(msg.action, "action") if msg.HasField("action") else None
    v_states = from_tensor(msg.v_states, "v_states") if msg.HasField("v_states") else None
    return msg.step_id, action, v_states, msg.next_observation_rows


def step_to_proto(res: StepResult) -> pb.StepReply:
    reply = pb.StepReply(
        step_id=res.step_id, action=to_tensor(res.action), reward=res.reward,
        next_observation=to_tensor(res.next_observation), terminated=res.terminated, truncated=res.truncated,
        replayed=res.replayed, gradient_steps=res.gradient_steps, losses=res.losses)
    if res.episode_return is not None:
        reply.episode_return = res.episode_return
        reply.episode_length = res.episode_length or 0
    if res.reset_observation is not None:
        reply.reset_observation.CopyFrom(to_tensor(res.reset_observation))
    if res.v_values is not None:
        reply.v_values.CopyFrom(to_tensor(res.v_values))
    return reply


def step_from_proto(msg: pb.StepReply) -> StepResult:
    done = msg.terminated or msg.truncated
    return StepResult(
        step_id=msg.step_id, action=from_tensor(msg.action, "action"), reward=msg.reward,
        next_observation=from_tensor(msg.next_observation, "next_observation"),
        terminated=msg.terminated, truncated=msg.truncated,
        episode_return=msg.episode_return if done else None, episode_length=msg.episode_length if done else None,
        reset_observation=from_tensor(msg.reset_observation, "reset_observation")
        if msg.HasField("reset_observation") else None,
        replayed=msg.replayed, gradient_steps=msg.gradient_steps, losses=dict(msg.losses),
        v_values=from_tensor(msg.v_values, "v_values") if msg.HasField("v_values") else None)

# ---------------------------------------------------------------------------------- RunEvaluation


def run_evaluation_request_to_proto(episodes: int, seed: int) -> pb.RunEvaluationRequest:
    return pb.RunEvaluationRequest(episodes=episodes, seed=seed)


def run_evaluation_request_from_proto(msg: pb.RunEvaluationRequest) -> tuple[int, int]:
    return msg.episodes, msg.seed


def eval_to_proto(res: EvalResult) -> pb.RunEvaluationReply:
    return pb.RunEvaluationReply(returns=res.returns, lengths=res.lengths, mean_return=res.mean_return,
                                 std_return=res.std_return, exact=res.exact)


def eval_from_proto(msg: pb.RunEvaluationReply) -> EvalResult:
    return EvalResult(returns=list(msg.returns), lengths=list(msg.lengths), exact=msg.exact)

# ------------------------------------------------------------------------------------ Save / Load


def save_request_to_proto(step_id: int, tag: str) -> pb.SaveRequest:
    return pb.SaveRequest(step_id=step_id, tag=tag)


def save_request_from_proto(msg: pb.SaveRequest) -> tuple[int, str]:
    return msg.step_id, msg.tag


def save_reply_to_proto(location: str, tag: str) -> pb.SaveReply:
    return pb.SaveReply(location=location, tag=tag)


def save_reply_from_proto(msg: pb.SaveReply) -> tuple[str, str]:
    return msg.location, msg.tag


def load_request_to_proto(tag: str) -> pb.LoadRequest:
    return pb.LoadRequest(tag=tag)


def load_request_from_proto(msg: pb.LoadRequest) -> str:
    return msg.tag


def load_reply_to_proto(tag: str, last_step_id: int) -> pb.LoadReply:
    return pb.LoadReply(tag=tag, last_step_id=last_step_id)


def load_reply_from_proto(msg: pb.LoadReply) -> tuple[str, int]:
    return msg.tag, msg.last_step_id
