"""One trace ranking across every task run: encoders ordered by how strongly they carry
processing and acquisition traces, by a normalised Borda count over the stored leaderboards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from bench import bootstrap, results
from bench.tasks.spec import TaskSpec

RULE = (
    "Trace ranking: every stored leaderboard (task × dataset × condition) of a task with a trace measure is one contest: "
    "knn-influence pos−neg, paircams different − same recall, probe-processing accuracy − chance, probe-acquisition mean "
    "per-class accuracy − chance (a probe that always names the largest class scores chance). "
    "In a contest of m encoders, the encoder with the r-th strongest trace scores (m − r) / (m − 1) (ties share the mean rank); "
    "Borda = the mean of its scores over the contests it appears in (1 = the strongest trace everywhere, 0 = the weakest). "
    "Contests with one encoder rank nothing and are left out. Each contest column shows the trace strength and the rank; "
    f"{bootstrap.MARK}: its 95 % bootstrap interval excludes no trace (0, or chance for probes)."
)


@dataclass(frozen=True)
class Contest:
    """One leaderboard's trace strengths, per encoder (larger = stronger trace)."""

    task: TaskSpec
    dataset: str
    condition: str
    strengths: dict[str, float]
    certain: dict[str, bool]  # the strength's interval excludes "no trace"
    ranks: dict[str, float]  # 1 = strongest; ties share the mean rank

    @property
    def title(self) -> str:
        assert self.task.trace is not None
        return f"{self.task.name} · {self.dataset} · {self.condition} ({self.task.trace.label})"


@dataclass(frozen=True)
class Standing:
    encoder: str
    family: str
    borda: float
    contests: int


def strength(task: TaskSpec, cell: dict[str, Any]) -> tuple[float, bool] | None:
    """The cell's trace strength and whether its interval excludes no trace, or None without a value."""
    trace = task.trace
    assert trace is not None
    value = results.metric(cell, trace.path)
    baseline = results.metric(cell, trace.baseline) if trace.baseline else 0.0
    if value is None or baseline is None or np.isnan(value):
        return None
    return trace.sign * (value - baseline), bootstrap.excludes(results.interval(cell, trace.path), baseline)


def mean_ranks(strengths: dict[str, float]) -> dict[str, float]:
    """1-based ranks, strongest first; tied strengths share the mean of their ranks."""
    values = sorted(strengths.values(), reverse=True)
    return {name: float(np.mean([r + 1 for r, v in enumerate(values) if v == value])) for name, value in strengths.items()}


def contests(boards: list[tuple[TaskSpec, str, str, list[dict[str, Any]]]]) -> list[Contest]:
    """The boards of tasks with a trace measure and at least two encoders with a value."""
    found = []
    for task, dataset, condition, cells in boards:
        if task.trace is None:
            continue
        measured = {cell["encoder"]: got for cell in cells if (got := strength(task, cell)) is not None}
        if len(measured) < 2:
            continue
        strengths = {name: value for name, (value, _) in measured.items()}
        certain = {name: sure for name, (_, sure) in measured.items()}
        found.append(Contest(task, dataset, condition, strengths, certain, mean_ranks(strengths)))
    return found


def borda(found: list[Contest], families: dict[str, str]) -> list[Standing]:
    """Encoders by mean normalised Borda score over their contests, strongest trace first."""
    scores: dict[str, list[float]] = {}
    for contest in found:
        size = len(contest.ranks)
        for name, rank in contest.ranks.items():
            scores.setdefault(name, []).append((size - rank) / (size - 1))
    standings = [Standing(name, families.get(name, "?"), float(np.mean(points)), len(points)) for name, points in scores.items()]
    return sorted(standings, key=lambda s: (-s.borda, -s.contests, s.encoder))
