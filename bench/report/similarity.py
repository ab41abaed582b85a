"""similarity's pictures: the four cosine distributions per encoder, both shifts with their
intervals, and the rule under its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench import results
from bench.boards import Board
from bench.report import plots
from bench.report.captions import TaskView, interval_rule
from bench.results import Cell

PARTS_DRAWN = (
    ("semantic_same/processing_same", "same class, same processing", "#1f77b4", "-"),
    ("semantic_same/processing_diff", "same class, other processing", "#1f77b4", "--"),
    ("semantic_diff/processing_same", "other class, same processing", "#ff7f0e", "-"),
    ("semantic_diff/processing_diff", "other class, other processing", "#ff7f0e", "--"),
)


def rule(cells: list[Cell]) -> str:
    return (f"mean cosine similarity from every val query under {results.setting(cells, 'query')} to every train image under "
            f"{results.setting(cells, 'query')} (proc=) and under {results.setting(cells, 'other')} (proc≠), split by whether the "
            "semantic labels match (sem= / sem≠). shift = proc= minus proc≠ within a semantic group: how much sharing the query's "
            "processing raises similarity. Histograms are in each cell's detail. " + interval_rule("val image", cells))


def figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    """The four cosine distributions, one panel per encoder, and both shifts with their intervals."""
    cells, dataset, condition = board.ordered(), board.title(), board.condition
    columns = min(3, len(cells))
    rows = -(-len(cells) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns + 1.8, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(cells):]:
        ax.axis("off")
    for ax, cell in zip(axes.flat, cells):
        edges = np.asarray(cell.detail["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        for key, label, colour, style in PARTS_DRAWN:
            counts = np.asarray(cell.detail["counts"][key], dtype=float)
            density = counts / max(counts.sum(), 1.0) / np.diff(edges)
            ax.plot(centres, density, color=colour, linestyle=style, linewidth=1.2, label=label)
        ax.set_title(cell.encoder, fontsize=9)
        ax.set_xlabel("cosine similarity")
        ax.set_ylabel("density")
    axes.flat[min(len(cells), columns) - 1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    query, other = cells[0].detail["query_processing"], cells[0].detail["other_processing"]
    distributions = plots.Figure(
        plots.save(plt, figure, folder, f"{plots.slug('similarity', board.dataset, condition)}.png"),
        f"Cosine similarity from val queries under {query} to train images under {query} (solid) and under "
        f"{other} (dashed), for the same semantic class (blue) and other classes (orange), on {dataset}. "
        "Solid right of dashed: sharing the query's processing raises similarity.")
    figure = plots.interval_chart(plt, cells, [("shift_semantic_same", "shift, same class"), ("shift_semantic_diff", "shift, other class")],
                                  "mean cosine, same processing − other processing")
    shifts = plots.Figure(
        plots.save(plt, figure, folder, f"{plots.slug('similarity-shift', board.dataset, condition)}.png"),
        f"The shift per encoder on {dataset}: how much sharing the query's processing ({query} vs {other}) raises the mean cosine, "
        "among same-class and other-class pairs, with 95 % bootstrap intervals (the data's units redrawn, train and val together); "
        "filled: its own permutation test of no trace is significant at 5 % (unadjusted; the table's marks control false discoveries).")
    return [distributions, shifts]


VIEW = TaskView(rule, figures)
