"""Checkers over a soak's history (history.jsonl) and the run's result files: one verdict per property,
each with its stated bound. Pure functions of what was recorded, so a history can be judged again
(`python -m orchestrator.soak check DIR`) and the tests judge synthetic ones."""

from __future__ import annotations

import csv
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Record = dict[str, Any]

# The bounds (docs/robustness.md, "An hour of faults"). With the soak's deadlines (read 3 s, Step 6 s)
# and eject_after = 3, a frozen or cut-off peer costs at most one deadline per group step, so three
# failing steps take at most 3 x 6 s; 30 s leaves room for a loaded machine.
EJECT_BOUND_S = 30.0
# Back in the group after the fault ends: a probe every <= 0.5 s, re-admitted at the next step boundary.
REJOIN_BOUND_S = 20.0
# A killed peer: the supervisor restarts it (backoff 0.5 s and up), its interpreter imports torch
# (8-20 s on the busy 2-core machine) and it loads its checkpoint.
KILL_REJOIN_BOUND_S = 90.0
# A killed orchestrator: --resume starts a new interpreter, reconnects, peers load the checkpoint.
RESUME_BOUND_S = 120.0
# After the disk is freed, a checkpoint must succeed again: the next checkpoint_every (500 steps).
CHECKPOINT_BOUND_S = 180.0
# Resources: judged per process (a restart is a new process) that lived at least this long, from
# 5 minutes into its life (imports, the replay buffer's first pages) to its end.
RESOURCE_WARMUP_S = 300.0
RESOURCE_MIN_SPAN_S = 600.0
RSS_GROWTH = (0.25, 64 * 1024)  # at most +25% or +64 MiB (kB), whichever is larger
FD_GROWTH = 16
# A faulted peer costs the group at most one deadline per round of a step (read + read + Step = 12 s);
# three such steps eject it, so the group never stands still longer than that: 36 s.
STALL_BOUND_S = 36.0

TROUBLE = ("suspect", "ejected", "failed to rejoin", "out of sync")
RECOVERED = ("rejoined", "healthy", "back")
DISRUPTIVE = ("peer_kill", "peer_stop", "partition", "reset")  # the peer cannot answer: must be noticed


@dataclass
class Verdict:
    name: str
    ok: bool
    detail: str
    rows: list[dict[str, Any]] = field(default_factory=list)


def of_type(history: list[Record], type_: str) -> list[Record]:
    return [r for r in history if r["type"] == type_]


def faults(history: list[Record]) -> list[tuple[Record, Record | None]]:
    """(start, end) of every injected fault, in order."""
    ends = {r["started"]: r for r in of_type(history, "fault_end")}
    return [(s, ends.get(s["t"])) for s in of_type(history, "fault_start")]


def _events(history: list[Record], peer: str, since: float, until: float) -> list[Record]:
    return [r for r in of_type(history, "health") if r["peer"] == peer and since <= r["at"] <= until]


def peer_faults(history: list[Record]) -> Verdict:
    """Every faulted peer is noticed, ejected when the fault outlasts the ejection bound, and re-admitted
    within the bound after the fault ends; each fault's detection and recovery times are the rows."""
    rows, failures = [], []
    schedule = faults(history)
    for k, (start, end) in enumerate(schedule):
        if start["kind"] not in ("peer_kill", "peer_stop", "partition", "loss", "latency", "reset"):
            continue
        peer, t0 = start["target"], start["t"]
        t_end = end["t"] if end else t0 + start["duration_s"]
        bound = KILL_REJOIN_BOUND_S if start["kind"] == "peer_kill" else REJOIN_BOUND_S
        nxt = schedule[k + 1][0]["t"] if k + 1 < len(schedule) else math.inf
        events = _events(history, peer, t0, min(t_end + bound, nxt))
        trouble = [e for e in events if e["event"].startswith(TROUBLE)]
        ejected = [e for e in events if e["event"].startswith("ejected")]
        back = [e for e in events if e["event"] in RECOVERED and e["at"] >= (ejected[0]["at"] if ejected else t0)]
        row = {"fault": k + 1, "kind": start["kind"], "target": peer, "duration_s": start["duration_s"],
               "detected_s": round(trouble[0]["at"] - t0, 2) if trouble else None,
               "ejected_s": round(ejected[0]["at"] - t0, 2) if ejected else None,
               "recovered_after_end_s": round(back[-1]["at"] - t_end, 2) if back and trouble else None,
               "problems": []}
        long_enough = start["duration_s"] >= EJECT_BOUND_S
        must_eject = start["kind"] == "peer_kill" or (start["kind"] in DISRUPTIVE and long_enough)
        if start["kind"] in DISRUPTIVE and not trouble:
            row["problems"].append("never noticed")
        if must_eject and not (ejected and ejected[0]["at"] - t0 <= EJECT_BOUND_S):
            row["problems"].append(f"not ejected within {EJECT_BOUND_S:.0f} s")
        last = events[-1]["event"] if events else "healthy"
        if trouble and not (back and last in RECOVERED):
            row["problems"].append(f"not re-admitted within {bound:.0f} s of the fault's end (last event: {last})")
        if row["problems"]:
            failures.append(f"fault {k + 1} ({start['kind']} of {peer}): {'; '.join(row['problems'])}")
        rows.append(row)
    ok = not failures
    detail = (f"{len(rows)} peer faults, each noticed, ejected within {EJECT_BOUND_S:.0f} s where it lasted that long, "
              f"and re-admitted within {REJOIN_BOUND_S:.0f} s of its end ({KILL_REJOIN_BOUND_S:.0f} s after a kill)"
              if ok else "; ".join(failures))
    return Verdict("faulted peers ejected and re-admitted", ok, detail, rows)


def spurious_ejections(history: list[Record]) -> Verdict:
    """An ejection outside every fault's window (start to end + its re-admission bound) is spurious."""
    windows = []
    for start, end in faults(history):
        t_end = end["t"] if end else start["t"] + start["duration_s"]
        bound = KILL_REJOIN_BOUND_S if start["kind"] == "peer_kill" else REJOIN_BOUND_S
        if start["kind"] in ("orchestrator_kill", "disk_full"):  # every peer is concerned
            bound = RESUME_BOUND_S
        windows.append((start["target"], start["t"], t_end + bound))
    spurious = [e for e in of_type(history, "health") if e["event"].startswith("ejected")
                and not any(w[0] in (e["peer"], "orchestrator", "disk") and w[1] <= e["at"] <= w[2] for w in windows)]
    ok = not spurious
    detail = "no ejection outside a fault's window" if ok else "; ".join(
        f"{e['peer']} ejected at group step {e['step']} ({e['event']})" for e in spurious)
    return Verdict("no spurious ejection", ok, detail, [dict(e) for e in spurious])


def steps_exact(history: list[Record], run_dir: Path) -> Verdict:
    """No group step lost or applied twice: group.csv's rows are every log_every-th step once; every
    step any orchestrator (killed ones too) recorded is in it; a peer's step counter never decreases
    and never exceeds the group step; evaluations come once per step."""
    problems = []
    rows = list(csv.DictReader((run_dir / "group.csv").open())) if (run_dir / "group.csv").exists() else []
    steps = [int(r["group_step"]) for r in rows]
    if not steps:
        return Verdict("no group step lost or applied twice", False, "group.csv has no rows")
    every = steps[0]
    if steps != list(range(every, steps[-1] + 1, every)):
        dup = sorted({s for s in steps if steps.count(s) > 1})
        missing = sorted(set(range(every, steps[-1] + 1, every)) - set(steps))
        problems.append(f"group.csv rows not every {every} steps once: duplicated {dup[:5]}, missing {missing[:5]}")
    observed = {r["step"] for r in of_type(history, "group")}
    lost = sorted(observed - set(steps))
    if lost:
        problems.append(f"steps recorded during the run but not in the final group.csv: {lost[:5]}")
    peers = [k.removeprefix("steps/") for k in rows[0] if k.startswith("steps/")]
    for p in peers:
        counts = [int(r[f"steps/{p}"]) for r in rows]
        if any(b < a for a, b in zip(counts, counts[1:], strict=False)):
            problems.append(f"{p}'s step counter decreased")
        if any(c > s for c, s in zip(counts, steps, strict=True)):
            problems.append(f"{p} counts more steps than the group made (a step applied twice)")
        evals = run_dir / "peers" / p / "evaluations.csv"
        if evals.exists():
            at = [int(r["step"]) for r in csv.DictReader(evals.open())]
            if at != sorted(set(at)):
                problems.append(f"{p}'s evaluations.csv repeats or reorders steps")
    resumes = len([r for r in of_type(history, "orchestrator_start") if r["resume"]])
    ok = not problems
    detail = (f"group.csv: steps {every}..{steps[-1]} every {every}, each once, across {resumes} resumes; "
              f"{len(observed)} rows seen live all kept; every peer's counter monotone and <= the group step"
              if ok else "; ".join(problems))
    return Verdict("no group step lost or applied twice", ok, detail)


def orchestrator_recovery(history: list[Record]) -> Verdict:
    """Every killed orchestrator is resumed and makes a new group step within the bound; none crashed."""
    problems, rows = [], []
    crashes = of_type(history, "orchestrator_crash")
    for c in crashes:
        lines = [line.strip() for line in c.get("log_tail", "").splitlines() if line.strip()]
        problems.append(f"the orchestrator (pid {c['pid']}) crashed with exit code {c['code']}: "
                        f"{lines[-1] if lines else 'no log'}")
    starts = of_type(history, "orchestrator_start")
    progress = of_type(history, "progress")
    for start, end in faults(history):
        if start["kind"] != "orchestrator_kill" or (end and "skipped" in end):
            continue
        killed = end["t"] if end else start["t"]
        nxt = next((s for s in starts if s["t"] >= killed and s["resume"]), None)
        saved = [c["step"] for c in of_type(history, "checkpoint") if c["t"] <= killed]
        resumed_from = saved[-1] if saved else 0
        made = next((p for p in progress if nxt and p["pid"] == nxt["pid"] and p["step"] > resumed_from), None)
        took = round(made["t"] - killed, 2) if made else None
        rows.append({"killed_at": killed, "resumed_from_step": resumed_from, "resumed_pid": nxt["pid"] if nxt else None,
                     "first_new_step_s": took})
        if took is None or took > RESUME_BOUND_S:
            problems.append(f"orchestrator killed at {killed:.0f}: no new group step within {RESUME_BOUND_S:.0f} s")
    ok = not problems
    longest = max((r["first_new_step_s"] for r in rows), default=0)
    detail = (f"{len(rows)} kills, each resumed from its last checkpoint and stepping again within "
              f"{RESUME_BOUND_S:.0f} s (longest {longest} s); no crash" if ok else "; ".join(problems))
    return Verdict("killed orchestrator resumed, none crashed", ok, detail, rows)


def disk_recovery(history: list[Record]) -> Verdict:
    """After a full disk is freed, a checkpoint is written again within the bound."""
    rows, problems = [], []
    checkpoints = of_type(history, "checkpoint")
    for start, end in faults(history):
        if start["kind"] != "disk_full":
            continue
        freed = end["t"] if end else start["t"] + start["duration_s"]
        during = [c for c in checkpoints if start["t"] <= c["t"] <= freed]
        after = next((c for c in checkpoints if c["t"] > freed), None)
        took = round(after["t"] - freed, 1) if after else None
        rows.append({"at": start["t"], "duration_s": start["duration_s"], "checkpoints_while_full": len(during),
                     "next_checkpoint_after_s": took})
        if took is None or took > CHECKPOINT_BOUND_S:
            problems.append(f"disk full at {start['t']:.0f}: no checkpoint within {CHECKPOINT_BOUND_S:.0f} s "
                            "of freeing it")
    ok = not problems
    detail = (f"{len(rows)} full disks, a checkpoint written again within {CHECKPOINT_BOUND_S:.0f} s after each"
              if ok else "; ".join(problems))
    return Verdict("checkpoints resume after a full disk", ok, detail, rows)


def resources_flat(history: list[Record]) -> Verdict:
    """RSS and open file descriptors of every process that lived long enough do not grow beyond the
    bounds from 5 minutes into its life to its end (medians of its first and last 3 samples there)."""
    by_proc: dict[tuple[str, int], list[Record]] = {}
    for s in of_type(history, "sample"):
        by_proc.setdefault((s["proc"], s["pid"]), []).append(s)
    rows, problems = [], []
    for (label, pid), samples in sorted(by_proc.items()):
        born = samples[0]["t"]
        judged = [s for s in samples if s["t"] - born >= RESOURCE_WARMUP_S]
        if len(judged) < 6 or judged[-1]["t"] - judged[0]["t"] < RESOURCE_MIN_SPAN_S - RESOURCE_WARMUP_S:
            continue
        first_rss = statistics.median(s["rss_kb"] for s in judged[:3])
        last_rss = statistics.median(s["rss_kb"] for s in judged[-3:])
        first_fd = statistics.median(s["fds"] for s in judged[:3])
        last_fd = statistics.median(s["fds"] for s in judged[-3:])
        allowed = max(first_rss * RSS_GROWTH[0], RSS_GROWTH[1])
        row = {"process": label, "pid": pid, "minutes": round((judged[-1]["t"] - judged[0]["t"]) / 60, 1),
               "rss_mb": [round(first_rss / 1024, 1), round(last_rss / 1024, 1)], "fds": [first_fd, last_fd]}
        rows.append(row)
        if last_rss - first_rss > allowed:
            problems.append(f"{label} (pid {pid}) RSS {row['rss_mb'][0]} -> {row['rss_mb'][1]} MB")
        if last_fd - first_fd > FD_GROWTH:
            problems.append(f"{label} (pid {pid}) file descriptors {first_fd} -> {last_fd}")
    ok = not problems and bool(rows)
    detail = (f"{len(rows)} processes judged (those that lived >= {RESOURCE_MIN_SPAN_S / 60:.0f} min): RSS within "
              f"+25% or +64 MiB, file descriptors within +{FD_GROWTH}" if ok
              else "; ".join(problems) or "no process lived long enough to judge")
    return Verdict("RSS and file descriptors flat", ok, detail, rows)


def keeps_stepping(history: list[Record]) -> Verdict:
    """The group never stands still longer than the bound while one orchestrator runs (its status
    service polled every 2 s); the time an orchestrator is dead and resuming is judged above."""
    longest, where = 0.0, None
    last: dict[int, tuple[float, int]] = {}  # pid -> (time its step last changed, that step)
    for p in of_type(history, "progress"):
        seen = last.get(p["pid"])
        if seen is None or p["step"] != seen[1]:
            last[p["pid"]] = (p["t"], p["step"])
        elif p["t"] - seen[0] > longest:
            longest, where = p["t"] - seen[0], (p["t"], p["step"])
    ok = bool(last) and longest <= STALL_BOUND_S
    detail = (f"longest time without a new group step {longest:.1f} s" +
              (f" (at group step {where[1]})" if where else "") + f"; bound {STALL_BOUND_S:.0f} s")
    return Verdict("the group keeps stepping", ok, detail if last else "no progress recorded")


def no_orphans(history: list[Record]) -> Verdict:
    end = of_type(history, "end")
    if not end:
        return Verdict("no orphan process", False, "the soak did not reach its end (no end record)")
    alive, mentioning = end[-1]["alive"], end[-1]["mentioning"]
    ok = not alive and not mentioning
    detail = (f"all {len(end[-1]['pids'])} processes started (peers, restarts, orchestrators) gone; none names the "
              "soak's folder" if ok else f"still alive: {alive}; naming the soak's folder: {mentioning}")
    return Verdict("no orphan process", ok, detail)


def final_returns(run_dir: Path, baselines: list[Path]) -> Verdict:
    """Each peer's last evaluation against the fault-free runs' 95% CI (Student t over their last
    evaluations of the same peer); with a CI of width 0 (every fault-free run the same), equality."""
    mine = last_evaluations(run_dir)
    others = [last_evaluations(b / "run") for b in baselines]
    others = [o for o in others if o]
    if not mine or len(others) < 2:
        return Verdict("final returns within the fault-free 95% CI", False,
                       f"needs the soak's evaluations and >= 2 fault-free runs (got {len(others)})")
    rows, problems = [], []
    for peer, (step, value) in sorted(mine.items()):
        values = [o[peer][1] for o in others if peer in o]
        n = len(values)
        mean = statistics.fmean(values)
        half = _t95(n - 1) * statistics.stdev(values) / math.sqrt(n) if n > 1 else math.inf
        inside = mean - half - 1e-9 <= value <= mean + half + 1e-9
        rows.append({"peer": peer, "soak_step": step, "soak_return": value,
                     "fault_free_steps": sorted({o[peer][0] for o in others if peer in o}),
                     "fault_free_returns": values, "ci95": [round(mean - half, 3), round(mean + half, 3)],
                     "inside": inside})
        if not inside:
            problems.append(f"{peer}: {value:.2f} outside [{mean - half:.2f}, {mean + half:.2f}]")
    ok = not problems
    detail = ("every peer's last evaluation inside the fault-free runs' 95% CI" if ok else "; ".join(problems))
    return Verdict("final returns within the fault-free 95% CI", ok, detail, rows)


def last_evaluations(run_dir: Path) -> dict[str, tuple[int, float]]:
    found = {}
    for path in sorted(run_dir.glob("peers/*/evaluations.csv")):
        rows = list(csv.DictReader(path.open()))
        if rows:
            found[path.parent.name] = (int(rows[-1]["step"]), float(rows[-1]["mean_return"]))
    return found


def _t95(df: int) -> float:
    table = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
    return table.get(df, 1.96 + 2.5 / max(df, 1))


def judge(history: list[Record], run_dir: Path, baselines: list[Path]) -> list[Verdict]:
    return [steps_exact(history, run_dir), peer_faults(history), spurious_ejections(history),
            keeps_stepping(history), orchestrator_recovery(history), disk_recovery(history),
            resources_flat(history), no_orphans(history),
            final_returns(run_dir, baselines)]
