"""The depth view: for the `NAME@blockN` cells of one base encoder, each task's effect against the
block it was read at, with its stored interval; a figure for the report and a table for the
terminal (`leaderboard --view depth`). Built from the result cells alone."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from rich.console import Console

from bench import tables
from bench.boards import Board
from bench.encoders.depth import MARK
from bench.report import plots, render
from bench.report.output import emit
from bench.report.pages import Section
from bench.results import Cell
from bench.tables import Grid

FINAL = "final"  # the base encoder's own embedding, drawn after its deepest block
_DEPTH = re.compile(rf"^(?P<base>.+){MARK}block(?P<block>[0-9]+)$")
SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class Point:
    """One depth of one encoder: its block (None: the final embedding), value, interval, and its
    mark on the task's board (None: the metric has no test)."""

    block: int | None
    value: float
    interval: tuple[float, float] | None
    marked: bool | None


@dataclass(frozen=True)
class Series:
    """One base encoder's effect across depth, on one board."""

    base: str
    family: str
    points: tuple[Point, ...]  # blocks in order, then the final embedding where its cell exists


def depth_of(encoder: str) -> tuple[str, int | None]:
    """`NAME@blockN` -> (NAME, N); any other name -> (name, None)."""
    found = _DEPTH.match(encoder)
    return (found.group("base"), int(found.group("block"))) if found else (encoder, None)


@dataclass(frozen=True)
class Measure:
    """A metric the view draws against depth, the metric it is judged against (None: 0), and
    whether only an interval above that counts."""

    path: str
    label: str
    baseline: str | None = None
    above: bool = False


def measures(board: Board) -> list[Measure]:
    """What the view draws for a board's task: the task's trace (its effect) first, then its primary
    metric (e.g. semantic accuracy) against chance where the cells record chance."""
    primary = board.task.columns[0]
    chance = "chance" if board.cells and "chance" in board.cells[0].metrics else None
    found: list[Measure] = []
    trace = board.task.trace
    if trace is not None:
        found.append(Measure(trace.path, trace.label, trace.baseline, trace.above))
    if trace is None or trace.path != primary.path:
        found.append(Measure(primary.path, primary.header, chance, chance is not None))
    return found


def measure(board: Board) -> tuple[str, str, str | None, bool]:
    """The first of `measures` (the effect) as (metric, label, baseline metric, judged only above)."""
    first = measures(board)[0]
    return first.path, first.label, first.baseline, first.above


Marks = Mapping[tuple[str, str], Any]  # (encoder, metric) -> the board's mark (bench.leaderboard.Mark: p, adjusted, marked)
MarksOf = Callable[[Board], Marks]  # the board's marks (bench.leaderboard.board_marks), given by the caller


def _point(cell: Cell, block: int | None, path: str, marks: Marks) -> Point:
    mark = marks.get((cell.encoder, path))
    marked = None if mark is None or mark.p is None else bool(mark.marked)
    return Point(block, cell.value(path), cell.interval(path), marked)


def series(board: Board, drawn: Measure | None = None, marks: Marks | None = None) -> list[Series]:
    """Every base encoder of the board with at least two depths, its final embedding appended where
    the board holds it, measured by `drawn` (default: the board's effect), marked as on the board."""
    path, marks = (drawn or measures(board)[0]).path, marks or {}
    by_base: dict[str, dict[int, Cell]] = {}
    for cell in board.cells:
        base, block = depth_of(cell.encoder)
        if block is not None:
            by_base.setdefault(base, {})[block] = cell
    finals = {cell.encoder: cell for cell in board.cells}
    out = []
    for base, cells in sorted(by_base.items()):
        if len(cells) < 2:
            continue
        points = [_point(cells[block], block, path, marks) for block in sorted(cells)]
        if base in finals:
            points.append(_point(finals[base], None, path, marks))
        out.append(Series(base, next(iter(cells.values())).family, tuple(points)))
    return out


def boards_with_depths(boards: list[Board], marks: MarksOf | None = None) -> list[tuple[Board, list[Series]]]:
    """The boards that hold a depth series, each with its series of the board's effect."""
    found = [(board, series(board, None, marks(board) if marks else None)) for board in boards]
    return [(board, drawn) for board, drawn in found if drawn]


def _label(point: Point) -> str:
    return FINAL if point.block is None else f"block{point.block}"


def _entry(point: Point, decimals: int) -> str:
    text = f"{point.value:.{decimals}f}"
    if point.interval is not None:
        text += f" [{point.interval[0]:.{decimals}f}, {point.interval[1]:.{decimals}f}]"
    return text + ("*" if point.marked else "")


def rows(board: Board, drawn: list[Series]) -> tuple[list[str], list[list[str]], str]:
    """The board's depth table: a row per base encoder, a column per depth; and the note under it."""
    labels = list(dict.fromkeys(_label(point) for found in drawn for point in sorted(
        found.points, key=lambda point: (point.block is None, point.block or 0))))
    _, label, baseline, _ = measure(board)
    header = ["encoder", *labels]
    body = []
    for found in drawn:
        at = {_label(point): point for point in found.points}
        body.append([found.base, *(_entry(at[name], board.task.decimals) if name in at else "" for name in labels)])
    reference = f"the cell's {baseline}" if baseline else "0"
    note = (f"{board.task.name} {label} ({measure(board)[0]}) at each block's global-average-pooled output (`NAME{MARK}blockN`), "
            f"then the encoder's own embedding ({FINAL}), against {reference}; [the 95 % interval stored in each cell]; * as on the "
            "task's board, whose false-discovery control counts every depth as an encoder (`leaderboard` prints its rule).")
    return header, body, note


def grid(board: Board, drawn: list[Series]) -> Grid:
    header, body, note = rows(board, drawn)
    return tables.grid(f"{board.task.name} by depth · {board.title()} · {board.condition}", header, body, caption=note)


def export(found: list[tuple[Board, list[Series]]], form: str) -> str:
    """The depth tables as CSV, Markdown or JSON (values unrounded in JSON)."""
    if form == "json":
        return json.dumps({"boards": [
            {"task": board.task.name, "dataset": board.dataset, "condition": board.condition, "metric": measure(board)[0],
             "series": [{"encoder": s.base, "family": s.family, "points": [
                 {"depth": _label(p), "value": p.value, "interval": list(p.interval) if p.interval else None,
                  "marked": p.marked}
                 for p in s.points]} for s in drawn]}
            for board, drawn in found]}, indent=2, allow_nan=False)
    out = io.StringIO()
    for board, drawn in found:
        header, body, note = rows(board, drawn)
        if form == "csv":
            csv.writer(out).writerows([["task", "dataset", "condition", *header],
                                       *([board.task.name, board.dataset, board.condition, *row] for row in body)])
        else:
            out.write("\n".join(render.markdown(grid(board, drawn), heading="##")) + "\n")
    return out.getvalue()


def show(boards: list[Board], console: Console, form: str = "table", out: Path | None = None, errors: Console | None = None,
         marks: MarksOf | None = None) -> int:
    """Print (or write to `out`) the depth tables of the boards, marked by `marks`; return how many there were."""
    found = boards_with_depths(boards, marks)
    if not found:
        console.print(f"No depth view: it needs stored cells of at least two depths of one encoder (`NAME{MARK}blockN`, "
                      f"e.g. `python -m bench run knn-influence --encoders effnet/lite0.in1k{MARK}blocks`).")
        return 0
    if form == "table":
        for board, drawn in found:
            console.print(render.terminal(grid(board, drawn)))
        return len(found)
    emit(export(found, form), out, console, errors, f"{len(found)} depth table(s)")
    return len(found)


def figure(plt: Any, board: Board, marks: Marks | None = None):
    """Each of `measures` against depth in a panel: a line per base encoder with its 95 % intervals
    as a band and whiskers; a tested point is filled where the board marks it, hollow where not."""
    panels = measures(board)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 1.8, 3.4), squeeze=False)
    for ax, drawn in zip(axes[0], panels):
        _panel(ax, board, series(board, drawn, marks), drawn)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False,
                       title="hollow: tested, not marked\n* on the board", title_fontsize=8)
    fig.tight_layout()
    return fig


def _panel(ax: Any, board: Board, drawn: list[Series], measured: Measure) -> None:
    deepest = max(point.block or 0 for found in drawn for point in found.points)
    for found, colour in zip(drawn, SERIES_COLOURS * 8):
        xs = [deepest + 1 if point.block is None else point.block for point in found.points]
        values = [point.value for point in found.points]
        lows = [point.interval[0] if point.interval else point.value for point in found.points]
        highs = [point.interval[1] if point.interval else point.value for point in found.points]
        blocks = [i for i, point in enumerate(found.points) if point.block is not None]
        ax.plot([xs[i] for i in blocks], [values[i] for i in blocks], color=colour, linewidth=1.4, label=found.base)
        ax.fill_between([xs[i] for i in blocks], [lows[i] for i in blocks], [highs[i] for i in blocks], color=colour, alpha=0.15, linewidth=0)
        for x, value, low, high, point in zip(xs, values, lows, highs, found.points):
            ax.plot([x, x], [low, high], color=colour, linewidth=1.2)
            ax.plot([x], [value], marker="o" if point.block is not None else "D", markersize=5, color=colour,
                    markerfacecolor="white" if point.marked is False else colour, zorder=3)
    if measured.baseline:
        for value in {round(cell.value(measured.baseline), 9) for cell in board.cells}:
            ax.axhline(value, color="black", linestyle=":", linewidth=1)
    else:
        ax.axhline(0.0, color="black", linewidth=0.8)
    has_final = any(point.block is None for found in drawn for point in found.points)
    ticks = list(range(1, deepest + 1)) + ([deepest + 1] if has_final else [])
    ax.set_xticks(ticks, [str(t) for t in range(1, deepest + 1)] + ([FINAL] if has_final else []))
    ax.set_xlabel("block (global average pool of its output)")
    ax.set_ylabel(f"{measured.label} ({measured.path})" + (f"; dotted: {measured.baseline}" if measured.baseline else ""))
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)


def sections(boards: list[Board], folder: Path, plt: Any, marks: MarksOf | None = None) -> list[Section]:
    """A report section per board that holds depth series: the figure and the depth table."""
    out = []
    for board, drawn in boards_with_depths(boards, marks):
        _, label, _, _ = measure(board)
        section = Section(f"{board.task.name} by depth · {board.title()}",
                          f"{label} of each encoder read at the output of each of its blocks (`NAME{MARK}blockN`: the block's feature "
                          "map, global-average-pooled, embedded as an encoder of its own), and at its own final embedding.")
        name = plots.save(plt, figure(plt, board, marks(board) if marks else None), folder, f"{plots.slug('depth', board.task.name, board.dataset, board.condition)}.png")
        shown = " and ".join(measured.label for measured in measures(board))
        section.figures.append(plots.Figure(name, f"{board.task.name} on {board.title()} ({board.condition}): {shown} against depth, "
                                                  "with 95 % intervals (band and whiskers); line: 0, dotted: chance. A tested point is "
                                                  "hollow where the task's board does not mark it *."))
        section.tables.append(dataclasses.replace(grid(board, drawn), title=board.condition))
        out.append(section)
    return out
