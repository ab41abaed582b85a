"""The one place a table (bench.tables.Grid) becomes something to read: a rich table for the
terminal, Markdown, or HTML. Group headings (an encoder family) print the same way in each."""

from __future__ import annotations

import html

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench.bootstrap import MARK
from bench.tables import Grid


def terminal(grid: Grid) -> Table:
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
