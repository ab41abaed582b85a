"""masking's pictures: accuracy against the masked share, one line per encoder, and the rule under its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import results
from bench.boards import Board
from bench.report import plots
from bench.report.captions import TaskView
from bench.results import Cell


def rule(cells: list[Cell]) -> str:
    return (f"knn_acc1 (%): unweighted {results.setting(cells, 'k')}-NN vote, database = train, queries = val, both under the same "
            "masking op (after the encoder's crop: JPEG q95 4:4:4, then a centred black square over that share of the area). "
            "Where accuracy reaches chance, the masked images carry no semantic information.")


def figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    """Accuracy against the masked share, one line per encoder (line style by family)."""
    cells = board.ordered()
    figure, ax = plt.subplots(figsize=(5.6, 3.4))
    styles = {"cvl": "-", "ssl": "--", "sup": "-."}
    for cell in cells:  # one colour per encoder, line style by family
        ratios = cell.detail["ratios"]
        names = sorted(ratios, key=ratios.get)
        ax.plot([100 * ratios[n] for n in names], [cell.value(f"knn_acc1.{n}") for n in names], marker="o", markersize=3,
                linestyle=styles.get(cell.family, ":"), label=f"{cell.encoder} ({cell.family.upper()})")
    plots.chance_line(ax, cells, "chance")
    ax.set_xlabel("masked share of the crop (%)")
    ax.set_ylabel("kNN accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
    return [plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('masking', board.dataset, board.condition)}.png"),
                         f"Semantic kNN accuracy against the masked share of each crop on {board.title()}; where the curve meets "
                         "chance, the visible frame carries no semantic information.")]


VIEW = TaskView(rule, figures)
