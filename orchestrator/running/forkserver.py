"""The launcher's side of the peer fork server (peer_service/zygote.py): start it once, ask it for
peer processes, and treat those like `subprocess.Popen` objects (pid, poll, wait, signals).

A forked peer is not our child, so its exit code reaches us through the fork server, which reaps
it and reports `{"exit": PID, "code": CODE}`; a reader thread collects those.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


class ForkedProcess:
    """A peer process forked by the fork server, with the parts of Popen's interface the launcher uses."""

    def __init__(self, pid: int, server: ForkServer) -> None:
        self.pid = pid
        self._server = server
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        end = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if end is not None and time.monotonic() > end:
                raise subprocess.TimeoutExpired(f"peer pid {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class ForkServer:
    def __init__(self, env: dict[str, str], log: Path, ready_timeout_s: float = 120.0) -> None:
        self._log = log.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "peer_service.zygote"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._log, env=env, start_new_session=True)
        self._exits: dict[int, int] = {}
        self._pids: queue.Queue[int] = queue.Queue()
        self._lock = threading.Lock()  # one request at a time: replies come in request order
        self._ready = threading.Event()
        self._gone = threading.Event()  # its stdout closed: it died (or exited), it forks nothing more
        self._reader = threading.Thread(target=self._read, name="forkserver-reader", daemon=True)
        self._reader.start()
        self.ready_timeout_s = ready_timeout_s
        self._ready_by = time.monotonic() + ready_timeout_s

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        try:
            for line in self.proc.stdout:
                message = _message(line)
                if "ready" in message:
                    self._ready.set()
                elif "pid" in message:
                    self._pids.put(int(message["pid"]))
                elif "exit" in message:
                    self._exits[int(message["exit"])] = int(message["code"])
        finally:
            # Wake whoever waits for "ready" or a PID: the server is gone, and waiting out
            # ready_timeout_s for a dead process delayed every run of the plain install by 2 minutes.
            self._gone.set()
            self._ready.set()
            self._pids.put(_GONE)

    def alive(self) -> bool:
        return not self._gone.is_set() and self.proc.poll() is None

    async def wait_ready(self) -> None:
        """Wait until it has imported what it preloads (or died), without blocking the event loop.
        spawn's own wait blocks it: a Ctrl-C during those seconds (up to ready_timeout_s) took effect
        only when the wait ended; awaited first, it stops the run at once."""
        while not self._ready.is_set() and time.monotonic() < self._ready_by:
            await asyncio.sleep(0.05)

    def spawn(self, argv: list[str], log: Path, env: dict[str, str]) -> ForkedProcess:
        """Fork a peer running `peerlearn peer ARGV`, its output appended to `log`."""
        with self._lock:
            if not self._ready.wait(max(self._ready_by - time.monotonic(), 0.0)) or not self.alive():
                raise RuntimeError(f"the peer fork server did not start (exit code {self._exit_code()})")
            assert self.proc.stdin is not None
            self.proc.stdin.write((json.dumps({"argv": argv, "log": str(log), "env": env}) + "\n").encode())
            self.proc.stdin.flush()
            pid = self._pids.get(timeout=30)
            if pid == _GONE:
                raise RuntimeError(f"the peer fork server exited (exit code {self._exit_code()})")
            return ForkedProcess(pid, self)

    def _exit_code(self) -> int | None:
        """Its exit code, given a moment to arrive: its stdout closes just before it exits."""
        try:
            return self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return None

    def exit_code(self, pid: int) -> int | None:
        code = self._exits.get(pid)
        if code is None and not self.alive() and not _exists(pid):
            return -signal.SIGKILL  # the server is gone and cannot report it: the process is gone too
        return code

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop forking: the server exits when its stdin closes."""
        if not self._ready.is_set():  # still importing: it has forked nothing and reads stdin only then
            self.proc.kill()
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


_GONE = -1  # put on the PID queue when the server's stdout closes


def _message(line: bytes) -> dict:
    """One protocol line; anything else (a library printing to stdout while the server imports) is
    skipped, not allowed to kill the reader thread, which would leave spawn waiting for nothing."""
    try:
        message = json.loads(line)
    except ValueError:
        return {}
    return message if isinstance(message, dict) else {}


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
