"""Where a peer server runs its work (peer_service/server.py): lock-step calls on the event loop, long
calls on the worker thread, so health checks answer during a long evaluation and no call touches the
learner while the worker holds it."""

from __future__ import annotations

import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from peerlearn.security import ServerSecurity
from peerlearn.tensors import to_tensor
from peerlearn.v1 import peer_pb2 as pb
from peerlearn.v1 import peer_pb2_grpc
from tests.test_security import peer_server

pytestmark = pytest.mark.timeout(120)
EPISODES = 400  # untrained Room-6 DQN: long enough (about a second or more here) to ask during it


def test_health_answers_and_calls_queue_while_an_evaluation_holds_the_learner() -> None:
    with peer_server(ServerSecurity(), role="learner") as address, grpc.insecure_channel(address) as channel:
        stub = peer_pb2_grpc.PeerServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        stub.GetInfo(pb.GetInfoRequest(), timeout=10)  # connected and serving
        t0 = time.monotonic()
        evaluation = stub.RunEvaluation.future(pb.RunEvaluationRequest(episodes=EPISODES, seed=1), timeout=60)
        finished: list[float] = []
        evaluation.add_done_callback(lambda _: finished.append(time.monotonic()))
        time.sleep(0.2)
        assert not evaluation.done(), "the evaluation finished too fast to test anything: raise EPISODES"

        started = time.monotonic()
        status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
        health_s = time.monotonic() - started
        assert status == health_pb2.HealthCheckResponse.SERVING
        assert health_s < 0.5, f"health check took {health_s:.2f} s while the worker evaluated"

        # A lock-step call made now waits for the worker instead of using the learner beside it: its
        # reply comes after the evaluation's (inline beside it, it would come in milliseconds).
        asked = time.monotonic()
        suggestion = stub.Suggest(pb.SuggestRequest(states=to_tensor(np.zeros((1, 4), np.float32))), timeout=60)
        suggest_done = time.monotonic()
        result = evaluation.result(timeout=60)
        assert len(result.returns) == EPISODES and list(suggestion.actions.shape) == [1]
        deadline = time.monotonic() + 5
        while not finished and time.monotonic() < deadline:  # the callback runs on gRPC's thread
            time.sleep(0.01)
        print(f"\nevaluation of {EPISODES} episodes: {finished[0] - t0:.2f} s; health check answered in "
              f"{health_s * 1000:.1f} ms; Suggest asked at {asked - t0:.2f} s, answered at {suggest_done - t0:.2f} s")
        assert finished[0] - asked > 0.3, "the evaluation ended too soon after the Suggest to tell"
        assert suggest_done >= finished[0] - 0.1, "Suggest was answered while the evaluation still ran"
