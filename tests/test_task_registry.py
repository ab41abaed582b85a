"""A task is one module with one TaskSpec: registering a toy task is enough for `run`, its own
option, the leaderboard and the report to know it."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest

from bench import __main__ as cli
from bench import results, tasks
from bench.arguments import positive_int
from bench.boards import Board
from bench.report import plots, views
from bench.report.captions import TaskView
from bench.tasks.spec import Column, Inputs, TaskOption, TaskSpec, Work

POWER = TaskOption("power", "the norm's exponent (default: 2)", default=2, parse=positive_int)


@dataclass(frozen=True)
class MeanNorm:
    value: float
    power: int

    def metrics(self) -> dict[str, float]:
        return {"mean_norm": self.value}

    def resample(self, resampling: Any) -> Any:
        raise AssertionError("the toy task has no bootstrap unit")

    def detail(self) -> dict[str, Any]:
        return {"power": self.power}

    def provenance(self) -> dict[str, Any]:
        return {}

    def picks(self) -> None:
        return None


def _work(options: Mapping[str, Any], dataset: Any) -> Work:
    return Work(results.condition(power=options["power"]), ("jpeg95_444",), ("val",), options["power"])


def _measure(inputs: Inputs) -> MeanNorm:
    vectors = inputs.vectors["val"].vectors["jpeg95_444"]
    return MeanNorm(float(np.mean(np.linalg.norm(vectors, ord=inputs.settings, axis=1))), inputs.settings)


def _figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    figure = plots.family_bars(plt, board.ordered(), "mean_norm", "mean norm")
    return [plots.Figure(plots.save(plt, figure, folder, "toy.png"), "toy figure")]


TOY = TaskSpec(
    name="toy-norm", description="mean vector norm (a toy)", work=_work, measure=_measure,
    columns=(Column("mean norm", "mean_norm"),), options=(POWER,), default_dataset="demo-mini",
    view="tests.test_task_registry:TOY_VIEW",
)
TOY_VIEW = TaskView(rule=lambda cells: f"mean over val images of the vector's {results.setting(cells, 'power')}-norm", figures=_figures)


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tasks.TASKS, TOY.name, TOY)  # the task's one registry line: its view comes with it


def test_a_registered_task_runs_with_its_own_option_and_reaches_leaderboard_and_report(
    toy_registered: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--home", str(tmp_path), "run", "toy-norm", "--power", "1", "--encoders", "effnet/lite0.random"]) == 0
    (path,) = (tmp_path / "reports" / "results" / "toy-norm").glob("**/*.json")
    cell = json.loads(path.read_text())
    assert cell["condition"] == "power=1" and cell["metrics"]["mean_norm"] > 0
    assert cell["settings"] == {"power": 1}  # typed as the task decided it, not parsed back from the file's name
    out = " ".join(capsys.readouterr().out.split())  # the rule wraps at the terminal's width
    assert "toy-norm" in out and "mean norm" in out and "mean over val images of the vector's 1-norm" in out
    exported = tmp_path / "board.json"
    assert cli.main(["--home", str(tmp_path), "leaderboard", "--task", "toy-norm", "--format", "json", "--out", str(exported)]) == 0
    (board,) = json.loads(exported.read_text())["boards"]
    assert board["task"] == "toy-norm" and board["rows"][0]["values"]["mean norm"]["value"] == cell["metrics"]["mean_norm"]
    assert board["rule"].startswith("mean over val images of the vector's 1-norm")
    assert cli.main(["report", "--home", str(tmp_path)]) == 0  # --home after the verb works too
    page = (tmp_path / "reports" / "latest" / "index.html").read_text()
    assert "toy-norm · demo-mini" in page and (tmp_path / "reports" / "latest" / "toy.png").is_file()
    assert "vector&#x27;s 1-norm" in page


def test_a_task_whose_view_cannot_be_found_is_an_error_naming_both(monkeypatch: pytest.MonkeyPatch) -> None:
    lost = dataclasses.replace(TOY, view="tests.test_task_registry:NO_SUCH_VIEW")
    with pytest.raises(views.MissingViewError, match="toy-norm.*NO_SUCH_VIEW"):
        views.of(lost)
    with pytest.raises(views.MissingViewError, match="declares no view"):
        views.of(dataclasses.replace(TOY, view=""))
    with pytest.raises(views.MissingViewError, match="not a TaskView"):
        views.of(dataclasses.replace(TOY, view="tests.test_task_registry:POWER"))


def test_every_registered_task_declares_a_view_that_loads() -> None:
    for task in tasks.TASKS.values():
        assert isinstance(views.of(task), TaskView), task.name


def test_an_option_the_task_does_not_take_is_refused(toy_registered: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--home", str(tmp_path), "run", "knn-influence", "--power", "3"]) == 2
    error = capsys.readouterr().err
    assert "knn-influence does not take --power" in error and "--group" in error
    assert not (tmp_path / "embeddings").exists()


def test_two_different_options_under_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    clash = TaskSpec(name="clash", description="", work=_work, measure=_measure, columns=(Column("x", "x"),),
                     options=(TaskOption("k", "another k"),))
    monkeypatch.setitem(tasks.TASKS, clash.name, clash)
    with pytest.raises(ValueError, match="two different options named 'k'"):
        tasks.run_options()


def test_a_setting_the_cells_did_not_record_is_an_error_naming_it() -> None:
    cell = results.Cell(results.CellKey("toy-norm", "demo-mini", "effnet/lite0.random", "power=2"), "sup", {"mean_norm": 1.0},
                        settings={"power": 2})
    assert results.setting([cell], "power") == "2"
    with pytest.raises(results.MissingSettingError, match="records no setting 'k'; it records power"):
        results.setting([cell], "k")
    with pytest.raises(ValueError, match="do not make the condition"):  # settings and the file's name cannot disagree
        results.Cell(cell.key, "sup", {"mean_norm": 1.0}, settings={"power": 3})


def test_cells_of_an_older_version_of_a_task_are_skipped_by_boards_and_recomputed_by_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(tasks.TASKS, TOY.name, TOY)
    run = ["--home", str(tmp_path), "run", "toy-norm", "--power", "1", "--encoders", "effnet/lite0.random"]
    assert cli.main(run) == 0
    (path,) = (tmp_path / "reports" / "results" / "toy-norm").glob("**/*.json")
    assert json.loads(path.read_text())["task_version"] == 1
    monkeypatch.setitem(tasks.TASKS, TOY.name, dataclasses.replace(TOY, version=2))  # its cells now mean something else
    capsys.readouterr()
    assert cli.main(["--home", str(tmp_path), "leaderboard", "--task", "toy-norm"]) == 0
    printed = capsys.readouterr()
    printed = " ".join((printed.out + printed.err).split())
    assert "measured by version 1 of toy-norm" in printed and "No results" in printed  # skipped with the reason, not a traceback
    assert cli.main(run) == 0
    assert "measured by version 1 of toy-norm, this bench measures version 2" in " ".join(capsys.readouterr().err.split())
    assert json.loads(path.read_text())["task_version"] == 2
