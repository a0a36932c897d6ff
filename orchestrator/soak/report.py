"""The soak's report: the schedule, each fault with its detection and recovery times, the checkers'
verdicts (report.md and verdicts.json beside history.jsonl)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from orchestrator.soak import checkers
from orchestrator.soak.history import read


def _clock(t: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(t))


def _fmt(v: Any) -> str:
    return "-" if v is None else str(v)


def write(out: Path, baselines: list[Path], command: str = "") -> list[checkers.Verdict]:
    history = read(out / "history.jsonl")
    verdicts = checkers.judge(history, out / "run", baselines)
    start = checkers.of_type(history, "start")[0]
    end = checkers.of_type(history, "end")
    group = start["group"]
    by_name = {v.name: v for v in verdicts}
    fault_rows = {r["fault"]: r for r in by_name["faulted peers ejected and re-admitted"].rows}
    node = start["node"] if start["node"] is not True else f"included (peer-{group['peers'] - 1})"
    lines = [f"# Soak: {start['settings']['minutes']:g} minutes of faults, seed {start['settings']['seed']}", ""]
    made = "python -m orchestrator.soak " + " ".join(start.get("argv", []))
    lines += ["Made by (from the repository root; `nice -n 5` in front here):", "", "```", made, "```", ""]
    if command and command != made:
        lines += ["Judged by:", "", "```", command, "```", ""]
    steps = [r["step"] for r in checkers.of_type(history, "group")]
    lines += [
        f"- started {_clock(start['t'])} UTC, ran {end[-1]['seconds'] if end else '?'} s; group steps reached: "
        f"{max(steps, default=0)}",
        f"- group: {group['peers']} peers on {group['task']} ({', '.join(start['peers'])}); Node peer: "
        f"{node}; "
        f"C++ peer: {start['cpp'] if start['cpp'] is not True else 'included'}",
        f"- settings: steps budget {group['steps']}, deadlines {group['rpc_timeout_s']} s / "
        f"{group['step_timeout_s']} s, "
        f"eject_after {group['eject_after']}, checkpoint_every {group['checkpoint_every']}, eval_every "
        f"{group['eval_every']}; run folder disk: {start['disk']}",
        f"- fault kinds drawn from: {', '.join(start['kinds'])}",
        f"- orchestrator processes: {len(checkers.of_type(history, 'orchestrator_start'))} "
        f"({len(checkers.of_type(history, 'orchestrator_crash'))} crashed); peer restarts: "
        f"{len(checkers.of_type(history, 'peer_restart'))}",
        "", "## Verdicts", "", "| property | verdict | detail |", "|---|---|---|"]
    lines += [f"| {v.name} | **{'pass' if v.ok else 'FAIL'}** | {v.detail} |" for v in verdicts]
    lines += ["", "## Faults", "",
              "Times in seconds: noticed / ejected after the fault's start, healthy again after its end "
              "(peer faults; health.csv as recorded live, killed orchestrators' rows included).", "",
              "| # | at (UTC) | fault | target | lasted (s) | noticed | ejected | back after end | problems |",
              "|---|---|---|---|---|---|---|---|---|"]
    orch = iter(by_name["killed orchestrator resumed, none crashed"].rows)
    disk = iter(by_name["checkpoints resume after a full disk"].rows)
    for k, (s, _) in enumerate(checkers.faults(history), start=1):
        row = fault_rows.get(k)
        if row:
            cells = [_fmt(row["detected_s"]), _fmt(row["ejected_s"]), _fmt(row["recovered_after_end_s"]),
                     "; ".join(row["problems"]) or "none"]
        elif s["kind"] == "orchestrator_kill":
            r = next(orch, {})
            cells = ["-", "-", f"resumed from step {r.get('resumed_from_step')}, stepping again "
                     f"{_fmt(r.get('first_new_step_s'))} s after the kill", ""]
        else:
            r = next(disk, {})
            cells = ["-", "-", f"next checkpoint {_fmt(r.get('next_checkpoint_after_s'))} s after freeing "
                     f"({r.get('checkpoints_while_full', '?')} written while full)", ""]
        params = ", ".join(f"{k2} {v}" for k2, v in s["params"].items())
        lines.append(f"| {k} | {_clock(s['t'])} | {s['kind']}{' (' + params + ')' if params else ''} | {s['target']} | "
                     f"{s['duration_s']} | " + " | ".join(cells) + " |")
    crashes = checkers.of_type(history, "orchestrator_crash")
    if crashes:
        lines += ["", "## Orchestrator crashes", ""]
        for c in crashes:
            last = [x for x in c["log_tail"].splitlines() if x.strip()][-1:]
            lines.append(f"- {_clock(c['t'])} UTC, exit code {c['code']}: `{last[0] if last else ''}`")
    lines += ["", "## Resources (processes that lived >= 10 minutes; from 5 minutes into their life)", "",
              "| process | pid | minutes judged | RSS MB first -> last | open fds first -> last |",
              "|---|---|---|---|---|"]
    for r in by_name["RSS and file descriptors flat"].rows:
        lines.append(f"| {r['process']} | {r['pid']} | {r['minutes']} | {r['rss_mb'][0]} -> {r['rss_mb'][1]} | "
                     f"{r['fds'][0]} -> {r['fds'][1]} |")
    final = by_name["final returns within the fault-free 95% CI"].rows
    if final:
        lines += ["", "## Final returns against the fault-free runs", "",
                  "| peer | soak: last evaluation (step) | fault-free last evaluations (steps) | 95% CI | inside |",
                  "|---|---|---|---|---|"]
        for r in final:
            lines.append(f"| {r['peer']} | {r['soak_return']} ({r['soak_step']}) | {r['fault_free_returns']} "
                         f"({r['fault_free_steps']}) | {r['ci95']} | {r['inside']} |")
        lines += ["", f"Fault-free runs: {', '.join(str(b.name) for b in baselines)}."]
    (out / "report.md").write_text("\n".join(lines) + "\n")
    (out / "verdicts.json").write_text(json.dumps([{"name": v.name, "ok": v.ok, "detail": v.detail, "rows": v.rows}
                                                   for v in verdicts], indent=1, default=str))
    return verdicts
