"""The soak's nemesis schedule and checkers, on synthetic histories (seconds, no processes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.soak import checkers, nemesis
from orchestrator.soak.checkers import Record

pytestmark = pytest.mark.timeout(60)
PEERS = ["peer-0", "peer-1", "peer-2"]


def test_schedule_is_seeded_spaced_and_never_overlaps() -> None:
    plan = nemesis.schedule(7, 3600, PEERS)
    assert plan == nemesis.schedule(7, 3600, PEERS)
    assert plan != nemesis.schedule(8, 3600, PEERS)
    assert plan[0].at_s == 60.0
    for a, b in zip(plan, plan[1:], strict=False):
        assert b.at_s - a.at_s >= nemesis.GAP_S[0] - 1e-6
        assert b.at_s >= a.at_s + a.duration_s + nemesis.QUIET_S - 0.1  # a quiet gap after each
        assert b.at_s - a.at_s <= max(nemesis.GAP_S[1], a.duration_s + nemesis.QUIET_S) + 0.1
    assert {f.kind for f in plan} == set(nemesis.KINDS)  # an hour draws every kind
    assert all(f.at_s + f.duration_s <= 3600 for f in plan)
    assert all(f.target in PEERS for f in plan if f.kind in nemesis.PEER_KINDS)
    for f in plan:
        low, high = nemesis.DURATION_S[f.kind]
        assert low <= f.duration_s <= high


def fault(t: float, kind: str, target: str, duration: float, end: float | None = None) -> list[Record]:
    start = {"t": t, "type": "fault_start", "kind": kind, "target": target, "duration_s": duration, "params": {},
             "at_s": 0.0}
    return [start, {"t": t + duration if end is None else end, "type": "fault_end", "kind": kind, "target": target,
                    "started": t}]


def health(at: float, peer: str, event: str) -> Record:
    return {"t": at, "type": "health", "at": at, "step": 0, "peer": peer, "event": event}


def test_a_stopped_peer_ejected_and_back_in_time_passes() -> None:
    h = [*fault(100, "peer_stop", "peer-1", 35), health(103, "peer-1", "suspect"), health(110, "peer-1", "ejected"),
         health(137, "peer-1", "rejoined")]
    v = checkers.peer_faults(h)
    assert v.ok, v.detail
    assert v.rows[0]["detected_s"] == 3 and v.rows[0]["ejected_s"] == 10 and v.rows[0]["recovered_after_end_s"] == 2


@pytest.mark.parametrize("events,problem", [
    ([], "never noticed"),
    ([(103, "suspect")], "not ejected within 30 s"),
    ([(103, "suspect"), (140, "ejected"), (150, "rejoined")], "not ejected within 30 s"),
    ([(103, "suspect"), (110, "ejected")], "not re-admitted"),
    ([(103, "suspect"), (110, "ejected"), (170, "rejoined")], "not re-admitted"),
])
def test_a_partition_not_noticed_ejected_or_readmitted_fails(events: list[tuple[float, str]], problem: str) -> None:
    h = [*fault(100, "partition", "peer-2", 40), *(health(t, "peer-2", e) for t, e in events)]
    v = checkers.peer_faults(h)
    assert not v.ok
    assert problem in v.detail, v.detail


def test_a_short_stop_need_not_eject_but_must_be_noticed_and_healed() -> None:
    ok = [*fault(100, "peer_stop", "peer-0", 12), health(103, "peer-0", "suspect"), health(112.5, "peer-0", "healthy")]
    assert checkers.peer_faults(ok).ok
    stuck = [*fault(100, "peer_stop", "peer-0", 12), health(103, "peer-0", "suspect")]
    assert not checkers.peer_faults(stuck).ok


def test_latency_without_any_event_passes_and_an_ejection_elsewhere_is_spurious() -> None:
    h = [*fault(100, "latency", "peer-0", 30), health(400, "peer-1", "ejected"), health(401, "peer-1", "rejoined")]
    assert checkers.peer_faults(h).ok
    v = checkers.spurious_ejections(h)
    assert not v.ok and "peer-1 ejected" in v.detail
    assert checkers.spurious_ejections(h[:2]).ok


def test_a_killed_peer_gets_the_longer_restart_bound() -> None:
    h = [*fault(100, "peer_kill", "peer-2", 0), health(100.1, "peer-2", "suspect"), health(100.2, "peer-2", "ejected"),
         health(160, "peer-2", "rejoined")]
    assert checkers.peer_faults(h).ok
    h[-1] = health(195, "peer-2", "rejoined")
    assert not checkers.peer_faults(h).ok


def write_group(run: Path, steps: list[int], counts: list[int] | None = None) -> None:
    run.mkdir(parents=True, exist_ok=True)
    counts = counts or steps
    rows = ["group_step,time,steps/peer-0"] + [f"{s},{s / 10},{c}" for s, c in zip(steps, counts, strict=True)]
    (run / "group.csv").write_text("\n".join(rows) + "\n")


def group_seen(*steps: int) -> list[Record]:
    return [{"t": float(s), "type": "group", "step": s, "pid": 1, "steps": {}} for s in steps]


def test_steps_exact_accepts_a_resumed_run_and_catches_gaps_duplicates_and_double_counting(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_group(run, [100, 200, 300, 400])
    # a killed orchestrator had written 300 and 400 before the resume redid them: still each once
    assert checkers.steps_exact(group_seen(100, 200, 300, 400, 300, 400), run).ok
    assert not checkers.steps_exact(group_seen(100, 500), run).ok  # a step seen live is gone
    write_group(run, [100, 200, 200, 300])
    assert "duplicated [200]" in checkers.steps_exact([], run).detail
    write_group(run, [100, 300])
    assert "missing [200]" in checkers.steps_exact([], run).detail
    write_group(run, [100, 200], counts=[100, 201])
    assert "applied twice" in checkers.steps_exact([], run).detail
    write_group(run, [100, 200], counts=[100, 90])
    assert "decreased" in checkers.steps_exact([], run).detail


def progress(pid: int, *points: tuple[float, int]) -> list[Record]:
    return [{"t": t, "type": "progress", "pid": pid, "step": s} for t, s in points]


def test_orchestrator_kill_must_be_resumed_and_a_crash_fails() -> None:
    base: list[Record] = [{"t": 50.0, "type": "checkpoint", "step": 500}, *fault(100, "orchestrator_kill",
                                                                                 "orchestrator", 0)]
    base.append({"t": 101.0, "type": "orchestrator_start", "pid": 2, "resume": True})
    ok = base + progress(2, (110, 500), (130, 520))
    v = checkers.orchestrator_recovery(ok)
    assert v.ok and v.rows[0]["first_new_step_s"] == 30 and v.rows[0]["resumed_from_step"] == 500
    assert not checkers.orchestrator_recovery(base + progress(2, (110, 500), (300, 520))).ok
    crash = {"t": 200.0, "type": "orchestrator_crash", "pid": 2, "code": 1, "log_tail": "OSError: [Errno 28]"}
    assert "crashed" in checkers.orchestrator_recovery([*ok, crash]).detail


def test_disk_full_needs_a_checkpoint_after_the_disk_is_freed() -> None:
    h = [*fault(100, "disk_full", "disk", 20), {"t": 150.0, "type": "checkpoint", "step": 1000}]
    assert checkers.disk_recovery(h).ok
    assert not checkers.disk_recovery(h[:2]).ok


def test_the_group_must_keep_stepping() -> None:
    assert checkers.keeps_stepping(progress(1, (0, 1), (2, 5), (4, 9))).ok
    stalled = progress(1, (0, 1), (2, 5), *((t, 5) for t in range(4, 50, 2)), (50, 6))
    v = checkers.keeps_stepping(stalled)
    assert not v.ok and "46.0 s" in v.detail
    # a new orchestrator (a resume) starts its own clock
    assert checkers.keeps_stepping(progress(1, (0, 1), (2, 5)) + progress(2, (60, 5), (62, 8))).ok


def samples(pid: int, rss: list[int], fds: list[int], every: float = 60.0) -> list[Record]:
    return [{"t": k * every, "type": "sample", "proc": "peer-0", "pid": pid, "rss_kb": r, "fds": f}
            for k, (r, f) in enumerate(zip(rss, fds, strict=True))]


def test_resources_flat_judges_long_lived_processes_against_the_bounds() -> None:
    flat = samples(1, [300_000] * 20, [30] * 20)
    v = checkers.resources_flat(flat)
    assert v.ok and v.rows[0]["rss_mb"] == [293.0, 293.0]
    leak = samples(1, [300_000 + 20_000 * k for k in range(20)], [30] * 20)
    assert "RSS" in checkers.resources_flat(leak).detail
    fd_leak = samples(1, [300_000] * 20, [30 + 3 * k for k in range(20)])
    assert "file descriptors" in checkers.resources_flat(fd_leak).detail
    # the first 5 minutes (imports, buffers) do not count; a short-lived process is not judged
    warm = samples(1, [100_000] * 5 + [300_000] * 15, [10] * 5 + [30] * 15)
    assert checkers.resources_flat(warm).ok
    assert not checkers.resources_flat(samples(1, [1] * 5, [1] * 5)).ok  # nothing to judge is no pass


def test_orphans_and_final_returns(tmp_path: Path) -> None:
    end = {"t": 0.0, "type": "end", "alive": [], "mentioning": [], "pids": [1, 2], "seconds": 1.0}
    assert checkers.no_orphans([end]).ok
    assert not checkers.no_orphans([{**end, "alive": [2]}]).ok
    assert not checkers.no_orphans([]).ok

    def run_with(folder: Path, value: float) -> Path:
        path = folder / "run" / "peers" / "peer-0" / "evaluations.csv"
        path.parent.mkdir(parents=True)
        path.write_text(f"step,time,mean_return,std_return,episodes,exact,returns\n2000,1,1.0,0,1,1,\n4000,2,{value},0,1,1,\n")
        return folder

    soak = run_with(tmp_path / "soak", 47.1)
    same = [run_with(tmp_path / f"ff{k}", 47.1) for k in range(3)]
    v = checkers.final_returns(soak / "run", same)
    assert v.ok and v.rows[0]["ci95"] == [47.1, 47.1]
    spread = [run_with(tmp_path / f"sp{k}", x) for k, x in enumerate((40.0, 44.0, 48.0))]
    assert checkers.final_returns(soak / "run", spread).ok  # 47.1 inside 44 +- 4.303 * 4 / sqrt(3)
    low = run_with(tmp_path / "low", 20.0)
    assert not checkers.final_returns(low / "run", same).ok
    assert not checkers.final_returns(soak / "run", same[:1]).ok  # one fault-free run has no CI


def test_the_proxys_lossy_mode_delays_by_retransmission_timeouts_and_delivers_everything_in_order() -> None:
    import asyncio
    import time

    from peerlearn.chaos import RTO_S, ChaosProxy

    async def scenario() -> tuple[bytes, float, float]:
        async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(echo, "127.0.0.1", 0)
        proxy = ChaosProxy(f"127.0.0.1:{server.sockets[0].getsockname()[1]}", seed=1)
        reader, writer = await asyncio.open_connection(*(await proxy.start()).split(":"))
        timings = []
        got = b""
        for mode, loss in (("pass", 0.0), ("lossy", 0.3)):
            proxy.set_mode(mode)
            proxy.loss_p = loss
            t0 = time.perf_counter()
            for k in range(4):
                writer.write(bytes([k]))
                await writer.drain()
                got += await reader.readexactly(1)
            timings.append(time.perf_counter() - t0)
        writer.close()
        await proxy.close()
        server.close()
        return got, timings[0], timings[1]

    got, clean, lossy = asyncio.run(scenario())
    assert got == bytes(range(4)) * 2  # nothing lost or reordered: only late
    assert clean < RTO_S and lossy >= RTO_S  # 8 chunks at p = 0.3: some waited a timeout (seeded)
