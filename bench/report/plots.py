"""Figure primitives every task's figures share: the Figure record, file names, family colours,
bar charts by family with the chance line. matplotlib loads only when a figure is drawn."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bench.measures import ALPHA
from bench.encoders.spec import FAMILY_TITLES
from bench.results import Cell

FAMILY_COLOURS = {"cvl": "#1f77b4", "ssl": "#2ca02c", "sup": "#d62728"}
OTHER_COLOUR = "#7f7f7f"


@dataclass(frozen=True)
class Figure:
    file: str  # name inside the report folder
    caption: str


def slug(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", "-".join(parts)).strip("-").lower()


def colour(cell: Cell) -> str:
    return FAMILY_COLOURS.get(cell.family, OTHER_COLOUR)


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False})
    return plt


def family_legend(ax, cells: list[Cell]) -> None:
    from matplotlib.patches import Patch

    families = sorted({cell.family for cell in cells})
    labelled, _ = ax.get_legend_handles_labels()  # e.g. the chance line
    ax.legend(handles=[Patch(color=FAMILY_COLOURS.get(f, OTHER_COLOUR), label=FAMILY_TITLES.get(f, f)) for f in families] + labelled,
              loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def save(plt, figure, folder: Path, name: str) -> str:
    figure.savefig(folder / name, bbox_inches="tight", pad_inches=0.15)  # keeps legends placed outside the axes
    plt.close(figure)
    return name


def chance_line(ax, cells: list[Cell], label: str | None = None) -> None:
    chance = cells[0].value("chance")
    ax.axhline(chance, color="black", linestyle=":", linewidth=1, label=label or f"chance {chance:.1f}%")


def family_bars(plt, cells: list[Cell], metric: str, ylabel: str, spread: str | None = None, interval: bool = False):
    """One bar per encoder (in the cells' order) coloured by family, whiskers from `spread` if
    given (± that metric) or the stored 95 % interval if `interval`, the chance line marked where
    the cells record chance; returns the matplotlib figure."""
    figure, ax = plt.subplots(figsize=(max(4.5, 0.5 * len(cells) + 3), 3.2))
    values = [cell.value(metric) for cell in cells]
    errors = [cell.value(spread) for cell in cells] if spread else None
    if interval:
        bounds = [cell.interval(metric) or (value, value) for cell, value in zip(cells, values)]
        errors = [[value - low for value, (low, _) in zip(values, bounds)], [high - value for value, (_, high) in zip(values, bounds)]]
    ax.bar(range(len(cells)), values, yerr=errors, capsize=3 if errors else 0, color=[colour(cell) for cell in cells])
    if "chance" in cells[0].metrics:
        chance_line(ax, cells)
    ax.set_xticks(range(len(cells)), [cell.encoder for cell in cells], rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    family_legend(ax, cells)
    return figure


SERIES_MARKERS = ("o", "s", "^", "D")


def interval_panel(ax, cells: list[Cell], series: list[tuple[str, str]], xlabel: str, reference: float | None = 0.0,
                   above: bool = False) -> None:
    """One row per encoder (in the cells' order, top down), a point per (metric, label) in
    `series` with its stored 95 % interval as whiskers, and a line at `reference`; a point is
    hollow where its own test of no trace is not significant at 5 % (unadjusted: a figure is no board)
    or where it has no test: a filled point always means a significant test."""
    rows = len(cells)
    spacing = 0.7 / len(series)
    for row, cell in enumerate(cells):
        for position, ((path, _), marker) in enumerate(zip(series, SERIES_MARKERS)):
            value = cell.value(path)
            y = row + (position - (len(series) - 1) / 2) * spacing
            bounds = cell.interval(path)
            if bounds is not None:
                ax.plot(bounds, [y, y], color=colour(cell), linewidth=1.6, marker="|", markersize=7)
            test = cell.tests.get(path)
            hollow = reference is not None and not (test is not None and test.p is not None and test.p <= ALPHA)
            face = "white" if hollow else colour(cell)
            ax.plot([value], [y], marker=marker, markersize=6, color=colour(cell), markerfacecolor=face, zorder=3)
    if reference is not None:
        ax.axvline(reference, color="black", linewidth=0.8)
    ax.set_yticks(range(rows), [cell.encoder for cell in cells])
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)


def interval_legend(ax, cells: list[Cell], labels: list[str]) -> None:
    """The legend of interval panels: a marker per series, the hollow rule, a colour per family."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker=marker, color="#444444", linestyle="none", label=label)
               for label, marker in zip(labels, SERIES_MARKERS)]
    handles.append(Line2D([], [], marker="o", color="#444444", markerfacecolor="white", linestyle="none",
                          label="hollow: its test of no trace\nis not significant at 5 %\n(or it has none)"))
    families = sorted({cell.family for cell in cells})
    handles += [Line2D([], [], color=FAMILY_COLOURS.get(f, OTHER_COLOUR), linewidth=2, label=FAMILY_TITLES.get(f, f)) for f in families]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)


def interval_chart(plt, cells: list[Cell], series: list[tuple[str, str]], xlabel: str, reference: float = 0.0):
    """A figure of one interval panel with its legend; returns the matplotlib figure."""
    figure, ax = plt.subplots(figsize=(6.4, 0.9 + 0.25 * len(cells) * (1 + len(series))))
    interval_panel(ax, cells, series, xlabel, reference)
    interval_legend(ax, cells, [label for _, label in series])
    return figure
