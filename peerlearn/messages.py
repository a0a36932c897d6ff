"""Plain-Python views of the protocol messages, shared by peers, clients and the in-process transport.

The orchestrator and the peer service both work with these dataclasses; only the gRPC layer converts
them to and from `peerlearn.v1` protobufs (the `*_to_proto` / `*_from_proto` functions below).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from peerlearn.tensors import from_tensor, space_from_proto, space_to_proto, to_tensor
from peerlearn.v1 import peer_pb2 as pb


@dataclass(frozen=True)
class Capabilities:
    advises: bool = True
    evaluates: bool = True
    acts: bool = True
    learns: bool = True
    values_in_step: bool = False
    checkpoints: bool = True  # answers Save/Load (only a learner is asked); on the wire unset = learns


@dataclass
class PeerInfo:
    protocol_version: str
    peer_id: str
    language: str
    implementation: str
    env_id: str
    observation_space: gym.Space
    action_space: gym.Space
    capabilities: Capabilities
    gamma: float = 0.99
    warmup_steps: int = 0
    last_step_id: int = 0
    episode_active: bool = False


@dataclass
class StepResult:
    step_id: int
    action: np.ndarray
    reward: float
    next_observation: np.ndarray
    terminated: bool
    truncated: bool
    episode_return: float | None = None
    episode_length: int | None = None
    reset_observation: np.ndarray | None = None
    replayed: bool = False
    gradient_steps: int = 0
    losses: dict[str, float] = field(default_factory=dict)
    v_values: np.ndarray | None = None  # values requested with the Step (capabilities.values_in_step)

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


@dataclass
class EvalResult:
    returns: list[float]
    lengths: list[int]
    exact: bool

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def std_return(self) -> float:
        return float(np.std(self.returns)) if self.returns else float("nan")


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
                                  checkpoints=c.checkpoints if c.HasField("checkpoints") else c.learns),
        gamma=msg.gamma, warmup_steps=msg.warmup_steps, last_step_id=msg.last_step_id,
        episode_active=msg.episode_active)


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


def eval_to_proto(res: EvalResult) -> pb.RunEvaluationReply:
    return pb.RunEvaluationReply(returns=res.returns, lengths=res.lengths, mean_return=res.mean_return,
                                 std_return=res.std_return, exact=res.exact)


def eval_from_proto(msg: pb.RunEvaluationReply) -> EvalResult:
    return EvalResult(returns=list(msg.returns), lengths=list(msg.lengths), exact=msg.exact)
