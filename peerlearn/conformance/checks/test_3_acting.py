"""Conformance checks of peerlearn.v1 (docs/protocol.md):
Reset and Step: step ids, replays, bad actions, values in Step, episode ends.
"""

from __future__ import annotations

import math
from typing import Any

import grpc
import numpy as np
import pytest

from peerlearn.conformance.harness import (
    MAX_EPISODE_STEPS,
    ROOM_EPISODE_STEPS,
    PeerUnderTest,
    decode,
    encode,
    needs,
    raw,
    reset_peer,
    room_size,
)
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import tensor_pb2 as tpb

pytestmark = pytest.mark.timeout(600)


# ====================================================================== Reset / Step and step ids


def _one_action(p: PeerUnderTest) -> np.ndarray:
    _, act_space = p.spaces()
    if act_space.kind == "discrete":
        return np.asarray(act_space.start, dtype=np.int64)
    return p.spaces()[1].sample(p.rng, 1)[0]


def _other_action(p: PeerUnderTest, action: np.ndarray) -> np.ndarray | None:
    _, act_space = p.spaces()
    if act_space.kind == "discrete":
        if act_space.n < 2:
            return None
        return np.asarray((int(action) - act_space.start + 1) % act_space.n + act_space.start, dtype=np.int64)
    assert act_space.low is not None and act_space.high is not None  # a Box has both (harness.Space)
    other = (
        (act_space.low + act_space.high) / 2
        if np.isfinite(act_space.low).all()
        else np.zeros(act_space.shape)
    )
    other = other.astype(np.float32)
    return None if np.array_equal(other, action) else other


def _check_step_reply(p: PeerUnderTest, reply: Any, step_id: int, what: str) -> None:
    obs_space, act_space = p.spaces()
    assert reply.step_id == step_id, f"{what}: reply.step_id is {reply.step_id}, expected {step_id}"
    action = decode(reply.action, f"{what}.action")
    assert action.size == max(1, math.prod(act_space.shape)) and action.shape in (act_space.shape, (1,)), (
        f"{what}: reply.action has shape {action.shape}, expected the action shape {act_space.shape}"
    )
    assert act_space.contains(action), (
        f"{what}: the executed action {action.tolist()} is outside the action space"
    )
    nxt = decode(reply.next_observation, f"{what}.next_observation")
    assert nxt.shape == obs_space.shape, (
        f"{what}: next_observation has shape {nxt.shape}, expected {obs_space.shape}"
    )
    assert np.isfinite(nxt).all() and obs_space.contains(nxt), (
        f"{what}: next_observation is outside the space"
    )
    assert math.isfinite(reply.reward), f"{what}: reward is {reply.reward}"
    assert reply.gradient_steps >= 0, f"{what}: gradient_steps is {reply.gradient_steps}"
    done = reply.terminated or reply.truncated
    if not done:
        assert not reply.HasField("reset_observation"), (
            f"{what}: reset_observation is set although the episode did not end"
        )


def test_values_in_step(peer: PeerUnderTest) -> None:
    """Optional capability: Step values v_states, then its own next observation, after the step."""
    needs(peer, "values_in_step")
    needs(peer, "acts")
    _, last = reset_peer(peer)
    what = "Step with v_states (3 rows) and next_observation_rows=[0, 2]"
    request = pb.StepRequest(step_id=last + 1, v_states=encode(peer.states(3)), next_observation_rows=[0, 2])
    reply = peer.call("Step", request, what)
    _check_step_reply(peer, reply, last + 1, what)
    assert reply.HasField("v_values"), f"{what}: values_in_step is advertised but the reply has no v_values"
    values = decode(reply.v_values, "Step.v_values")
    assert values.shape == (3,) and values.dtype == np.float32 and np.isfinite(values).all(), (
        f"{what}: v_values must be 3 finite float32 values, got {values.dtype} {values.shape}"
    )
    bad = pb.StepRequest(step_id=last + 2, v_states=encode(peer.states(3)), next_observation_rows=[3])
    peer.expect("Step", bad, grpc.StatusCode.INVALID_ARGUMENT, "Step with next_observation_rows=[3] for 3 v_states")
    assert peer.get_info().last_step_id == last + 1, "a refused Step (bad next_observation_rows) was executed"


def test_reset_and_step_ids(peer: PeerUnderTest) -> None:
    needs(peer, "acts")
    before = peer.get_info().last_step_id
    _, last = reset_peer(peer, seed=7)
    assert last == before, (
        f"Reset returned last_step_id={last}, but GetInfo said {before} (Reset must not move it)"
    )
    info = peer.get_info()
    assert info.episode_active, "GetInfo.episode_active is false right after Reset"
    assert info.last_step_id == last, (
        f"GetInfo.last_step_id is {info.last_step_id} after Reset, expected {last}"
    )

    first = last + 1
    action = _one_action(peer)
    request = pb.StepRequest(step_id=first, action=encode(action))
    reply = peer.call("Step", request, f"Step(step_id={first}, action={action.tolist()})")
    _check_step_reply(peer, reply, first, f"Step({first})")
    assert not reply.replayed, f"Step({first}): replayed=true on the first execution of the id"
    np.testing.assert_allclose(
        decode(reply.action, "action").reshape(-1).astype(np.float64),
        action.reshape(-1).astype(np.float64),
        rtol=1e-6,
        err_msg=f"Step({first}): reply.action differs from the action requested",
    )

    again = peer.call("Step", request, f"Step({first}) repeated with the same action (a retry)")
    assert again.replayed, (
        f"Step({first}) repeated with the same action: expected replayed=true (nothing executed)"
    )
    assert again.reward == reply.reward and again.next_observation.data == reply.next_observation.data, (
        f"Step({first}) replay: the stored reply differs from the original (reward/next_observation)"
    )
    assert peer.get_info().last_step_id == first, "a replayed Step moved last_step_id"

    other = _other_action(peer, action)
    if other is not None:
        peer.expect(
            "Step",
            pb.StepRequest(step_id=first, action=encode(other)),
            grpc.StatusCode.ALREADY_EXISTS,
            f"Step({first}) repeated with a different action",
        )
    peer.expect(
        "Step",
        pb.StepRequest(step_id=first, action=None),
        grpc.StatusCode.ALREADY_EXISTS,
        f"Step({first}) repeated without action (the original had one)",
    )
    if first - 1 >= 1:
        peer.expect(
            "Step",
            pb.StepRequest(step_id=first - 1),
            grpc.StatusCode.ALREADY_EXISTS,
            f"Step({first - 1}), an id below the last applied {first}",
        )
    peer.expect(
        "Step",
        pb.StepRequest(step_id=first + 5),
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Step({first + 5}), an id ahead of last_step_id + 1 = {first + 1}",
    )
    assert peer.get_info().last_step_id == first, "refused Steps moved last_step_id"

    # Without an action the peer acts on its own behaviour policy.
    own = peer.call("Step", pb.StepRequest(step_id=first + 1), f"Step({first + 1}) without action")
    _check_step_reply(peer, own, first + 1, f"Step({first + 1}) without action")
    replay = peer.call(
        "Step", pb.StepRequest(step_id=first + 1), f"Step({first + 1}) without action, repeated"
    )
    assert replay.replayed, f"Step({first + 1}) repeated without action: expected replayed=true"
    assert peer.get_info().last_step_id == first + 1


def _bad_actions(p: PeerUnderTest) -> dict[str, tpb.Tensor]:
    _, act_space = p.spaces()
    if act_space.kind == "discrete":
        top = act_space.start + act_space.n
        return {
            "action above the range": encode(np.int64(top)),
            "action below the range": encode(np.int64(act_space.start - 1)),
            "float action for a Discrete space": encode(np.float32(act_space.start)),
            "a batch of actions for one step": encode(np.array([act_space.start] * 2, np.int64)),
            "malformed tensor": raw(tpb.DTYPE_INT64, [1], b"\x00" * 3),
        }
    shape = act_space.shape
    return {
        "action outside the Box bounds": encode(np.full(shape, 1e9, np.float32)),
        "NaN action": encode(np.full(shape, np.nan, np.float32)),
        "wrong action shape": encode(np.zeros((*shape[:-1], shape[-1] + 1), np.float32)),
        "integer action for a Box space": encode(np.zeros(shape, np.int64)),
        "malformed tensor": raw(tpb.DTYPE_FLOAT32, list(shape), b"\x00" * 3),
    }


def test_bad_step_actions_are_invalid_argument_and_apply_nothing(peer: PeerUnderTest) -> None:
    needs(peer, "acts")
    _, last = reset_peer(peer)
    for case, tensor in _bad_actions(peer).items():
        peer.expect(
            "Step",
            pb.StepRequest(step_id=last + 1, action=tensor),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Step({last + 1}) with {case}",
        )
        now = peer.get_info().last_step_id
        assert now == last, f"Step with {case} was refused but last_step_id moved from {last} to {now}"
    reply = peer.call("Step", pb.StepRequest(step_id=last + 1), f"Step({last + 1}) after the refused ones")
    assert reply.step_id == last + 1 and not reply.replayed, (
        f"Step({last + 1}) after refused bad actions: expected a fresh execution of id {last + 1}"
    )


def test_episode_end_carries_return_length_and_reset_observation(peer: PeerUnderTest) -> None:
    needs(peer, "acts")
    obs_space, _ = peer.spaces()
    _, last = reset_peer(peer)
    total, count = 0.0, 0
    size = room_size(peer.info.env_id)
    for k in range(1, MAX_EPISODE_STEPS + 1):
        what = f"Step({last + k}) (step {k} of the episode)"
        reply = peer.call("Step", pb.StepRequest(step_id=last + k), what)
        _check_step_reply(peer, reply, last + k, what)
        total, count = total + reply.reward, count + 1
        if reply.terminated or reply.truncated:
            break
    else:
        pytest.skip(f"no episode ended within {MAX_EPISODE_STEPS} steps: episode-end fields not checked")
    what = f"the Step that ended the episode (step {count})"
    assert reply.episode_length == count, (
        f"{what}: episode_length is {reply.episode_length}, but {count} steps were taken since Reset"
    )
    assert math.isclose(reply.episode_return, total, rel_tol=1e-6, abs_tol=1e-6), (
        f"{what}: episode_return is {reply.episode_return}, but the rewards since Reset sum to {total}"
    )
    assert reply.HasField("reset_observation"), (
        f"{what}: reset_observation is missing (the peer resets by itself)"
    )
    reset_obs = decode(reply.reset_observation, f"{what}.reset_observation")
    assert reset_obs.shape == obs_space.shape and obs_space.contains(reset_obs), (
        f"{what}: reset_observation has shape {reset_obs.shape} or lies outside the observation space"
    )
    if size is not None:
        assert reply.truncated and not reply.terminated and count == ROOM_EPISODE_STEPS.get(size, count), (
            f"{peer.info.env_id}: episodes are truncated after {ROOM_EPISODE_STEPS.get(size)} steps, never "
            f"terminate; got terminated={reply.terminated} truncated={reply.truncated} after {count} steps"
        )
    nxt = peer.call("Step", pb.StepRequest(step_id=last + count + 1), "the first Step of the next episode")
    assert nxt.step_id == last + count + 1, "the step counter does not continue across episodes"
