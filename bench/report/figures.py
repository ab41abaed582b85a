"""The report's matplotlib figures: one function per task, each writing PNGs and returning them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from bench import leaderboard
from bench.encoders.spec import FAMILY_TITLES
from bench.tasks import TaskSpec

FAMILY_COLOURS = {"cvl": "#1f77b4", "ssl": "#2ca02c", "sup": "#d62728"}
OTHER_COLOUR = "#7f7f7f"
KNN_SETUPS = (("all_same", "all-same"), ("all_diff", "all-diff"), ("pos_same", "pos-same"), ("neg_same", "neg-same"), ("uniform", "uniform"))
SIMILARITY_PARTS = (
    ("semantic_same/processing_same", "same class, same processing", "#1f77b4", "-"),
    ("semantic_same/processing_diff", "same class, other processing", "#1f77b4", "--"),
    ("semantic_diff/processing_same", "other class, same processing", "#ff7f0e", "-"),
    ("semantic_diff/processing_diff", "other class, other processing", "#ff7f0e", "--"),
)


@dataclass(frozen=True)
class Figure:
    file: str  # name inside the report folder
    caption: str


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-").lower()


def _colour(cell: dict[str, Any]) -> str:
    return FAMILY_COLOURS.get(cell.get("family", ""), OTHER_COLOUR)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def _ordered(task: TaskSpec, cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [cell for _, members in leaderboard.by_family(task, cells) for cell in members]


def _family_legend(ax, cells: list[dict[str, Any]]) -> None:
    from matplotlib.patches import Patch

    families = sorted({cell.get("family", "?") for cell in cells})
    labelled, _ = ax.get_legend_handles_labels()  # e.g. the chance line
    ax.legend(handles=[Patch(color=FAMILY_COLOURS.get(f, OTHER_COLOUR), label=FAMILY_TITLES.get(f, f)) for f in families] + labelled,
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def _save(plt, figure, folder: Path, name: str) -> str:
    figure.savefig(folder / name, bbox_inches="tight", pad_inches=0.15)  # keeps legends placed outside the axes
    plt.close(figure)
    return name


def _family_bars(plt, cells: list[dict[str, Any]], metric: str, ylabel: str, spread: str | None = None):
    """One bar per encoder (in the cells' order) coloured by family, whiskers from `spread` if
    given, the chance line marked; returns the matplotlib figure."""
    figure, ax = plt.subplots(figsize=(max(4.5, 0.5 * len(cells) + 3), 3.2))
    values = [leaderboard.metric(cell, metric) or 0.0 for cell in cells]
    errors = [leaderboard.metric(cell, spread) or 0.0 for cell in cells] if spread else None
    ax.bar(range(len(cells)), values, yerr=errors, capsize=3 if errors else 0, color=[_colour(cell) for cell in cells])
    chance = leaderboard.metric(cells[0], "chance")
    if chance is not None:
        ax.axhline(chance, color="black", linestyle=":", linewidth=1, label=f"chance {chance:.1f}%")
    ax.set_xticks(range(len(cells)), [cell["encoder"] for cell in cells], rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    _family_legend(ax, cells)
    return figure


def knn_figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[Figure]:
    cells = _ordered(task, cells)
    names = [cell["encoder"] for cell in cells]
    chance = leaderboard.metric(cells[0], "chance")
    out = []
    figure = _family_bars(plt, cells, "knn_acc1.all_same", "kNN accuracy, all-same (%)")
    out.append(Figure(_save(plt, figure, folder, f"{slug('knn-accuracy', dataset, condition)}.png"),
                      f"Semantic kNN accuracy (all-same) per encoder on {dataset}, by family; dotted: chance."))
    # the five setups side by side per encoder
    figure, ax = plt.subplots(figsize=(max(5.5, 1.1 * len(cells) + 3), 3.4))
    width = 0.8 / len(KNN_SETUPS)
    for index, (key, label) in enumerate(KNN_SETUPS):
        heights = [leaderboard.metric(cell, f"knn_acc1.{key}") or 0.0 for cell in cells]
        ax.bar(np.arange(len(cells)) + (index - 2) * width, heights, width, label=label)
    if chance is not None:
        ax.axhline(chance, color="black", linestyle=":", linewidth=1, label="chance")
    ax.set_xticks(range(len(cells)), names, rotation=30, ha="right")
    ax.set_ylabel("kNN accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    out.append(Figure(_save(plt, figure, folder, f"{slug('knn-setups', dataset, condition)}.png"),
                      f"kNN processing influence on {dataset} ({condition}): the five database setups side by side per encoder. "
                      "pos-same above neg-same means the encoder groups images by processing."))
    return out


def paircams_figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[Figure]:
    figure, ax = plt.subplots(figsize=(5.2, 4.2))
    ax.plot([0, 100], [0, 100], color="black", linewidth=0.8, linestyle="--", label="y = x")
    for cell in cells:
        x = leaderboard.metric(cell, "recall_at_1.different") or 0.0
        y = leaderboard.metric(cell, "recall_at_1.same") or 0.0
        ax.scatter([x], [y], color=_colour(cell), s=30, zorder=3)
        ax.annotate(cell["encoder"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_aspect("equal")
    ax.set_xlabel("recall@1, different collection (%)")
    ax.set_ylabel("recall@1, same collection (%)")
    _family_legend(ax, cells)
    return [Figure(_save(plt, figure, folder, f"{slug('paircams', dataset, condition)}.png"),
                   f"PairCams on {dataset}: each point is an encoder. Below the y = x line, distractors from the query's own "
                   "camera class hurt retrieval more than distractors from the target's: the embedding encodes the camera.")]


def similarity_figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[Figure]:
    cells = _ordered(task, cells)
    columns = min(3, len(cells))
    rows = -(-len(cells) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3.6 * columns + 1.8, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(cells):]:
        ax.axis("off")
    for ax, cell in zip(axes.flat, cells):
        detail = cell["detail"]
        edges = np.asarray(detail["edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        for key, label, colour, style in SIMILARITY_PARTS:
            counts = np.asarray(detail["counts"][key], dtype=float)
            density = counts / max(counts.sum(), 1.0) / np.diff(edges)
            ax.plot(centres, density, color=colour, linestyle=style, linewidth=1.2, label=label)
        ax.set_title(cell["encoder"], fontsize=9)
        ax.set_xlabel("cosine similarity")
        ax.set_ylabel("density")
    axes.flat[min(len(cells), columns) - 1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    query, other = cells[0]["detail"]["query_processing"], cells[0]["detail"]["other_processing"]
    return [Figure(_save(plt, figure, folder, f"{slug('similarity', dataset, condition)}.png"),
                   f"Cosine similarity from val queries under {query} to train images under {query} (solid) and under "
                   f"{other} (dashed), for the same semantic class (blue) and other classes (orange), on {dataset}. "
                   "Solid right of dashed: sharing the query's processing raises similarity.")]


def masking_figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[Figure]:
    figure, ax = plt.subplots(figsize=(5.6, 3.4))
    styles = {"cvl": "-", "ssl": "--", "sup": "-."}
    for cell in _ordered(task, cells):  # one colour per encoder, line style by family
        ratios = cell["detail"]["ratios"]
        names = sorted(ratios, key=ratios.get)
        family = cell.get("family", "?")
        ax.plot([100 * ratios[n] for n in names], [cell["metrics"]["knn_acc1"][n] for n in names], marker="o", markersize=3,
                linestyle=styles.get(family, ":"), label=f"{cell['encoder']} ({family.upper()})")
    chance = leaderboard.metric(cells[0], "chance")
    if chance is not None:
        ax.axhline(chance, color="black", linestyle=":", linewidth=1, label="chance")
    ax.set_xlabel("masked share of the crop (%)")
    ax.set_ylabel("kNN accuracy (%)")
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
    return [Figure(_save(plt, figure, folder, f"{slug('masking', dataset, condition)}.png"),
                   f"Semantic kNN accuracy against the masked share of each crop on {dataset}; where the curve meets "
                   "chance, the visible frame carries no semantic information.")]


def probe_figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[Figure]:
    """Probe accuracy per encoder, grouped and coloured by family, ± std over seeds where there are seeds."""
    cells = _ordered(task, cells)
    primary = task.columns[0][1]  # probe_acc1(.mean)
    spread = primary.replace(".mean", ".std") if primary.endswith(".mean") else None
    figure = _family_bars(plt, cells, primary, "linear probe accuracy (%)", spread)
    what = "processing class" if task.name == "probe-processing" else "acquisition label"
    bars = "bars: mean over the label seeds, whiskers: ± std" if spread else "one run, tested once on test"
    return [Figure(_save(plt, figure, folder, f"{slug(task.name, dataset, condition)}.png"),
                   f"Linear probe accuracy for the {what} on {dataset} ({condition}), per encoder, by family; {bars}; "
                   "dotted: chance. Far above chance means the embedding encodes the trace linearly.")]


FIGURES: dict[str, Callable[..., list[Figure]]] = {
    "knn-influence": knn_figures,
    "paircams": paircams_figures,
    "similarity": similarity_figures,
    "masking": masking_figures,
    "probe-processing": probe_figures,
    "probe-acquisition": probe_figures,
}
