"""Result files that ride out a full disk.

A run's CSVs used to be plain text files: on a full disk (ENOSPC) their next flush raised, and the
orchestrator died with a traceback, taking every peer of `peerlearn run` with it (found by the soak,
docs/robustness.md "An hour of faults"). A SpoolFile never raises for a full disk: the bytes it cannot
write stay in memory, in order, and go out with the next flush that succeeds. Rows are delayed, never
lost or doubled, and the run goes on; the recorder writes a checkpoint only when every file is whole on
disk (`flush()` says whether it is), so `--resume` still finds a consistent set.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

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
