"""One trace ranking across every task run: encoders ordered by how strongly they carry
processing and acquisition traces, by a normalised Borda count over the stored leaderboards,
with the range of ranks each encoder takes over the bootstrap resamples."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from bench import measures, results
from bench.boards import Board
from bench.tasks.spec import TaskSpec

@dataclass(frozen=True)
class Contest:
    """One leaderboard's trace strengths, per encoder (larger = stronger trace)."""

    board: Board
    strengths: dict[str, float]
    certain: dict[str, bool]  # the test of no trace, in the trace's direction, passes the false-discovery control
    ranks: dict[str, float]  # 1 = strongest; ties share the mean rank
    resampled: dict[str, np.ndarray]  # the strength in every bootstrap resample, for encoders whose cell keeps it
    p_values: dict[str, float | None] = dataclasses.field(default_factory=dict)  # the trace's direction; None: untested or the other way

    @property
    def title(self) -> str:
        trace = self.board.task.trace
        assert trace is not None
        return f"{self.board.task.name} · {self.board.title()} · {self.board.condition} ({trace.label})"


@dataclass(frozen=True)
class Standing:
    encoder: str
    family: str
    borda: float
    contests: int
    marked: int  # contests whose strength is marked: a trace told apart from none
    place: int | None = None  # 1 = strongest; None: no marked trace, not ranked
    places: tuple[int, int] | None = None  # the 95 % range of places over the resamples, where known


def strength(task: TaskSpec, cell: results.Cell) -> tuple[float, float | None, np.ndarray | None] | None:
    """The cell's trace strength, the p-value of its one-sided test in the trace's direction (None:
    untested, or tested the other way), and the strength in each resample it keeps; None where the
    measure is undefined (NaN)."""
    trace = task.trace
    assert trace is not None
    value = cell.value(trace.path)
    baseline = cell.value(trace.baseline) if trace.baseline else 0.0
    if np.isnan(value) or np.isnan(baseline):
        return None
    kept = cell.resamples.get(trace.path)
    resampled = trace.sign * (np.asarray(kept, dtype=np.float64) - baseline) if kept else None
    test = cell.tests.get(trace.path)
    direction = measures.GREATER if trace.sign > 0 else measures.LESS
    p = test.p if test is not None and test.alternative == direction else None  # an anti-trace is no trace
    return trace.sign * (value - baseline), p, resampled


def mean_ranks(strengths: dict[str, float]) -> dict[str, float]:
    """1-based ranks, strongest first; tied strengths share the mean of their ranks."""
    ranks = _ranks(np.array([list(strengths.values())], dtype=np.float64))[0]
    return {name: float(rank) for name, rank in zip(strengths, ranks)}


def contests(boards: list[Board], adjust: str = "bh") -> list[Contest]:
    """The boards of tasks with a trace measure and at least two encoders with a value; an entry is
    certain where its test passes `adjust`'s false-discovery control over every contest's entries."""
    found = []
    p_values: list[float | None] = []
    for board in boards:
        task = board.task
        if task.trace is None:
            continue
        measured = {cell.encoder: got for cell in board.cells if (got := strength(task, cell)) is not None}
        if len(measured) < 2:
            continue
        strengths = {name: value for name, (value, _, _) in measured.items()}
        p_values += [p for _, p, _ in measured.values()]
        resampled = {name: samples for name, (_, _, samples) in measured.items() if samples is not None}
        tested = {name: p for name, (_, p, _) in measured.items()}
        found.append(Contest(board, strengths, {}, mean_ranks(strengths), resampled, tested))
    adjusted = iter(measures.adjust(p_values, adjust))
    return [dataclasses.replace(contest, certain={name: (q := next(adjusted)) is not None and q <= measures.ALPHA for name in contest.strengths})
            for contest in found]


def _scores(ranks: np.ndarray, size: int) -> np.ndarray:
    """Normalised Borda scores from 1-based ranks among `size`: (size − r) / (size − 1)."""
    return (size - ranks) / (size - 1)


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks along the last axis, largest first, ties sharing their mean rank."""
    from scipy.stats import rankdata

    return rankdata(-values, method="average", axis=-1)


def resampled_borda(found: list[Contest], encoders: list[str]) -> np.ndarray | None:
    """(R, encoders) Borda scores in every resample, or None when a contest lacks some encoder's
    resamples or their counts differ."""
    lengths = {len(samples) for contest in found for samples in contest.resampled.values()}
    if len(lengths) != 1 or any(set(contest.resampled) != set(contest.strengths) for contest in found):
        return None
    count = lengths.pop()
    totals = np.zeros((count, len(encoders)))
    appearances = np.zeros(len(encoders))
    for contest in found:
        members = [encoders.index(name) for name in contest.strengths]
        strengths = np.stack([contest.resampled[name] for name in contest.strengths], axis=1)  # (R, m)
        totals[:, members] += _scores(_ranks(strengths), len(members))
        appearances[members] += 1
    return totals / np.maximum(appearances, 1)


def borda(found: list[Contest], families: dict[str, str]) -> list[Standing]:
    """Encoders by mean normalised Borda score over their contests, strongest trace first; each
    encoder with a marked trace gets its place and, where the cells keep their resamples, the
    range of places it takes over them."""
    scores: dict[str, list[float]] = {}
    marked: dict[str, int] = {}
    for contest in found:
        for name, rank in contest.ranks.items():
            scores.setdefault(name, []).append(float(_scores(np.array([rank]), len(contest.ranks))[0]))
            marked[name] = marked.get(name, 0) + int(contest.certain[name])
    standings = sorted((Standing(name, families.get(name, "?"), float(np.mean(points)), len(points), marked[name])
                        for name, points in scores.items()), key=lambda s: (-s.borda, -s.contests, s.encoder))
    ranked = [standing.encoder for standing in standings if standing.marked]
    places = _place_ranges(found, ranked)
    return [Standing(s.encoder, s.family, s.borda, s.contests, s.marked,
                     ranked.index(s.encoder) + 1 if s.encoder in ranked else None, places.get(s.encoder)) for s in standings]


def _place_ranges(found: list[Contest], ranked: list[str]) -> dict[str, tuple[int, int]]:
    """Each ranked encoder's 95 % range of places among the ranked, over the resamples."""
    everyone = sorted({name for contest in found for name in contest.strengths})
    resampled = resampled_borda(found, everyone)
    if resampled is None or not ranked:
        return {}
    columns = resampled[:, [everyone.index(name) for name in ranked]]
    places = _ranks(columns)
    low, high = np.percentile(places, [2.5, 97.5], axis=0)
    return {name: (int(np.floor(low[i])), int(np.ceil(high[i]))) for i, name in enumerate(ranked)}


def inseparable(found: list[Contest], standings: list[Standing]) -> list[tuple[str, str]]:
    """Neighbouring ranked encoders whose Borda difference has a 95 % interval holding 0."""
    everyone = sorted({name for contest in found for name in contest.strengths})
    resampled = resampled_borda(found, everyone)
    ranked = [s.encoder for s in standings if s.place is not None]
    if resampled is None:
        return []
    pairs = []
    for first, second in zip(ranked, ranked[1:]):
        difference = resampled[:, everyone.index(first)] - resampled[:, everyone.index(second)]
        low, high = np.percentile(difference, [2.5, 97.5])
        if low <= 0.0 <= high:
            pairs.append((first, second))
    return pairs
