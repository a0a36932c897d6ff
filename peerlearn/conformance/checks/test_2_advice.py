"""Conformance checks of peerlearn.v1 (docs/protocol.md):
Suggest and Evaluate: batch shapes and dtypes, determinism, bad input answered INVALID_ARGUMENT.
"""

from __future__ import annotations

import math

import grpc
import numpy as np
import pytest

from peerlearn.conformance.harness import (
    FLOAT_DTYPES,
    INT_DTYPES,
    PeerUnderTest,
    decode,
    encode,
    needs,
    raw,
)
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import tensor_pb2 as tpb

pytestmark = pytest.mark.timeout(600)


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
