"""What the pictures of every task are made of: the View record (the rule printed under a table,
the figures, the words of a gallery) and the captions several views share. Every caption is built
from the cells' own settings, so it says what ran."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench import bootstrap
from bench.boards import Board
from bench.picks import Entry, Strip
from bench.report.plots import Figure
from bench.results import Cell
from bench.tasks import TASKS, TaskSpec

# figures(pyplot, folder, board) -> the figures written into `folder`
Figures = Callable[[Any, Path, Board], list[Figure]]


@dataclass(frozen=True)
class GalleryWords:
    """The captions of a task's gallery: how to read it, what each database holds, how each query fared."""

    legend: Callable[[list[Cell]], str]
    title: Callable[[Strip, Entry, Cell], str]  # what the strip's database holds
    outcome: Callable[[Strip], str]  # e.g. "miss: the target ranks 3rd"


@dataclass(frozen=True)
class TaskView:
    """How a task's cells are shown; a task names its own in `TaskSpec.view`."""

    rule: Callable[[list[Cell]], str]  # how a board's numbers were made, printed under its table
    figures: Figures | None = None
    gallery: GalleryWords | None = None


def interval_rule(unit: str, cells: list[Cell], versus: str = "0", within: str = "", above: bool = False) -> str:
    """The sentence under a table whose columns carry intervals and tests: what the interval
    resamples (the cells' own unit and resample count) and what the test compares against
    (`versus`, in the trace's direction; `above`: a probe below it carries no trace). `within`:
    what resampling is stratified by."""
    recorded = [cell.provenance["bootstrap"] for cell in cells if isinstance(cell.provenance.get("bootstrap"), dict)]
    counts = sorted({int(settings.get("resamples", 0)) for settings in recorded})
    units = sorted({str(settings.get("unit")) for settings in recorded if settings.get("unit")}) or [unit]
    permutations = sorted({int(settings.get("permutations", 0)) for settings in recorded})
    if counts == [0]:
        interval = "No intervals: the cells were computed with --bootstrap 0."
    else:
        how = f"{' or '.join(units)}s resampled with replacement" + (f" within each {within}" if within else "")
        how += f", {' or '.join(map(str, counts))} resamples" if counts else ""
        interval = f"[low, high]: 95 % percentile bootstrap interval ({how}): how much the value moves with the draw of images like these."
    side = f"above {versus}" if above else f"away from {versus} in the trace's direction"
    test = (f"Tests: one-sided exact permutation tests that the encoder carries no trace (the value lies {side} no more than "
            f"chance allows), at most {' or '.join(map(str, permutations))} permutations." if permutations and permutations != [0]
            else "No tests: the cells were computed with --permutations 0.")
    return f"{interval} {test}"


def ordinal(rank: int) -> str:
    """1 -> 1st, 2 -> 2nd, 11 -> 11th, 23 -> 23rd."""
    suffix = "th" if 10 <= rank % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(rank % 10, "th")
    return f"{rank}{suffix}"


def traced_tasks() -> list[TaskSpec]:
    """The tasks that enter the trace ranking, in the registry's order."""
    return [task for task in TASKS.values() if task.trace is not None]


def trace_rule() -> str:
    """How the trace ranking is made, naming each task's trace measure as the task declares it."""
    measured = ", ".join(f"{task.name} {task.trace.words or task.trace.label}" for task in traced_tasks() if task.trace is not None)
    return f"Trace ranking: every stored leaderboard (task × dataset × condition) of a task with a trace measure is one contest: {measured}. {_TRACE_RULE}"


_TRACE_RULE = (
    "In a contest of m encoders, the encoder with the r-th strongest trace scores (m − r) / (m − 1) (ties share the mean rank); "
    "Borda = the mean of its scores over the contests it appears in (1 = the strongest trace everywhere, 0 = the weakest). "
    "Contests with one encoder rank nothing and are left out. Each contest column shows the trace strength and the rank; "
    f"{bootstrap.MARK}: its one-sided permutation test of no trace (0; for probes, chance) in the trace's direction passes the "
    "false-discovery control named below. "
    "ranks: the 95 % range of the encoder's place over the bootstrap resamples (each resample redraws the test units of every "
    "contest, the same units for every encoder). An encoder with no marked trace in any contest is not ranked (—): its order "
    "among the others is noise."
)

