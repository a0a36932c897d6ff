"""The `peerlearn` command: run a group, serve a peer, drive running peers, probe and watch them."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from dataclasses import fields

DEFAULT_HELP = ("With no options, `peerlearn run` trains 3 DQN peers on Room-6 for 6,000 steps each over gRPC "
                "(about 1-2 minutes on 2 cores); each peer reaches the exact optimum (47.10).")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="TOML file with RunConfig fields (flags override it)")
    p.add_argument("--task", help="room-6 (default), room-21, hopper, halfcheetah, ...")
    p.add_argument("--steps", type=int, help="env steps per peer")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="results root (default runs/)")
    p.add_argument("--name", help="run folder name (never overwritten)")
    p.add_argument("--mode", choices=["peer", "single", "random", "early"])
    p.add_argument("--no-critic", dest="use_critic", action="store_const", const=False)
    p.add_argument("--no-trust", dest="use_trust", action="store_const", const=False)
    p.add_argument("--no-agent-values", dest="use_agent_values", action="store_const", const=False)
    p.add_argument("--no-advantage", dest="use_advantage", action="store_const", const=False)
    p.add_argument("--no-values-in-step", dest="values_in_step", action="store_const", const=False,
                   help="value trust evidence in a separate Evaluate (default: inside Step where a peer offers it)")
    p.add_argument("--stagger-training", dest="stagger_training", action="store_const", const=True,
                   help="peers started here: shift their training windows so at most one peer per core trains "
                   "in a group step (remote peers: train_phase in their learner settings)")
    p.add_argument("--eval-every", type=int, help="own env steps between evaluations")
    p.add_argument("--status-port", type=int, help="port of the status service (0 = free port, -1 = off)")
    p.add_argument("--no-progress", dest="progress", action="store_const", const=False)
    p.add_argument("--checkpoint-every", type=int, help="group steps between checkpoints (for --resume)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a killed run from its last checkpoint (its config.toml; flags such as "
                   "--steps override)")
    p.add_argument("--aggregation", dest="agent_value_aggregation", choices=["median", "trimmed_mean", "mean"],
                   help="agent-value aggregation: median (default, robust) or the paper's mean")
    p.add_argument("--tls-ca", dest="tls_ca", help="CA of the peers' certificates: connect with TLS")
    p.add_argument("--tls-cert", dest="tls_cert", help="orchestrator client certificate (mutual TLS)")
    p.add_argument("--tls-key", dest="tls_key", help="its private key")
    p.add_argument("--token-files", dest="token_files", type=lambda v: [x for x in v.split(",") if x],
                   help="bearer token file, or one per peer (comma-separated)")
    p.add_argument("--allow-insecure", dest="allow_insecure", action="store_const", const=True,
                   help="allow plaintext to peers off loopback (trusted test networks only)")


def _config(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from pathlib import Path

    from orchestrator.config import RunConfig

    if getattr(args, "resume", None):
        config = RunConfig.from_toml(Path(args.resume) / "config.toml")  # the run's own settings
    else:
        config = RunConfig.from_toml(args.config) if args.config else RunConfig()
    for f in fields(RunConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(config, f.name, value)
    return config.validate()


def _print_summary(summary) -> None:  # type: ignore[no-untyped-def]
    print(f"results: {summary.run_dir}")
    for name, value in summary.final_eval.items():
        print(f"  {name}: final evaluation return {value:.2f}")
    print(f"  {summary.group_steps} group steps in {summary.seconds:.1f} s; plots: "
          + ", ".join(p.name for p in summary.plots))


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.run import run_group

    config = _config(args)
    if args.peers is not None:
        config.peers = args.peers
    if args.transport:
        config.transport = args.transport
    if args.roles:
        config.roles = args.roles.split(",")
    if args.attacks is not None:
        config.attacks = args.attacks.split(",")
    _print_summary(asyncio.run(run_group(config.validate(), resume_dir=args.resume)))
    return 0


def cmd_orchestrate(args: argparse.Namespace) -> int:
    from orchestrator.run import run_group

    addresses = [a.strip() for a in args.peers.split(",") if a.strip()]
    args.peers = len(addresses)  # _config copies it to RunConfig.peers (an int) before validating
    config = _config(args)
    _print_summary(asyncio.run(run_group(config, addresses, resume_dir=args.resume)))
    return 0


def cmd_peer(args: argparse.Namespace) -> int:
    from peer_service.main import main

    return main(args)


def cmd_probe(args: argparse.Namespace) -> int:
    from peerlearn.probe import probe

    return asyncio.run(probe(args.address, args.timeout))


def cmd_status(args: argparse.Namespace) -> int:
    from peerlearn.probe import status

    return asyncio.run(status(args.address, args.timeout))


def cmd_certs(args: argparse.Namespace) -> int:
    from peerlearn.certs import make_certificates

    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    written = make_certificates(args.out, peers, days=args.days,
                                clients=[c.strip() for c in args.clients.split(",") if c.strip()])
    print(f"wrote a test CA and certificates for {', '.join(peers)} + {args.clients} to {args.out}:")
    print("  " + " ".join(sorted(written)))
    print("peer:         peerlearn peer --peer-id ID --tls-cert ID.pem --tls-key ID.key "
          "[--tls-ca ca.pem --require-client-cert]")
    print("orchestrator: peerlearn orchestrate --peers ID@HOST:PORT,... --tls-ca ca.pem "
          "[--tls-cert orchestrator.pem --tls-key orchestrator.key]")
    return 0


def cmd_conformance(args: argparse.Namespace) -> int:
    from peerlearn.conformance import run

    return run(args.address, args.pytest_args)


def cmd_sweep(args: argparse.Namespace) -> int:
    from orchestrator.sweep import main as sweep_main

    return sweep_main(args, _config(args))


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator.report import main as report_main

    return report_main(args)


def cmd_sweep_ray(args: argparse.Namespace) -> int:
    from orchestrator.ray_sweep import main as sweep_main

    return sweep_main(args, _config(args))


def cmd_bench(args: argparse.Namespace) -> int:
    from orchestrator.bench import main as bench_main

    return bench_main(args.which, args.task, [int(n) for n in args.peers.split(",")], args.steps, args.out,
                      args.authors, args.authors_python)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peerlearn", description="Peer learning with every agent a gRPC service.")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="start N local peer processes and train them as a group",
                         description=DEFAULT_HELP)
    _add_run_options(run)
    run.add_argument("--peers", type=int, help="number of peers (default 3)")
    run.add_argument("--roles", help="comma-separated roles, e.g. learner,learner,adversary")
    run.add_argument("--transport", choices=["grpc", "inproc"], help="grpc (default): one process per peer")
    run.add_argument("--attacks", help="comma-separated attack per peer, e.g. ,,mirror (docs/security.md)")
    run.set_defaults(func=cmd_run)

    orch = sub.add_parser("orchestrate", help="drive peers that are already running")
    _add_run_options(orch)
    orch.add_argument("--peers", required=True, help="comma-separated host:port list")
    orch.set_defaults(func=cmd_orchestrate)

    from peer_service.main import build_parser as peer_parser

    peer = sub.add_parser("peer", help="serve one peer (flags or PEERLEARN_* environment variables)")
    peer_parser(peer)
    peer.set_defaults(func=cmd_peer)

    from orchestrator.ray_sweep import add_arguments as sweep_arguments

    sweep = sub.add_parser("sweep-ray", help="independent groups (tasks x seeds x modes) on a Ray cluster")
    _add_run_options(sweep)
    sweep_arguments(sweep)
    sweep.set_defaults(func=cmd_sweep_ray)

    from orchestrator.sweep import add_arguments as local_sweep_arguments

    local_sweep = sub.add_parser("sweep", help="a grid (conditions x seeds x tasks) on this machine, resumable")
    _add_run_options(local_sweep)
    local_sweep_arguments(local_sweep)
    local_sweep.set_defaults(func=cmd_sweep)

    from orchestrator.report import add_arguments as report_arguments

    report = sub.add_parser("report", help="tables (paper metric, IQM with bootstrap CIs) and plots of runs")
    report_arguments(report)
    report.set_defaults(func=cmd_report)

    probe = sub.add_parser("probe", help="health, handshake and one Suggest of a peer")
    probe.add_argument("address")
    probe.add_argument("--timeout", type=float, default=5.0)
    probe.set_defaults(func=cmd_probe)

    status = sub.add_parser("status", help="print the status of a running orchestrator")
    status.add_argument("address")
    status.add_argument("--timeout", type=float, default=5.0)
    status.set_defaults(func=cmd_status)

    bench = sub.add_parser("bench", help="measure the group step side by side (tables + CSV; docs/performance.md)")
    bench.add_argument("which", nargs="*", default=["overhead", "reference", "startup"],
                       help="overhead, reference, compute, startup, memory (default: overhead reference startup)")
    bench.add_argument("--task", default="halfcheetah")
    bench.add_argument("--peers", default="2,4,8,16,32", help="group sizes for the overhead table")
    bench.add_argument("--steps", type=int, default=200, help="timed group steps per measurement")
    bench.add_argument("--out", default="runs/bench", help="where the CSV files go")
    bench.add_argument("--authors", help="a checkout of kramerlab/PeerLearning: `reference` also times the authors' "
                                         "code itself on the same group (docs/performance.md)")
    bench.add_argument("--authors-python", help="the Python of the authors' venv (../shared/FACTS.md recipe)")
    bench.set_defaults(func=cmd_bench)

    certs = sub.add_parser("certs", help="make a test CA and certificates for a group (TLS / mutual TLS)")
    certs.add_argument("--out", required=True, help="directory to write ca.pem, ID.pem, ID.key, ...")
    certs.add_argument("--peers", required=True, help="comma-separated peer ids, e.g. peer-0,peer-1")
    certs.add_argument("--clients", default="orchestrator", help="client certificates to make (default orchestrator)")
    certs.add_argument("--days", type=int, default=30)
    certs.set_defaults(func=cmd_certs)

    conformance = sub.add_parser("conformance", help="check a live peer (any language) against peerlearn.v1")
    conformance.add_argument("address", help="host:port of the peer")
    conformance.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments, e.g. -k suggest")
    conformance.set_defaults(func=cmd_conformance)
    return parser


def _raise_interrupt(signum: int, frame: object) -> None:
    # Re-deliver as SIGINT: asyncio.run turns that into a clean cancellation of the main task
    # (raising KeyboardInterrupt here could land inside gRPC's C core).
    os.kill(os.getpid(), signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if not argv:
        argv = ["run"]  # the embedded default
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command in ("run", "orchestrate"):
        # SIGTERM ends a run like Ctrl-C: the launcher's cleanup stops every peer it started. Both go
        # through SIGINT, so it must be live: a run started in the background by a script (`cmd &`
        # in a non-interactive shell) inherits SIGINT ignored, and then never stopped on SIGTERM.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; peers stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
