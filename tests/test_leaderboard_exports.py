"""Leaderboards as files: CSV, Markdown and JSON carry the numbers the terminal prints (unrounded
where the format allows), and a column naming a metric a cell lacks is an error, not a blank."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench import bootstrap, measures, results, runner, tasks
from bench.report import leaderboard
from bench.boards import collect
from bench.picks import Picks
from bench.tasks import knn_influence
from bench.vectors import SplitVectors
from tests.conftest import run_bench

CLASSES = ("jpeg75_420", "jpeg95_444")
ENCODERS = (("toy/a", "cvl", 1.5), ("toy/b", "sup", 0.0))  # the second carries no planted trace


def planted(rng: np.random.Generator, strength: float) -> tuple[SplitVectors, SplitVectors]:
    """Five semantic classes plus an offset per processing of the given strength."""
    centres, marks = rng.normal(size=(5, 16)), rng.normal(size=(2, 16)) * strength

    def split(count: int, prefix: str) -> SplitVectors:
        labels = np.arange(count) % 5
        scenes = centres[labels] + 1.2 * rng.normal(size=(count, 16))
        return SplitVectors(np.array([f"{prefix}{i:03d}" for i in range(count)]), labels,
                            {name: (scenes + marks[j] + 0.3 * rng.normal(size=(count, 16))).astype(np.float32) for j, name in enumerate(CLASSES)})

    return split(150, "t"), split(100, "v")


def stored(results_dir: Path) -> None:
    """knn-influence cells as the runner makes them, with intervals from 300 resamples and tests from 99 permutations."""
    rng = np.random.default_rng(11)
    task = tasks.get("knn-influence")
    resampling = bootstrap.Resampling(300, permutations=99)
    for encoder, family, strength in ENCODERS:
        train, val = planted(rng, strength)
        found = knn_influence.run(train, val, CLASSES, k=5, seeds=(0,), backend="torch")
        gap = measures.knn_gap([train.vectors[name] for name in CLASSES], train.labels, [val.vectors[name] for name in CLASSES], val.labels,
                               5, permutations=resampling.permutations, resampling=resampling)
        outcome = knn_influence.KnnOutcome(found, knn_influence.KnnSettings(CLASSES, 5, (0,), "versioned", "torch", resampling), (150, 100),
                                           Picks(224, "bicubic", ()), gap)
        cell, _ = runner.assemble(results.CellKey(task.name, "toy", encoder, "group=jpeg,k=5,seeds=1"), family, outcome, resampling, task)
        results.write(cell, results_dir)


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cells")
    stored(folder)
    return folder


@pytest.fixture
def home(tmp_path: Path, cells: Path) -> Path:
    shutil.copytree(cells, tmp_path / "reports" / "results")
    return tmp_path


def test_csv_and_json_hold_the_stored_numbers_and_markdown_prints_what_the_terminal_does(home: Path) -> None:
    boards, damaged = collect(home / "reports" / "results")
    assert not damaged and len(boards) == 1
    board = boards[0]
    cells = {cell.encoder: cell for cell in board.cells}
    terminal = run_bench(home, "leaderboard", "--task", "knn-influence")
    assert terminal.returncode == 0, terminal.stderr

    exported = run_bench(home, "leaderboard", "--format", "csv", "--out", str(home / "board.csv"))
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO((home / "board.csv").read_text())))
    assert [row["encoder"] for row in rows] == [cell.encoder for cell in board.ordered()]
    marks = leaderboard.board_marks(board)
    for row in rows:
        cell = cells[row["encoder"]]
        for column in board.task.columns:
            assert float(row[column.header]) == cell.value(column.path)  # unrounded: the cell's own float
            mark = marks.get((cell.encoder, column.path))
            if column.interval:
                assert (float(row[f"{column.header} low"]), float(row[f"{column.header} high"])) == cell.intervals[column.path]
                assert mark is not None and float(row[f"{column.header} p"]) == cell.tests[column.path].p == mark.p
                assert float(row[f"{column.header} p_adjusted"]) == mark.adjusted
                assert row[f"{column.header} marked"] == str(mark.marked)
            else:
                assert mark is None and f"{column.header} p" not in row
            # what the terminal prints is the CSV value rounded as the board rounds it
            assert leaderboard.entry(cell, column, board.task.decimals, mark) in terminal.stdout
    gap = board.task.columns[5]
    assert gap.path == "gap_pos_minus_neg"
    assert [row[f"{gap.header} marked"] for row in rows] == ["True", "False"]  # the planted trace is marked, the control is not
    assert [float(row[f"{gap.header} p"]) for row in rows][0] == pytest.approx(1 / 100)  # no permutation reaches the planted gap
    # the follow-up study reports this gap (its SPD) unsigned: the export carries both
    assert [float(row[f"{gap.header} absolute"]) for row in rows] == [abs(cells[row["encoder"]].value(gap.path)) for row in rows]
    assert all(f"{column.header} absolute" not in rows[0] for column in board.task.columns if not column.absolute)

    document = json.loads(run_bench(home, "leaderboard", "--format", "json").stdout)
    (record,) = document["boards"]
    assert record["adjustment"] == "bh" and record["tests"] == 2 and "Benjamini–Hochberg" in record["rule"]
    for row in record["rows"]:
        found = row["values"]["pos−neg"]
        mark = marks[(row["encoder"], "gap_pos_minus_neg")]
        assert found["value"] == cells[row["encoder"]].value("gap_pos_minus_neg")
        assert (found["p"], found["p_adjusted"], found["marked"], found["alternative"]) == (mark.p, mark.adjusted, mark.marked, "greater")
        assert row["provenance"]["bootstrap"]["resamples"] == 300 and row["provenance"]["bootstrap"]["permutations"] == 99

    markdown = run_bench(home, "leaderboard", "--format", "markdown").stdout
    for cell in board.cells:
        line = next(line for line in markdown.splitlines() if line.startswith(f"| {cell.encoder} |"))
        assert line.split(" | ")[1] == leaderboard.entry(cell, board.task.columns[0], board.task.decimals)
        assert leaderboard.entry(cell, gap, board.task.decimals, marks[(cell.encoder, gap.path)]) in line
        family = leaderboard.family_title(cell.family)  # named as the terminal names it, above its encoders
        assert f"| *{family}* |" in markdown and f"{family}" in terminal.stdout


def test_a_column_naming_a_metric_the_cell_lacks_fails_loudly(home: Path) -> None:
    path = next((home / "reports" / "results").glob("knn-influence/**/*.json"))
    document = json.loads(path.read_text())
    del document["metrics"]["knn_acc1.uniform"]
    path.write_text(json.dumps(document))
    for verb in (["leaderboard"], ["leaderboard", "--format", "csv"], ["report"]):
        done = run_bench(home, *verb)
        assert done.returncode == 2, verb
        assert "has no metric 'knn_acc1.uniform'" in done.stderr and document["encoder"] in done.stderr
        assert "Traceback" not in done.stderr


def test_an_export_into_a_missing_folder_is_refused_before_anything_is_read(home: Path) -> None:
    done = run_bench(home, "leaderboard", "--format", "csv", "--out", str(home / "nowhere" / "board.csv"))
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_a_run_prints_its_own_board_and_counts_the_others_in_the_home(home: Path) -> None:
    from rich.console import Console

    results_dir = home / "reports" / "results"
    mine = collect(results_dir)[0][0]
    for cell in mine.cells:  # the same cells on another dataset: a second board of the task
        results.write(dataclasses.replace(cell, key=dataclasses.replace(cell.key, dataset="elsewhere")), results_dir)
    damaged = results_dir / "knn-influence" / "elsewhere" / "enc" / f"{mine.condition}.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text("{not json")  # a damaged file of the other board: counted, not listed
    own = results_dir / "knn-influence" / mine.dataset / "broken-encoder" / f"{mine.condition}.json"
    own.parent.mkdir(parents=True)
    own.write_text("{not json")  # one of this board's: listed
    out, notes = Console(record=True, width=200), Console(record=True, width=200)
    shown = leaderboard.show(results_dir, ["knn-influence"], out, notes, only=(mine.dataset, mine.condition))
    printed, said = out.export_text(), notes.export_text()
    assert shown == 1 and "elsewhere" not in printed and mine.cells[0].encoder in printed
    assert "1 other board(s)" in said and "1 of their files skipped" in said and "leaderboard --task knn-influence" in said
    assert str(damaged) not in said and "broken-encoder" in said
    assert leaderboard.show(results_dir, ["knn-influence"], Console(record=True, width=200)) == 2  # the leaderboard verb shows both
