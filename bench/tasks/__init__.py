"""Task registry: each task is one module whose `TASK` spec says what it is (name, options, what
it reads, how it measures, its leaderboard columns and trace measure).

Adding a task: write `bench/tasks/<name>.py` with a `TASK = TaskSpec(...)` and add it below; its
pictures and captions go in `bench/report/<name>.py` (see bench.report.views).
"""

from __future__ import annotations

from bench import registry
from bench.tasks import (
    knn_influence,
    masking,
    mitigate,
    paircams,
    probe_acquisition,
    probe_processing,
    similarity,
)
from bench.tasks.spec import Column, TaskOption, TaskSpec

TASKS: dict[str, TaskSpec] = registry.build(
    "task",
    [
        knn_influence.TASK,
        paircams.TASK,
        similarity.TASK,
        masking.TASK,
        probe_processing.TASK,
        probe_acquisition.TASK,
        mitigate.TASK,
    ],
)


def get(name: str) -> TaskSpec:
    return registry.lookup("task", TASKS, name)


def run_options() -> dict[str, TaskOption]:
    """Every task option by name, each defined once; two different options under one name are refused."""
    found: dict[str, TaskOption] = {}
    for task in TASKS.values():
        for option in task.options:
            if found.setdefault(option.name, option) is not option:
                raise ValueError(f"tasks define two different options named {option.name!r}; give one of them another name")
    return found


__all__ = ["TASKS", "Column", "TaskOption", "TaskSpec", "get", "run_options"]
