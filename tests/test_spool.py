"""A full disk delays result rows instead of killing the run (orchestrator/running/spool.py): found by
the soak, where a full run folder made the orchestrator die of ENOSPC in decisions.csv."""

from __future__ import annotations

import errno
import os
import pickle
from pathlib import Path

import pytest

from orchestrator.config import RunConfig
from orchestrator.running import spool
from orchestrator.running.recorder import RunRecorder
from orchestrator.running.spool import SpoolFile

pytestmark = pytest.mark.timeout(30)


class Disk:
    """os.write that fails with ENOSPC while `full`, and writes at most `room` bytes before filling up."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.full = False
        self.room: int | None = None
        real = os.write

        def write(fd: int, data: bytes | bytearray) -> int:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            if self.room is not None:
                if self.room == 0:
                    self.full = True
                    raise OSError(errno.ENOSPC, "No space left on device")
                data = bytes(data[: self.room])
                self.room -= len(data)
            return real(fd, data)

        monkeypatch.setattr(spool.os, "write", write)


def test_rows_written_while_the_disk_is_full_arrive_once_in_order_when_it_is_freed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = Disk(monkeypatch)
    path = tmp_path / "group.csv"
    f = SpoolFile(path, "w", buffer_bytes=16)
    f.write("step,value\n")
    assert f.flush()
    disk.room = 5  # the disk fills in the middle of a row: a short write, then ENOSPC
    for k in range(1, 6):
        f.write(f"{k},{k * k}\n")  # past the buffer size: flushes, which fail, and must not raise
    assert not f.flush() and f.full and f.pending_bytes > 0
    assert path.read_text() == "step,value\n1,1\n2"  # what fitted
    disk.full, disk.room = False, None  # the disk is freed
    f.write("6,36\n")
    assert f.flush() and not f.full and f.pending_bytes == 0
    f.close()
    assert path.read_text() == "step,value\n" + "".join(f"{k},{k * k}\n" for k in range(1, 7))


def test_a_real_enospc_is_held_and_other_errors_still_raise(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    f = SpoolFile(Path("/dev/full"), "a")
    f.write("a row\n")
    assert not f.flush() and f.pending_bytes == 6  # ENOSPC from the kernel: kept, not raised
    f.close()  # says so on stderr, does not raise
    g = SpoolFile(tmp_path / "x.csv", "w")
    os.close(g._fd)  # a closed descriptor (EBADF) is a bug, not a full disk
    g.write("row\n")
    with pytest.raises(OSError):
        g.flush()


def test_the_recorder_skips_a_checkpoint_while_the_disk_is_full_and_writes_the_next(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = Disk(monkeypatch)
    recorder = RunRecorder(tmp_path, RunConfig(), tensorboard=False)
    recorder._files["group"] = SpoolFile(tmp_path / "group.csv", "w")
    recorder._files["group"].write("group_step\n")
    assert recorder.checkpoint({"t": 500})
    target = tmp_path / "checkpoints" / "orchestrator.pkl"
    assert pickle.loads(target.read_bytes())["files"]["group.csv"] == len("group_step\n")
    disk.full = True
    recorder._files["group"].write("1000\n")
    assert not recorder.checkpoint({"t": 1000})  # no exception: the run goes on
    assert pickle.loads(target.read_bytes())["t"] == 500  # the previous checkpoint stays whole
    assert not list(target.parent.glob("*.tmp"))
    disk.full = False
    assert recorder.checkpoint({"t": 1500})
    state = pickle.loads(target.read_bytes())
    assert state["t"] == 1500 and state["files"]["group.csv"] == len("group_step\n1000\n")
    assert (tmp_path / "group.csv").read_text() == "group_step\n1000\n"


def test_tensorboard_events_pause_on_a_full_disk_and_resume_in_a_new_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[bool, list[tuple[str, float]]]] = []
    failing = {"on": False}

    class Fake:
        def __init__(self, first: bool) -> None:
            if failing["on"]:
                raise OSError(errno.ENOSPC, "No space left on device")  # the event file cannot be made
            self.events: list[tuple[str, float]] = []
            made.append((first, self.events))

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            if failing["on"]:  # SummaryWriter re-raises its dead worker thread's error
                raise OSError(errno.ENOSPC, "No space left on device")
            self.events.append((tag, value))

        def close(self) -> None:
            if failing["on"]:
                raise OSError(errno.ENOSPC, "No space left on device")

    clock = {"now": 0.0}
    monkeypatch.setattr(spool.time, "monotonic", lambda: clock["now"])
    w = spool.TolerantWriter(Fake)
    w.add_scalar("a", 1.0, 1)
    failing["on"] = True
    w.add_scalar("a", 2.0, 2)  # no exception: the run goes on
    assert w.paused
    clock["now"] = 10.0
    failing["on"] = False
    w.add_scalar("a", 3.0, 3)  # before RETRY_S: still paused, the event dropped
    clock["now"] = 31.0
    w.add_scalar("a", 4.0, 4)
    w.close()
    assert [(first, events) for first, events in made] == [(True, [("a", 1.0)]), (False, [("a", 4.0)])]
    assert not w.paused  # only the first writer may purge a resume's later events
