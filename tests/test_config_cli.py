"""The configuration layer as a user meets it (issue 18): one-line errors with exit code 2, every
setting reachable as a flag, a TOML key and a PEERLEARN_* variable, a parent's environment that
never changes what a started peer does, a fast --help, the sdist's .proto files and the checkpoint
layout on disk, and `peerlearn bench` outside a checkout."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import tomllib
from dataclasses import fields
from pathlib import Path

import pytest

from orchestrator.config import RunConfig, to_toml
from peerlearn.cli import build_parser, main
from peerlearn.settings import env_name, flag_name

ROOT = Path(__file__).resolve().parents[1]


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI on a user error: exit code 2 and one line on stderr, no traceback."""
    try:
        code = main(argv)
    except SystemExit as err:  # argparse's own errors
        code = int(err.code or 0)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("argv, expected", [
    (["run", "--seed", "abc"], "--seed: expected an integer, got 'abc'"),
    (["run", "--steps", "1.5"], "--steps: expected an integer, got '1.5'"),
    (["run", "--use-trust", "maybe"], "unrecognized arguments: maybe"),
    (["run", "--keep-checkpoints", "-1"], "keep_checkpoints: expected 0 (all) or a positive count, got -1"),
    (["run", "--temperature", "0"], "temperature must be > 0, got 0.0"),
    (["run", "--eval-every", "0"], "eval_every must be >= 1, got 0"),
    (["run", "--seed", "-3"], "seed must be >= 0 (peer i's seed is seed * 1000 + i), got -3"),
    (["run", "--rpc-timeout-s", "nan"], "rpc_timeout_s must be > 0, got nan"),
    (["peer", "--port", "99999"], "port must be 0 (any free port) to 65535, got 99999"),  # not 99999 % 65536
    (["peer", "--total-steps", "0"], "total_steps must be >= 1, got 0"),
    (["run", "--task", "Nope-v0"], "task: unknown task 'Nope-v0': Environment `Nope` doesn't exist."),
    (["run", "--task", "no_such_module:Env-v0"], "task: unknown task 'no_such_module:Env-v0': No module named"),
    (["run", "--task", "no_such.module:Env-v0"], "(the module no_such.module must be importable by the run and every "
                                                 "peer: start peerlearn in the folder that holds no_such/module.py, "
                                                 "or add that folder to PYTHONPATH)"),
    (["run", "--learner", '{"learning_strats": 5}'],
     "learner: unknown setting(s) learning_strats (did you mean learning_starts?) for DQN; known: "),
    (["run", "--algos", "PPO,DQN", "--peers", "2"], "learner: unknown algorithm 'PPO'; known: DQN, QRDQN, SAC"),
    (["run", "--task", "CartPole-v1", "--algos", "DQN,SAC", "--peers", "2"],
     "learner: SAC needs a continuous action space, and CartPole-v1's is discrete: use DQN, QRDQN"),
    (["run", "--task", "Pendulum-v1", "--learner", '{"algo": "QRDQN"}'],
     "learner: QRDQN needs a discrete action space, and Pendulum-v1's is continuous: use SAC, TQC, CrossQ"),
    (["run", "--task", "Blackjack-v1"], "task: Blackjack-v1's observations are a Tuple space, and a peer sends each"),
    (["run", "--roles", "learner,adviser", "--peers", "2"], "roles: peer-1 is an adviser, which needs a pretrained"),
    (["run", "--pretrained", "nope.zip", "--peers", "1"], "pretrained: expected an SB3 model zip for peer-0, got"),
    (["run", "--wrappers", "Nope"], "wrappers: wrapper 'Nope': no wrapper 'Nope' (a class of gymnasium.wrappers"),
    (["run", "--learner", "{oops"], "--learner: expected a table"),
    (["run", "--mode", "sleepy"], "mode must be one of"),
    (["run", "--roles", "learner,boss,learner"], "roles: expected each of learner, "),
    (["run", "--attacks", ",,lie"], "attacks: unknown attack 'lie'"),
    (["run", "--config", "no-such-file.toml"], "config: cannot read no-such-file.toml"),
    (["sweep", "--seed", "5", "--seeds", "1,2", "--list"], "seed: --seed 5 next to --seeds 1,2"),
    (["sweep-ray", "--seed", "5", "--seeds", "0"], "seed: --seed 5 next to --seeds 0"),
])
def test_bad_values_exit_2_with_one_line(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    assert expected in _error(capsys, argv)


def test_bad_toml_files_exit_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = {"unknown.toml": ("stpes = 5\n",
                              "unknown key(s) stpes (did you mean steps?); known: adviser_choice, agent_value_"),
             "type.toml": ('steps = "many"\n', "steps: expected an integer, got 'many'"),
             "syntax.toml": ("steps = \n", "is not valid TOML"),
             "learner.toml": ("[learner]\nlearning_strats = 5\n",
                              "learner: unknown setting(s) learning_strats (did you mean learning_starts?) for DQN")}
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        assert expected in _error(capsys, ["run", "--config", str(tmp_path / name)]), name


def test_bad_environment_values_exit_2_naming_the_variable(monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PEERLEARN_STEPS", "lots")
    assert "PEERLEARN_STEPS: expected an integer, got 'lots'" in _error(capsys, ["run"])
    monkeypatch.delenv("PEERLEARN_STEPS")
    monkeypatch.setenv("PEERLEARN_SEED", "abc")  # a peer's variable must not break other commands' --help
    proc = subprocess.run([sys.executable, "-m", "peerlearn.cli", "report", "--help"], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and "usage: peerlearn report" in proc.stdout, proc.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-m", "peer_service", "--port", "0"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1] == \
        "peerlearn peer: error: PEERLEARN_SEED: expected an integer, got 'abc'", proc.stderr[-2000:]


def test_ports_in_use_exit_2(tmp_path: Path) -> None:
    """A port in use is the whole answer, one line, before anything slow: a peer says it before its
    learner starts (no gRPC C-core log line before it), a run before any peer starts and before it makes
    a run folder (the status service starts after the peers: it was found minutes later)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PEERLEARN_")}
        proc = subprocess.run([sys.executable, "-m", "peer_service", "--port", str(port)], capture_output=True,
                              text=True, timeout=120, cwd=ROOT, env=env)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert proc.stderr.strip().splitlines() == [
            f"peerlearn peer: error: port: expected a free port on 127.0.0.1, got {port} (in use or not allowed)"], \
            proc.stderr[-2000:]
        proc = subprocess.run([sys.executable, "-m", "peerlearn.cli", "run", "--steps", "5", "--status-port",
                               str(port), "--out", str(tmp_path), "--no-progress"],
                              capture_output=True, text=True, timeout=120, cwd=ROOT, env=env)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-2000:]
        assert f"error: status_port: expected a free port (or 0 = any, -1 = off), got {port}" in proc.stderr
        assert list(tmp_path.iterdir()) == []  # no half-made run folder


def test_every_run_field_has_a_flag_a_toml_key_and_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001
    for command in ("run", "orchestrate", "sweep"):
        options = sub[command]._option_string_actions  # noqa: SLF001
        dests = {a.dest for a in options.values()}
        missing = [f.name for f in fields(RunConfig) if f.name not in dests]
        assert not missing, (command, missing)
        no_help = [o for o, a in options.items() if not a.help]
        assert not no_help, (command, no_help)
    options = sub["run"]._option_string_actions  # noqa: SLF001
    assert [f.name for f in fields(RunConfig) if flag_name(f.name) not in options] == []
    # every value survives TOML (keys = field names) and the environment (PEERLEARN_<FIELD>)
    changed = {"task": "room-21", "peers": 2, "roles": ["learner", "expert"], "steps": 7, "seed": 3,
               "use_trust": False, "temperature": 0.5, "learner": {"net_arch": [16], "extra": {"a": 1}},
               "attacks": ["", "mirror"], "keep_checkpoints": 2, "token_files": ["t"], "commands": ["", "x, y"]}
    config = RunConfig(**changed)
    assert RunConfig(**tomllib.loads(to_toml(config.to_dict()))) == config
    for f in fields(RunConfig):
        value = changed.get(f.name, getattr(RunConfig(), f.name))
        text = json.dumps(value) if isinstance(value, (list, dict)) else str(value)
        monkeypatch.setenv(env_name(f.name), text)
    assert RunConfig(**{**RunConfig().to_dict(), **RunConfig.from_env()}) == config


def test_toml_writer_writes_nested_tables_as_tables() -> None:
    data = {"name": 'a "b"\n', "learner": {"net_arch": [16], "extra": {"policy_kwargs": {"x": [1, 2]}, "k y": True}}}
    text = to_toml(data)
    assert "{'" not in text and tomllib.loads(text) == data
    assert tomllib.loads(to_toml({"learner": {"net_arch": [16]}})) == {"learner": {"net_arch": [16]}}


def test_environment_sets_run_fields_and_is_printed(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from peerlearn.cli import _config

    monkeypatch.setenv("PEERLEARN_STEPS", "123")
    monkeypatch.setenv("PEERLEARN_SEED", "7")
    args = build_parser().parse_args(["run", "--seed", "8"])
    config = _config(args)
    assert (config.steps, config.seed) == (123, 8)  # a flag wins over a variable
    err = capsys.readouterr().err
    assert "from the environment: PEERLEARN_STEPS=123" in err and "PEERLEARN_SEED" not in err


def test_parent_attack_and_role_do_not_reach_started_peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """PEERLEARN_ATTACK=garbage and PEERLEARN_ROLE=adversary left in the shell: the forked peers stay the
    honest learners that config.toml records (before, every honest peer of the run lied)."""
    from orchestrator.running.launcher import LocalPeers, PeerSpec
    from orchestrator.running.run import run_group

    for name, value in {"PEERLEARN_ATTACK": "garbage", "PEERLEARN_ROLE": "adversary",
                        "PEERLEARN_LEARNER": '{"learning_strats": 1}', "PEERLEARN_OVERLAP_TRAINING": "0"}.items():
        monkeypatch.setenv(name, value)
    env = LocalPeers([PeerSpec("peer-0", "room-6", 0, 10)], tmp_path)._env()  # noqa: SLF001
    assert "PEERLEARN_ATTACK" not in env and "PEERLEARN_ROLE" not in env and "PEERLEARN_LEARNER" not in env
    assert env["PEERLEARN_OVERLAP_TRAINING"] == "0"  # process tuning passes through (and is printed)
    config = RunConfig(peers=2, steps=120, eval_every=120, out=str(tmp_path), name="honest", progress=False,
                       status_port=-1, checkpoint_every=0)
    run = asyncio.run(run_group(config)).run_dir
    assert tomllib.loads((run / "config.toml").read_text())["attacks"] == []
    summary = json.loads((run / "summary.json").read_text())
    assert summary["invalid_replies"] == {} and summary["errors"] == {}, summary
    for log in (run / "logs").glob("peer-*.log"):
        assert "PEERLEARN_ATTACK" not in log.read_text()


def test_help_is_fast_and_never_imports_torch() -> None:
    probe = ("import sys, time; t = time.perf_counter(); from peerlearn.cli import main\n"
             "for argv in ([], ['run'], ['peer'], ['orchestrate'], ['sweep'], ['conformance'], ['status']):\n"
             "    try: main([*argv, '--help'])\n"
             "    except SystemExit: pass\n"
             "print('TORCH' if 'torch' in sys.modules else 'OK', time.perf_counter() - t, file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT)
    verdict, seconds = proc.stderr.split()[-2:]
    assert verdict == "OK", proc.stderr[-2000:]
    print(f"\n7 --help pages in {float(seconds):.2f} s")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "peerlearn.cli", "--version"], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.startswith("peerlearn "), proc.stderr
    assert time.perf_counter() - started < 2.0  # the interpreter's start included; < 0.5 s on an idle core


def test_sdist_carries_the_proto_files(tmp_path: Path) -> None:
    """What `python -m build --sdist` does (setuptools' PEP 517 hook), without a network or a wheel."""
    code = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with tarfile.open(tmp_path / proc.stdout.strip().splitlines()[-1]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    protos = {str(p.relative_to(ROOT)) for p in (ROOT / "proto").rglob("*.proto")}
    assert protos and protos <= names, sorted(protos - names)
    assert "setup.py" in names and "peerlearn/conformance/checks/__init__.py" in names


def test_only_the_three_packages_are_installed() -> None:
    """benchmarks/ is the checkout's: pyproject.toml's package list, as setuptools applies it (a stale
    peerlearn.egg-info/SOURCES.txt can still add files to an sdist built in a work tree; a wheel never)."""
    from setuptools import find_namespace_packages  # pyproject.toml's find: namespaces = true by default

    find = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    found = find_namespace_packages(str(ROOT), include=find["include"])
    assert {name.split(".")[0] for name in found} == {"peerlearn", "orchestrator", "peer_service"}, found
    assert "peerlearn.conformance.checks" in found and "orchestrator.loop" in found


def test_bench_outside_a_checkout_exits_2_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """An install from a wheel has no benchmarks/: `peerlearn bench` says so instead of a traceback."""
    import peerlearn.cli

    monkeypatch.setattr(peerlearn.cli, "CHECKOUT", tmp_path)  # a "checkout" without benchmarks/
    for name in [m for m in sys.modules if m == "benchmarks" or m.startswith("benchmarks.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "benchmarks", None)  # not importable from the path either
    assert "not installed" in _error(capsys, ["bench", "overhead"])


def test_checkpoints_keep_the_replay_buffer_only_in_the_two_newest(tmp_path: Path) -> None:
    """keep_checkpoints = 3 on a short run: the two newest checkpoints hold replay_buffer.pkl (--resume
    continues from the newest the orchestrator recorded, which may be the one before the peers' newest),
    the third weights only, older ones are gone."""
    from orchestrator.running.run import run_group

    config = RunConfig(peers=2, steps=400, eval_every=400, checkpoint_every=100, keep_checkpoints=3,
                       transport="inproc", out=str(tmp_path), name="ckpt", progress=False, status_port=-1,
                       learner={"learning_starts": 50})
    run = asyncio.run(run_group(config)).run_dir
    for peer in ("peer-0", "peer-1"):
        root = run / "peers" / peer / "checkpoints"
        assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["step-200", "step-300", "step-400"]
        assert (root / "latest").read_text() == "step-400"
        for tag in ("step-300", "step-400"):
            assert (root / tag / "replay_buffer.pkl").exists() and (root / tag / "model.zip").exists()
        assert not (root / "step-200" / "replay_buffer.pkl").exists() and (root / "step-200" / "model.zip").exists()


def test_a_peer_config_travels_as_flags_unchanged() -> None:
    """`peerlearn run` hands each started peer its PeerConfig as flags (peer_argv); the peer reads back
    exactly that config, whatever PEERLEARN_* variables say, and every peer setting has a flag."""
    from peer_service.config import PeerConfig
    from peer_service.main import build_parser as peer_parser
    from peer_service.main import peer_argv, resolve

    config = PeerConfig(peer_id="p-1", task="room-21", seed=1003, total_steps=77, role="learner",
                        checkpoint_dir="ck", learner_overrides={"net_arch": [16], "learning_starts": 5},
                        attack="", collude_board="", overlap_training=True, keep_checkpoints=3,
                        wrappers=["FrameStackObservation:stack_size=4,padding_type=\"zero\"", "NormalizeObservation"],
                        pretrained="models/dqn.zip")
    hostile = {"PEERLEARN_ATTACK": "mirror", "PEERLEARN_ROLE": "adversary", "PEERLEARN_LEARNER": '{"gamma": 0.5}',
               "PEERLEARN_SEED": "9", "PEERLEARN_OVERLAP_TRAINING": "0"}
    got, _, used = resolve(peer_parser().parse_args(peer_argv(config)), hostile)
    assert got == config and used == {}
    got, _, used = resolve(peer_parser().parse_args(peer_argv(config, skip=("overlap_training",))), hostile)
    assert got.overlap_training is False and used == {"PEERLEARN_OVERLAP_TRAINING": "0"}
    options = peer_parser()._option_string_actions  # noqa: SLF001
    assert all(a.help for a in options.values())
    assert [f.name for f in fields(PeerConfig) if f.name != "learner_overrides" and flag_name(f.name) not in options] \
        == [] and "--learner" in options


def test_run_says_which_peer_variables_it_withholds(monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from peerlearn.cli import _report_peer_environment

    monkeypatch.setenv("PEERLEARN_ATTACK", "mirror")
    monkeypatch.setenv("PEERLEARN_SEED", "4")  # a run setting too: the run reads it (and prints that itself)
    monkeypatch.setenv("PEERLEARN_TORCH_THREADS", "2")
    _report_peer_environment()
    err = capsys.readouterr().err
    assert "PEERLEARN_ATTACK is not given to the peers started here" in err
    assert "the peers inherit PEERLEARN_TORCH_THREADS=2" in err and "PEERLEARN_SEED" not in err


def test_a_task_whose_package_is_missing_is_not_called_unknown(capsys: pytest.CaptureFixture[str],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Registered, but its package is not installed (LunarLander without Box2D): say that, not "unknown"."""
    import gymnasium as gym

    def missing(*args: object, **kwargs: object) -> None:
        raise gym.error.DependencyNotInstalled("Box2D is not installed, run `pip install \"gymnasium[box2d]\"`")

    monkeypatch.setattr(gym, "make", missing)
    err = _error(capsys, ["run", "--task", "LunarLander-v3"])
    assert "task 'LunarLander-v3' needs a package that is not installed: Box2D is not installed" in err


def test_a_run_that_loses_every_peer_stops_in_one_line_with_its_results(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Every acting peer ejected (garbage replies) for longer than pause_timeout_s: exit 1, one line
    that says why and where the results so far are, and stopped.json says it too."""
    import json

    code = main(["run", "--peers", "2", "--attacks", "garbage,garbage", "--pause-timeout-s", "1", "--transport",
                 "inproc", "--steps", "300", "--no-progress", "--status-port", "-1", "--out", str(tmp_path),
                 "--name", "lost"])
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("step ")]
    assert code == 1 and len(err) == 1 and "Traceback" not in err[0], err
    assert "stopped at group step" in err[0] and "fewer than 1 usable acting peers for 1 s" in err[0]
    assert not (tmp_path / "lost" / "summary.json").exists()  # not a finished run: sweeps and reports skip it
    record = json.loads((tmp_path / "lost" / "stopped.json").read_text())
    assert record["stopped"].startswith("fewer than 1 usable acting peers") and record["group_steps"] < 300


def test_status_reads_a_run_folders_status_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`peerlearn status RUN_DIR` asks the address the run wrote to RUN_DIR/status_address (before, the
    folder's name went to DNS); a folder without one is a one-line error that says why."""
    from concurrent import futures

    import grpc

    from peerlearn.v1 import orchestrator_pb2, orchestrator_pb2_grpc

    class Fixed(orchestrator_pb2_grpc.OrchestratorServiceServicer):
        def GetStatus(self, request, context):  # type: ignore[no-untyped-def]
            return orchestrator_pb2.GroupStatus(run_name="fixed-run", total_steps=10)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    orchestrator_pb2_grpc.add_OrchestratorServiceServicer_to_server(Fixed(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        run = tmp_path / "a-run"
        run.mkdir()
        (run / "config.toml").write_text("")
        (run / "status_address").write_text(f"127.0.0.1:{port}\n")
        assert main(["status", str(run)]) == 0
        assert "run fixed-run" in capsys.readouterr().out
    finally:
        server.stop(None)
    (run / "status_address").unlink()
    (run / "summary.json").write_text("{}")
    assert "a-run has no status_address: the run has ended" in _error(capsys, ["status", str(run)])
    assert "expected HOST:PORT or a run folder, got 'no-such-run'" in _error(capsys, ["status", "no-such-run"])


def test_a_variable_that_matches_no_setting_is_said_in_one_line(monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A misspelt PEERLEARN_* variable was ignored without a word; now one line on stderr names it with its
    likely spelling. The project's own variables (compose's, the fork-server switch, the tests') and every
    setting of a run or a peer never trigger it."""
    from peerlearn.settings import OWN_VARIABLES

    for name in os.environ:
        if name.startswith("PEERLEARN_"):
            monkeypatch.delenv(name)
    for name in (*OWN_VARIABLES, "PEERLEARN_STEPS", "PEERLEARN_PEER_ID", "PEERLEARN_LEARNER", "PEERLEARN_TOKEN_FILE"):
        monkeypatch.setenv(name, "1")
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    assert capsys.readouterr().err == ""
    typo = "PEERLEARN_" + "STPES"  # spelt apart: the scan of the repository below must not find it
    monkeypatch.setenv(typo, "100")
    with pytest.raises(SystemExit):
        main(["status", "--help"])
    assert capsys.readouterr().err.splitlines() == \
        [f"peerlearn: {typo} (did you mean PEERLEARN_STEPS?) matches no setting and is ignored"]


def test_every_variable_the_project_reads_is_known() -> None:
    """Every PEERLEARN_* name in the repository's code, compose files and manifests is a setting or one
    of settings.OWN_VARIABLES, so that the unknown-variable warning never fires for the project's own."""
    import re

    from peer_service.main import declared_settings
    from peerlearn.settings import unknown_variables

    listed = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no file list to scan")
    suffixes = {".py", ".js", ".cc", ".h", ".sh", ".yml", ".yaml", ".toml", ".cfg", ".ini", ""}
    found: set[str] = set()
    for rel in listed.stdout.splitlines():
        path = ROOT / rel
        if path.suffix in suffixes and path.is_file() and not rel.startswith("results/"):
            found |= set(re.findall(r"PEERLEARN_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace")))
    assert "PEERLEARN_FORK_SERVER" in found and "PEERLEARN_IMAGE" in found  # the scan reads what it should
    settings = [*RunConfig.types(), *declared_settings().types]
    assert unknown_variables(settings, {name: "1" for name in found}) is None
