"""mitigate's pictures: the gap, the probe and the semantic accuracy before and after, with their
intervals, and the rule under its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import results
from bench.boards import Board
from bench.report import plots
from bench.report.captions import TaskView, interval_rule
from bench.results import Cell
from bench.tasks.mitigate import STAGES


def rule(cells: list[Cell]) -> str:
    return ("The processing subspace is learned per encoder from train embeddings only and projected out of train and val "
            "(vectors normalised again). before / after: gap = knn-influence pos-same − neg-same "
            f"({results.setting(cells, 'k')}-NN, {results.setting(cells, 'seeds')} seeds), probe = the processing probe's accuracy "
            f"(probe-processing's protocol: {results.setting(cells, 'trials')}-trial search, {results.setting(cells, 'epochs')} "
            "epochs), sem = semantic kNN accuracy (all-same), on the original and on the projected "
            "vectors; price = sem after − sem before; dims = directions removed; chance = the probe's. Intervals of the before "
            "values are in the cell and the report. "
            + interval_rule("val image", cells, "0 (probe after: chance)") + " Before and after share their resamples; the price has "
            "an interval and no test (a change of accuracy is no trace).")


def figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    """Before and after, per encoder: the kNN gap, the processing probe and the semantic accuracy, with intervals."""
    cells = board.ordered()
    chance = cells[0].value("chance")  # one group per board: the same for every cell
    panels = [
        ("gap_pos_minus_neg", "kNN gap pos−neg (points)", 0.0, False),
        ("probe_acc1", "processing probe (%); line: chance", chance, True),
        ("all_same", "semantic kNN, all-same (%)", None, False),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(9.0, 1.3 + 0.6 * len(cells)), sharey=True)
    for ax, (name, label, reference, above) in zip(axes, panels):
        plots.interval_panel(ax, cells, [(f"{stage}.{name}", stage) for stage in STAGES], label, reference, above)
    plots.interval_legend(axes[-1], cells, list(STAGES))
    return [plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('mitigate', board.dataset, board.condition)}.png"),
                         f"Removing the processing trace on {board.title()} ({board.condition}), per encoder, before (circles) and "
                         "after (squares) the learned processing subspace is projected out, with 95 % bootstrap intervals over val "
                         "images. The gap and the probe should fall to 0 and chance; the drop in semantic accuracy is the price.")]


VIEW = TaskView(rule, figures)
