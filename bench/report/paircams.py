"""paircams' pictures: same against different recall per encoder, the gap with its interval, the
gallery of each query's candidates in both collections, and the rule under its table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.boards import Board
from bench.picks import Entry, Strip
from bench.report import plots
from bench.report.captions import GalleryWords, TaskView, interval_rule, ordinal
from bench.results import Cell
from bench.tasks.paircams import GALLERY_TOP


def rule(cells: list[Cell]) -> str:
    return ("recall_at_1 (%): a query's top-1 must be its subject's image from the other camera class. same: "
            "distractors are the query's own camera class; different: the target's class. same / different "
            "average the two query directions (dslr = DSLR/compact queries, phone = phone queries). A distractor "
            "tied with the target counts as a miss. " + interval_rule("subject", cells) + " A subject's two images (one query per "
            "direction, and a distractor of every other query) are drawn together: a resample redraws the queries and "
            "the collections, and a drawn query is a hit when no drawn distractor beats its target.")


def figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    """Same against different recall@1, one point per encoder, with the y = x line; and the gap with its interval."""
    cells, dataset = list(board.cells), board.title()
    figure, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.plot([0, 100], [0, 100], color="black", linewidth=0.8, linestyle="--", label="y = x")
    for cell in cells:
        x, y = cell.value("recall_at_1.different"), cell.value("recall_at_1.same")
        ax.scatter([x], [y], color=plots.colour(cell), s=30, zorder=3)
        ax.annotate(cell.encoder, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("recall@1, different collection (%)")
    ax.set_ylabel("recall@1, same collection (%)")
    plots.family_legend(ax, cells)
    scatter = plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('paircams', board.dataset, board.condition)}.png"),
                           f"PairCams on {dataset}: each point is an encoder. Below the y = x line, distractors from the query's own "
                           "camera class hurt retrieval more than distractors from the target's: the embedding encodes the camera.")
    figure = plots.interval_chart(plt, board.ordered(), [("gap_same_minus_different", "same−diff")],
                                  "recall@1, same − different collection (points)")
    gap = plots.Figure(plots.save(plt, figure, folder, f"{plots.slug('paircams-gap', board.dataset, board.condition)}.png"),
                       f"PairCams on {dataset}: same − different recall@1 per encoder with its 95 % bootstrap interval over subjects "
                       "(or their groups). Left of 0: the camera trace outweighs the content; filled: its own permutation test of "
                       "no trace is significant at 5 % (unadjusted; the table's marks control false discoveries).")
    return [scatter, gap]


def _legend(cells: list[Cell]) -> str:
    return (f"Each query with its target (the same subject shot by the other camera class, green frame) and its "
            f"{GALLERY_TOP} nearest images in each collection, best first. When the nearest image in the same collection "
            "is another subject shot by the query's camera class, the embedding is matching cameras rather than content.")


def _title(strip: Strip, entry: Entry, cell: Cell) -> str:
    own, other = entry.query.labels[-1], entry.target.labels[-1] if entry.target else "?"  # labels: (subject, camera class)
    if strip.name == "same":
        return f"same collection: the distractors are {own} shots, like the query"
    return f"different collection: the distractors are {other} shots, like the target"


def _outcome(strip: Strip) -> str:
    return "hit: the target is nearest" if strip.hit else f"miss: the target ranks {ordinal(int(strip.fact))}"


VIEW = TaskView(rule, figures, GalleryWords(_legend, _title, _outcome))
