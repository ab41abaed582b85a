"""A task is one module with one TaskSpec: registering a toy task is enough for `run`, its own
option, the leaderboard and the report to know it."""

from __future__ import annotations

import json
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pytest

from bench import __main__ as cli
from bench import results, tasks
from bench.arguments import positive_int
from bench.boards import Board
from bench.report import plots, views
from bench.report.captions import View
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


def _plan(options: Mapping[str, Any], dataset: Any) -> Work:
    return Work(results.condition(power=options["power"]), ("jpeg95_444",), ("val",), options["power"])


def _measure(inputs: Inputs) -> MeanNorm:
    vectors = inputs.vectors["val"].vectors["jpeg95_444"]
    return MeanNorm(float(np.mean(np.linalg.norm(vectors, ord=inputs.settings, axis=1))), inputs.settings)


def _figures(plt: Any, folder: Path, board: Board) -> list[plots.Figure]:
    figure = plots.family_bars(plt, board.ordered(), "mean_norm", "mean norm")
    return [plots.Figure(plots.save(plt, figure, folder, "toy.png"), "toy figure")]


TOY = TaskSpec(
    name="toy-norm", description="mean vector norm (a toy)", plan=_plan, measure=_measure,
    columns=(Column("mean norm", "mean_norm"),), options=(POWER,), default_dataset="demo-mini",
)
TOY_VIEW = View(rule=lambda cells: "mean over val images of the vector's p-norm", figures=_figures)


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tasks.TASKS, TOY.name, TOY)  # the task's registry line
    monkeypatch.setitem(views.VIEWS, TOY.name, TOY_VIEW)  # and its pictures' line


def test_a_registered_task_runs_with_its_own_option_and_reaches_leaderboard_and_report(
    toy_registered: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["--home", str(tmp_path), "run", "toy-norm", "--power", "1", "--encoders", "effnet/lite0.random"]) == 0
    (path,) = (tmp_path / "reports" / "results" / "toy-norm").glob("**/*.json")
    cell = json.loads(path.read_text())
    assert cell["condition"] == "power=1" and cell["metrics"]["mean_norm"] > 0
    out = capsys.readouterr().out
    assert "toy-norm" in out and "mean norm" in out and "mean over val images" in out
    assert cli.main(["report", "--home", str(tmp_path)]) == 0  # --home after the verb works too
    page = (tmp_path / "reports" / "latest" / "index.html").read_text()
    assert "toy-norm · demo-mini" in page and (tmp_path / "reports" / "latest" / "toy.png").is_file()


def test_an_option_the_task_does_not_take_is_refused(toy_registered: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--home", str(tmp_path), "run", "knn-influence", "--power", "3"]) == 2
    error = capsys.readouterr().err
    assert "knn-influence does not take --power" in error and "--group" in error
    assert not (tmp_path / "embeddings").exists()


def test_two_different_options_under_one_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    clash = TaskSpec(name="clash", description="", plan=_plan, measure=_measure, columns=(Column("x", "x"),),
                     options=(TaskOption("k", "another k"),))
    monkeypatch.setitem(tasks.TASKS, clash.name, clash)
    with pytest.raises(ValueError, match="two different options named 'k'"):
        tasks.run_options()
