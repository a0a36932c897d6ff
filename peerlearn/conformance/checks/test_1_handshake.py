"""Conformance checks of peerlearn.v1 (docs/protocol.md): handshake, specs, health and reflection, calls
outside the capabilities, and Step before any Reset (first in the kit: nothing has reset the peer yet).
"""

from __future__ import annotations

import os

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peerlearn.conformance.harness import (
    PROTOCOL_VERSION,
    SERVICE,
    PeerUnderTest,
    decode_space,
    encode,
    needs,
    room_size,
)
from peerlearn.v1 import peer_pb2 as pb

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
    assert not (caps.HasField("checkpoints") and caps.checkpoints) or caps.learns, (
        "capabilities: checkpoints=true needs learns=true (only a learner has a state to Save)"
    )


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
        # A used peer: Save and Load put it back into CREATED, unless its checkpoints keep the episode
        # (exact resume; docs/protocol.md, state machine).
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
        if info.episode_active:
            pytest.skip("the peer's checkpoints keep the episode in progress (exact resume), so a used peer stays "
                        "in an episode after Load: Step before Reset is not testable on it")
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
