"""Stored cells grouped the way they are read: one board per (task, dataset, condition)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from bench import results
from bench.tasks import TASKS, TaskSpec


@dataclass(frozen=True)
class Board:
    """The cells of one task, dataset and condition: one leaderboard."""

    task: TaskSpec
    dataset: str  # the dataset's key
    condition: str
    cells: tuple[results.Cell, ...]

    def title(self) -> str:
        """The dataset as a reader needs it named: with its folder or source, so two are never confused."""
        identity = self.cells[0].dataset_identity if self.cells else {}
        name = f"{identity.get('name')}@{identity['attribute']}" if identity.get("attribute") else str(identity.get("name", self.dataset))
        where = identity.get("root") or (identity.get("origin") or {}).get("source")
        return f"{name} ({where})" if where else self.dataset

    def ordered(self) -> list[results.Cell]:
        """The cells in leaderboard order: by family, best first by the task's primary metric."""
        return results.ordered(self.task.primary, list(self.cells))


def collect(results_dir: Path, task_names: Iterable[str] | None = None) -> tuple[list[Board], list[results.Damaged]]:
    """Every board the stored cells allow, and the files that could not be read as cells."""
    boards: list[Board] = []
    damaged: list[results.Damaged] = []
    for name in task_names or TASKS:
        task = TASKS[name]
        cells, bad = results.read_cells(results_dir, task.name)
        damaged += bad
        damaged += [results.Damaged(cell.key.path(results_dir), f"measured by version {cell.task_version} of {task.name}, whose cells "
                                    f"now hold other numbers (version {task.version})") for cell in cells if cell.task_version != task.version]
        cells = [cell for cell in cells if cell.task_version == task.version]
        key = lambda cell: (cell.dataset, cell.condition)  # noqa: E731
        for (dataset, condition), group in itertools.groupby(sorted(cells, key=key), key=key):
            boards.append(Board(task, dataset, condition, tuple(group)))
    return boards, damaged
