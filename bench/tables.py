"""A table as data: what a board, a ranking or a listing shows, before anyone draws it. Measuring
code returns these; bench.report.render turns them into a terminal table, Markdown or HTML."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rows:
    """Rows shown together under a heading of their own ("" for none), e.g. one encoder family."""

    heading: str
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Grid:
    title: str
    header: tuple[str, ...]
    groups: tuple[Rows, ...]
    caption: str = ""  # printed under the table: how its numbers were made
    numbers: tuple[int, ...] | None = None  # columns that hold numbers (right-aligned); None: all but the first
    keep_whole: tuple[int, ...] = ()  # columns never wrapped (an interval reads badly split over lines)
    literal: bool = False  # the texts come from files (camera models such as "PENTAX *ist DL"): never read as markup

    def right(self, index: int) -> bool:
        return index in self.numbers if self.numbers is not None else index > 0

    @property
    def rows(self) -> list[tuple[str, ...]]:
        return [row for group in self.groups for row in group.rows]


def grid(title: str, header: list[str] | tuple[str, ...], rows: list[list[str]] | list[tuple[str, ...]], **options: object) -> Grid:
    """A table whose rows form one group without a heading."""
    return Grid(title, tuple(header), (Rows("", tuple(tuple(row) for row in rows)),), **options)  # type: ignore[arg-type]
