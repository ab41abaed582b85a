"""The probe tasks' pictures (probe-processing, probe-acquisition): accuracy per encoder by family,
and the rules under their tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import processing, results
from bench.boards import Board
from bench.report import plots
from bench.report.captions import TaskView, interval_rule
from bench.results import Cell


def processing_rule(cells: list[Cell]) -> str:
    return (f"probe_acc1 (%): one linear layer on L2-normalised embeddings (SGD, momentum 0.9, batch 1024, "
            f"{results.setting(cells, 'epochs')} epochs, {results.setting(cells, 'schedule')} cosine schedule, final epoch). Each train "
            "image under one processing class drawn at random; tested on every val image under every class. Mean ± std over the "
            f"{results.setting(cells, 'seeds')} label seeds, with lr and weight decay from a {results.setting(cells, 'trials')}-trial "
            "TPE search on an 80/20 split of train (its best held-out accuracy: search val). "
            + interval_rule("val image", cells, "chance", above=True) + " An image's rows under every class are drawn together; "
            "the probes are kept.")


def acquisition_rule(cells: list[Cell]) -> str:
    """How the board's numbers were made, with its own mask, search and training settings."""
    version = results.setting(cells, "processing")
    seen = ("the files as they are (no mask)" if version == "original"
            else f"the masked images ({round(100 * float(processing.get(version).param('ratio')))} % of each crop black)")
    top1 = interval_rule("test image", cells, "the majority share (the best constant guess)", within="test class", above=True)
    per_class = interval_rule("test image", cells, "chance", within="test class", above=True)
    small = [cell.encoder for cell in cells if min((count for count in cell.detail.get("test_counts", []) if count), default=5) < 5]
    caveat = (" Classes of fewer than 5 test units vary little when resampled within themselves, so these intervals understate "
              "the spread (about half, in the calibration); the tests, and so the marks, hold at any class size." if small else "")
    return (f"probe_acc1 (%): one linear layer on L2-normalised embeddings of {seen}, lr and weight decay from a "
            f"{results.setting(cells, 'trials')}-trial TPE search ({results.setting(cells, 'epochs')} epochs per probe) trained on "
            "train and scored on val (search val), then retrained on train + val and tested once on test. mean class acc: per-class "
            "accuracy averaged over the test classes; chance = 1 / classes present in test; majority = the largest test class's "
            f"share. probe acc: {top1} mean class acc: {per_class}{caveat}")


def figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    """Probe accuracy per encoder, grouped and coloured by family, ± std over seeds where there are seeds."""
    cells, task = board.ordered(), board.task
    spread = task.primary.replace(".mean", ".std") if task.primary.endswith(".mean") else None
    figure = plots.family_bars(plt, cells, task.primary, "linear probe accuracy (%)", spread, interval=spread is None)
    what = "processing class" if spread else "acquisition label"
    bars = ("bars: mean over the label seeds, whiskers: ± std" if spread
            else "one run, tested once on test; whiskers: 95 % bootstrap interval over the test set's units, drawn within each class")
    return [plots.Figure(plots.save(plt, figure, folder, f"{plots.slug(task.name, board.dataset, board.condition)}.png"),
                         f"Linear probe accuracy for the {what} on {board.title()} ({board.condition}), per encoder, by family; {bars}; "
                         "dotted: chance. Far above chance means the embedding encodes the trace linearly.")]


PROCESSING_VIEW = TaskView(processing_rule, figures)
ACQUISITION_VIEW = TaskView(acquisition_rule, figures)
