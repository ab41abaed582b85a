"""Static report from the result cells alone: reports/<name>/index.html and report.md, with PNG
figures beside them, so the report opens from disk without a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bench import leaderboard, results
from bench.encoders.spec import FAMILY_TITLES
from bench.errors import NoResultsError
from bench.plots import pyplot
from bench.report import galleries
from bench.report.pages import Section, html_page, markdown_page
from bench.tasks import TaskSpec


def _table(task: TaskSpec, cells: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    header = ["encoder", "family", *(column.header for column in task.columns)]
    rows = [
        [cell["encoder"], FAMILY_TITLES.get(family, family),
         *(leaderboard.entry(cell, column, task.decimals) for column in task.columns)]
        for family, members in results.by_family(task.primary, cells)
        for cell in members
    ]
    return header, rows


def _dataset_note(key: str, cells: list[dict[str, Any]]) -> str:
    from bench import data
    from bench.registry import UnknownNameError

    identity = cells[0].get("dataset_identity") if cells else None
    name = identity.get("name") if isinstance(identity, dict) and identity.get("name") else key.split("@")[0].split(".")[0]
    try:
        return f"{key}, {data.get(str(name)).description}"
    except UnknownNameError:
        return key


def sections(boards: list[leaderboard.Board], folder: Path, warn: Callable[[str], None] | None = None) -> list[Section]:
    plt = pyplot()
    out: list[Section] = []
    ranked = leaderboard.trace_rows(boards)
    if ranked is not None:
        ranking = Section("trace ranking", "Encoders ordered by how strongly they carry processing and acquisition traces across "
                                           "every task below (the contests c1, c2, …), by a Borda count.")
        ranking.tables.append(("every task run", *ranked))
        out.append(ranking)
    for task, dataset, condition, cells in boards:
        title = leaderboard.dataset_title(dataset, cells)
        section = Section(f"{task.name} · {title}", f"{task.description}. Dataset: {_dataset_note(dataset, cells)}.")
        if task.figures is not None:
            section.figures.extend(task.figures(plt, folder, task, dataset, condition, cells))
        section.galleries.extend(galleries.panels(cells, task.primary, folder, warn))
        header, rows = _table(task, cells)
        section.tables.append((condition, header, rows, task.rule(cells)))
        out.append(section)
    return out


def write(results_dir: Path, folder: Path, title: str, warn: Callable[[str], None] | None = None) -> tuple[Path, Path, list[Path]]:
    """Write the figures, index.html and report.md into `folder`; return their paths. Damaged
    result files are skipped and passed to `warn`."""
    boards, damaged = leaderboard.collect(results_dir)
    for bad in damaged:
        if warn is not None:
            warn(bad.line())
    if not boards:
        raise NoResultsError(f"no results under {results_dir}: run a task first, e.g. `python -m bench run knn-influence`")
    folder.mkdir(parents=True, exist_ok=True)
    galleries.reset(folder)
    built = sections(boards, folder, warn)
    html_path, markdown_path = folder / "index.html", folder / "report.md"
    html_path.write_text(html_page(title, built), encoding="utf-8")
    markdown_path.write_text(markdown_page(title, built), encoding="utf-8")
    return html_path, markdown_path, [folder / figure.file for section in built for figure in section.figures]
