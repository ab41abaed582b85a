"""Rich terminal leaderboards rebuilt from stored result cells alone (no model, no store)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from bench import bootstrap, ranking, results
from bench.encoders.spec import FAMILY_TITLES
from bench.tasks import TASKS, Column, TaskSpec

Board = tuple[TaskSpec, str, str, list[dict[str, Any]]]  # (task, dataset key, condition, cells)


def collect(results_dir: Path, task_names: Iterable[str] | None = None) -> tuple[list[Board], list[results.Damaged]]:
    """Every leaderboard the stored cells allow, and the files that could not be read as cells."""
    boards: list[Board] = []
    damaged: list[results.Damaged] = []
    for name in task_names or TASKS:
        task = TASKS[name]
        cells, bad = results.read_cells(results_dir, task.name)
        damaged += bad
        key = lambda cell: (cell["dataset"], cell["condition"])  # noqa: E731
        for (dataset, condition), group in itertools.groupby(sorted(cells, key=key), key=key):
            boards.append((task, dataset, condition, list(group)))
    return boards, damaged


def dataset_title(dataset: str, cells: list[dict[str, Any]]) -> str:
    """The dataset as a reader needs it named: with its folder, so two folders are never confused."""
    identity = cells[0].get("dataset_identity") if cells else None
    if not isinstance(identity, dict) or not identity.get("root"):
        return dataset
    name = f"{identity.get('name')}@{identity['attribute']}" if identity.get("attribute") else str(identity.get("name"))
    return f"{name} ({identity['root']})"


def entry(cell: dict[str, Any], column: Column, decimals: int) -> str:
    """A column's value as printed: with its interval and a mark where the interval excludes the baseline."""
    decimals = decimals if column.decimals is None else column.decimals
    value = results.metric(cell, column.path)
    bounds = results.interval(cell, column.path) if column.interval else None
    if bounds is None or value is None:
        return results.format_value(value, decimals)
    reference = results.metric(cell, column.baseline) if column.baseline else 0.0
    mark = bootstrap.MARK if reference is not None and bootstrap.excludes(bounds, reference, column.above) else ""
    low, high = (_small(number, decimals) for number in bounds)
    return f"{_small(value, decimals)} [{low}, {high}]{mark}"


def _small(value: float, decimals: int) -> str:
    """As format_value, but a number too small for the decimals in two significant digits: an
    interval such as 0.000 [0.000, 0.000]* would hide the effect it marks."""
    if value and abs(value) < 0.5 * 10.0**-decimals:
        return f"{value:.1e}"
    return results.format_value(value, decimals)


def table(task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> Table:
    """One table per (task, dataset, condition): encoders grouped by family, best first."""
    title = f"{task.name} · {dataset_title(dataset, cells)} · {condition}"
    grid = Table(title=escape(title), title_justify="left", caption=escape(task.rule(cells)), caption_justify="left")
    grid.add_column("encoder", style="bold", no_wrap=True)
    for column in task.columns:
        grid.add_column(column.header, justify="right", no_wrap=column.interval)  # an interval reads badly split over lines
    for family, members in results.by_family(task.primary, cells):
        grid.add_section()
        grid.add_row(Text(FAMILY_TITLES.get(family, family), style="italic cyan"), *[""] * len(task.columns))
        for cell in members:
            grid.add_row(escape(cell["encoder"]), *(escape(entry(cell, column, task.decimals)) for column in task.columns))
    return grid


VIEWS = ("tasks", "traces")


def trace_rows(boards: list[Board]) -> tuple[list[str], list[list[str]], str] | None:
    """The trace ranking as (header, rows, note), or None when no two encoders share a contest."""
    found = ranking.contests(boards)
    if not found:
        return None
    families = {cell["encoder"]: cell.get("family", "?") for *_, cells in boards for cell in cells}
    header = ["encoder", "family", "#", "ranks", "Borda", "contests", "marked", *(f"c{number}" for number in range(1, len(found) + 1))]
    rows = []
    standings = ranking.borda(found, families)
    for standing in standings:
        entries = [
            f"{results.format_value(contest.strengths[standing.encoder])}{bootstrap.MARK if contest.certain[standing.encoder] else ''}"
            f" ({contest.ranks[standing.encoder]:g})" if standing.encoder in contest.strengths else "—"
            for contest in found
        ]
        place = "—" if standing.place is None else str(standing.place)
        places = "no trace" if standing.place is None else (f"{standing.places[0]}–{standing.places[1]}" if standing.places else "?")
        rows.append([standing.encoder, standing.family.upper(), place, places,
                     f"{standing.borda:.2f}", str(standing.contests), str(standing.marked), *entries])
    legend = " ".join(f"c{number} = {contest.task.name} · {dataset_title(contest.dataset, _cells(boards, contest))} · "
                      f"{contest.condition} ({contest.task.trace.label})." for number, contest in enumerate(found, start=1))
    pairs = ranking.inseparable(found, standings)
    apart = (" Cannot be told apart (the 95 % interval of their Borda difference holds 0): "
             + "; ".join(f"{first} and {second}" for first, second in pairs) + ".") if pairs else ""
    unknown = " ranks ?: some cells keep no resamples (computed with --bootstrap 0 or by an older bench)." if any(
        s.place is not None and s.places is None for s in standings) else ""
    return header, rows, f"{legend} {ranking.RULE}{apart}{unknown}"


def _cells(boards: list[Board], contest: ranking.Contest) -> list[dict[str, Any]]:
    wanted = (contest.task, contest.dataset, contest.condition)
    return next(cells for task, dataset, condition, cells in boards if (task, dataset, condition) == wanted)


def trace_table(boards: list[Board]) -> Table | None:
    """The trace ranking as a rich table, or None when there is nothing to rank."""
    found = trace_rows(boards)
    if found is None:
        return None
    header, rows, note = found
    grid = Table(title="trace ranking · every task run", title_justify="left", caption=escape(note), caption_justify="left")
    for name in header:
        grid.add_column(name, justify="left" if name in ("encoder", "family") else "right", style="bold" if name == "encoder" else None)
    for row in rows:
        grid.add_row(*(escape(value) for value in row))
    return grid


def show(results_dir: Path, task_names: Iterable[str] | None = None, console: Console | None = None,
         errors: Console | None = None, view: str = "tasks") -> int:
    """Print the leaderboards, or the trace ranking across them (and a line per damaged result
    file); return how many tables there were."""
    console = console or Console()
    boards, damaged = collect(results_dir, task_names)
    for bad in damaged:
        (errors or console).print(f"[yellow]warning:[/yellow] {escape(bad.line())}")
    which = f" for {', '.join(task_names)}" if task_names else ""
    if not boards:
        console.print(f"No results{which} under {results_dir}. Run a task first, e.g. `python -m bench run knn-influence`.")
        return 0
    if view == "traces":
        ranked = trace_table(boards)
        if ranked is None:
            console.print(f"No trace ranking{which}: it needs a stored leaderboard of knn-influence, paircams, probe-processing or "
                          "probe-acquisition with at least two encoders.")
            return 0
        console.print(ranked)
        return 1
    console.print(Group(*(table(*board) for board in boards)))
    return len(boards)
