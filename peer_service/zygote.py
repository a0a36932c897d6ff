"""A fork server for local peer processes: import torch and the learners once, then fork each peer.

Every peer process spends most of its start importing torch, stable-baselines3, gymnasium and MuJoCo
(docs/performance.md, "Start-up and memory", has the figures); `peerlearn run`
starting 4-16 peers on 2 cores pays that 4-16 times. The launcher (orchestrator/running/launcher.py) starts
this process once; it imports those modules and then forks one child per request. The children share
the imported pages copy on write and only build their own learner and server. Python's
multiprocessing has a forkserver too, but its children are not processes the launcher can treat as
peers (their own session, log file, environment, exit codes reported by PID), so this is the small
part of it that is needed.

Protocol on stdin/stdout, one JSON object per line:
- request  `{"argv": [...peer flags...], "log": PATH, "env": {...}}`  ->  reply `{"pid": PID}`;
- whenever a child exits: `{"exit": PID, "code": CODE}` (CODE < 0: killed by signal -CODE).
It exits when stdin closes (the launcher stopped or died); peers started with --exit-with-parent
then stop too, as they would if the launcher itself were their parent.

Nothing here imports grpc: gRPC must not be initialised in a process that forks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback


def _preload() -> None:
    import torch

    torch.set_num_threads(1)  # no worker threads exist yet; every child runs one torch thread
    import gymnasium  # noqa: F401
    import stable_baselines3  # noqa: F401

    import peer_service.envs  # noqa: F401  (registers the Room envs)
    import peer_service.learner  # noqa: F401

    _preload_optional()


def _preload_optional() -> None:
    """Import MuJoCo if it is there. Any failure is fine: without it gymnasium raises its own
    DependencyNotInstalled (not an ImportError), and a fork server that died of that made every run
    of the plain install wait for it. A MuJoCo task then imports it in the child, as a plain process
    would, and fails there with gymnasium's message."""
    try:
        import gymnasium.envs.mujoco  # noqa: F401
        import mujoco  # noqa: F401
    except Exception as err:  # noqa: BLE001 - optional: whatever stops it, the Room default needs none of it
        print(f"fork server: MuJoCo not preloaded ({type(err).__name__}: {err})", file=sys.stderr, flush=True)


def _send(message: dict) -> None:
    # os.write, not sys.stdout: also called from the SIGCHLD handler, where buffered IO is not reentrant.
    os.write(1, (json.dumps(message) + "\n").encode())


def _reap(signum: int, frame: object) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _send({"exit": pid, "code": os.waitstatus_to_exitcode(status)})


def _child(request: dict) -> None:
    """In the forked child: become a peer process of its own, as if started by exec."""
    code = 1
    try:
        os.setsid()  # its own session and process group, as the launcher's Popen(start_new_session=True)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.environ.clear()
        os.environ.update(request["env"])
        from peer_service.main import build_parser, main

        code = main(build_parser().parse_args(request["argv"]))
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 1
    except BaseException:  # noqa: BLE001 - the child must never return into the server loop
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> int:
    _preload()
    signal.signal(signal.SIGCHLD, _reap)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides when peers stop
    _send({"ready": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        _send({"pid": pid})
    return 0


if __name__ == "__main__":
    sys.exit(serve())
