"""Static report from the result cells alone: reports/<name>/index.html and report.md, with PNG
figures beside them, so the report opens from disk without a server."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

from bench import boards, data
from bench.audit import stored as stored_audits
from bench.errors import NoResultsError
from bench.registry import UnknownNameError
from bench.report import audit as audit_view
from bench.report import depth, galleries, leaderboard, views
from bench.report.pages import Section, html_page, markdown_page
from bench.report.plots import pyplot


def _dataset_note(board: boards.Board) -> str:
    name = board.cells[0].dataset_identity.get("name") or board.dataset.split("@")[0].split(".")[0]
    try:
        return f"{board.dataset}, {data.get(str(name)).description}"
    except UnknownNameError:
        return board.dataset


def sections(found: list[boards.Board], folder: Path, warn: Callable[[str], None] | None = None) -> list[Section]:
    plt = pyplot()
    out: list[Section] = []
    ranked = leaderboard.trace_grid(found)
    if ranked is not None:
        ranking = Section("trace ranking", "Encoders ordered by how strongly they carry processing and acquisition traces across "
                                           "every task below (the contests c1, c2, …), by a Borda count.")
        ranking.tables.append(dataclasses.replace(ranked, title="every task run"))
        out.append(ranking)
    for board in found:
        view = views.of(board.task)
        section = Section(f"{board.task.name} · {board.title()}", f"{board.task.description}. Dataset: {_dataset_note(board)}.")
        if view.figures is not None:
            section.figures.extend(view.figures(plt, folder, board))
        if view.gallery is not None:
            section.galleries.extend(galleries.panels(board.ordered(), view.gallery, folder, warn))
        section.tables.append(dataclasses.replace(leaderboard.grid(board), title=board.condition))
        out.append(section)
    return out + depth.sections(found, folder, plt, leaderboard.board_marks)


def write(results_dir: Path, folder: Path, title: str, warn: Callable[[str], None] | None = None) -> tuple[Path, Path, list[Path]]:
    """Write the figures, index.html and report.md into `folder`; return their paths. Damaged
    result files are skipped and passed to `warn`."""
    found, damaged = boards.collect(results_dir)
    audits, damaged_audits = stored_audits.read_all(results_dir)
    for bad in damaged:
        if warn is not None:
            warn(bad.line())
    for path, reason in damaged_audits:
        if warn is not None:
            warn(f"{path}: {reason}")
    if not found and not audits:
        raise NoResultsError(f"no results under {results_dir}: run a task first, e.g. `python -m bench run knn-influence`")
    folder.mkdir(parents=True, exist_ok=True)
    galleries.reset(folder)
    built = sections(found, folder, warn) + [audit_view.section(outcome) for outcome in audits]
    html_path, markdown_path = folder / "index.html", folder / "report.md"
    html_path.write_text(html_page(title, built), encoding="utf-8")
    markdown_path.write_text(markdown_page(title, built), encoding="utf-8")
    return html_path, markdown_path, [folder / figure.file for section in built for figure in section.figures]
