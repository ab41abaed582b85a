"""Progress of a long stage (extraction, downloads, a probe's search), the one way bench shows it.

On a terminal it is a rich bar: items done, rate, time elapsed and left. Anywhere else (a batch
job's log, a pipe, CI) a bar draws nothing until it ends, so the same stage logs a plain line
every `interval` seconds (items done, rate, time left) and a last line with the totals.
`BENCH_PROGRESS_SECONDS` sets the interval of those lines (default 10 s)."""

from __future__ import annotations

import os
import time
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

INTERVAL_VARIABLE = "BENCH_PROGRESS_SECONDS"
DEFAULT_INTERVAL = 10.0


def log_interval() -> float:
    """Seconds between two progress lines in a log (BENCH_PROGRESS_SECONDS, else 10)."""
    text = os.environ.get(INTERVAL_VARIABLE, "")
    try:
        seconds = float(text)
    except ValueError:
        return DEFAULT_INTERVAL
    return seconds if seconds >= 0 else DEFAULT_INTERVAL


def clock(seconds: float) -> str:
    """0:01:05 for 65 seconds: as the terminal bar writes time."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


class Stage:
    """One long stage: `update()` as items finish; a bar on a terminal, timed lines elsewhere.
    `note`, if given, adds words of the stage's own to each line (e.g. the best score so far)."""

    def __init__(self, console: Console | None, description: str, total: int, unit: str = "items",
                 note: Callable[[], str] | None = None, interval: float | None = None, now: Callable[[], float] = time.perf_counter):
        self.console = console or Console(quiet=True)
        self.description, self.total, self.unit, self.note = description, total, unit, note
        self.interval = log_interval() if interval is None else interval
        self.now = now
        self.completed = 0
        self.began = self.last_line = 0.0
        self.bar: Progress | None = None
        self.task = None

    def __enter__(self) -> "Stage":
        self.began = self.last_line = self.now()
        if self.console.is_terminal:
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[rate]:>7.1f} " + self._rate_unit() + "{task.fields[note]}"),
                                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.description, total=self.total, rate=0.0, note=self._note())
        else:
            self._line(f"{self.total:,} {self.unit} to do")
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(kind, error, trace)
        else:
            elapsed = self.now() - self.began
            ending = "finished" if kind is None else "stopped at"
            self._line(f"{ending} {self.completed:,}/{self.total:,} {self.unit} after {clock(elapsed)}, "
                       f"{self._rate(elapsed):.1f} {self._rate_unit()}{self._note()}")

    def update(self, completed: int | None = None, advance: int = 0, description: str | None = None) -> None:
        """Count finished items (`completed` in all, or `advance` more); rename the stage if asked."""
        self.completed = completed if completed is not None else self.completed + advance
        if description is not None:
            self.description = description
        elapsed = self.now() - self.began
        if self.bar is not None:
            fields = {"description": description} if description is not None else {}
            self.bar.update(self.task, completed=self.completed, rate=self._rate(elapsed), note=self._note(), **fields)
        elif self.now() - self.last_line >= self.interval and self.completed < self.total:
            self.last_line = self.now()
            share = self.completed / self.total if self.total else 1.0
            rate = self._rate(elapsed)
            left = f"about {clock((self.total - self.completed) / rate)} left" if rate > 0 else "time left unknown"
            self._line(f"{self.completed:,}/{self.total:,} {self.unit} ({share:.0%}), {rate:.1f} {self._rate_unit()}, "
                       f"{clock(elapsed)} elapsed, {left}{self._note()}")

    def _rate(self, elapsed: float) -> float:
        return self.completed / elapsed if elapsed > 0 else 0.0

    def _rate_unit(self) -> str:
        return {"images": "img/s", "photos": "img/s"}.get(self.unit, f"{self.unit}/s")

    def _note(self) -> str:
        return f", {self.note()}" if self.note is not None else ""

    def _line(self, text: str) -> None:
        self.console.print(f"{self.description}: {text}", markup=False, highlight=False, soft_wrap=True)


class Reporter:
    """The command line's progress channel for tasks (bench.tasks.spec.Progress) on `console`."""

    def __init__(self, console: Console):
        self.console = console

    def stage(self, description: str, total: int, unit: str = "items", note: Callable[[], str] | None = None) -> Stage:
        return Stage(self.console, description, total, unit=unit, note=note)

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)
