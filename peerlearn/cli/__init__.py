"""The `peerlearn` command: run a group, serve a peer, drive running peers, probe and watch them.

Arguments are parsed with the stdlib's argparse, fed from one declaration per setting (the fields of
orchestrator/config.py:RunConfig and peer_service/config.py, with their types and docstrings) through
peerlearn/settings.py's one parser per type. A flag library (tyro, typer, pydantic-settings) would
do the same with a dependency and, for the first two, slower imports; argparse is already how every
command and its tests work, and keeps `--help` well under half a second.
Only the chosen command's arguments are built, so `--help` never imports torch.

A user error (a bad value, an unknown key or task, an unreadable file, a port in use) ends with exit
code 2 and one line naming the setting, what was expected and what came; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

from peerlearn.settings import ENV_PREFIX, Parser, RunInterrupted, RunStopped, UserError, unknown_variables

if TYPE_CHECKING:  # imported where a command runs: `--help` must stay fast
    from orchestrator.config import RunConfig
    from orchestrator.running.run import RunSummary

DEFAULT_HELP = ("With no options, `peerlearn run` trains 3 DQN peers on Room-6 for 6,000 steps each over gRPC "
                "(about 1-2 minutes on 2 cores); each peer reaches the exact optimum (47.10).")


def _add_run_options(p: argparse.ArgumentParser) -> None:
    """Aliases kept from before every field had its own flag (`--no-critic` for `--no-use-critic`, ...)."""
    p.add_argument("--config", help="TOML file with RunConfig fields (PEERLEARN_* variables and flags override it)")
    p.add_argument("--no-critic", dest="use_critic", action="store_const", const=False,
                   help="ablation: no critic in the adviser choice (= --no-use-critic)")
    p.add_argument("--no-trust", dest="use_trust", action="store_const", const=False,
                   help="ablation: no trust in the adviser choice (= --no-use-trust)")
    p.add_argument("--no-agent-values", dest="use_agent_values", action="store_const", const=False,
                   help="ablation: no agent values in the adviser choice (= --no-use-agent-values)")
    p.add_argument("--no-advantage", dest="use_advantage", action="store_const", const=False,
                   help="ablation: trust from values, not advantages (= --no-use-advantage)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a killed run from its last checkpoint (its config.toml; flags such as "
                   "--steps override)")
    p.add_argument("--aggregation", dest="agent_value_aggregation", choices=["median", "trimmed_mean", "mean"],
                   help="agent-value aggregation: median (default, robust) or the paper's mean "
                   "(= --agent-value-aggregation)")
    p.add_argument("--token-files", dest="token_files", type=lambda v: [x for x in v.split(",") if x],
                   help="bearer token file, or one per peer (comma-separated)")


def _add_config_flags(p: argparse.ArgumentParser) -> None:
    """A flag for every RunConfig field the command has none for yet (called after its own flags)."""
    from orchestrator.config import RunConfig, field_help
    from peerlearn.settings import add_flags

    add_flags(p, RunConfig.types(), field_help(), RunConfig().to_dict())


def _config(args: argparse.Namespace) -> RunConfig:
    """Defaults < the TOML file < PEERLEARN_<FIELD> variables < flags (a resumed run: its own config.toml
    < flags; the environment is not read, so the continuation runs with the settings it started with)."""
    from orchestrator.config import RunConfig
    from peerlearn.settings import env_name

    if getattr(args, "resume", None):
        config = RunConfig.from_toml(Path(args.resume) / "config.toml")  # the run's own settings
        from_env: dict = {}
        for name in RunConfig.from_env():
            print(f"peerlearn: {env_name(name)} is ignored by --resume (the run continues with its config.toml; "
                  "flags override it)", file=sys.stderr)
    else:
        config = RunConfig.from_toml(args.config) if getattr(args, "config", None) else RunConfig()
        from_env = RunConfig.from_env()
    for name, value in from_env.items():
        if getattr(args, name, None) is None:  # as if given as a flag: a sweep's grid takes it that way too
            setattr(args, name, value)
            print(f"peerlearn: from the environment: {env_name(name)}={os.environ[env_name(name)]}",
                  file=sys.stderr)
    for f in fields(RunConfig):
        value = getattr(args, f.name, None)
        if value is not None:
            setattr(config, f.name, value)
    return config.validate()


def _report_peer_environment() -> None:
    """Say which PEERLEARN_* peer variables the started peers inherit, and which they are not given."""
    from orchestrator.config import RunConfig
    from orchestrator.running.launcher import inherited_variables
    from peerlearn.settings import env_name

    passed, withheld = inherited_variables()
    for name, value in passed.items():
        print(f"peerlearn: the peers inherit {name}={value}", file=sys.stderr)
    run_variables = {env_name(n) for n in RunConfig.types()}  # PEERLEARN_SEED, _TASK, ...: read by the run itself
    for name in withheld:
        if name in run_variables:
            continue
        print(f"peerlearn: {name} is not given to the peers started here (a `peerlearn peer` setting; "
              "the run's config decides it and config.toml records it)", file=sys.stderr)


def _print_summary(summary: RunSummary) -> None:
    print(f"results: {summary.run_dir}")
    for name, value in summary.final_eval.items():
        print(f"  {name}: final evaluation return {value:.2f}")
    print(f"  {summary.group_steps} group steps in {summary.seconds:.1f} s; plots: "
          + ", ".join(p.name for p in summary.plots))


def cmd_run(args: argparse.Namespace) -> int:
    from orchestrator.running.run import run_group

    config = _config(args)
    if config.transport == "grpc":
        _report_peer_environment()
    _print_summary(asyncio.run(run_group(config, resume_dir=args.resume, handle_signals=True)))
    return 0


def cmd_orchestrate(args: argparse.Namespace) -> int:
    from orchestrator.running.run import run_group

    addresses = [a.strip() for a in args.peers.split(",") if a.strip()]
    args.peers = len(addresses)  # _config copies it to RunConfig.peers (an int) before validating
    config = _config(args)
    _print_summary(asyncio.run(run_group(config, addresses, resume_dir=args.resume, handle_signals=True)))
    return 0


def cmd_peer(args: argparse.Namespace) -> int:
    from peer_service.main import main

    return main(args)


def cmd_probe(args: argparse.Namespace) -> int:
    from peerlearn.cli.probe import probe

    return asyncio.run(probe(args.address, args.timeout))


def cmd_status(args: argparse.Namespace) -> int:
    from peerlearn.cli.probe import status

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


def _check_seed_and_seeds(args: argparse.Namespace, default_seeds: str | None) -> None:
    """`--seed S` in a sweep means `--seeds S`; next to an explicit --seeds it is refused (before, it
    was silently ignored)."""
    if getattr(args, "seed", None) is None:
        return
    explicit = any(a == "--seeds" or a.startswith("--seeds=") for a in getattr(args, "argv", ()))
    if explicit or args.seeds not in (None, default_seeds):
        raise UserError(f"seed: --seed {args.seed} next to --seeds {args.seeds}; give the sweep's seeds with "
                        "--seeds only")
    args.seeds = str(args.seed)


def cmd_sweep(args: argparse.Namespace) -> int:
    from orchestrator.experiments.sweep import main as sweep_main

    _check_seed_and_seeds(args, None)
    return sweep_main(args, _config(args))


def cmd_report(args: argparse.Namespace) -> int:
    from orchestrator.experiments.report import main as report_main

    return report_main(args)


def cmd_sweep_ray(args: argparse.Namespace) -> int:
    from orchestrator.experiments.ray_sweep import main as sweep_main

    _check_seed_and_seeds(args, "0")
    return sweep_main(args, _config(args))


# The checkout an editable install points into (peerlearn/cli/ is two floors below its root).
CHECKOUT = Path(__file__).resolve().parents[2]


def _bench_main() -> Callable[..., int]:
    """benchmarks/ is not installed (a wheel leaves it out: users' environments need not carry the
    timing of this repository against the authors' code), so it is found in the working directory
    (on the path, see _working_directory_on_path) or in the checkout of an editable install."""
    try:
        from benchmarks.bench import main as bench_main
    except ModuleNotFoundError as err:
        if err.name not in ("benchmarks", "benchmarks.bench"):
            raise  # something benchmarks itself imports is missing: its own traceback says what
        if not (CHECKOUT / "benchmarks" / "bench.py").is_file():
            raise UserError("benchmarks/ is not installed; run `peerlearn bench` in a checkout of "
                            "peerlearn (pip install -e .)") from None
        sys.path.insert(0, str(CHECKOUT))
        from benchmarks.bench import main as bench_main
    return bench_main


def cmd_bench(args: argparse.Namespace) -> int:
    bench_main = _bench_main()
    return bench_main(args.which, args.task, [int(n) for n in args.peers.split(",")], args.steps, args.out,
                      args.authors, args.authors_python)


def _run_arguments(p: argparse.ArgumentParser) -> None:
    _add_run_options(p)
    _add_config_flags(p)
    p.set_defaults(func=cmd_run)


def _orchestrate_arguments(p: argparse.ArgumentParser) -> None:
    _add_run_options(p)
    p.add_argument("--peers", required=True, help="comma-separated host:port list (ID@host:port with TLS)")
    _add_config_flags(p)
    p.set_defaults(func=cmd_orchestrate)


def _peer_arguments(p: argparse.ArgumentParser) -> None:
    from peer_service.main import build_parser as peer_parser

    peer_parser(p)
    p.set_defaults(func=cmd_peer)


def _sweep_ray_arguments(p: argparse.ArgumentParser) -> None:
    from orchestrator.experiments.ray_sweep import add_arguments as sweep_arguments

    _add_run_options(p)
    sweep_arguments(p)
    _add_config_flags(p)
    p.set_defaults(func=cmd_sweep_ray)


def _sweep_arguments(p: argparse.ArgumentParser) -> None:
    from orchestrator.experiments.sweep import add_arguments as local_sweep_arguments

    _add_run_options(p)
    local_sweep_arguments(p)
    _add_config_flags(p)
    p.set_defaults(func=cmd_sweep)


def _report_arguments(p: argparse.ArgumentParser) -> None:
    from orchestrator.experiments.report import add_arguments as report_arguments

    report_arguments(p)
    missing = {"--title": "heading of report.md (default: none)", "--no-plots": "write the tables only, no plots"}
    for action in p._actions:  # noqa: SLF001 - help for the flags orchestrator/experiments/report.py leaves without one
        action.help = action.help or next((missing[o] for o in action.option_strings if o in missing), None)
    p.set_defaults(func=cmd_report)


def _probe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="host:port of the peer")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for each reply (default 5)")
    p.set_defaults(func=cmd_probe)


def _status_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="host:port of the orchestrator's status service, or the run folder "
                                   "(RUN_DIR: its status_address names it)")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the reply (default 5)")
    p.set_defaults(func=cmd_status)


def _bench_arguments(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("which", nargs="*", default=["overhead", "reference", "startup"],
                       help="overhead, reference, compute, startup, memory (default: overhead reference startup)")
    bench.add_argument("--task", default="halfcheetah", help="task of the benchmarked peers (default halfcheetah)")
    bench.add_argument("--peers", default="2,4,8,16,32", help="group sizes for the overhead table")
    bench.add_argument("--steps", type=int, default=200, help="timed group steps per measurement")
    bench.add_argument("--out", default="runs/bench", help="where the CSV files go")
    bench.add_argument("--authors", help="a checkout of kramerlab/PeerLearning: `reference` also times the authors' "
                                         "code itself on the same group (docs/performance.md)")
    bench.add_argument("--authors-python",
                       help="the Python of the authors' venv (setup: results/authors-code/README.md)")
    bench.set_defaults(func=cmd_bench)


def _certs_arguments(certs: argparse.ArgumentParser) -> None:
    certs.add_argument("--out", required=True, help="directory to write ca.pem, ID.pem, ID.key, ...")
    certs.add_argument("--peers", required=True, help="comma-separated peer ids, e.g. peer-0,peer-1")
    certs.add_argument("--clients", default="orchestrator", help="client certificates to make (default orchestrator)")
    certs.add_argument("--days", type=int, default=30, help="validity of the certificates in days (default 30)")
    certs.set_defaults(func=cmd_certs)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from orchestrator.running.evaluate import evaluate_run, format_table

    results = evaluate_run(Path(args.run_dir), peer=args.peer, episodes=args.episodes,
                           video_dir=Path(args.video) if args.video else None, seed=args.seed)
    print(format_table(results))
    return 0


def _evaluate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run folder (runs/<name>/) with peer checkpoints")
    p.add_argument("--peer", help="only this peer (default: every checkpointed peer)")
    p.add_argument("--episodes", type=int, help="episodes per peer (default: the run's eval_episodes; 0 = exact "
                                                "for Room)")
    p.add_argument("--video", metavar="DIR", help="also record one episode per peer as DIR/<peer>.gif (tasks that "
                                                  "render images, e.g. Room)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes (default 0)")
    p.set_defaults(func=cmd_evaluate)


def _conformance_arguments(conformance: argparse.ArgumentParser) -> None:
    conformance.add_argument("address", help="host:port of the peer")
    conformance.add_argument("pytest_args", nargs=argparse.REMAINDER, help="extra pytest arguments, e.g. -k suggest")
    conformance.set_defaults(func=cmd_conformance)


# name -> (help, description, the function that adds its arguments). Arguments are added only for
# the command being run (or all, for tests): building them imports the command's module, and some
# (report: NumPy, Matplotlib) are slow to import, which `peerlearn --help` must not pay.
COMMANDS: dict[str, tuple[str, str | None, Callable[[argparse.ArgumentParser], None]]] = {
    "run": ("start N local peer processes and train them as a group", DEFAULT_HELP, _run_arguments),
    "orchestrate": ("drive peers that are already running", None, _orchestrate_arguments),
    "peer": ("serve one peer (flags or PEERLEARN_* environment variables)", None, _peer_arguments),
    "sweep-ray": ("independent groups (tasks x seeds x modes) on a Ray cluster", None, _sweep_ray_arguments),
    "sweep": ("a grid (conditions x seeds x tasks) on this machine, resumable", None, _sweep_arguments),
    "report": ("tables (paper metric, IQM with bootstrap CIs) and plots of runs", None, _report_arguments),
    "evaluate": ("evaluate a run's checkpoints again, optionally with a video", None, _evaluate_arguments),
    "probe": ("health, handshake and one Suggest of a peer", None, _probe_arguments),
    "status": ("print the status of a running orchestrator", None, _status_arguments),
    "bench": ("measure the group step side by side (tables + CSV; docs/performance.md)", None, _bench_arguments),
    "certs": ("make a test CA and certificates for a group (TLS / mutual TLS)", None, _certs_arguments),
    "conformance": ("check a live peer (any language) against peerlearn.v1", None, _conformance_arguments),
}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("peerlearn")
    except PackageNotFoundError:  # run from a checkout that is not installed
        from peerlearn import __version__

        return __version__


class VersionAction(argparse.Action):
    """--version, looked up only when asked (importlib.metadata scans every installed package)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"peerlearn {version()}")
        parser.exit()


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser; with `only`, the arguments of that command alone (the others list their help)."""
    parser = Parser(prog="peerlearn", description="Peer learning with every agent a gRPC service.")
    parser.add_argument("--version", action=VersionAction, help="print the installed version and exit")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)
    for name, (help_text, description, add_arguments) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=description or help_text)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the traceback of an error")
        if only is None or only == name:
            add_arguments(p)
    return parser


def _warn_unknown_variables() -> None:
    """A PEERLEARN_* variable that is no setting of a run or a peer is said in one line (stderr), with
    its likely spelling; the settings are only looked up when such a variable is there at all."""
    if not any(k.startswith(ENV_PREFIX) for k in os.environ):
        return
    from orchestrator.config import RunConfig
    from peer_service.main import declared_settings

    warning = unknown_variables([*RunConfig.types(), *declared_settings().types])
    if warning:
        print(warning, file=sys.stderr)


def _working_directory_on_path() -> None:
    """Imports look in the working directory first, as with `python -m` and `python -c`, so that a
    user's own env imports in `peerlearn` as it does in Python (`--task mytask:LineWalk-v0` beside
    mytask.py); the console script's path starts at its bin folder instead. The peers a run starts
    run in this folder as `python -m`, so they find it too. `python -P` / PYTHONSAFEPATH turn it off."""
    here = os.getcwd()
    if not sys.flags.safe_path and here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)


def _command(argv: list[str]) -> str | None:
    return next((a for a in argv if a in COMMANDS), None)


def _raise_interrupt(signum: int, frame: object) -> None:
    # Re-deliver as SIGINT: asyncio.run turns that into a clean cancellation of the main task
    # (raising KeyboardInterrupt here could land inside gRPC's C core).
    os.kill(os.getpid(), signal.SIGINT)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        argv = ["run"]  # the embedded default
    _warn_unknown_variables()
    _working_directory_on_path()
    parser = build_parser(only=_command(argv) or "")  # no command: only the list of commands
    args = parser.parse_args(argv)
    args.argv = list(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.command in ("run", "orchestrate"):
        # SIGTERM ends a run like Ctrl-C: the launcher's cleanup stops every peer it started. Both go
        # through SIGINT, so it must be live: a run started in the background by a script (`cmd &`
        # in a non-interactive shell) inherits SIGINT ignored, and then never stopped on SIGTERM.
        # While the group runs, the loop's own handlers take both (orchestrator/running/interrupt.py).
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; peers stopped", file=sys.stderr)
        return 130
    except UserError as err:
        if args.debug:
            raise
        print(f"peerlearn {args.command}: error: {err}", file=sys.stderr)
        return 2
    except RunInterrupted as err:  # Ctrl-C or SIGTERM: where it stopped and the command that continues it
        print(f"peerlearn {args.command}: {err}", file=sys.stderr)
        return 130
    except RunStopped as err:
        if args.debug:
            raise
        print(f"peerlearn {args.command}: {err}", file=sys.stderr)
        return 1

