"""The conformance checks of peerlearn.v1 (docs/protocol.md), run against one live peer over gRPC.

Every check names the call it made and what it expected; the peer's capabilities decide which checks
apply (a check that does not apply is skipped with the reason). Checks run in file order: the
Step-before-Reset check comes before anything that Resets the peer.
"""

from __future__ import annotations

import math
import os
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peerlearn.conformance.harness import (
    FLOAT_DTYPES,
    INT_DTYPES,
    MAX_EPISODE_STEPS,
    PROTOCOL_VERSION,
    ROOM_EPISODE_STEPS,
    SERVICE,
    PeerUnderTest,
    decode,
    decode_space,
    encode,
    needs,
    raw,
    room_size,
)
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import tensor_pb2 as tpb


@pytest.fixture(scope="session")
def peer(request: pytest.FixtureRequest) -> Any:
    address = request.config.getoption("--peer-address", default=None) or os.environ.get(
        "PEERLEARN_CONFORMANCE_ADDRESS"
    )
    if not address:
        pytest.exit(
            "conformance: give the peer's address (--peer-address HOST:PORT or "
            "$PEERLEARN_CONFORMANCE_ADDRESS)",
            returncode=4,
        )
    timeout = float(request.config.getoption("--conformance-timeout", default=30.0) or 30.0)
    p = PeerUnderTest(address, timeout)
    yield p
    p.channel.close()


pytestmark = pytest.mark.timeout(600)


# ====================================================================== handshake and specs
def test_handshake(peer: PeerUnderTest) -> None:
    info = peer.info
    assert info.protocol_version == PROTOCOL_VERSION, (
        f"GetInfo.protocol_version is {info.protocol_version!r}, expected {PROTOCOL_VERSION!r}"
    )
    assert info.peer_id, "GetInfo.peer_id is empty: a peer must name itself (unique in its group)"
    assert info.env_id, "GetInfo.env_id is empty: peers of a group must agree on it"
    assert info.language, "GetInfo.language is empty (e.g. 'node/20', 'python/3.11')"
    assert info.implementation, "GetInfo.implementation is empty (e.g. 'tabular-q', 'scripted-expert')"
    assert 0.0 < info.gamma <= 1.0, f"GetInfo.gamma is {info.gamma}, expected a discount in (0, 1]"
    assert info.warmup_steps >= 0, f"GetInfo.warmup_steps is {info.warmup_steps}, expected >= 0"
    assert info.last_step_id >= 0, f"GetInfo.last_step_id is {info.last_step_id}, expected >= 0"
    again = peer.get_info()
    assert again.peer_id == info.peer_id and again.env_id == info.env_id, (
        "a second GetInfo names another peer or env: the handshake must be stable"
    )


def test_spaces_decode(peer: PeerUnderTest) -> None:
    obs = decode_space(peer.info.observation_space, "PeerInfo.observation_space")
    act = decode_space(peer.info.action_space, "PeerInfo.action_space")
    assert obs.kind == "box", (
        "PeerInfo.observation_space: observations are sent as float batches (B, *O); "
        f"expected a Box space, got {obs.kind}"
    )
    if (size := room_size(peer.info.env_id)) is not None:
        assert obs.shape == (4,) and np.all(obs.low == 0.0) and np.all(obs.high == 1.0), (
            f"{peer.info.env_id}: observation space must be Box(0, 1, (4,)), got shape {obs.shape}"
        )
        assert act.kind == "discrete" and act.n == 4 and act.start == 0, (
            f"{peer.info.env_id}: action space must be Discrete(4), got {act.kind} n={act.n} s={act.start}"
        )
        assert size >= 2


def test_capabilities_coherent(peer: PeerUnderTest) -> None:
    caps = peer.info.capabilities
    assert caps.advises or caps.acts, (
        "capabilities: the peer neither advises nor acts; it can do nothing in a group"
    )
    assert not caps.learns or caps.acts, (
        "capabilities: learns=true needs acts=true (a peer learns from the transitions it executes)"
    )
    if not caps.acts:
        assert not peer.info.episode_active, "GetInfo.episode_active is true on a peer that does not act"


# ====================================================================== health and reflection
@pytest.mark.parametrize("service", ["", SERVICE])
def test_health_serving(peer: PeerUnderTest, service: str) -> None:
    stub = health_pb2_grpc.HealthStub(peer.channel)
    try:
        reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=peer.timeout)
    except grpc.RpcError as err:
        pytest.fail(
            f"grpc.health.v1.Health/Check(service={service!r}) failed with {err.code().name}: "
            f"{err.details()} (every peer serves the health service, docs/protocol.md)",
            pytrace=False,
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING, (
        f"grpc.health.v1.Health/Check(service={service!r}) reports "
        f"{health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}, expected SERVING"
    )


def test_reflection_optional(peer: PeerUnderTest) -> None:
    """Reflection is recommended, not required: a peer without it is reported (skipped), not failed."""
    try:
        from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
    except ImportError:
        pytest.skip("grpcio-reflection is not installed here")
    stub = reflection_pb2_grpc.ServerReflectionStub(peer.channel)
    try:
        replies = list(
            stub.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=peer.timeout
            )
        )
    except grpc.RpcError as err:
        pytest.skip(f"server reflection not offered ({err.code().name}); optional")
    names = {s.name for r in replies for s in r.list_services_response.service}
    if SERVICE not in names:
        pytest.skip(
            f"server reflection is offered but does not list {SERVICE} (lists {sorted(names)}); optional"
        )


# ====================================================================== capability limits
def test_calls_outside_capabilities_are_unimplemented(peer: PeerUnderTest) -> None:
    checked = []
    if not peer.advises:
        peer.expect(
            "Suggest",
            pb.SuggestRequest(states=encode(np.zeros((1, 1), np.float32))),
            grpc.StatusCode.UNIMPLEMENTED,
            "Suggest on a peer with advises=false",
        )
        checked.append("Suggest")
    if not peer.evaluates:
        peer.expect(
            "Evaluate",
            pb.EvaluateRequest(),
            grpc.StatusCode.UNIMPLEMENTED,
            "Evaluate on a peer with evaluates=false",
        )
        checked.append("Evaluate")
    if not peer.acts:
        for method, request in [
            ("Reset", pb.ResetRequest()),
            ("Step", pb.StepRequest(step_id=1)),
            ("RunEvaluation", pb.RunEvaluationRequest(episodes=1)),
        ]:
            peer.expect(method, request, grpc.StatusCode.UNIMPLEMENTED, f"{method} on a peer with acts=false")
            checked.append(method)
    if not peer.learns:
        for method, request in [("Save", pb.SaveRequest(step_id=0)), ("Load", pb.LoadRequest())]:
            peer.expect(
                method, request, grpc.StatusCode.UNIMPLEMENTED, f"{method} on a peer with learns=false"
            )
            checked.append(method)
    if not checked:
        pytest.skip("the peer has every capability: no call is outside them")
    peer.still_serving("calls outside the capabilities")


# ============================================================ Step before Reset (first: nothing reset yet)
def test_step_before_reset_is_failed_precondition(peer: PeerUnderTest) -> None:
    needs(peer, "acts")
    info = peer.get_info()
    if info.episode_active:
        if not peer.learns:
            pytest.skip(
                "the peer already has an active episode and cannot Load: Step before Reset is not testable"
            )
        # A used peer: Save and Load put it back into CREATED (docs/protocol.md, state machine).
        tag = f"conformance-pre-{os.getpid()}"
        try:
            peer.stub.Save(pb.SaveRequest(step_id=info.last_step_id, tag=tag), timeout=peer.timeout)
        except grpc.RpcError as err:
            pytest.skip(
                f"the peer already has an active episode and Save failed ({err.code().name}: "
                f"{err.details()}): Step before Reset is not testable"
            )
        peer.call("Load", pb.LoadRequest(tag=tag), f"Load(tag={tag!r}) right after Save")
        info = peer.get_info()
        assert not info.episode_active, (
            "GetInfo.episode_active is still true after Load (Load needs a new Reset)"
        )
    details = peer.expect(
        "Step",
        pb.StepRequest(step_id=info.last_step_id + 1),
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Step(step_id={info.last_step_id + 1}) before any Reset",
    )
    after = peer.get_info()
    assert after.last_step_id == info.last_step_id, (
        f"a refused Step changed last_step_id from {info.last_step_id} to {after.last_step_id} ({details})"
    )


# ====================================================================== Suggest
@pytest.mark.parametrize("deterministic", [True, False])
@pytest.mark.parametrize("batch", [0, 1, 5])
def test_suggest_batch_shapes_and_dtypes(peer: PeerUnderTest, batch: int, deterministic: bool) -> None:
    needs(peer, "advises")
    obs_space, act_space = peer.spaces()
    states = peer.states(batch)
    what = f"Suggest(B={batch}, deterministic={deterministic})"
    reply = peer.call("Suggest", pb.SuggestRequest(states=encode(states), deterministic=deterministic), what)
    assert reply.HasField("actions"), f"{what}: the reply has no actions tensor"
    actions = decode(reply.actions, f"{what}.actions")
    want = (batch, *act_space.shape)
    assert actions.shape == want, (
        f"{what}: actions have shape {actions.shape}, expected {want} = (B, *action_shape)"
    )
    if act_space.kind == "discrete":
        assert reply.actions.dtype in INT_DTYPES, (
            f"{what}: Discrete actions must be INT64 (or INT32), got dtype {reply.actions.dtype}"
        )
        assert act_space.contains(actions), (
            f"{what}: actions {actions.tolist()} outside Discrete({act_space.n}, start={act_space.start})"
        )
    else:
        assert reply.actions.dtype in FLOAT_DTYPES, (
            f"{what}: Box actions must be FLOAT32/FLOAT64, got dtype {reply.actions.dtype}"
        )
        assert np.isfinite(actions).all(), f"{what}: actions contain NaN or Inf"
        assert act_space.contains(actions), f"{what}: actions outside the action space bounds"


def test_suggest_float64_states_accepted(peer: PeerUnderTest) -> None:
    needs(peer, "advises")
    states = peer.states(2).astype(np.float64)
    reply = peer.call(
        "Suggest",
        pb.SuggestRequest(states=encode(states), deterministic=True),
        "Suggest with FLOAT64 states (observations may be FLOAT32 or FLOAT64)",
    )
    assert decode(reply.actions, "Suggest.actions").shape[0] == 2, (
        "Suggest with FLOAT64 states: wrong batch size"
    )


def test_deterministic_suggestions_repeat_exactly(peer: PeerUnderTest) -> None:
    needs(peer, "advises")
    states = peer.states(8)
    states = np.concatenate([states, states[:3]])  # repeated rows inside one batch, too
    what = "Suggest(B=11, deterministic=True)"
    replies = [
        decode(
            peer.call("Suggest", pb.SuggestRequest(states=encode(states), deterministic=True), what).actions,
            f"{what}.actions",
        )
        for _ in range(3)
    ]
    for k in (1, 2):
        np.testing.assert_array_equal(
            replies[k],
            replies[0],
            err_msg=(
                f"{what}: deterministic suggestions differ between identical calls (call 1 vs {k + 1}); "
                "deterministic=true must give the greedy / mean action"
            ),
        )
    np.testing.assert_array_equal(
        replies[0][8:],
        replies[0][:3],
        err_msg=(f"{what}: identical states in one batch got different deterministic actions"),
    )


def test_stochastic_suggestions_are_valid_samples(peer: PeerUnderTest) -> None:
    needs(peer, "advises")
    _, act_space = peer.spaces()
    states = np.repeat(peer.states(1), 64, axis=0)
    what = "Suggest(B=64 copies of one state, deterministic=False)"
    actions = decode(
        peer.call("Suggest", pb.SuggestRequest(states=encode(states), deterministic=False), what).actions,
        f"{what}.actions",
    )
    assert actions.shape == (64, *act_space.shape), f"{what}: actions shape {actions.shape}"
    assert act_space.contains(actions), f"{what}: a sampled action is outside the action space"


BAD_STATES = {
    "wrong observation shape": lambda o: encode(np.zeros((2, *o.shape[:-1], o.shape[-1] + 1), np.float32)),
    "no batch dimension": lambda o: encode(np.zeros(o.shape, np.float32)),
    "integer dtype": lambda o: encode(np.zeros((2, *o.shape), np.int64)),
    "NaN": lambda o: encode(np.full((1, *o.shape), np.nan, np.float32)),
    "Inf": lambda o: encode(np.full((1, *o.shape), np.inf, np.float32)),
    "byte count does not match shape": lambda o: raw(tpb.DTYPE_FLOAT32, [2, *o.shape], b"\x00" * 12),
    "unknown dtype": lambda o: raw(99, [1, *o.shape], b"\x00" * (4 * math.prod(o.shape))),
    "DTYPE_UNSPECIFIED": lambda o: raw(
        tpb.DTYPE_UNSPECIFIED, [1, *o.shape], b"\x00" * (4 * math.prod(o.shape))
    ),
    "negative dimension": lambda o: raw(tpb.DTYPE_FLOAT32, [-1, *o.shape], b""),
    "too many elements": lambda o: raw(tpb.DTYPE_FLOAT32, [1 << 30, *o.shape], b""),
}


@pytest.mark.parametrize("case", sorted(BAD_STATES))
def test_bad_states_are_invalid_argument(peer: PeerUnderTest, case: str) -> None:
    if not (peer.advises or peer.evaluates):
        pytest.skip("the peer neither advises nor evaluates: it reads no states")
    obs_space, _ = peer.spaces()
    tensor = BAD_STATES[case](obs_space)
    if peer.advises:
        peer.expect(
            "Suggest",
            pb.SuggestRequest(states=tensor),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Suggest with bad states ({case})",
        )
    if peer.evaluates:
        peer.expect(
            "Evaluate",
            pb.EvaluateRequest(v_states=tensor),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Evaluate with bad v_states ({case})",
        )
        peer.expect(
            "Evaluate",
            pb.EvaluateRequest(q_states=tensor, q_actions=encode(_actions(peer, 2))),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Evaluate with bad q_states ({case})",
        )
    peer.still_serving(f"bad states ({case})")


def _actions(p: PeerUnderTest, batch: int) -> np.ndarray:
    return p.spaces()[1].sample(p.rng, batch)


# ====================================================================== Evaluate
@pytest.mark.parametrize("q_batch,v_batch", [(0, 0), (3, 0), (0, 4), (1, 1), (3, 5)])
def test_evaluate_batch_shapes_and_dtypes(peer: PeerUnderTest, q_batch: int, v_batch: int) -> None:
    needs(peer, "evaluates")
    what = f"Evaluate(B={q_batch}, M={v_batch})"
    reply = peer.call(
        "Evaluate",
        pb.EvaluateRequest(
            q_states=encode(peer.states(q_batch)),
            q_actions=encode(_actions(peer, q_batch)),
            v_states=encode(peer.states(v_batch)),
        ),
        what,
    )
    for name, n in (("q_values", q_batch), ("v_values", v_batch)):
        tensor = getattr(reply, name)
        values = decode(tensor, f"{what}.{name}")
        assert tensor.dtype == tpb.DTYPE_FLOAT32, f"{what}: {name} must be FLOAT32, got dtype {tensor.dtype}"
        assert values.shape == (n,), f"{what}: {name} has shape {values.shape}, expected ({n},)"
        assert np.isfinite(values).all(), f"{what}: {name} contains NaN or Inf"


def test_evaluate_unset_parts_mean_empty(peer: PeerUnderTest) -> None:
    needs(peer, "evaluates")
    for what, request in [
        ("Evaluate() with every field unset", pb.EvaluateRequest()),
        ("Evaluate(v_states only)", pb.EvaluateRequest(v_states=encode(peer.states(2)))),
    ]:
        reply = peer.call("Evaluate", request, what)
        q = decode(reply.q_values, f"{what}.q_values")
        assert q.shape == (0,), f"{what}: q_values has shape {q.shape}, expected (0,) for an unset q part"


def test_evaluate_is_read_only_and_repeatable(peer: PeerUnderTest) -> None:
    needs(peer, "evaluates")
    request = pb.EvaluateRequest(
        q_states=encode(peer.states(4)), q_actions=encode(_actions(peer, 4)), v_states=encode(peer.states(4))
    )
    a = peer.call("Evaluate", request, "Evaluate (first)")
    b = peer.call("Evaluate", request, "Evaluate (same request again)")
    for name in ("q_values", "v_values"):
        np.testing.assert_allclose(
            decode(getattr(b, name), name),
            decode(getattr(a, name), name),
            rtol=1e-6,
            err_msg=f"Evaluate: {name} changed between two identical calls with no Step "
            "in between (Evaluate must be read-only)",
        )


def test_evaluate_bad_actions_are_invalid_argument(peer: PeerUnderTest) -> None:
    needs(peer, "evaluates")
    _, act_space = peer.spaces()
    states = encode(peer.states(3))
    cases: dict[str, tpb.Tensor] = {"q batch sizes differ (3 states, 2 actions)": encode(_actions(peer, 2))}
    if act_space.kind == "discrete":
        cases["action above the range"] = encode(np.full(3, act_space.start + act_space.n, np.int64))
        cases["action below the range"] = encode(np.full(3, act_space.start - 1, np.int64))
        cases["float actions for a Discrete space"] = encode(np.zeros(3, np.float32))
    else:
        cases["action outside the Box bounds"] = encode(np.full((3, *act_space.shape), 1e9, np.float32))
        cases["NaN action"] = encode(np.full((3, *act_space.shape), np.nan, np.float32))
    for case, actions in cases.items():
        peer.expect(
            "Evaluate",
            pb.EvaluateRequest(q_states=states, q_actions=actions),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Evaluate with {case}",
        )
    peer.still_serving("bad Evaluate actions")


# ====================================================================== Reset / Step and step ids
def _reset(p: PeerUnderTest, seed: int | None = None) -> tuple[np.ndarray, int]:
    obs_space, _ = p.spaces()
    request = pb.ResetRequest(seed=seed, has_seed=True) if seed is not None else pb.ResetRequest()
    reply = p.call("Reset", request, f"Reset(seed={seed})")
    obs = decode(reply.observation, "Reset.observation")
    assert obs.shape == obs_space.shape, (
        f"Reset.observation has shape {obs.shape}, expected the observation shape {obs_space.shape}"
    )
    assert reply.observation.dtype in FLOAT_DTYPES, (
        f"Reset.observation must be float, got {reply.observation.dtype}"
    )
    assert obs_space.contains(obs), f"Reset.observation {obs.tolist()} is outside the observation space"
    return obs, int(reply.last_step_id)


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
    _, last = _reset(peer)
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
    _, last = _reset(peer, seed=7)
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
    _, last = _reset(peer)
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
    _, last = _reset(peer)
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


# ====================================================================== RunEvaluation
def test_run_evaluation(peer: PeerUnderTest) -> None:
    needs(peer, "acts")
    before = peer.get_info().last_step_id
    timeout = peer.timeout * 10
    reply = peer.call(
        "RunEvaluation",
        pb.RunEvaluationRequest(episodes=2, seed=3),
        "RunEvaluation(episodes=2)",
        timeout=timeout,
    )
    _check_evaluation(reply, 2, "RunEvaluation(episodes=2)")
    assert not reply.exact, (
        "RunEvaluation(episodes=2): exact=true, but 2 sampled episodes are not an exact evaluation"
    )
    if (size := room_size(peer.info.env_id)) is not None:
        goals = 4 * (size - 1)
        what = "RunEvaluation(episodes=0) on Room"
        exact = peer.call("RunEvaluation", pb.RunEvaluationRequest(episodes=0, seed=3), what, timeout=timeout)
        _check_evaluation(exact, goals, what)
        assert exact.exact, f"{what}: exact must be true (one deterministic rollout per goal)"
        if size in ROOM_EPISODE_STEPS:
            assert set(exact.lengths) == {ROOM_EPISODE_STEPS[size]}, (
                f"{what}: episodes last {ROOM_EPISODE_STEPS[size]} steps, got {sorted(set(exact.lengths))}"
            )
        again = peer.call(
            "RunEvaluation", pb.RunEvaluationRequest(episodes=0, seed=4), what + " again", timeout=timeout
        )
        assert list(again.returns) == list(exact.returns), (
            f"{what}: two exact evaluations with no training in between gave different returns"
        )
        assert all(-1.0 <= r <= ROOM_EPISODE_STEPS.get(size, 10_000) for r in exact.returns), (
            f"{what}: returns outside the possible range"
        )
    after = peer.get_info().last_step_id
    assert after == before, (
        f"RunEvaluation moved last_step_id from {before} to {after} (it must not touch training)"
    )
    for episodes in (-1, 10_001):
        peer.expect(
            "RunEvaluation",
            pb.RunEvaluationRequest(episodes=episodes),
            grpc.StatusCode.INVALID_ARGUMENT,
            f"RunEvaluation(episodes={episodes}) (allowed: 0..10000)",
        )


def _check_evaluation(reply: Any, episodes: int, what: str) -> None:
    returns, lengths = list(reply.returns), list(reply.lengths)
    assert len(returns) == episodes and len(lengths) == episodes, (
        f"{what}: {len(returns)} returns and {len(lengths)} lengths, expected {episodes} of each"
    )
    assert all(math.isfinite(r) for r in returns), f"{what}: a return is not finite"
    assert all(n >= 1 for n in lengths), f"{what}: an episode length is < 1: {lengths}"
    assert math.isclose(reply.mean_return, float(np.mean(returns)), rel_tol=1e-6, abs_tol=1e-6), (
        f"{what}: mean_return {reply.mean_return} is not the mean of the returns {float(np.mean(returns))}"
    )
    assert math.isclose(reply.std_return, float(np.std(returns)), rel_tol=1e-5, abs_tol=1e-6), (
        f"{what}: std_return {reply.std_return} is not the population std of the returns {np.std(returns)}"
    )


# ====================================================================== Save / Load
def test_save_and_load(peer: PeerUnderTest) -> None:
    needs(peer, "learns")
    info = peer.get_info()
    if not info.episode_active:
        _reset(peer)
        info = peer.get_info()
    last = info.last_step_id
    peer.expect(
        "Save",
        pb.SaveRequest(step_id=last + 1),
        grpc.StatusCode.FAILED_PRECONDITION,
        f"Save(step_id={last + 1}) while the peer is at step {last}",
    )
    tag = f"conformance-{os.getpid()}"
    try:
        saved = peer.stub.Save(pb.SaveRequest(step_id=last, tag=tag), timeout=peer.timeout * 10)
    except grpc.RpcError as err:
        if err.code() == grpc.StatusCode.FAILED_PRECONDITION:
            pytest.skip(
                f"Save answered FAILED_PRECONDITION ({err.details()}): the peer has no checkpoint "
                "directory; Save/Load not checked further"
            )
        pytest.fail(
            f"Save(step_id={last}, tag={tag!r}) failed with {err.code().name}: {err.details()}", pytrace=False
        )
    assert saved.tag == tag, f"Save(tag={tag!r}) answered tag {saved.tag!r}"
    default = peer.call(
        "Save",
        pb.SaveRequest(step_id=last),
        f"Save(step_id={last}) with an empty tag",
        timeout=peer.timeout * 10,
    )
    assert default.tag == f"step-{last}", (
        f"Save with an empty tag must use 'step-{last}', got {default.tag!r}"
    )
    peer.expect(
        "Save",
        pb.SaveRequest(step_id=last, tag="../escape"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "Save with tag '../escape' (tags hold letters, digits, '-', '_', '.')",
    )
    peer.expect(
        "Load", pb.LoadRequest(tag="../escape"), grpc.StatusCode.INVALID_ARGUMENT, "Load with tag '../escape'"
    )
    peer.expect(
        "Load",
        pb.LoadRequest(tag=f"no-such-checkpoint-{os.getpid()}"),
        grpc.StatusCode.NOT_FOUND,
        "Load of a tag that was never saved",
    )

    # Move on, then restore: the counter comes back and the peer needs a Reset before the next Step.
    peer.call("Step", pb.StepRequest(step_id=last + 1), f"Step({last + 1}) after Save")
    loaded = peer.call("Load", pb.LoadRequest(tag=tag), f"Load(tag={tag!r})", timeout=peer.timeout * 10)
    assert loaded.last_step_id == last, (
        f"Load(tag={tag!r}) restored last_step_id={loaded.last_step_id}, expected {last}"
    )
    assert loaded.tag == tag, f"Load(tag={tag!r}) answered tag {loaded.tag!r}"
    info = peer.get_info()
    assert info.last_step_id == last and not info.episode_active, (
        f"after Load: GetInfo says last_step_id={info.last_step_id}, episode_active={info.episode_active}; "
        f"expected {last} and false"
    )
    peer.expect(
        "Step",
        pb.StepRequest(step_id=last + 1),
        grpc.StatusCode.FAILED_PRECONDITION,
        "Step right after Load (a restored peer needs Reset first)",
    )
    latest = peer.call("Load", pb.LoadRequest(), "Load() of the latest checkpoint", timeout=peer.timeout * 10)
    assert latest.last_step_id == last, f"Load() of the latest checkpoint restored step {latest.last_step_id}"
    _, after_reset = _reset(peer)
    assert after_reset == last, f"Reset after Load returned last_step_id={after_reset}, expected {last}"
    reply = peer.call("Step", pb.StepRequest(step_id=last + 1), f"Step({last + 1}) after Load and Reset")
    assert reply.step_id == last + 1 and not reply.replayed, (
        "the first Step after Load and Reset must execute afresh (the replay memory does not survive Load)"
    )
