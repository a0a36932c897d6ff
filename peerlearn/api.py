"""The Python API: run a group from Python and get its results back, or serve your own model as a peer.

    from peerlearn.api import RunConfig, run, serve

    summary = run(RunConfig(task="room-6", peers=2, steps=2000, transport="inproc"))
    print(summary.final_eval, summary.run_dir)

    server = serve(model, env, port=50051)      # an SB3 model joins a group driven from anywhere
    ...                                          # peerlearn orchestrate --peers 127.0.0.1:50051,...
    server.stop()

`run` and `arun` take a RunConfig and/or any of its settings as keywords (the same names as the
TOML keys and CLI flags); `arun` is the coroutine, for code that already runs an event loop.
`serve` puts a loaded stable-baselines3 / sb3-contrib model and its env behind the peer protocol: an
off-policy model learns on as a group member (role "learner"); any model, PPO and A2C included, can
advise without learning (role "adviser").

Settings the run or a peer cannot work with raise `UserError` (a ValueError) before anything
starts; a run that loses every acting peer for longer than pause_timeout_s writes its results so
far and raises `RunStopped`.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from orchestrator.config import RunConfig
from orchestrator.running.run import RunSummary
from peerlearn.settings import RunStopped, UserError

__all__ = ["PeerServer", "RunConfig", "RunStopped", "RunSummary", "UserError", "arun", "run", "serve"]


def _config(config: RunConfig | None, settings: dict[str, Any]) -> RunConfig:
    base = config.to_dict() if config is not None else {}
    return RunConfig.from_dict({**base, **settings}).validate()


async def arun(config: RunConfig | None = None, /, *, addresses: list[str] | None = None,
               **settings: Any) -> RunSummary:
    """Run a group to the end and return its summary: peers started here (and stopped at the end), or,
    with `addresses`, peers already serving there (`serve`, `peerlearn peer`, other languages)."""
    from orchestrator.running.run import run_group

    if addresses is not None:  # the group is its addresses (the run records what the peers say they are)
        settings.setdefault("peers", len(addresses))
    return await run_group(_config(config, settings), addresses)


def run(config: RunConfig | None = None, /, *, addresses: list[str] | None = None, **settings: Any) -> RunSummary:
    """`arun` for code without an event loop (scripts, notebooks without a running loop)."""
    return asyncio.run(arun(config, addresses=addresses, **settings))


class PeerServer:
    """A peer served from this process, on a background thread with its own event loop."""

    def __init__(self, peer: Any, host: str, port: int) -> None:
        from peer_service.server import serve as serve_peer

        self.peer = peer
        self.host = host
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._error: BaseException | None = None
        port_file = Path(tempfile.mkdtemp(prefix="peerlearn-")) / "port"

        def main() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve_peer(peer, host, port, port_file=str(port_file), stop=self._stop))
            except BaseException as err:  # reported to the caller of serve() or stop()
                self._error = err

        self._thread = threading.Thread(target=main, name=f"peerlearn-{peer.config.peer_id}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not port_file.exists():
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"peer {peer.config.peer_id} did not start: {self._error}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"peer {peer.config.peer_id} did not start within 30 s")
            time.sleep(0.01)
        self.port = int(port_file.read_text())

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        """Stop serving (gracefully: calls in flight finish) and wait for the server thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(timeout=30)
        if self._error is not None:
            raise RuntimeError(f"peer {self.peer.config.peer_id} failed: {self._error}") from self._error

    def __enter__(self) -> PeerServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(model: Any, env: Any, *, port: int = 0, host: str = "127.0.0.1", peer_id: str = "peer-0",
          role: str = "learner", total_steps: int = 100_000, seed: int = 0,
          checkpoint_dir: str | None = None) -> PeerServer:
    """Serve a loaded SB3 model and its env (a Gymnasium env object) as a peer; returns once it listens.

    role "learner": an off-policy model (DQN, QR-DQN, SAC, TQC, CrossQ, TD3, DDPG) keeps learning from
    what it executes, with an empty replay buffer and its own warm-up; `total_steps` sets its schedules.
    role "adviser": any model suggests its policy's actions and never acts or learns. Port 0 picks a free
    port (`server.port`). Plaintext on loopback only; for TLS run `peerlearn peer`."""
    from peer_service.config import PeerConfig
    from peer_service.peer import Peer

    config = PeerConfig(peer_id=peer_id, task=env.spec.id if env.spec is not None else "", seed=seed,
                        total_steps=total_steps, role=role, checkpoint_dir=checkpoint_dir)
    return PeerServer(Peer(config, model=model, env=env), host, port)
