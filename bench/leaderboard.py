"""Rich terminal leaderboards rebuilt from stored result cells alone (no model, no store)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench import results
from bench.encoders.spec import FAMILY_TITLES
from bench.tasks import TASKS, TaskSpec

Board = tuple[TaskSpec, str, str, list[dict[str, Any]]]  # (task, dataset key, condition, cells)


def collect(results_dir: Path, task_names: Iterable[str] | None = None) -> tuple[list[Board], list[results.Damaged]]:
    """Every leaderboard the stored cells allow, and the files that could not be read as cells."""
    boards: list[Board] = []
    damaged: list[results.Damaged] = []
    for name in task_names or TASKS:
        task = TASKS[name]
        cells, bad = results.read_cells(results_dir, task.name)
        damaged += bad
        key = lambda cell: (cell["dataset"], cell["condition"])  # noqa: E731
        for (dataset, condition), group in itertools.groupby(sorted(cells, key=key), key=key):
            boards.append((task, dataset, condition, list(group)))
    return boards, damaged


def dataset_title(dataset: str, cells: list[dict[str, Any]]) -> str:
    """The dataset as a reader needs it named: with its folder, so two folders are never confused."""
    identity = cells[0].get("dataset_identity") if cells else None
    if not isinstance(identity, dict) or not identity.get("root"):
        return dataset
    name = f"{identity.get('name')}@{identity['attribute']}" if identity.get("attribute") else str(identity.get("name"))
    return f"{name} ({identity['root']})"


def table(task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> Table:
    """One table per (task, dataset, condition): encoders grouped by family, best first."""
    title = f"{task.name} · {dataset_title(dataset, cells)} · {condition}"
    grid = Table(title=title, title_justify="left", caption=task.aggregation, caption_justify="left")
    grid.add_column("encoder", style="bold")
    for column in task.columns:
        grid.add_column(column.header, justify="right")
    for family, members in results.by_family(task.primary, cells):
        grid.add_section()
        grid.add_row(Text(FAMILY_TITLES.get(family, family), style="italic cyan"), *[""] * len(task.columns))
        for cell in members:
            grid.add_row(cell["encoder"], *(results.format_value(results.metric(cell, column.path), task.decimals) for column in task.columns))
    return grid


def show(results_dir: Path, task_names: Iterable[str] | None = None, console: Console | None = None,
         errors: Console | None = None) -> int:
    """Print the leaderboards (and a line per damaged result file); return how many tables there were."""
    console = console or Console()
    boards, damaged = collect(results_dir, task_names)
    for bad in damaged:
        (errors or console).print(f"[yellow]warning:[/yellow] {escape(bad.line())}")
    if not boards:
        which = f" for {', '.join(task_names)}" if task_names else ""
        console.print(f"No results{which} under {results_dir}. Run a task first, e.g. `python -m bench run knn-influence`.")
    else:
        console.print(Group(*(table(*board) for board in boards)))
    return len(boards)
