"""Byzantine peers on Room-6 with honest DQN learners, in-process transport (seeded, reproducible).

Claims, each printed with its figures (`pytest -s`):
1. Bad advisers lose their followers: the follow rate of a mirror, random, garbage and turncoat
   adviser (by the honest learners) is below 1/(2N) in the last WINDOW steps of a STEPS-step run,
   and the honest learners' exact returns stay within RETURN_MARGIN of a group without attackers.
2. A lying evaluator gains nothing: with n = 4 and one self-promoting (or inverse-critic) learner,
   its follow rate stays within RATE_MARGIN of an honest learner's under the robust median
   aggregation of agent values; the paper's plain mean is run for contrast.

CI scale: the paper's reputation learning rate (alpha = 0.001) needs ~5k updates just to forget the
optimistic initial value of 200 (docs/algorithm.md, "Trust"), longer than a CI run; these tests use
alpha = 0.01 (LR) and say so. The group and its follow rates are benchmarks/studies/byzantine.py's,
shared with the study over seeds (benchmarks/studies/byzantine_seeds.py). Independent runs go to 2
worker processes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import pytest

from benchmarks.studies.byzantine import ATTACKERS, HONEST, LR, WINDOW, follow_rate, run_group_inproc

STEPS = 4000
RETURN_MARGIN = 5.0  # exact Room-6 return (optimum 47.10; random policy about 1.3)
EVAL_STEPS = {"self_promote": 2000, "inverse_critic": 3000}  # rates are read from step 1000 on
RATE_MARGIN = 0.10

pytestmark = pytest.mark.timeout(600)


def _parallel(jobs: list[tuple]) -> list[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=2, mp_context=ctx) as pool:
        futures = [pool.submit(run_group_inproc, *job) for job in jobs]
        return [f.result() for f in futures]


# ---------------------------------------------------------------------------------------- 1. advisers


@pytest.fixture(scope="module")
def mixed_and_baseline() -> tuple[dict[str, Any], dict[str, Any]]:
    mixed, base = _parallel([([HONEST, HONEST, *ATTACKERS], STEPS), ([HONEST, HONEST], STEPS)])
    return mixed, base


def test_bad_advisers_lose_their_followers(mixed_and_baseline) -> None:  # type: ignore[no-untyped-def]
    mixed, _ = mixed_and_baseline
    n = len(mixed["names"])
    bound = 1 / (2 * n)
    honest = mixed["honest"]
    print(f"\nRoom-6, {n} peers (2 honest DQN + mirror, random, garbage, turncoat:300), alpha={LR}, median; "
          f"follow rate by the honest learners per {WINDOW} steps (bound 1/(2N) = {bound:.3f}):")
    rates = {}
    for t, counts in mixed["windows"]:
        counts = np.array(counts)
        rates[t] = [follow_rate(counts, j, honest) for j in range(n)]
        print(f"  steps {t - WINDOW:5d}-{t:5d}: " + "  ".join(
            f"{name.split('-', 2)[-1] if name.count('-') > 1 else name}={r:.3f}"
            for name, r in zip(mixed["names"], rates[t], strict=True)))
    last = rates[STEPS]
    for j in range(2, n):
        below = [t for t in rates if all(rates[u][j] < bound for u in rates if u >= t)]
        print(f"  {mixed['names'][j]:16s} below {bound:.3f} from the window ending at step "
              f"{min(below) if below else 'never'} on")
        assert last[j] < bound, (mixed["names"][j], last[j])
    turn = mixed["turned_at"].get(5)
    print(f"  turncoat turned at group step {turn}; invalid replies {mixed['invalid_replies']}, "
          f"ejections of the garbage peer: {mixed['ejections'].count(mixed['names'][4])}")
    assert turn is not None and turn < STEPS - WINDOW
    # it was trusted while honest: followed above the bound in the window in which it turned
    first = min(t for t in rates if t >= turn)
    assert rates[first][5] > bound, "the turncoat was never trusted before it turned"
    # garbage: every reply rejected by validation, counted, and the peer ejected (health states)
    assert mixed["invalid_replies"][4] > 0 and last[4] == 0.0
    assert mixed["names"][4] in mixed["ejections"]


def test_honest_returns_stay_close_to_a_group_without_attackers(mixed_and_baseline) -> None:  # type: ignore[no-untyped-def]
    mixed, base = mixed_and_baseline
    attacked = [mixed["returns"][i] for i in mixed["honest"]]
    clean = [base["returns"][i] for i in base["honest"]]
    print(f"\nexact Room-6 returns after {STEPS} steps (optimum 47.10): honest peers with 4 attackers "
          f"{[round(r, 2) for r in attacked]} (mean {np.mean(attacked):.2f}), without "
          f"{[round(r, 2) for r in clean]} (mean {np.mean(clean):.2f}); margin {RETURN_MARGIN}")
    assert np.mean(attacked) >= np.mean(clean) - RETURN_MARGIN


# ---------------------------------------------------------------------------------------- 2. evaluators
def _evaluator_case(attack: str, steps: int) -> tuple[dict[str, Any], dict[str, Any]]:
    peers = [HONEST, HONEST, HONEST, ("learner", attack)]
    return tuple(_parallel([(peers, steps, "median"), (peers, steps, "mean")]))  # type: ignore[return-value]


def _rates(result: dict[str, Any]) -> tuple[float, float]:
    """Follow rates from step WINDOW on (the first window is dominated by the initial values)."""
    counts = sum(np.array(c) for _, c in result["windows"][1:])
    liar = len(result["names"]) - 1
    honest = result["honest"]
    liar_rate = follow_rate(counts, liar, honest)
    honest_rate = float(np.mean([follow_rate(counts, h, honest) for h in honest]))
    return liar_rate, honest_rate


@pytest.mark.parametrize("attack", ["self_promote", pytest.param("inverse_critic", marks=pytest.mark.slow)])
def test_lying_evaluator_gains_no_followers_under_robust_aggregation(attack: str) -> None:
    steps = EVAL_STEPS[attack]
    median, mean = _evaluator_case(attack, steps)
    liar_med, honest_med = _rates(median)
    liar_mean, honest_mean = _rates(mean)
    span = f"steps {WINDOW}-{steps}"
    print(f"\n{attack}, n=4 (3 honest DQN), alpha={LR}, follow rate by the honest learners over {span}:")
    print(f"  median: liar {liar_med:.3f} vs honest {honest_med:.3f}; agent values "
          f"{[round(v, 2) for v in median['agent_values']]}")
    print(f"  mean:   liar {liar_mean:.3f} vs honest {honest_mean:.3f}; agent values "
          f"{[round(v, 2) for v in mean['agent_values']]}  (the paper's pooled mean, for contrast)")
    assert liar_med <= honest_med + RATE_MARGIN
    if attack == "self_promote":
        # the contrast: under the pooled mean its inflated evidence about itself does pay
        assert liar_mean > liar_med and mean["agent_values"][3] > max(mean["agent_values"][:3])
        assert median["agent_values"][3] <= max(median["agent_values"][:3])


# ---------------------------------------------------------------------------------------- the attack module
def test_attack_flags_parse_and_reject_nonsense() -> None:
    from peer_service.attacks import parse_attack

    assert parse_attack("") is None and parse_attack(None) is None
    assert str(parse_attack("turncoat:500")) == "turncoat:500"
    assert parse_attack("self-promote").mode == "self_promote"
    spec = parse_attack("collude:peer-2:50")
    assert spec.partner == "peer-2" and spec.param == 50
    for bad in ("bribe", "collude", "mirror:3", "turncoat:x", "subtle_bias:1:2"):
        with pytest.raises(ValueError):
            parse_attack(bad)


def test_attacks_alter_only_what_they_claim() -> None:
    import gymnasium as gym

    from peer_service.attacks import Attack, parse_attack
    from peer_service.envs.room import optimal_action
    from peerlearn.tensors import WireError
    from peerlearn.validation import check_actions, check_values

    space = gym.spaces.Discrete(4)
    rng = np.random.default_rng(0)
    states = rng.random((64, 4)).astype(np.float32)
    honest = np.array([optimal_action(s, 6) for s in states], dtype=np.int64)
    own = np.zeros(64, dtype=bool)
    own[0] = True

    def make(text: str) -> Attack:
        return Attack(parse_attack(text), "peer-9", space, 6, seed=1)

    mirror = make("mirror").suggest(states, honest, own)
    assert mirror[0] == honest[0]  # its own state: answered honestly
    assert (mirror[1:] == [optimal_action(s, 6, toward_mirror=True) for s in states[1:]]).all()
    rand = make("random").suggest(states, honest, None)
    assert rand.dtype == np.int64 and set(rand.tolist()) <= {0, 1, 2, 3} and (rand != honest).any()
    bias = make("subtle_bias:0.25").suggest(states, honest, None)
    changed = float((bias != honest).mean())
    assert 0.05 < changed < 0.4, changed
    turncoat = make("turncoat:2")
    assert [(turncoat.suggest(states, honest, None) == honest).all() for _ in range(4)] == [True, True, False, False]
    garbage = make("garbage")
    for _ in range(10):  # every garbage reply is caught by the orchestrator's validation
        with pytest.raises(WireError):
            check_actions(np.asarray(garbage.suggest(states, honest, None)), space, 64, "actions")
        q, v = garbage.evaluate(states[:3], np.zeros(2, np.float32), np.zeros(3, np.float32))
        with pytest.raises(WireError):
            check_values(np.asarray(q), 2, "q")
            check_values(np.asarray(v), 3, "v")
    q, v = make("inverse_critic").evaluate(states[:2], np.array([1.0, 2.0], np.float32),
                                           np.array([3.0, -4.0], np.float32))
    assert q.tolist() == [-1.0, -2.0] and v.tolist() == [-3.0, 4.0]


def test_self_promote_finds_its_own_transitions_in_v_states() -> None:
    """V(s') = +C, V(s) = -C exactly for the transitions it surely followed itself (not at decisions)."""
    import gymnasium as gym

    from peer_service.attacks import Attack, parse_attack

    attack = Attack(parse_attack("self_promote:100"), "peer-3", gym.spaces.Discrete(4), 6, seed=0)
    s = [np.array([i / 10, 0.1, 0.2, 0.3], np.float32) for i in range(6)]
    # step 2: asked about its own state, followed itself; step 3: followed someone else; step 1: decision
    for step_id, (a, b, own_action, executed) in enumerate(
            [(0, 1, 2, 2), (1, 2, 1, 1), (2, 3, None, 3), (3, 4, 0, 0)], start=1):
        if own_action is not None:
            attack.suggest(s[a][None], np.array([own_action]), np.array([True]))
        attack.observe_step(s[a], np.array(executed), np.array(executed), s[b], step_id)
    # an Evaluate of two draws: (s' of k entries, then s of the same k entries), k = 3 then k = 1
    v_states = np.stack([s[1], s[2], s[3], s[0], s[1], s[2], s[4], s[3]])
    v = attack.evaluate(v_states, np.zeros(0, np.float32), np.full(8, 0.5, np.float32))[1]
    # entries: (s0->s1) decision step: untouched; (s1->s2) self: promoted; (s2->s3) other: untouched
    assert v.tolist() == [0.5, 100.0, 0.5, 0.5, -100.0, 0.5, 100.0, -100.0]


@pytest.mark.parametrize("board", ["memory", "directory"])
def test_colluders_recognise_steps_that_followed_the_partner(board: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """In one process (a shared dict) and across processes (a shared folder: nothing in memory is shared)."""
    import gymnasium as gym

    from peer_service import attacks
    from peer_service.attacks import Attack, parse_attack

    space = gym.spaces.Discrete(4)
    board_dir = str(tmp_path / "collusion") if board == "directory" else None
    attacks._BOARD.clear()
    a = Attack(parse_attack("collude:peer-b:10"), "peer-a", space, 6, seed=0, board_dir=board_dir)
    b = Attack(parse_attack("collude:peer-a:10"), "peer-b", space, 6, seed=1, board_dir=board_dir)
    s0, s1, s2 = (np.array([x, 0.5, 0.0, 0.2], np.float32) for x in (0.2, 0.4, 0.6))
    b.suggest(s0[None], np.array([3]), np.array([False]))  # the group asks peer-b about peer-a's state
    a.observe_step(s0, np.array(3), np.array(3), s1, step_id=5)  # peer-a executed peer-b's advice
    a.observe_step(s1, np.array(2), np.array(2), s2, step_id=6)  # someone else's advice
    v = a.evaluate(np.stack([s1, s2, s0, s1]), np.zeros(0, np.float32), np.zeros(4, np.float32))[1]
    assert v.tolist() == [10.0, 0.0, -10.0, 0.0]
    if board == "directory":
        assert not attacks._BOARD, "the directory board must not go through the in-process dict"
        assert (tmp_path / "collusion" / "peer-b.board").read_text().count("\n") == 1


def test_a_new_in_process_group_starts_with_an_empty_collusion_board() -> None:
    """Posts of an earlier group in this process (same peer ids) must not reach the next group's
    colluders: reused worker processes gave other figures than fresh ones before this was fixed."""
    import gymnasium as gym

    from peer_service.attacks import Attack, _key, parse_attack

    space, s0 = gym.spaces.Discrete(4), np.array([0.2, 0.5, 0.0, 0.2], np.float32)
    first = Attack(parse_attack("collude:peer-a:10"), "peer-b", space, 6, seed=1)
    first.suggest(s0[None], np.array([3]), np.array([False]))
    assert first.board.lookup("peer-b", _key(s0)) is not None
    Attack(parse_attack("collude:peer-b:10"), "peer-a", space, 6, seed=0)  # the next group's pair
    second = Attack(parse_attack("collude:peer-a:10"), "peer-b", space, 6, seed=1)
    assert second.board.lookup("peer-b", _key(s0)) is None


def test_colluding_peer_processes_share_a_board_over_grpc(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`collude` between separate peer processes: `peerlearn run` gives the colluders RUN_DIR/collusion,
    each posts what it suggested there, and each reads its partner's posts when it steps."""
    from orchestrator.config import RunConfig
    from orchestrator.running.run import run_group

    logging.getLogger("peerlearn").setLevel(logging.ERROR)
    config = RunConfig(peers=4, steps=300, out=str(tmp_path), name="c", progress=False, status_port=-1,
                       attacks=["", "", "collude:peer-3", "collude:peer-2"], eval_every=300,
                       learner={"learning_starts": 50}, checkpoint_every=0)
    run = asyncio.run(run_group(config)).run_dir
    for colluder in ("peer-2", "peer-3"):
        board = (run / "collusion" / f"{colluder}.board").read_text().splitlines()
        assert len(board) > 100, f"{colluder} posted {len(board)} suggestions"
        state_hex, action = board[0].split(" ")
        assert len(bytes.fromhex(state_hex)) == 16 and action[0] == "i" and 0 <= int(action[1:]) < 4
    assert not (run / "collusion" / "peer-0.board").exists(), "an honest peer joined the collusion"


def test_attacks_config_reaches_the_peers_and_invalid_replies_are_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """RunConfig.attacks end to end: the garbage peer's replies are counted, it is ejected, and
    summary.json reports both."""
    import json

    from orchestrator.config import RunConfig
    from orchestrator.running.run import run_group

    logging.getLogger("peerlearn").setLevel(logging.ERROR)
    config = RunConfig(peers=3, steps=200, transport="inproc", out=str(tmp_path), name="g", progress=False,
                       status_port=-1, roles=["learner", "expert", "expert"], attacks=["", "garbage", "mirror"],
                       eval_every=200, learner={"learning_starts": 20}, checkpoint_every=0)
    summary = json.loads((asyncio.run(run_group(config)).run_dir / "summary.json").read_text())
    ejected = [e[2] for e in summary["health_events"] if e[3].startswith(("ejected", "banned"))]
    print(f"\ninvalid replies {summary['invalid_replies']}, ejections {collections.Counter(ejected)}")
    assert summary["invalid_replies"].get("peer-1", 0) > 0 and "peer-2" not in summary["invalid_replies"]
    assert "peer-1" in ejected and "peer-0" not in ejected


def test_a_peer_sending_invalid_replies_is_quarantined_then_banned(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A garbage adviser answers health checks perfectly: it must not be re-admitted on that alone.
    It is quarantined for quarantine_steps * 2^(strikes-1) group steps, then banned for the run."""
    import json

    from orchestrator.config import RunConfig
    from orchestrator.running.run import run_group

    logging.getLogger("peerlearn").setLevel(logging.ERROR)
    config = RunConfig(peers=2, steps=400, transport="inproc", out=str(tmp_path), name="q", progress=False,
                       status_port=-1, roles=["learner", "expert"], attacks=["", "garbage"], eval_every=400,
                       learner={"learning_starts": 20}, checkpoint_every=0, quarantine_steps=50, ban_after=3)
    summary = json.loads((asyncio.run(run_group(config)).run_dir / "summary.json").read_text())
    events = [(e[1], e[3]) for e in summary["health_events"] if e[2] == "peer-1"]
    print(f"\ngarbage adviser: {events}")
    ejections = [t for t, what in events if what.startswith("ejected (invalid replies")]
    rejoins = [t for t, what in events if what == "rejoined"]
    assert len(ejections) == 2 and [what for _, what in events][-1].startswith("banned")
    # quarantines of 50 and then 100 group steps before the peer was let back in
    assert rejoins[0] - ejections[0] >= 50 and rejoins[1] - ejections[1] >= 100
