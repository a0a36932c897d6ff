"""Ctrl-C and SIGTERM of a run (`peerlearn run` / `orchestrate`; the Python API leaves signals to
its caller): stop at a group step boundary with a checkpoint, or at once when asked twice.

While the group steps, the first signal lets the current group step finish; the run then checkpoints
at that boundary, writes stopped.json and ends with RunInterrupted, whose one line is the command
that continues it. Before the group steps (peers starting, handshake) there is nothing to save, and
the first signal stops the run at once, as does a second signal at any time.

The handlers are the event loop's (`add_signal_handler`), not KeyboardInterrupt: they run between
two callbacks of the loop, never inside gRPC or a half-written result file, and the loop wakes for
them even when the signal reached another thread.
"""

from __future__ import annotations

import asyncio
import pickle
import shlex
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from peerlearn.settings import RunInterrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequested(Exception):
    """Raised at a group step boundary after the first signal: the loop ends there."""


class Interrupt:
    def __init__(self, task: asyncio.Task, addresses: list[str] | None) -> None:
        self.task = task
        self.addresses = addresses  # peers given as addresses: the run is continued by `orchestrate`
        self.count = 0
        self.stepping = False  # the group loop runs: the first signal stops at the next step boundary
        self.run_dir: Path | None = None
        self.say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)

    @property
    def requested(self) -> bool:
        return self.count > 0

    def _on_signal(self) -> None:
        self.count += 1
        if self.count == 1 and self.stepping:
            self.say("peerlearn: stopping after this group step to write a checkpoint "
                     "(Ctrl-C again stops at once, without it)")
            return
        self.task.cancel()

    @contextmanager
    def installed(self) -> Iterator[Interrupt]:
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._on_signal)
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                if handler is not None:  # the CLI's own (SIGTERM re-sent as SIGINT), for after the run
                    signal.signal(sig, handler)

    def stop_if_requested(self, t: int, steps: int) -> None:
        """Called at each group step boundary; the last step ends the run as finished anyway."""
        if self.requested and t < steps:
            raise StopRequested

    def resume_command(self, run_dir: Path) -> str:
        where = shlex.quote(str(run_dir))
        if self.addresses is not None:
            return f"peerlearn orchestrate --peers {shlex.quote(','.join(self.addresses))} --resume {where}"
        return f"peerlearn run --resume {where}"

    def stopped_at_boundary(self, t: int, saved: bool) -> RunInterrupted:
        """The error for a run that stopped at group step `t` after a first signal."""
        assert self.run_dir is not None
        if saved:
            return RunInterrupted(f"interrupted at group step {t}, checkpoint written (results so far in "
                                  f"{self.run_dir}); continue with: {self.resume_command(self.run_dir)}")
        return RunInterrupted(f"interrupted at group step {t}, but not every peer saved a checkpoint there; "
                              + self._continue_from_last())

    def stopped_at_once(self) -> RunInterrupted:
        """The error for a run cancelled by a signal (before the loop, or a second signal)."""
        when = "stopped at once, without a checkpoint" if self.stepping else "interrupted during start-up"
        if self.run_dir is None:
            return RunInterrupted(f"{when}; nothing was run")
        started_here = "; peers stopped" if self.addresses is None else ""  # orchestrate leaves its peers be
        return RunInterrupted(f"{when}{started_here}; " + self._continue_from_last())

    def _continue_from_last(self) -> str:
        assert self.run_dir is not None
        t = last_checkpoint_step(self.run_dir)
        if t is None:
            return f"no checkpoint to resume from yet (results so far in {self.run_dir})"
        return f"continue from group step {t} with: {self.resume_command(self.run_dir)}"


def last_checkpoint_step(run_dir: Path) -> int | None:
    """The group step of the run's last complete checkpoint (what --resume continues from), if any."""
    try:
        return int(pickle.loads((run_dir / "checkpoints" / "orchestrator.pkl").read_bytes())["t"])
    except (OSError, KeyError, ValueError, pickle.UnpicklingError, EOFError):  # none, or not one we wrote
        return None
