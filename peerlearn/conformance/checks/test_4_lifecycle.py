"""Conformance checks of peerlearn.v1 (docs/protocol.md):
RunEvaluation, Save and Load.
"""

from __future__ import annotations

import math
import os
from typing import Any

import grpc
import numpy as np
import pytest

from peerlearn.conformance.harness import (
    ROOM_EPISODE_STEPS,
    PeerUnderTest,
    needs,
    reset_peer,
    room_size,
)
from peerlearn.v1 import peer_pb2 as pb

pytestmark = pytest.mark.timeout(600)


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
        reset_peer(peer)
        info = peer.get_info()
    last = info.last_step_id
    if not peer.checkpoints:
        details = peer.expect(
            "Save",
            pb.SaveRequest(step_id=last),
            grpc.StatusCode.FAILED_PRECONDITION,
            "Save on a peer whose capabilities.checkpoints is false",
        )
        pytest.skip(f"capabilities.checkpoints is false and Save refuses ({details}); Load not checked")
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
    assert info.last_step_id == last, f"after Load: GetInfo says last_step_id={info.last_step_id}, expected {last}"
    if info.episode_active:
        # A peer whose checkpoint keeps the episode in progress continues it (exact resume): the next
        # Step executes afresh, it is not a replay of the Step made before the Load.
        again = peer.call("Step", pb.StepRequest(step_id=last + 1), f"Step({last + 1}) right after Load")
        assert again.step_id == last + 1 and not again.replayed, (
            "the first Step after Load must execute afresh (the replay memory does not survive Load)"
        )
    else:
        peer.expect(
            "Step",
            pb.StepRequest(step_id=last + 1),
            grpc.StatusCode.FAILED_PRECONDITION,
            "Step right after Load without an episode (a restored peer that keeps none needs Reset first)",
        )
    latest = peer.call("Load", pb.LoadRequest(), "Load() of the latest checkpoint", timeout=peer.timeout * 10)
    assert latest.last_step_id == last, f"Load() of the latest checkpoint restored step {latest.last_step_id}"
    _, after_reset = reset_peer(peer)
    assert after_reset == last, f"Reset after Load returned last_step_id={after_reset}, expected {last}"
    reply = peer.call("Step", pb.StepRequest(step_id=last + 1), f"Step({last + 1}) after Load and Reset")
    assert reply.step_id == last + 1 and not reply.replayed, (
        "the first Step after Load and Reset must execute afresh (the replay memory does not survive Load)"
    )
