"""Rich terminal leaderboards rebuilt from stored result cells alone (no model, no store)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable, Iterator

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from bench import results
from bench.encoders.spec import FAMILY_TITLES
from bench.tasks import TASKS, TaskSpec


def grouped(results_dir: Path, task_names: Iterable[str] | None = None) -> Iterator[tuple[TaskSpec, str, str, list[dict[str, Any]]]]:
    """(task, dataset, condition, cells) for every leaderboard the stored cells allow."""
    for name in task_names or TASKS:
        task = TASKS[name]
        cells = list(results.read_all(results_dir, task.name))
        key = lambda cell: (cell["dataset"], cell["condition"])  # noqa: E731
        for (dataset, condition), group in itertools.groupby(sorted(cells, key=key), key=key):
            yield task, dataset, condition, list(group)


def table(task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> Table:
    """One table per (task, dataset, condition): encoders grouped by family, best first."""
    grid = Table(title=f"{task.name} · {dataset} · {condition}", title_justify="left", caption=task.aggregation, caption_justify="left")
    grid.add_column("encoder", style="bold")
    for column in task.columns:
        grid.add_column(column.header, justify="right")
    for family, members in results.by_family(task.primary, cells):
        grid.add_section()
        grid.add_row(Text(FAMILY_TITLES.get(family, family), style="italic cyan"), *[""] * len(task.columns))
        for cell in members:
            grid.add_row(cell["encoder"], *(results.format_value(results.metric(cell, column.path), task.decimals) for column in task.columns))
    return grid


def render(results_dir: Path, task_names: Iterable[str] | None = None) -> list[Table]:
    """Every leaderboard table that the stored cells allow."""
    return [table(task, dataset, condition, cells) for task, dataset, condition, cells in grouped(results_dir, task_names)]


def show(results_dir: Path, task_names: Iterable[str] | None = None, console: Console | None = None) -> int:
    """Print the leaderboards; return how many tables there were."""
    console = console or Console()
    tables = render(results_dir, task_names)
    if not tables:
        console.print(f"No results under {results_dir}. Run `python -m bench run knn-influence` first.")
    else:
        console.print(Group(*tables))
    return len(tables)
