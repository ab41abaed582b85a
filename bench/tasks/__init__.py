"""Task registry: each task is one module with `execute(options, console)` and its leaderboard columns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console

from bench import registry
from bench.tasks import knn_influence
from bench.tasks.options import RunOptions


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    execute: Callable[[RunOptions, Console], list[Path]]
    columns: tuple[tuple[str, str], ...]  # (header, dotted path into the cell's "metrics")
    aggregation: str  # printed under the leaderboard


TASKS: dict[str, TaskSpec] = registry.build(
    "task",
    [
        TaskSpec(
            name=knn_influence.NAME,
            description="kNN accuracy when the database is processed like / unlike the query (paper §7)",
            execute=knn_influence.execute,
            columns=(
                ("all-same", "knn_acc1.all_same"),
                ("all-diff", "knn_acc1.all_diff"),
                ("pos-same", "knn_acc1.pos_same"),
                ("neg-same", "knn_acc1.neg_same"),
                ("uniform", "knn_acc1.uniform"),
                ("pos−neg", "gap_pos_minus_neg"),
                ("chance", "chance"),
            ),
            aggregation=(
                "knn_acc1 (%): unweighted k-NN vote, database = train, queries = val. all-same: mean over the K "
                "query processings t; all-diff / pos-same / neg-same: mean over the K(K-1) ordered pairs (t, o≠t); "
                "uniform: mean over K query processings × seeds, database images each under a random class. "
                "pos−neg = pos-same − neg-same."
            ),
        ),
    ],
)


def get(name: str) -> TaskSpec:
    return registry.lookup("task", TASKS, name)
