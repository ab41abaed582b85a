"""How `bench query` shows rows in a terminal: the columns that carry information, short paths,
one line per row at the terminal's width, and a footer naming what was left out and how to get it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.markup import escape
from rich.table import Table

RANKED = ("rank", "score")  # --like: position and cosine score come first
LEADING = ("image_id", "split", "processing", "label", "label_name")  # the row's key and its label
PATH_COLUMNS = ("source_path",)
KEPT = ("rank", "score", "image_id")  # never left out for room
# Left out first when the table is too wide, before any other column (then the rightmost goes first).
LEAST_USEFUL = ("op_version", "group", "source_path", "label", "split")
PATH_WIDTH = 40  # a shortened path keeps at most this many of its last characters
REASONS = {"empty": "empty in every row", "same": "the same in every row", "room": "no room at this width"}
MEASURE_WIDTH = 10_000  # wide enough that rich measures every column at its natural width


@dataclass(frozen=True)
class LeftOut:
    """A column that is not shown, and why: empty in every row, one value in every row, or no room."""

    name: str
    reason: str  # "empty" | "same" | "room"
    value: str = ""  # the value every row has, for "same"


@dataclass(frozen=True)
class QueryView:
    """The rows as they are printed: chosen columns, formatted cells, what was left out."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    left_out: tuple[LeftOut, ...] = ()
    path_prefix: str = ""  # the folder removed from every shown path
    explicit: bool = False  # columns named with --columns: shown whole, even if a row wraps

    def table(self, title: str) -> Table:
        """The rich table; default views never wrap a cell (a cell too long for the room is cut with …)."""
        grid = Table(title=escape(title), title_justify="left")
        for name in self.columns:
            grid.add_column(name, justify="right" if name in RANKED else "left",
                            no_wrap=not self.explicit, overflow="fold" if self.explicit else "ellipsis")
        for row in self.rows:
            grid.add_row(*(escape(value) for value in row))
        return grid

    def footer(self) -> str:
        """What was left out, and the options that show it; empty when everything is shown."""
        parts = []
        for reason, why in REASONS.items():
            names = [f"{left.name} = {left.value}" if left.value else left.name for left in self.left_out if left.reason == reason]
            if names:
                parts.append(f"{', '.join(names)} ({why})")
        lines = [f"Not shown: {'; '.join(parts)}."] if parts else []
        if self.path_prefix:
            lines.append(f"Paths are shown without their common folder {self.path_prefix}{os.sep}.")
        if parts or self.path_prefix:
            wanted = [name for name in self.columns if name not in RANKED][:1]
            wanted += [left.name for left in self.left_out if left.reason != "empty"]
            if self.path_prefix and not any(name in PATH_COLUMNS for name in wanted):
                wanted += [name for name in PATH_COLUMNS if name in self.columns]
            example = ",".join(dict.fromkeys(wanted)) or "image_id"
            lines.append(f"Choose columns with --columns (e.g. --columns {example}; named paths are shown whole); "
                         "--format csv or parquet writes every column.")
        return "\n".join(lines)


def cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def common_folder(paths: list[str]) -> str:
    """The deepest folder that holds every path ("" when there is none worth removing)."""
    folders = [os.path.dirname(path) for path in paths]
    try:
        common = os.path.commonpath(folders) if folders else ""
    except ValueError:  # absolute and relative paths mixed
        return ""
    return "" if common in ("", os.sep) else common


def short_path(path: str, prefix: str) -> str:
    """The path without `prefix`; a longer one than PATH_WIDTH keeps its last whole parts after "…"."""
    if prefix and path.startswith(prefix + os.sep):
        path = path[len(prefix) + 1:]
    if len(path) <= PATH_WIDTH:
        return path
    tail = path[-(PATH_WIDTH - 1):]
    cut = tail.find(os.sep)
    return "…" + (tail[cut:] if 0 <= cut < len(tail) - 1 else tail)


def natural_width(grid: Table) -> int:
    """Columns the table needs to print every cell on one line."""
    return Console(width=MEASURE_WIDTH).measure(grid).maximum


def view(found: pa.Table, width: int, *, explicit: bool = False, ranked: bool = False) -> QueryView:
    """The view of `found` that fits `width` columns. `explicit`: the columns were named, so
    they are shown as named, whole; otherwise empty columns are left out, the key, label (and
    for `ranked` rows, rank and score) come first, paths lose their common folder, and the
    least useful columns are left out until every row fits on one line."""
    records = found.to_pylist()
    if ranked:
        records = [{"rank": position, **record} for position, record in enumerate(records, start=1)]
    names = list(records[0]) if records else [*(("rank",) if ranked else ()), *found.column_names]
    first = [name for name in (*(RANKED if ranked else ()), *(() if explicit else LEADING)) if name in names]
    names = [*first, *(name for name in names if name not in first)]
    if explicit:
        return QueryView(tuple(names), tuple(tuple(cell_text(r[name]) for name in names) for r in records), explicit=True)
    left: list[LeftOut] = []
    if records:
        left = [LeftOut(name, "empty") for name in names if all(r[name] is None for r in records)]
        names = [name for name in names if name not in {entry.name for entry in left}]
    paths = [str(r[name]) for r in records for name in PATH_COLUMNS if name in names and r[name] is not None]
    prefix = common_folder(paths)
    raw = {name: [cell_text(r[name]) for r in records] for name in names}
    cells = {name: [short_path(str(r[name]), prefix) if name in PATH_COLUMNS and r[name] is not None else cell_text(r[name])
                    for r in records] for name in names}
    shown = QueryView(tuple(names), tuple(zip(*(cells[name] for name in names))) if names else (), tuple(left), prefix)
    while natural_width(shown.table("")) > width:
        victim = _least_useful(shown.columns, cells)
        if victim is None:
            break  # only the columns that are always kept: cells are cut with … instead
        distinct = set(raw[victim])  # a path left out is stated whole
        reason = "same" if len(records) > 1 and len(distinct) == 1 else "room"
        left.append(LeftOut(victim, reason, next(iter(distinct)) if reason == "same" else ""))
        names.remove(victim)
        shown = QueryView(tuple(names), tuple(zip(*(cells[name] for name in names))), tuple(left), prefix)
    if not any(name in PATH_COLUMNS for name in shown.columns):
        shown = QueryView(shown.columns, shown.rows, shown.left_out)  # no path shown: no prefix to mention
    return shown


def _least_useful(columns: tuple[str, ...], cells: dict[str, list[str]]) -> str | None:
    """The column to leave out next: one whose value is the same in every row (the footer states
    it) before one that varies; among those, LEAST_USEFUL first, then the rightmost."""
    candidates = [name for name in columns if name not in KEPT]
    if not candidates:
        return None

    def usefulness(name: str) -> tuple[bool, int, int]:
        varies = len(set(cells[name])) > 1 or len(cells[name]) < 2
        listed = LEAST_USEFUL.index(name) if name in LEAST_USEFUL else len(LEAST_USEFUL)
        return varies, listed, -columns.index(name)

    return min(candidates, key=usefulness)


def show(console: Console, found: pa.Table, title: str, *, explicit: bool = False, ranked: bool = False) -> None:
    """Print the rows at the console's width, then the footer."""
    shown = view(found, console.width, explicit=explicit, ranked=ranked)
    console.print(shown.table(title))
    if shown.footer():
        console.print(escape(shown.footer()), style="dim", highlight=False)
