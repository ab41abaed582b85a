"""Static report from the result cells alone: reports/<name>/index.html and report.md, with PNG
figures beside them, so the report opens from disk without a server."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
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


@dataclass
class Section:
    title: str
    intro: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[tuple[str, list[str], list[list[str]], str]] = field(default_factory=list)  # title, header, rows, note


def _slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-").lower()


def _colour(cell: dict[str, Any]) -> str:
    return FAMILY_COLOURS.get(cell.get("family", ""), OTHER_COLOUR)


def _pyplot():
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
    ax.legend(handles=[Patch(color=FAMILY_COLOURS.get(f, OTHER_COLOUR), label=FAMILY_TITLES.get(f, f)) for f in families],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def _save(plt, figure, folder: Path, name: str) -> str:
    figure.savefig(folder / name, bbox_inches="tight", pad_inches=0.15)  # keeps legends placed outside the axes
    plt.close(figure)
    return name


def knn_figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[Figure]:
    cells = _ordered(task, cells)
    names = [cell["encoder"] for cell in cells]
    chance = leaderboard.metric(cells[0], "chance")
    out = []
    # accuracy per encoder, coloured by family, chance marked
    figure, ax = plt.subplots(figsize=(max(4.5, 0.5 * len(cells) + 3), 3.2))
    values = [leaderboard.metric(cell, "knn_acc1.all_same") or 0.0 for cell in cells]
    ax.bar(range(len(cells)), values, color=[_colour(cell) for cell in cells])
    if chance is not None:
        ax.axhline(chance, color="black", linestyle=":", linewidth=1, label=f"chance {chance:.1f}%")
    ax.set_xticks(range(len(cells)), names, rotation=30, ha="right")
    ax.set_ylabel("kNN accuracy, all-same (%)")
    ax.set_ylim(0, 100)
    _family_legend(ax, cells)
    out.append(Figure(_save(plt, figure, folder, f"{_slug('knn-accuracy', dataset, condition)}.png"),
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
    out.append(Figure(_save(plt, figure, folder, f"{_slug('knn-setups', dataset, condition)}.png"),
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
    return [Figure(_save(plt, figure, folder, f"{_slug('paircams', dataset, condition)}.png"),
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
    return [Figure(_save(plt, figure, folder, f"{_slug('similarity', dataset, condition)}.png"),
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
    return [Figure(_save(plt, figure, folder, f"{_slug('masking', dataset, condition)}.png"),
                   f"Semantic kNN accuracy against the masked share of each crop on {dataset}; where the curve meets "
                   "chance, the visible frame carries no semantic information.")]


FIGURES: dict[str, Callable[..., list[Figure]]] = {
    "knn-influence": knn_figures,
    "paircams": paircams_figures,
    "similarity": similarity_figures,
    "masking": masking_figures,
}


def _table(task: TaskSpec, cells: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["encoder", "family", *(name for name, _ in task.columns)]
    rows = [
        [cell["encoder"], FAMILY_TITLES.get(family, family), *(leaderboard.format_value(leaderboard.metric(cell, path), task.decimals) for _, path in task.columns)]
        for family, members in leaderboard.by_family(task, cells)
        for cell in members
    ]
    return header, rows


def _dataset_note(key: str) -> str:
    from bench import data
    from bench.registry import UnknownNameError

    name = key.split("@")[0]
    try:
        return f"{key}, {data.get(name).description}"
    except UnknownNameError:
        return key


def sections(results_dir: Path, folder: Path) -> list[Section]:
    plt = _pyplot()
    out: list[Section] = []
    for task, dataset, condition, cells in leaderboard.grouped(results_dir):
        section = Section(f"{task.name} · {dataset}", f"{task.description}. Dataset: {_dataset_note(dataset)}.")
        section.figures.extend(FIGURES.get(task.name, lambda *_: [])(plt, folder, task, dataset, condition, cells))
        header, rows = _table(task, cells)
        section.tables.append((condition, header, rows, task.aggregation))
        out.append(section)
    return out


def write(results_dir: Path, folder: Path, title: str) -> tuple[Path, Path, list[Path]]:
    """Write the figures, index.html and report.md into `folder`; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    built = sections(results_dir, folder)
    if not built:
        raise FileNotFoundError(f"no results under {results_dir}: run a task first, e.g. `python -m bench run knn-influence`")
    html_path, markdown_path = folder / "index.html", folder / "report.md"
    html_path.write_text(_html(title, built), encoding="utf-8")
    markdown_path.write_text(_markdown(title, built), encoding="utf-8")
    return html_path, markdown_path, [folder / figure.file for section in built for figure in section.figures]


def _markdown(title: str, built: list[Section]) -> str:
    lines = [f"# {title}", "", "Built from the result cells alone; every figure is a PNG beside this file.", ""]
    for section in built:
        lines += [f"## {section.title}", "", section.intro, ""]
        for figure in section.figures:
            lines += [f"![{figure.caption}]({figure.file})", "", f"*{figure.caption}*", ""]
        for condition, header, rows, note in section.tables:
            lines += [f"`{condition}`", "", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---"] + ["---:"] * (len(header) - 2)) + "|"]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines += ["", note, ""]
    return "\n".join(lines)


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1100px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2.5rem; border-bottom: 1px solid #ddd; padding-bottom: .3rem; }
nav a { margin-right: 1rem; } figure { margin: 1rem 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: .9rem; max-width: 60rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .9rem; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #e5e5e5; } th { background: #f6f6f6; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; } .note { color: #555; font-size: .85rem; max-width: 60rem; }
code { background: #f3f3f3; padding: 0 .25rem; }
"""


def _html(title: str, built: list[Section]) -> str:
    anchors = [_slug(section.title) for section in built]
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<p>Built from the result cells alone. Chance levels are marked on every accuracy figure.</p>",
        "<nav>" + "".join(f'<a href="#{a}">{html.escape(s.title)}</a>' for a, s in zip(anchors, built)) + "</nav>",
    ]
    for anchor, section in zip(anchors, built):
        parts += [f'<h2 id="{anchor}">{html.escape(section.title)}</h2>', f"<p>{html.escape(section.intro)}</p>"]
        for figure in section.figures:
            parts.append(f'<figure><img src="{html.escape(figure.file)}" alt="{html.escape(figure.caption)}">'
                         f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")
        for condition, header, rows, note in section.tables:
            parts.append(f"<p><code>{html.escape(condition)}</code></p><table><tr>"
                         + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
            for row in rows:
                parts.append("<tr>" + "".join(
                    f'<td{" class=num" if index >= 2 else ""}>{html.escape(value)}</td>' for index, value in enumerate(row)) + "</tr>")
            parts.append(f'</table><p class="note">{html.escape(note)}</p>')
    parts.append("</body></html>")
    return "\n".join(parts)
