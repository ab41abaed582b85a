"""Leaderboards rebuilt from stored result cells alone (no model, no store): rich terminal tables,
and the same tables as CSV, Markdown or JSON to paste into a paper or compare across machines."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console, Group
from rich.markup import escape

from bench import bootstrap, measures, ranking, results, tables
from bench.boards import Board, collect
from bench.encoders.spec import FAMILY_TITLES
from bench.report import render, views
from bench.report.captions import trace_rule, traced_tasks
from bench.report.output import emit
from bench.results import Cell
from bench.tables import Grid, Rows
from bench.tasks import Column

BOARD_VIEWS = ("tasks", "traces", "depth")  # what `leaderboard --view` shows
FORMATS = ("table", "csv", "markdown", "json")


ADJUSTMENTS = ("bh", "by", "none")
ADJUSTMENT_NAMES = {"bh": "Benjamini–Hochberg", "by": "Benjamini–Yekutieli", "none": "no adjustment"}


@dataclass(frozen=True)
class Mark:
    """One tested column of one cell on its board: the test's p-value, the p-value adjusted over
    the board's tests, and whether it is marked."""

    p: float | None
    adjusted: float | None
    marked: bool


def board_marks(board: Board, adjust: str = "bh") -> dict[tuple[str, str], Mark]:
    """(encoder, metric) -> its mark, for every column with an interval whose cell holds a test; the
    family is every such test on the board (each encoder × each marked column)."""
    keys, p_values = [], []
    for cell in board.cells:
        for column in board.task.columns:
            test = cell.tests.get(column.path) if column.interval else None
            if test is not None:
                keys.append((cell.encoder, column.path))
                p_values.append(test.p)
    adjusted = measures.adjust(p_values, adjust)
    return {key: Mark(p, q, q is not None and q <= measures.ALPHA) for key, p, q in zip(keys, p_values, adjusted)}


def marks_rule(board: Board, adjust: str) -> str:
    """The sentence that says what the board's marks control, and over how many tests."""
    tested = [mark for mark in board_marks(board, adjust).values() if mark.p is not None]
    if not tested:
        return "No marks: the cells hold no tests (computed with --permutations 0, or the test could not run; see the exports)."
    if adjust == "none":
        return (f"{bootstrap.MARK}: p ≤ {measures.ALPHA:g} in its own one-sided permutation test, unadjusted for the board's other "
                f"{len(tested) - 1} tests (p-values in the CSV and JSON exports).")
    how = ("which holds for the positively dependent one-sided tests of encoders measured on the same images"
           if adjust == "bh" else "which holds under any dependence between the tests")
    return (f"{bootstrap.MARK}: significant at {measures.ALPHA:g} after {ADJUSTMENT_NAMES[adjust]} false-discovery control over the "
            f"board's {len(tested)} tests (each encoder × each marked column), {how}; p-values, raw and adjusted, are in the CSV and "
            "JSON exports; --adjust none marks each test on its own.")


def rule(board: Board, adjust: str = "bh") -> str:
    """Everything printed under a board: how its numbers were made, then what its marks mean."""
    return f"{views.of(board.task).rule(list(board.cells))} {marks_rule(board, adjust)}"


def entry(cell: Cell, column: Column, decimals: int, mark: Mark | None = None) -> str:
    """A column's value as printed: with its interval, and a mark where its test passes the board's control."""
    decimals = decimals if column.decimals is None else column.decimals
    value = cell.value(column.path)
    bounds = cell.interval(column.path) if column.interval else None
    if bounds is None:
        return results.format_value(value, decimals) + (bootstrap.MARK if mark is not None and mark.marked else "")
    low, high = (_small(number, decimals) for number in bounds)
    return f"{_small(value, decimals)} [{low}, {high}]{bootstrap.MARK if mark is not None and mark.marked else ''}"


def _small(value: float, decimals: int) -> str:
    """As format_value, but a number too small for the decimals in two significant digits: an
    interval such as 0.000 [0.000, 0.000]* would hide the effect it marks."""
    if value and abs(value) < 0.5 * 10.0**-decimals:
        return f"{value:.1e}"
    return results.format_value(value, decimals)


def title(board: Board) -> str:
    return f"{board.task.name} · {board.title()} · {board.condition}"


def grid(board: Board, adjust: str = "bh") -> Grid:
    """One board as a table: encoders grouped by family, best first, the rule under it."""
    task = board.task
    marks = board_marks(board, adjust)
    groups = tuple(Rows(family_title(family), tuple(
        (cell.encoder, *(entry(cell, column, task.decimals, marks.get((cell.encoder, column.path))) for column in task.columns))
        for cell in members)) for family, members in results.by_family(task.primary, list(board.cells)))
    whole = (0, *(index for index, column in enumerate(task.columns, start=1) if column.interval))
    return Grid(title(board), ("encoder", *(column.header for column in task.columns)), groups, rule(board, adjust), keep_whole=whole)


def family_title(family: str) -> str:
    """How a board names an encoder family, everywhere it prints."""
    return FAMILY_TITLES.get(family, family)


def trace_grid(boards: list[Board], adjust: str = "bh") -> Grid | None:
    """The trace ranking as a table, or None when no two encoders share a contest."""
    found = ranking.contests(boards, adjust)
    if not found:
        return None
    families = {cell.encoder: cell.family for board in boards for cell in board.cells}
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
        rows.append([standing.encoder, family_title(standing.family), place, places,
                     f"{standing.borda:.2f}", str(standing.contests), str(standing.marked), *entries])
    legend = " ".join(f"c{number} = {contest.title}." for number, contest in enumerate(found, start=1))
    pairs = ranking.inseparable(found, standings)
    apart = (" Cannot be told apart (the 95 % interval of their Borda difference holds 0): "
             + "; ".join(f"{first} and {second}" for first, second in pairs) + ".") if pairs else ""
    unknown = " ranks ?: some cells keep no resamples (computed with --bootstrap 0)." if any(
        s.place is not None and s.places is None for s in standings) else ""
    tests = sum(p is not None for contest in found for p in contest.p_values.values())  # the family the control runs over
    control = (f" Marks: each contest's one-sided test in the trace's direction, {ADJUSTMENT_NAMES[adjust]} over the {tests} "
               f"such tests of all contests at {measures.ALPHA:g}." if adjust != "none" else
               f" Marks: each contest's one-sided test in the trace's direction at p ≤ {measures.ALPHA:g}, unadjusted (--adjust none).")
    return tables.grid("trace ranking · every task run", header, rows, caption=f"{legend} {trace_rule()}{control}{apart}{unknown}",
                       numbers=tuple(range(2, len(header))))


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def as_records(boards: list[Board], adjust: str = "bh") -> list[dict[str, Any]]:
    """Every board with its numbers unrounded: each column's value, and for columns with an
    interval its bounds, its test's p-value (raw and adjusted over the board) and mark, per
    encoder, with the cell's identity and provenance."""
    out = []
    for board in boards:
        task = board.task
        marks = board_marks(board, adjust)
        rows = []
        for cell in board.ordered():
            values = {}
            for column in task.columns:
                found: dict[str, Any] = {"value": _number(cell.value(column.path))}
                if column.absolute:  # as the follow-up study reports its gaps
                    found["absolute"] = None if found["value"] is None else abs(found["value"])
                bounds = cell.interval(column.path) if column.interval else None
                if bounds is not None:
                    found |= {"low": bounds[0], "high": bounds[1]}
                mark = marks.get((cell.encoder, column.path))
                if column.interval:
                    test = cell.tests.get(column.path)
                    found |= {"p": None if mark is None else mark.p, "p_adjusted": None if mark is None else mark.adjusted,
                              "marked": bool(mark is not None and mark.marked),
                              "alternative": None if test is None else test.alternative, "test": None if test is None else test.method}
                values[column.header] = found
            rows.append({"encoder": cell.encoder, "family": cell.family, "values": values, "inputs": dict(cell.inputs),
                         "dataset_identity": dict(cell.dataset_identity), "provenance": dict(cell.provenance)})
        out.append({"task": task.name, "dataset": board.dataset, "dataset_title": board.title(), "condition": board.condition,
                    "rule": rule(board, adjust), "adjustment": adjust, "tests": sum(m.p is not None for m in marks.values()),
                    "columns": [{"header": column.header, "metric": column.path, "interval": column.interval,
                                 "reference": column.baseline or ("0" if column.interval else None), "above": column.above,
                                 "follow_up": column.follow_up or None, "absolute": column.absolute}
                                for column in task.columns],
                    "rows": rows})
    return out


EXTRAS = ("low", "high", "p", "p_adjusted", "marked")  # written beside each column with an interval


def as_csv(boards: list[Board], adjust: str = "bh") -> str:
    """One row per board and encoder; a column per leaderboard column (their union, in order), and
    beside each column with an interval its bounds, its test's p-values and whether it is marked."""
    records = as_records(boards, adjust)
    names: list[str] = []
    for record in records:
        for column in record["columns"]:
            names += [column["header"]] + ([f"{column['header']} absolute"] if column["absolute"] else []) + (
                [f"{column['header']} {extra}" for extra in EXTRAS] if column["interval"] else [])
    names = list(dict.fromkeys(names))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["task", "dataset", "dataset_title", "condition", "encoder", "family", *names])
    for record in records:
        for row in record["rows"]:
            flat: dict[str, Any] = {}
            for header, found in row["values"].items():
                flat[header] = "" if found["value"] is None else repr(found["value"])
                for extra in ("absolute", *EXTRAS):
                    if extra in found:
                        flat[f"{header} {extra}"] = "" if found[extra] is None else (found[extra] if extra == "marked" else repr(found[extra]))
            writer.writerow([record["task"], record["dataset"], record["dataset_title"], record["condition"], row["encoder"], row["family"],
                             *(flat.get(name, "") for name in names)])
    return out.getvalue()


def as_markdown(boards: list[Board], adjust: str = "bh") -> str:
    """Each board as a Markdown table, the values as the terminal prints them, the rule below."""
    return "\n".join(line for board in boards for line in render.markdown(grid(board, adjust)))


def _traces_as(form: str, found: Grid) -> str:
    if form == "json":
        return json.dumps({"header": list(found.header), "rows": [list(row) for row in found.rows], "note": found.caption},
                          indent=2, ensure_ascii=False)
    if form == "csv":
        out = io.StringIO()
        csv.writer(out).writerows([found.header, *found.rows])
        return out.getvalue()
    return "\n".join(render.markdown(found))


def export(boards: list[Board], form: str, view: str = "tasks", adjust: str = "bh") -> str | None:
    """The boards (or their trace ranking) as CSV, Markdown or JSON; None where there is nothing to rank."""
    if view == "traces":
        found = trace_grid(boards, adjust)
        return None if found is None else _traces_as(form, found)
    if form == "csv":
        return as_csv(boards, adjust)
    if form == "markdown":
        return as_markdown(boards, adjust)
    return json.dumps({"boards": as_records(boards, adjust)}, indent=2, ensure_ascii=False, allow_nan=False)


def show(results_dir: Path, task_names: Iterable[str] | None = None, console: Console | None = None,
         errors: Console | None = None, view: str = "tasks", form: str = "table", out: Path | None = None, adjust: str = "bh",
         only: tuple[str, str] | None = None) -> int:
    """Print the leaderboards, or the trace ranking across them (and a line per damaged result
    file), as rich tables or in `form` (to `out` when given), marked after `adjust`'s
    false-discovery control; return how many tables there were. `only` (a dataset's key and a
    condition) keeps that one board and says how many others there are."""
    console = console or Console()
    boards, damaged = collect(results_dir, task_names)
    if only is not None:
        others = len([board for board in boards if (board.dataset, board.condition) != only])
        boards = [board for board in boards if (board.dataset, board.condition) == only]
        elsewhere = [bad for bad in damaged if results.board_of(bad.path) != only]  # files of other boards
        damaged = [bad for bad in damaged if bad not in elsewhere]
        if others or elsewhere:
            named = f" --task {next(iter(task_names))}" if task_names else ""
            skipped = f", and {len(elsewhere)} of their files skipped" if elsewhere else ""
            (errors or console).print(f"{others} other board(s) of this task in this home (other datasets or settings){skipped}: "
                                      f"`python -m bench leaderboard{named}` shows them all.", highlight=False)
    for bad in damaged:
        (errors or console).print(f"[yellow]warning:[/yellow] {escape(bad.line())}")
    which = f" for {', '.join(task_names)}" if task_names else ""
    if not boards:
        console.print(f"No results{which} under {results_dir}. Run a task first, e.g. `python -m bench run knn-influence`.")
        return 0
    if view == "depth":  # each task's effect against the block it was read at (bench.report.depth)
        from bench.report import depth

        return depth.show(boards, console, form, out, errors, marks=lambda board: board_marks(board, adjust))
    if view == "traces" and ranking.contests(boards) == []:
        named = [task.name for task in traced_tasks()]
        console.print(f"No trace ranking{which}: it needs a stored leaderboard of {', '.join(named[:-1])} or {named[-1]} "
                      "with at least two encoders.")
        return 0
    if form != "table":
        text = export(boards, form, view, adjust)
        assert text is not None
        emit(text, out, console, errors, f"{len(boards) if view == 'tasks' else 1} table(s)")
        return len(boards)
    if view == "traces":
        console.print(render.terminal(trace_grid(boards, adjust)))
        return 1
    console.print(Group(*(render.terminal(grid(board, adjust)) for board in boards)))
    return len(boards)
