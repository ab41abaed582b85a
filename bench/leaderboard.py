"""Rich terminal leaderboards rebuilt from stored result cells alone (no model, no store)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Iterable, Iterator

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from bench import results
from bench.encoders.spec import FAMILY_TITLES
from bench.tasks import TASKS, TaskSpec

FAMILY_ORDER = ("cvl", "ssl", "sup")


def metric(cell: dict[str, Any], dotted: str) -> float | None:
    value: Any = cell.get("metrics", {})
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return float(value) if isinstance(value, (int, float)) else None


def format_value(value: float | None, decimals: int = 2) -> str:
    if value is None or math.isnan(value):
        return "—"
    return f"{value + 0.0 if round(value, decimals) else 0.0:.{decimals}f}"  # no "-0.00"


def by_family(task: TaskSpec, cells: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    """Cells grouped by family (CVL, SSL, SUP, others), each group best first by the task's first column."""
    primary = task.columns[0][1]
    families = sorted({cell.get("family", "?") for cell in cells}, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99, f))
    groups = []
    for family in families:
        members = [cell for cell in cells if cell.get("family", "?") == family]
        members.sort(key=lambda cell: (-(metric(cell, primary) or float("-inf")), cell["encoder"]))
        groups.append((family, members))
    return groups


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
    for header, _ in task.columns:
        grid.add_column(header, justify="right")
    for family, members in by_family(task, cells):
        grid.add_section()
        grid.add_row(Text(FAMILY_TITLES.get(family, family), style="italic cyan"), *[""] * len(task.columns))
        for cell in members:
            grid.add_row(cell["encoder"], *(format_value(metric(cell, path), task.decimals) for _, path in task.columns))
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
