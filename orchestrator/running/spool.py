"""Result files that ride out a full disk.

A run's CSVs used to be plain text files: on a full disk (ENOSPC) their next flush raised, and the
orchestrator died with a traceback, taking every peer of `peerlearn run` with it (found by the soak,
docs/robustness.md "An hour of faults"). A SpoolFile never raises for a full disk: the bytes it cannot
write stay in memory, in order, and go out with the next flush that succeeds. Rows are delayed, never
lost or doubled, and the run goes on; the recorder writes a checkpoint only when every file is whole on
disk (`flush()` says whether it is), so `--resume` still finds a consistent set.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class SpoolFile:
    """Append-only text file (the subset the recorder and csv.writer use: write, flush, close, name)."""

    def __init__(self, path: Path, mode: str, buffer_bytes: int = 8192) -> None:
        if mode not in ("w", "a"):
            raise ValueError(f"mode must be 'w' or 'a', got {mode!r}")
        flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if mode == "w" else os.O_APPEND)
        self.name = str(path)
        self._fd = os.open(path, flags, 0o644)
        self._pending = bytearray()
        self._buffer_bytes = buffer_bytes  # as Python's own buffered files: one write per 8 KiB of rows
        self.full = False

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)

    def write(self, text: str) -> int:
        self._pending += text.encode()
        if len(self._pending) >= self._buffer_bytes:
            self.flush()
        return len(text)

    def flush(self) -> bool:
        """Write what is pending; False if the disk is full (it stays pending), True when all is written."""
        while self._pending:
            try:
                written = os.write(self._fd, self._pending)
            except OSError as err:
                if err.errno not in DISK_FULL:
                    raise
                if not self.full:  # once per episode of a full disk, not once per row
                    print(f"peerlearn: disk full: {len(self._pending)} bytes of {self.name} held in memory until "
                          "there is space again", file=sys.stderr, flush=True)
                self.full = True
                return False
            del self._pending[:written]  # a short write (the disk filled mid-row): the rest follows later
        self.full = False
        return True

    def close(self) -> None:
        try:
            if not self.flush():
                print(f"peerlearn: disk full at the end: {len(self._pending)} bytes of {self.name} were not written",
                      file=sys.stderr, flush=True)
        finally:
            os.close(self._fd)


class TolerantWriter:
    """A TensorBoard SummaryWriter that a full disk cannot kill. The SummaryWriter's own worker thread
    dies on ENOSPC and every later call re-raises its error, which took the orchestrator down with it.
    Here a failure drops the writer and its events until a new one (a new event file in the same folder,
    which TensorBoard reads with the others) can be made, tried at most every RETRY_S; the CSVs keep
    every row meanwhile. `make(first)` builds the writer; only the first may purge (a resume's events
    after its checkpoint), a later one must not purge what this run wrote."""

    RETRY_S = 30.0

    def __init__(self, make: Callable[[bool], Any]) -> None:
        self._make = make
        self._writer: Any = None
        self._made = False
        self._next_try = 0.0
        self.paused = False

    def add_scalar(self, *args: Any, **kwargs: Any) -> None:
        writer = self._current()
        if writer is None:
            return
        try:
            writer.add_scalar(*args, **kwargs)
        except OSError as err:
            self._drop(err)

    def _current(self) -> Any:
        if self._writer is None and time.monotonic() >= self._next_try:
            try:
                self._writer = self._make(not self._made)
                self._made = True
                self.paused = False
            except OSError as err:
                self._drop(err)
        return self._writer

    def _drop(self, err: OSError) -> None:
        old, self._writer = self._writer, None
        self._next_try = time.monotonic() + self.RETRY_S
        if not self.paused:
            print(f"peerlearn: TensorBoard events paused ({err}); the CSVs keep every row", file=sys.stderr, flush=True)
        self.paused = True
        if old is not None:
            with contextlib.suppress(OSError):
                old.close()

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
