"""`python -m orchestrator.soak run|check ...` (see orchestrator/soak/__init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from orchestrator.soak import report
from orchestrator.soak.driver import Soak, SoakSettings
from orchestrator.soak.nemesis import KINDS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.soak", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a group under the nemesis, then judge it")
    run.add_argument("--minutes", type=float, required=True)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--python-peers", type=int, default=3)
    run.add_argument("--no-node", action="store_true")
    run.add_argument("--no-cpp", action="store_true")
    run.add_argument("--steps", type=int, default=100_000, help="the run's step budget (schedules depend on it)")
    run.add_argument("--no-faults", action="store_true", help="a fault-free run of the same group")
    run.add_argument("--stop-at-step", type=int, default=0, help="stop at this group step (fault-free runs)")
    run.add_argument("--warmup-s", type=float, default=60.0)
    run.add_argument("--kinds", default=",".join(KINDS), help=f"faults to draw from (default all: {','.join(KINDS)})")
    run.add_argument("--baseline", type=Path, nargs="*", default=[], help="fault-free soak folders to compare with")
    check = sub.add_parser("check", help="judge a soak's history again and write its report")
    check.add_argument("out", type=Path)
    check.add_argument("--baseline", type=Path, nargs="*", default=[])
    args = parser.parse_args(argv)
    if args.command == "run":
        settings = SoakSettings(minutes=args.minutes, seed=args.seed, out=args.out, python_peers=args.python_peers,
                                node=not args.no_node, cpp=not args.no_cpp, steps=args.steps,
                                stop_at_step=args.stop_at_step, faults=not args.no_faults, warmup_s=args.warmup_s,
                                kinds=tuple(k for k in args.kinds.split(",") if k))
        asyncio.run(Soak(settings).run())
        if args.no_faults:
            return 0
    verdicts = report.write(args.out, args.baseline, command=" ".join(["python -m orchestrator.soak", *sys.argv[1:]])
                            if argv is None else "")
    for v in verdicts:
        print(f"{'PASS' if v.ok else 'FAIL'}  {v.name}: {v.detail}")
    return 0 if all(v.ok for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
