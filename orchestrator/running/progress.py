"""A live terminal view of a running group (rich): progress bar, steps/s, returns, who follows whom."""

from __future__ import annotations

import math
import time
from types import TracebackType
from typing import TYPE_CHECKING

from rich.console import Console
from rich.console import Group as RichGroup
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:
    from orchestrator.loop.group import Group


def _fmt(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:.2f}"


class LiveView:
    def __init__(self, total_steps: int, title: str, enabled: bool = True, refresh_s: float = 0.25,
                 start: int = 0) -> None:
        self.enabled = enabled
        self.refresh_s = refresh_s
        self.console = Console(stderr=True)
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[sps]} steps/s"), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=self.console)
        self.task = self.progress.add_task(title, total=total_steps, sps="-", completed=start)
        self.live: Live | None = None
        self._last = 0.0
        self._table = Table()

    def __enter__(self) -> LiveView:
        if self.enabled:
            self.live = Live(RichGroup(self.progress, self._table), console=self.console, refresh_per_second=4,
                             transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.live is not None:
            self.live.__exit__(exc_type, exc, tb)
            self.console.print()

    def update(self, group: Group, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.refresh_s):
            return
        self._last = now
        self.progress.update(self.task, completed=group.t, sps=f"{group.steps_per_second:.0f}")
        self._table = self.table(group)
        if self.live is not None:
            self.live.update(RichGroup(self.progress, self._table))

    @staticmethod
    def table(group: Group) -> Table:
        names = [m.name for m in group.members]
        table = Table(box=None, pad_edge=False)
        for col in ("peer", "role", "steps", "last episode", "last eval", "following"):
            table.add_column(col)
        for name in names:
            table.add_column(f"follows {name}", justify="right")
        for m in group.members:
            total = max(int(m.follow_counts.sum()), 1)
            following = names[m.following] if m.following >= 0 else "-"
            table.add_row(m.name, m.info.implementation, str(m.steps), _fmt(m.last_episode_return),
                          _fmt(m.last_eval_return), following,
                          *(f"{c / total:.2f}" if m.acts else "" for c in m.follow_counts))
        return table
