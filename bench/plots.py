"""Figure primitives every task's figures share: the Figure record, file names, family colours,
bar charts by family with the chance line. matplotlib loads only when a figure is drawn."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import results
from bench.encoders.spec import FAMILY_TITLES

FAMILY_COLOURS = {"cvl": "#1f77b4", "ssl": "#2ca02c", "sup": "#d62728"}
OTHER_COLOUR = "#7f7f7f"


@dataclass(frozen=True)
class Figure:
    file: str  # name inside the report folder
    caption: str


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-").lower()


def colour(cell: dict[str, Any]) -> str:
    return FAMILY_COLOURS.get(cell.get("family", ""), OTHER_COLOUR)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def family_legend(ax, cells: list[dict[str, Any]]) -> None:
    from matplotlib.patches import Patch

    families = sorted({cell.get("family", "?") for cell in cells})
    labelled, _ = ax.get_legend_handles_labels()  # e.g. the chance line
    ax.legend(handles=[Patch(color=FAMILY_COLOURS.get(f, OTHER_COLOUR), label=FAMILY_TITLES.get(f, f)) for f in families] + labelled,
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def save(plt, figure, folder: Path, name: str) -> str:
    figure.savefig(folder / name, bbox_inches="tight", pad_inches=0.15)  # keeps legends placed outside the axes
    plt.close(figure)
    return name


def chance_line(ax, cells: list[dict[str, Any]], label: str | None = None) -> None:
    chance = results.metric(cells[0], "chance")
    if chance is not None:
        ax.axhline(chance, color="black", linestyle=":", linewidth=1, label=label or f"chance {chance:.1f}%")


def family_bars(plt, cells: list[dict[str, Any]], metric: str, ylabel: str, spread: str | None = None):
    """One bar per encoder (in the cells' order) coloured by family, whiskers from `spread` if
    given, the chance line marked; returns the matplotlib figure."""
    figure, ax = plt.subplots(figsize=(max(4.5, 0.5 * len(cells) + 3), 3.2))
    values = [results.metric(cell, metric) or 0.0 for cell in cells]
    errors = [results.metric(cell, spread) or 0.0 for cell in cells] if spread else None
    ax.bar(range(len(cells)), values, yerr=errors, capsize=3 if errors else 0, color=[colour(cell) for cell in cells])
    chance_line(ax, cells)
    ax.set_xticks(range(len(cells)), [cell["encoder"] for cell in cells], rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    family_legend(ax, cells)
    return figure
