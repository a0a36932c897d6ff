"""Protocol round trips against real peer servers on loopback, and every bad input answered with
the documented status code while the server keeps serving (docs/protocol.md)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peerlearn.tensors import from_tensor, to_tensor
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import peer_pb2_grpc, tensor_pb2
from peerlearn.wire import info_from_proto, step_from_proto

pytestmark = pytest.mark.timeout(120)
TIMEOUT = 30.0


@pytest.fixture(scope="module")
def stubs(peer_processes: dict[str, str]):  # type: ignore[no-untyped-def]
    channels = {name: grpc.insecure_channel(addr) for name, addr in peer_processes.items()}
    yield {name: peer_pb2_grpc.PeerServiceStub(ch) for name, ch in channels.items()}
    for ch in channels.values():
        ch.close()


def code_of(call, request) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as exc:
        call(request, timeout=TIMEOUT)
    return exc.value.code()


def test_handshake_describes_peers(stubs) -> None:  # type: ignore[no-untyped-def]
    dqn = info_from_proto(stubs["dqn"].GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT))
    assert dqn.protocol_version == "peerlearn.v1" and dqn.peer_id == "dqn"
    assert dqn.env_id == "peerlearn/Room-6-v0" and dqn.action_space.n == 4
    assert dqn.capabilities.learns and dqn.capabilities.acts and dqn.warmup_steps == 100
    sac = info_from_proto(stubs["sac"].GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT))
    assert sac.implementation == "sb3.SAC" and sac.action_space.shape == (3,)
    expert = info_from_proto(stubs["expert"].GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT))
    assert expert.capabilities.advises and expert.capabilities.evaluates and not expert.capabilities.acts


def test_health_and_reflection_are_served(peer_processes: dict[str, str]) -> None:
    with grpc.insecure_channel(peer_processes["dqn"]) as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service="peerlearn.v1.PeerService"),
                                                     timeout=TIMEOUT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=TIMEOUT)
        names = {s.name for r in replies for s in r.list_services_response.service}
        assert "peerlearn.v1.PeerService" in names and "grpc.health.v1.Health" in names


def test_suggest_and_evaluate_batches(stubs) -> None:  # type: ignore[no-untyped-def]
    states = np.random.default_rng(0).random((7, 4)).astype(np.float32)
    actions = from_tensor(stubs["dqn"].Suggest(pb.SuggestRequest(states=to_tensor(states)), timeout=TIMEOUT).actions)
    assert actions.shape == (7,) and actions.dtype == np.int64 and ((actions >= 0) & (actions < 4)).all()
    expert = from_tensor(stubs["expert"].Suggest(pb.SuggestRequest(states=to_tensor(states), deterministic=True),
                                                 timeout=TIMEOUT).actions)
    assert expert.shape == (7,)
    reply = stubs["dqn"].Evaluate(pb.EvaluateRequest(q_states=to_tensor(states[:3]), q_actions=to_tensor(actions[:3]),
                                                     v_states=to_tensor(states)), timeout=TIMEOUT)
    q, v = from_tensor(reply.q_values), from_tensor(reply.v_values)
    assert q.shape == (3,) and v.shape == (7,) and np.isfinite(q).all()
    assert (v[:3] >= q - 1e-5).all()  # V = max_a Q for DQN
    # deterministic suggestions are the greedy action and repeat exactly
    det = [from_tensor(stubs["sac"].Suggest(pb.SuggestRequest(states=to_tensor(np.zeros((2, 11), np.float32)),
                                                              deterministic=True), timeout=TIMEOUT).actions)
           for _ in range(2)]
    np.testing.assert_array_equal(det[0], det[1])
    assert det[0].shape == (2, 3) and (np.abs(det[0]) <= 1).all()


def test_reset_step_ids_and_retry_replay(stubs) -> None:  # type: ignore[no-untyped-def]
    stub = stubs["dqn"]
    reset = stub.Reset(pb.ResetRequest(seed=5, has_seed=True), timeout=TIMEOUT)
    first = reset.last_step_id + 1
    request = pb.StepRequest(step_id=first, action=to_tensor(np.int64(2)))
    reply = step_from_proto(stub.Step(request, timeout=TIMEOUT))
    assert reply.step_id == first and not reply.replayed and reply.action.item() == 2
    again = step_from_proto(stub.Step(request, timeout=TIMEOUT))  # a retry: same id, same action
    assert again.replayed and again.reward == reply.reward
    np.testing.assert_array_equal(again.next_observation, reply.next_observation)
    assert code_of(stub.Step, pb.StepRequest(step_id=first, action=to_tensor(np.int64(1)))) == \
        grpc.StatusCode.ALREADY_EXISTS
    assert code_of(stub.Step, pb.StepRequest(step_id=first - 1)) == grpc.StatusCode.ALREADY_EXISTS
    assert code_of(stub.Step, pb.StepRequest(step_id=first + 5)) == grpc.StatusCode.FAILED_PRECONDITION
    # an unset action means "act on your own policy"; an episode end carries return and a reset obs
    ended = None
    for k in range(1, 60):
        r = step_from_proto(stub.Step(pb.StepRequest(step_id=first + k), timeout=TIMEOUT))
        if r.done:
            ended = r
            break
    assert ended is not None and ended.truncated and ended.episode_length == 50
    assert ended.reset_observation is not None and ended.reset_observation.shape == (4,)


def test_run_evaluation_exact_for_room(stubs) -> None:  # type: ignore[no-untyped-def]
    reply = stubs["dqn"].RunEvaluation(pb.RunEvaluationRequest(episodes=0, seed=1), timeout=TIMEOUT)
    assert reply.exact and len(reply.returns) == 20 and all(n == 50 for n in reply.lengths)
    reply = stubs["dqn"].RunEvaluation(pb.RunEvaluationRequest(episodes=3, seed=1), timeout=TIMEOUT)
    assert not reply.exact and len(reply.returns) == 3


def test_save_and_load_checkpoint(stubs) -> None:  # type: ignore[no-untyped-def]
    stub = stubs["sac"]
    last = stub.Reset(pb.ResetRequest(seed=1, has_seed=True), timeout=TIMEOUT).last_step_id
    for k in range(1, 21):
        stub.Step(pb.StepRequest(step_id=last + k), timeout=TIMEOUT)
    saved = stub.Save(pb.SaveRequest(step_id=last + 20), timeout=TIMEOUT)
    assert saved.tag == f"step-{last + 20}"
    assert code_of(stub.Save, pb.SaveRequest(step_id=last + 3)) == grpc.StatusCode.FAILED_PRECONDITION
    first = stub.Step(pb.StepRequest(step_id=last + 21), timeout=TIMEOUT)
    loaded = stub.Load(pb.LoadRequest(), timeout=TIMEOUT)
    assert loaded.tag == saved.tag and loaded.last_step_id == last + 20
    # The checkpoint keeps the episode (exact resume): the step after Load is the step made after Save
    # again, executed afresh (the replay memory does not survive Load), with the same action and outcome.
    assert stub.GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT).episode_active
    again = stub.Step(pb.StepRequest(step_id=last + 21), timeout=TIMEOUT)
    assert not again.replayed and again.step_id == last + 21
    assert again.next_observation == first.next_observation and again.reward == first.reward
    assert again.action == first.action
    assert code_of(stub.Load, pb.LoadRequest(tag="nope")) == grpc.StatusCode.NOT_FOUND
    assert code_of(stub.Load, pb.LoadRequest(tag="../etc")) == grpc.StatusCode.INVALID_ARGUMENT


def _bad(dtype: int, shape: list[int], data: bytes) -> tensor_pb2.Tensor:
    return tensor_pb2.Tensor(dtype=dtype, shape=shape, data=data)


F32 = tensor_pb2.DTYPE_FLOAT32
BAD_STATES = {
    "wrong shape": to_tensor(np.zeros((2, 5), np.float32)),
    "no batch dimension": to_tensor(np.zeros(4, np.float32)),
    "integer dtype": to_tensor(np.zeros((2, 4), np.int64)),
    "NaN": to_tensor(np.full((1, 4), np.nan, np.float32)),
    "Inf": to_tensor(np.full((1, 4), np.inf, np.float32)),
    "bytes do not match shape": _bad(F32, [2, 4], b"\x00" * 12),
    "unknown dtype": _bad(99, [1, 4], b"\x00" * 16),
    "negative dimension": _bad(F32, [-1, 4], b""),
    "too many elements": _bad(F32, [1 << 30, 4], b""),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_bad_states_are_invalid_argument_and_server_survives(stubs, case: str) -> None:  # type: ignore[no-untyped-def]
    assert code_of(stubs["dqn"].Suggest, pb.SuggestRequest(states=BAD_STATES[case])) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(stubs["dqn"].Evaluate, pb.EvaluateRequest(v_states=BAD_STATES[case])) == \
        grpc.StatusCode.INVALID_ARGUMENT
    stubs["dqn"].GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT)  # still serving


BAD_ACTIONS = {
    "out of range": ("dqn", to_tensor(np.int64(7))),
    "negative": ("dqn", to_tensor(np.int64(-1))),
    "float for discrete": ("dqn", to_tensor(np.float32(1.0))),
    "batch for one step": ("dqn", to_tensor(np.array([1, 2], np.int64))),
    "box out of bounds": ("sac", to_tensor(np.array([0.0, 3.0, 0.0], np.float32))),
    "box NaN": ("sac", to_tensor(np.array([0.0, np.nan, 0.0], np.float32))),
    "box wrong shape": ("sac", to_tensor(np.zeros(2, np.float32))),
}


@pytest.mark.parametrize("case", sorted(BAD_ACTIONS))
def test_bad_step_actions_are_invalid_argument(stubs, case: str) -> None:  # type: ignore[no-untyped-def]
    name, action = BAD_ACTIONS[case]
    stub = stubs[name]
    last = stub.Reset(pb.ResetRequest(), timeout=TIMEOUT).last_step_id
    assert code_of(stub.Step, pb.StepRequest(step_id=last + 1, action=action)) == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.Step(pb.StepRequest(step_id=last + 1), timeout=TIMEOUT).step_id == last + 1  # nothing was applied


def test_step_values_in_step_match_evaluate(stubs) -> None:  # type: ignore[no-untyped-def]
    """values_in_step: the values a Step returns are the critic's after that step (DQN: V = max Q, no sampling)."""
    stub = stubs["dqn"]
    assert info_from_proto(stub.GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT)).capabilities.values_in_step
    expert = info_from_proto(stubs["expert"].GetInfo(pb.GetInfoRequest(), timeout=TIMEOUT))
    assert not expert.capabilities.values_in_step
    states = np.random.default_rng(1).random((5, 4)).astype(np.float32)
    last = stub.Reset(pb.ResetRequest(), timeout=TIMEOUT).last_step_id
    reply = step_from_proto(stub.Step(pb.StepRequest(step_id=last + 1, v_states=to_tensor(states),
                                                     next_observation_rows=[1, 3]), timeout=TIMEOUT))
    assert reply.v_values is not None and reply.v_values.shape == (5,) and reply.v_values.dtype == np.float32
    rows = states.copy()
    rows[[1, 3]] = reply.next_observation  # the rows named stand for the step's own next observation
    after = from_tensor(stub.Evaluate(pb.EvaluateRequest(v_states=to_tensor(rows)), timeout=TIMEOUT).v_values)
    np.testing.assert_array_equal(reply.v_values, after)
    plain = step_from_proto(stub.Step(pb.StepRequest(step_id=last + 2), timeout=TIMEOUT))
    assert plain.v_values is None  # nothing asked, nothing sent


BAD_ROWS = {"row beyond v_states": ([5], 5), "rows without v_states": ([0], 0), "too many rows": ([0] * 1025, 4)}


@pytest.mark.parametrize("case", sorted(BAD_STATES) + sorted(BAD_ROWS))
def test_bad_step_values_requests_are_invalid_argument(stubs, case: str) -> None:  # type: ignore[no-untyped-def]
    stub = stubs["dqn"]
    last = stub.Reset(pb.ResetRequest(), timeout=TIMEOUT).last_step_id
    if case in BAD_STATES:
        request = pb.StepRequest(step_id=last + 1, v_states=BAD_STATES[case])
    else:
        rows, count = BAD_ROWS[case]
        request = pb.StepRequest(step_id=last + 1, next_observation_rows=rows)
        if count:
            request.v_states.CopyFrom(to_tensor(np.zeros((count, 4), np.float32)))
    assert code_of(stub.Step, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.Step(pb.StepRequest(step_id=last + 1), timeout=TIMEOUT).step_id == last + 1  # nothing was applied


def test_evaluate_mismatched_batches_and_adviser_limits(stubs) -> None:  # type: ignore[no-untyped-def]
    request = pb.EvaluateRequest(q_states=to_tensor(np.zeros((3, 4), np.float32)),
                                 q_actions=to_tensor(np.zeros(2, np.int64)))
    assert code_of(stubs["dqn"].Evaluate, request) == grpc.StatusCode.INVALID_ARGUMENT
    assert code_of(stubs["expert"].Step, pb.StepRequest(step_id=1)) == grpc.StatusCode.UNIMPLEMENTED
    # A scripted adviser evaluates with its exact critic; it refuses a batch whose parts disagree too.
    assert code_of(stubs["expert"].Evaluate, request) == grpc.StatusCode.INVALID_ARGUMENT
    empty = stubs["expert"].Evaluate(pb.EvaluateRequest(), timeout=TIMEOUT)
    assert from_tensor(empty.q_values).shape == (0,) and from_tensor(empty.v_values).shape == (0,)
    assert code_of(stubs["dqn"].RunEvaluation, pb.RunEvaluationRequest(episodes=-1)) == \
        grpc.StatusCode.INVALID_ARGUMENT


def test_step_before_reset_is_failed_precondition(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from peer_service.peer import Peer, PeerConfig
    from peer_service.validation import PeerError

    peer = Peer(PeerConfig(task="room-3", total_steps=100))
    with pytest.raises(PeerError) as exc:
        peer.step(1, None)
    assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION and "Reset" in exc.value.message
