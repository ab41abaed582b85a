"""Task registry: each task is one module with `execute(options, console)` and its leaderboard columns."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from rich.console import Console

from bench import registry
from bench.tasks import knn_influence, paircams
from bench.tasks.options import RunOptions


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str
    execute: Callable[[RunOptions, Console], list[Path]]
    columns: tuple[tuple[str, str], ...]  # (header, dotted path into the cell's "metrics")
    aggregation: str  # printed under the leaderboard
    default_dataset: str = "demo"  # what `run` uses without --dataset: offline data that fits the task


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
        TaskSpec(
            name=paircams.NAME,
            description="PairCams near-duplicate retrieval: recall@1 with same- vs different-camera distractors (paper §8)",
            execute=paircams.execute,
            columns=(
                ("same", "recall_at_1.same"),
                ("different", "recall_at_1.different"),
                ("same−diff", "gap_same_minus_different"),
                ("same dslr", "recall_at_1.same_dslr_compact"),
                ("same phone", "recall_at_1.same_phone"),
                ("diff dslr", "recall_at_1.different_dslr_compact"),
                ("diff phone", "recall_at_1.different_phone"),
                ("chance", "chance"),
            ),
            aggregation=(
                "recall_at_1 (%): a query's top-1 must be its subject's image from the other camera class. same: "
                "distractors are the query's own camera class; different: the target's class. same / different "
                "average the two query directions (dslr = DSLR/compact queries, phone = phone queries). A distractor "
                "tied with the target counts as a miss."
            ),
            default_dataset="paircams-sim",
        ),
    ],
)


def get(name: str) -> TaskSpec:
    return registry.lookup("task", TASKS, name)
