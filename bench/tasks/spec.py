"""What a task is, in one object: its name, the options it takes, how it runs, how its cells
become leaderboard columns, and its figures. Each task module defines one `TaskSpec`; the
registry in `bench.tasks` collects them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from bench.plots import Figure
    from bench.tasks.request import RunRequest


@dataclass(frozen=True)
class Column:
    """One leaderboard column: its header and the dotted path of the value in a cell's metrics."""

    header: str
    path: str
    interval: bool = False  # show the cell's 95 % bootstrap interval beside the value
    baseline: str | None = None  # metric path the interval is judged against (None: 0); marked where it lies outside
    above: bool = False  # marked only where the interval lies above the baseline (a probe below chance carries no trace)
    decimals: int | None = None  # None: the task's


@dataclass(frozen=True)
class TaskOption:
    """One `run` option a task takes: `--name` on the command line (underscores as dashes)."""

    name: str
    help: str
    default: Any = None
    parse: Callable[[str], Any] | None = None  # argparse type
    choices: tuple[str, ...] | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class Trace:
    """What the trace ranking reads from a task's cells: (value at `path` − value at `baseline`) × sign,
    larger = the encoder carries the trace more strongly."""

    label: str  # e.g. "pos−neg", printed with the ranking
    path: str
    sign: float = 1.0  # -1 where a more negative value is the stronger trace
    baseline: str | None = None  # a metric path to subtract first (e.g. chance)
    above: bool = False  # a trace only where the interval lies above the baseline (probes)


# figures(plt, folder, task, dataset, condition, cells) -> the figures written into `folder`
FigureMaker = Callable[[Any, Path, "TaskSpec", str, str, list[dict[str, Any]]], list["Figure"]]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    execute: Callable[["RunRequest"], list[Path]]  # extract what is missing, write a cell per encoder
    columns: tuple[Column, ...]  # the first is the primary metric (the leaderboard's order)
    rule: Callable[[list[dict[str, Any]]], str]  # how a board's numbers were aggregated, from its cells' own settings
    options: tuple[TaskOption, ...] = ()
    figures: FigureMaker | None = None
    default_dataset: str = "patches"  # what `run` uses without --dataset: offline data that fits the task
    decimals: int = 2  # how the leaderboard prints the metrics
    trace: Trace | None = None  # how the task enters the trace ranking (`leaderboard --view traces`)

    @property
    def primary(self) -> str:
        return self.columns[0].path
