"""The terminal view of `bench query`: which columns are shown, in what order, at what width."""

from __future__ import annotations

import io

import pyarrow as pa
import pytest
from rich.console import Console

from bench.query_view import PATH_WIDTH, view

FOLDER = "/data/photos/holiday"


def rows(count: int = 4) -> pa.Table:
    """A table shaped like a store scan: key, label, empty metadata, a path column."""
    return pa.table({
        "image_id": [f"img{i:03d}" for i in range(count)],
        "split": ["train"] * count,
        "processing": ["jpeg75_420", "jpeg95_444"] * (count // 2),
        "group": ["jpeg"] * count,
        "op_version": pa.array([1] * count, pa.int32()),
        "label": list(range(count)),
        "label_name": [f"class{i}" for i in range(count)],
        "camera_make": pa.array([None] * count, pa.string()),
        "iso": pa.array([None] * count, pa.float64()),
        "source_path": [f"{FOLDER}/{'beach' if i % 2 else 'town'}/{i}.jpg" for i in range(count)],
    })


def printed(shown, width: int) -> list[str]:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(shown.table("t"))
    return console.export_text().splitlines()[1:]  # without the title


def test_all_null_columns_are_left_out_and_named_in_the_footer() -> None:
    shown = view(rows(), 200)
    assert "camera_make" not in shown.columns and "iso" not in shown.columns
    assert "camera_make, iso (empty in every row)" in shown.footer()
    assert shown.columns[:5] == ("image_id", "split", "processing", "label", "label_name")


def test_a_column_with_values_in_some_rows_is_kept() -> None:
    table = rows().set_column(7, "camera_make", pa.array([None, "Canon", None, None], pa.string()))
    assert "camera_make" in view(table, 200).columns


def test_named_columns_are_shown_as_named_even_when_empty_and_paths_whole() -> None:
    table = rows().select(["source_path", "iso", "image_id"])
    shown = view(table, 80, explicit=True)
    assert shown.columns == ("source_path", "iso", "image_id")
    assert shown.rows[1][0] == f"{FOLDER}/beach/1.jpg"
    assert shown.footer() == ""


def test_like_puts_rank_and_score_first() -> None:
    table = rows().append_column("score", pa.array([0.9, 0.8, 0.7, 0.6], pa.float32()))
    for explicit in (False, True):
        shown = view(table.select(["image_id", "label_name", "score"]) if explicit else table, 200, explicit=explicit, ranked=True)
        assert shown.columns[:3] == ("rank", "score", "image_id")
        assert [row[0] for row in shown.rows] == ["1", "2", "3", "4"]
        assert shown.rows[0][1] == "0.9000"


def test_paths_lose_their_common_folder_and_the_footer_names_it() -> None:
    shown = view(rows(), 200)
    paths = [row[shown.columns.index("source_path")] for row in shown.rows]
    assert paths == ["town/0.jpg", "beach/1.jpg", "town/2.jpg", "beach/3.jpg"]
    assert f"common folder {FOLDER}/" in shown.footer()
    deep = rows().set_column(9, "source_path", pa.array([f"/{i}{'d' * 30}/{'e' * 30}/{i}.jpg" for i in range(4)]))
    cut = [row[-1] for row in view(deep, 300).rows]
    assert all(path.startswith("…/") and len(path) <= PATH_WIDTH for path in cut)


@pytest.mark.parametrize("width", [80, 100])
def test_every_row_fits_on_one_line_and_what_is_left_out_is_said(width: int) -> None:
    table = rows(8)
    shown = view(table, width)
    lines = printed(shown, width)
    assert len(lines) == 8 + 4  # top rule, header, rule, one line per row, bottom rule
    assert max(len(line) for line in lines) <= width
    left = {entry.name for entry in shown.left_out}
    assert left | set(shown.columns) == set(table.column_names)
    assert "image_id" in shown.columns and "label_name" in shown.columns
    if "op_version" in left:
        assert "op_version = 1 (the same in every row)" in shown.footer()
    assert "--columns" in shown.footer()


def test_a_column_that_varies_is_left_out_only_after_the_constant_ones() -> None:
    shown = view(rows(8), 50)
    left = [(entry.name, entry.reason) for entry in shown.left_out if entry.reason != "empty"]
    assert left == [("op_version", "same"), ("group", "same"), ("split", "same"), ("source_path", "room")]
    assert "group = jpeg" in shown.footer() and "source_path (no room at this width)" in shown.footer()
