"""A task is one module with one TaskSpec: registering a toy task is enough for `run`, its own
option, the leaderboard and the report to know it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench import __main__ as cli
from bench import plots, results, tasks
from bench.arguments import positive_int
from bench.tasks.cells import Computed, run_cells
from bench.tasks.request import RunRequest
from bench.tasks.spec import Column, TaskOption, TaskSpec

POWER = TaskOption("power", "the norm's exponent (default: 2)", default=2, parse=positive_int)


def _execute(request: RunRequest) -> list[Path]:
    power = request.value(POWER)

    def compute(spec, store, key) -> Computed:
        vectors = store.split_vectors(key, spec.name, "val", ["jpeg95_444"]).vectors["jpeg95_444"]
        return Computed("mean_norm", {"mean_norm": float(np.mean(np.linalg.norm(vectors, ord=power, axis=1)))}, {"power": power})

    return run_cells(request, task="toy-norm", condition=results.condition(power=power), processings=["jpeg95_444"],
                     splits=("val",), compute=compute)


def _figures(plt, folder: Path, task: TaskSpec, dataset: str, condition: str, cells: list[dict[str, Any]]) -> list[plots.Figure]:
    figure = plots.family_bars(plt, cells, "mean_norm", "mean norm")
    return [plots.Figure(plots.save(plt, figure, folder, "toy.png"), "toy figure")]


TOY = TaskSpec(
    name="toy-norm", description="mean vector norm (a toy)", execute=_execute,
    columns=(Column("mean norm", "mean_norm"),), rule=lambda cells: "mean over val images of the vector's p-norm",
    options=(POWER,), figures=_figures, default_dataset="demo-mini",
)


@pytest.fixture
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(tasks.TASKS, TOY.name, TOY)  # the one registry line


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
    clash = TaskSpec(name="clash", description="", execute=_execute, columns=(Column("x", "x"),), rule=lambda cells: "",
                     options=(TaskOption("k", "another k"),))
    monkeypatch.setitem(tasks.TASKS, clash.name, clash)
    with pytest.raises(ValueError, match="two different options named 'k'"):
        tasks.run_options()
