"""A board wider than the terminal: every column and every value stays readable. It is split into
tables that each repeat the encoder column, keeping the intervals while three tables suffice, and
leaves the intervals out (values keep their marks, the caption says so) only beyond that."""

from __future__ import annotations

import re

import pytest
from rich.console import Console

from bench.report import render
from bench.tables import Grid, Rows

ENCODERS = ("effnet/lite0.in1k", "openclip/ViT-B-32.laion2b", "dinov2/vitl14")
COLUMNS = ("gap before", "probe before", *(f"{group} {what}" for group in ("jpeg", "sharp", "resize", "interp") for what in ("gap", "probe")))


def board() -> Grid:
    rows = tuple((encoder, f"{10.0 + e:.1f}", f"{50.0 + e:.1f}",
                  *(f"{c + e / 10:.1f} [{c - 1:.1f}, {c + 1:.1f}]" + ("*" if (c + e) % 3 == 0 else "") for c in range(8)))
                 for e, encoder in enumerate(ENCODERS))
    return Grid("mitigate · toy", ("encoder", *COLUMNS), (Rows("SUP (supervised)", rows),), caption="How the numbers were made.",
                keep_whole=(0, *range(3, 3 + 8)))


def printed(width: int) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(render.terminal(board()))
    return console.export_text()


def tables_in(text: str) -> int:
    return text.count("┏")


@pytest.mark.parametrize("width", [60, 80, 120, 160, 400])
def test_every_column_and_value_and_mark_is_printed_at_any_width(width: int) -> None:
    text = printed(width)
    assert max(len(line) for line in text.splitlines()) <= width
    flat = re.sub(r"\s+", " ", text)
    for name in ("encoder", *COLUMNS):  # headers may wrap over two lines, never vanish
        assert all(word in flat for word in name.split())
    compact = "Intervals left out" in text
    for row in board().rows:
        assert row[0] in text  # the encoder column is never cut
        for value in row[1:]:
            shown = value.split(" [")[0] + ("*" if value.endswith("*") else "") if compact else value
            assert re.search(rf"(^|\s){re.escape(shown)}(\s|$)", text, re.MULTILINE), (value, shown)
    assert flat.count("How the numbers were made.") == 1


def test_a_wide_terminal_gets_one_table_with_the_intervals() -> None:
    text = printed(400)
    assert tables_in(text) == 1 and "[-1.0, 1.0]" in text and "Intervals left out" not in text


def test_a_narrower_terminal_splits_the_board_and_keeps_the_intervals_while_three_tables_suffice() -> None:
    text = printed(120)
    assert 2 <= tables_in(text) <= 3
    assert all(row[0] in text for row in board().rows) and "[6.0, 8.0]" in text and "Intervals left out" not in text
    assert text.count("mitigate · toy") == 1  # the title once, above the first


def test_a_narrow_terminal_leaves_the_intervals_out_and_says_so() -> None:
    text = printed(60)
    assert "[-1.0, 1.0]" not in text and "Intervals left out to fit 60 columns" in text
    assert "0.0*" in text  # a marked value keeps its mark without its interval
