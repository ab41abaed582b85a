"""knn-influence's pictures: accuracy by family, the pos−neg gap with its interval, the gallery of
pos-same against neg-same neighbours, and the rule under its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import results
from bench.boards import Board
from bench.picks import Entry, Strip
from bench.report import plots
from bench.report.captions import GalleryWords, TaskView, interval_rule
from bench.results import Cell
from bench.tasks.knn_influence import gallery_triples


def rule(cells: list[Cell]) -> str:
    """How the board's numbers were aggregated, with its own k, classes and seeds."""
    count = len(cells[0].detail.get("classes", ()))
    classes, pairs = (str(count), str(count * (count - 1))) if count else ("K", "K(K−1)")
    return (f"knn_acc1 (%): unweighted {results.setting(cells, 'k')}-NN vote, database = train, queries = val. all-same: mean "
            f"over the {classes} query processings t; all-diff / pos-same / neg-same: mean over the {pairs} "
            f"ordered pairs (t, o≠t); uniform: mean over {classes} query processings × {results.setting(cells, 'seeds')} seeds, "
            "database images each under a random class. pos−neg = pos-same − neg-same. " + interval_rule("val image", cells))


def figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    """Accuracy per encoder by family, and the pos−neg gap per encoder with its interval."""
    cells, dataset, condition = board.ordered(), board.title(), board.condition
    out = []
    figure = plots.family_bars(plt, cells, "knn_acc1.all_same", "kNN accuracy, all-same (%)")
    out.append(plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('knn-accuracy', board.dataset, condition)}.png"),
                            f"Semantic kNN accuracy (all-same) per encoder on {dataset}, by family; dotted: chance."))
    figure = plots.interval_chart(plt, cells, [("gap_pos_minus_neg", "pos−neg")], "pos-same − neg-same (points of kNN accuracy)")
    out.append(plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('knn-gap', board.dataset, condition)}.png"),
                            f"kNN processing influence on {dataset} ({condition}): pos-same minus neg-same per encoder, with its 95 % "
                            "bootstrap interval (the data's units redrawn, train and val together). Right of 0: the encoder pulls "
                            "same-processing images together; filled: its own permutation test of no trace is significant at 5 % "
                            "(unadjusted; the table's marks control false discoveries)."))
    return out


def _triples(cell: Cell) -> dict[str, tuple[str, str, str]]:
    pos_same, neg_same = gallery_triples(cell.detail["classes"])
    return {"pos-same": pos_same, "neg-same": neg_same}


def _legend(cells: list[Cell]) -> str:
    test = cells[0].detail["classes"][-1]
    return (f"Each query (under {test}) with its {results.setting(cells, 'k')} nearest train images in two databases, best first; a "
            "green frame marks a neighbour of the query's class. Both databases hold the same images: only which ones share the "
            "query's processing changes. An encoder that encodes the processing pulls whatever shares it closer, so the neighbours "
            "switch class with the processing.")


def _title(strip: Strip, entry: Entry, cell: Cell) -> str:
    _, positive, negative = _triples(cell)[strip.name]
    if strip.name == "pos-same":
        return f"pos-same: its class under {positive} (as the query), the other classes under {negative}"
    return f"neg-same: its class under {positive}, the other classes under {negative} (as the query)"


VIEW = TaskView(rule, figures, GalleryWords(_legend, _title, lambda strip: f"vote: {strip.fact}, {'right' if strip.hit else 'wrong'}"))
