"""The trace ranking: a Borda count over stored leaderboards, by hand on known cells, and the
leaderboard's interval column and marks (from the cells' tests), both from result files alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import boards as stored, measures, ranking, results
from bench.report import leaderboard
from tests.conftest import run_bench

FAMILIES = {"toy/a": "cvl", "toy/b": "ssl", "toy/c": "sup"}


def write(results_dir: Path, task: str, dataset: str, condition: str, encoder: str, metrics: dict[str, float],
          intervals: dict[str, list[float]] | None = None, resamples: dict[str, list[float]] | None = None,
          p_values: dict[str, float] | None = None) -> None:
    """A cell; each of `p_values` becomes a one-sided test of its metric in the trace's usual direction (greater)."""
    key = results.CellKey(task, dataset, encoder, condition)
    tests = {name: measures.Test(p, measures.GREATER, 0.0, "exact permutation", 999) for name, p in (p_values or {}).items()}
    results.write(results.Cell(key, FAMILIES[encoder], metrics, intervals or {}, resamples or {}, tests), results_dir)


def knn_metrics(gap: float) -> dict[str, float]:
    """Every metric a knn-influence board shows."""
    return {**{f"knn_acc1.{name}": 50.0 for name in ("all_same", "all_diff", "pos_same", "neg_same", "uniform")},
            "gap_pos_minus_neg": gap, "chance": 10.0}


def stored_cells(results_dir: Path) -> None:
    """Three contests with known ranks, one leaderboard with a single encoder, and tasks without a trace measure."""
    for encoder, gap, interval, p in (("toy/a", 3.0, [1.0, 5.0], 0.001), ("toy/b", 1.0, [-0.5, 2.5], 0.3),
                                      ("toy/c", -1.0, [-2.0, 0.1], 0.9)):
        write(results_dir, "knn-influence", "toy", "group=jpeg,k=10,seeds=1", encoder,
              knn_metrics(gap), {"gap_pos_minus_neg": interval}, p_values={"gap_pos_minus_neg": p})
    for encoder, gap in (("toy/a", -10.0), ("toy/b", -20.0), ("toy/c", 0.0)):
        write(results_dir, "paircams", "toy-pairs", "processing=original", encoder,
              {"recall_at_1.same": 50.0 + gap, "recall_at_1.different": 50.0, "gap_same_minus_different": gap})
    for encoder, accuracy in (("toy/a", 50.0), ("toy/b", 45.0), ("toy/c", 30.0)):
        write(results_dir, "probe-processing", "toy", "epochs=2,group=jpeg,schedule=paper,seeds=1,trials=2", encoder, {"probe_acc1.mean": accuracy, "probe_acc1.std": 1.0, "chance": 20.0})
    write(results_dir, "knn-influence", "other", "group=jpeg,k=10,seeds=1", "toy/c", knn_metrics(9.0))  # alone: ranks nothing
    for encoder in FAMILIES:
        write(results_dir, "similarity", "toy", "group=jpeg,other=jpeg75_420,query=jpeg95_444", encoder, {"shift_semantic_same": 0.1, "shift_semantic_diff": 0.1})


def test_borda_count_by_hand(tmp_path: Path) -> None:
    stored_cells(tmp_path)
    boards, _ = stored.collect(tmp_path)
    found = ranking.contests(boards)
    assert [contest.board.task.name for contest in found] == ["knn-influence", "paircams", "probe-processing"]
    assert found[1].strengths == {"toy/a": 10.0, "toy/b": 20.0, "toy/c": 0.0}  # a more negative same−diff is a stronger trace
    assert found[2].strengths == {"toy/a": 30.0, "toy/b": 25.0, "toy/c": 10.0}  # accuracy above chance
    assert found[0].certain == {"toy/a": True, "toy/b": False, "toy/c": False}
    standings = ranking.borda(found, FAMILIES)
    assert [(s.encoder, s.contests) for s in standings] == [("toy/a", 3), ("toy/b", 3), ("toy/c", 3)]
    assert [s.borda for s in standings] == pytest.approx([(1 + 0.5 + 1) / 3, (0.5 + 1 + 0.5) / 3, 0.0])


def test_tied_strengths_share_their_mean_rank() -> None:
    assert ranking.mean_ranks({"a": 2.0, "b": 5.0, "c": 2.0, "d": 1.0}) == {"b": 1.0, "a": 2.5, "c": 2.5, "d": 4.0}


def test_leaderboard_views_from_result_files_alone(tmp_path: Path) -> None:
    stored_cells(tmp_path / "reports" / "results")
    traces = run_bench(tmp_path, "leaderboard", "--view", "traces")
    assert traces.returncode == 0, traces.stderr
    lines = traces.stdout.splitlines()
    order = [next(i for i, line in enumerate(lines) if name in line and "│" in line) for name in ("toy/a", "toy/b", "toy/c")]
    assert order == sorted(order)
    assert "0.83" in traces.stdout and "Borda" in traces.stdout and "c3 = probe-processing" in " ".join(traces.stdout.split())
    tasks = run_bench(tmp_path, "leaderboard", "--task", "knn-influence")
    assert tasks.returncode == 0, tasks.stderr
    assert "3.00 [1.00, 5.00]*" in tasks.stdout and "1.00 [-0.50, 2.50] " in tasks.stdout  # * only where the test passes
    rule = " ".join(tasks.stdout.split())
    assert "[low, high]: 95 % percentile bootstrap interval" in rule and "Benjamini–Hochberg" in rule and "board's 3 tests" in rule


def test_rank_ranges_come_from_the_resamples_and_noise_is_not_ranked(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    shared = rng.normal(size=(2, 400))  # the same units drawn for every encoder in a resample
    FAMILIES["toy/d"] = "sup"
    for number, dataset in enumerate(("one", "two")):
        for encoder, gap, own in (("toy/a", 5.0, 0.2), ("toy/b", 2.0, 0.6), ("toy/c", 2.1, 0.6), ("toy/d", 0.1, 0.3)):
            samples = gap + 0.3 * shared[number] + own * rng.normal(size=400)
            low, high = np.percentile(samples, [2.5, 97.5])
            write(tmp_path, "knn-influence", dataset, "group=jpeg,k=10,seeds=1", encoder, knn_metrics(gap),
                  {"gap_pos_minus_neg": [min(low, gap), max(high, gap)]}, {"gap_pos_minus_neg": samples.tolist()},
                  {"gap_pos_minus_neg": 0.4 if encoder == "toy/d" else 0.002})
    boards, _ = stored.collect(tmp_path)
    found = ranking.contests(boards)
    standings = {s.encoder: s for s in ranking.borda(found, FAMILIES)}
    assert standings["toy/a"].place == 1 and standings["toy/a"].places == (1, 1)
    assert {standings["toy/b"].place, standings["toy/c"].place} == {2, 3}
    assert standings["toy/b"].places == standings["toy/c"].places == (2, 3)
    assert standings["toy/d"].place is None and standings["toy/d"].marked == 0  # its test passes nowhere
    pairs = ranking.inseparable(found, list(ranking.borda(found, FAMILIES)))
    assert len(pairs) == 1 and set(pairs[0]) == {"toy/b", "toy/c"}
    found = leaderboard.trace_grid(boards)
    header, note = found.header, found.caption
    row = next(row for row in found.rows if row[0] == "toy/d")
    assert row[header.index("#")] == "—" and row[header.index("ranks")] == "no trace"
    assert "Cannot be told apart" in note and "toy/b" in note
