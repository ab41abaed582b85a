"""The one place a table (bench.tables.Grid) becomes something to read: a rich table for the
terminal, Markdown, or HTML. Group headings (an encoder family) print the same way in each."""

from __future__ import annotations

import html
from dataclasses import replace
from typing import Callable

from rich.console import Console, ConsoleOptions, RenderResult
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from bench.bootstrap import MARK
from bench.tables import Grid


class FittedTable:
    """A grid drawn for the terminal at the width it is printed at. A table too wide is printed as
    several, each with the first column and some of the others, the intervals kept while three
    tables suffice; beyond that the intervals are left out (each value keeps its mark) and the
    caption says so. rich alone would narrow whole columns to nothing or cut the numbers."""

    MOST_PIECES_WITH_INTERVALS = 3

    def __init__(self, grid: Grid) -> None:
        self.grid = grid

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = lambda grid: Measurement.get(console, options.update_width(1 << 20), _table(grid)).maximum  # noqa: E731  (room to spare)
        if width(self.grid) <= options.max_width:
            yield _table(self.grid)
            return
        intervals = self._intervals()
        pieces = _pieces(self.grid, lambda grid: width(grid) <= options.max_width)
        if len(pieces) > self.MOST_PIECES_WITH_INTERVALS and intervals:
            rows = lambda group: tuple(tuple(_value_only(value) if index in intervals else value  # noqa: E731
                                             for index, value in enumerate(row)) for row in group.rows)
            note = f"Intervals left out to fit {options.max_width} columns; a wider terminal, or --format markdown|csv|json, shows them."
            # every column may wrap its header: rich narrows wrappable columns first, down to nothing when the others may not wrap
            compact = replace(self.grid, groups=tuple(replace(group, rows=rows(group)) for group in self.grid.groups),
                              keep_whole=tuple(index for index in self.grid.keep_whole if index not in intervals),
                              caption=f"{note} {self.grid.caption}" if self.grid.caption else note)
            pieces = _pieces(compact, lambda grid: width(grid) <= options.max_width)
        if len(pieces) == 1:
            yield _table(pieces[0])
            return
        for number, part in enumerate(pieces):  # the caption once, below the last, as wide as the terminal
            yield _table(replace(part, title=part.title if number == 0 else "", caption=""))
        if pieces[0].caption:
            yield Text(pieces[0].caption)

    def _intervals(self) -> set[int]:
        """The columns whose values carry an interval ("1.8 [-0.5, 3.9]")."""
        return {index for group in self.grid.groups for row in group.rows for index, value in enumerate(row) if " [" in value}


def _pieces(grid: Grid, fits: Callable[[Grid], bool]) -> list[Grid]:
    """The grid whole if it fits, else tables of its first column and as many consecutive others
    as fit (at least one each)."""
    pieces: list[list[int]] = [[]]
    for index in range(1, len(grid.header)):
        if pieces[-1] and not fits(_columns(grid, [*pieces[-1], index])):
            pieces.append([])
        pieces[-1].append(index)
    return [_columns(grid, piece) for piece in pieces]


def _columns(grid: Grid, kept: list[int]) -> Grid:
    """The grid with its first column and the `kept` ones."""
    order = [0, *kept]
    pick = lambda row: tuple(row[index] for index in order)  # noqa: E731
    return replace(grid, header=pick(grid.header), groups=tuple(replace(group, rows=tuple(pick(row) for row in group.rows)) for group in grid.groups),
                   numbers=None if grid.numbers is None else tuple(new for new, old in enumerate(order) if old in grid.numbers),
                   keep_whole=tuple(new for new, old in enumerate(order) if old in grid.keep_whole))


def _value_only(text: str) -> str:
    """"1.8 [-0.5, 3.9]*" -> "1.8*": the value and its mark."""
    value, bracket, _ = text.partition(" [")
    return value + (MARK if bracket and text.endswith(MARK) else "")


def terminal(grid: Grid) -> FittedTable:
    """The grid for the terminal: see FittedTable."""
    return FittedTable(grid)


def _table(grid: Grid) -> Table:
    """A rich table: the title above, the caption below, a section per group under its heading."""
    table = Table(title=escape(grid.title), title_justify="left", caption=escape(grid.caption) if grid.caption else None,
                  caption_justify="left")
    for index, name in enumerate(grid.header):
        table.add_column(name, justify="right" if grid.right(index) else "left", style="bold" if index == 0 else None,
                         no_wrap=index in grid.keep_whole)
    for index, group in enumerate(grid.groups):
        if index or group.heading:
            table.add_section()
        if group.heading:
            table.add_row(Text(group.heading, style="italic cyan"), *[""] * (len(grid.header) - 1))
        for row in group.rows:
            table.add_row(*(escape(value) for value in row))
    return table


def _literal(text: str) -> str:
    """Markdown-inert text, keeping a trailing mark a mark."""
    marked = text.endswith(MARK)
    text = text.removesuffix(MARK) if marked else text
    for special in ("\\", "|", "*", "_"):
        text = text.replace(special, "\\" + special)
    return text + (MARK if marked else "")


def markdown(grid: Grid, heading: str = "###") -> list[str]:
    """The table's Markdown lines: its title (a heading of level `heading`, or `code` for an inline
    code line), the table with a row per group heading, the caption below."""
    plain = _literal if grid.literal else (lambda text: text.replace("|", "\\|"))
    title = [f"`{grid.title}`" if heading == "code" else f"{heading} {plain(grid.title)}", ""] if grid.title else []
    aligns = ["---:" if grid.right(index) else "---" for index in range(len(grid.header))]
    lines = [*title, "| " + " | ".join(grid.header) + " |", "|" + "".join(f"{align}|" for align in aligns)]
    for group in grid.groups:
        if group.heading:
            lines.append("| " + " | ".join([f"*{plain(group.heading)}*", *[""] * (len(grid.header) - 1)]) + " |")
        lines += ["| " + " | ".join(plain(value) for value in row) + " |" for row in group.rows]
    return lines + (["", plain(grid.caption)] if grid.caption else []) + [""]


def html_table(grid: Grid) -> str:
    """The table as HTML: the title as a code line, a row per group heading, the caption as a note."""
    parts = [f"<p><code>{html.escape(grid.title)}</code></p><table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in grid.header) + "</tr>"]
    for group in grid.groups:
        if group.heading:
            parts.append(f'<tr><td class="group" colspan="{len(grid.header)}">{html.escape(group.heading)}</td></tr>')
        parts += ["<tr>" + "".join(f'<td{" class=num" if grid.right(index) else ""}>{html.escape(value)}</td>'
                                   for index, value in enumerate(row)) + "</tr>" for row in group.rows]
    parts.append("</table>" + (f'<p class="note">{html.escape(grid.caption)}</p>' if grid.caption else ""))
    return "\n".join(parts)
