"""What the soak reads from the system: a process's RSS and open file descriptors (/proc), its
descendants, and the run's health.csv and group.csv as they grow.

The CSVs are read whole and new rows are told apart by their key, not by a file offset: `--resume`
cuts a result file back to its size at the checkpoint and appends, so an offset would skip or repeat
rows (docs/robustness.md)."""

from __future__ import annotations

import csv
import os
from pathlib import Path


def usage(pid: int) -> tuple[int, int] | None:
    """(RSS in kB, open file descriptors) of a live process, None if it is gone."""
    try:
        rss = 0
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def children(pid: int) -> list[int]:
    """Every descendant of `pid` (a peer started by a shell command runs under that shell)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running or stopped, not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains `text` (the soak's folder: every process it started names it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline and alive(int(entry)):
                found.append(int(entry))
    return found


class CsvTail:
    """New rows of a CSV that may be cut back and rewritten; `key` names a row."""

    def __init__(self, path: Path, key: tuple[str, ...]) -> None:
        self.path = path
        self.key = key
        self.seen: set[tuple[str, ...]] = set()

    def new_rows(self) -> list[dict[str, str]]:
        try:
            text = self.path.read_text()
        except (FileNotFoundError, OSError):
            return []
        lines = text.splitlines()
        if not text.endswith("\n") and lines:
            lines = lines[:-1]  # a row being written
        rows = []
        for row in csv.DictReader(lines):
            k = tuple(row.get(name, "") for name in self.key)
            if k not in self.seen:
                self.seen.add(k)
                rows.append(row)
        return rows
