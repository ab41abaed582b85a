"""The home is a boundary: nothing is written outside it through links, reserved names stay the
store's, and a bad output or option ends in one line, exit 2, with nothing written."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bench import __main__ as cli
from bench import results
from bench.store import Store, rows_to_arrow

RANDOM = "effnet/lite0.random"
METRICS = {"chance": 9.0, "gap_pos_minus_neg": 1.5, "knn_acc1.all_diff": 62.8, "knn_acc1.all_same": 69.6,
           "knn_acc1.neg_same": 65.1, "knn_acc1.pos_same": 66.6, "knn_acc1.uniform": 65.1}


def tiny_home(home: Path) -> Path:
    """A home holding one knn-influence cell (written directly: no extraction needed to report on it)."""
    key = results.CellKey("knn-influence", "demo-mini", RANDOM, "group=sharpening,k=1,seeds=1")
    return results.write(results.Cell(key, "sup", METRICS, intervals={"gap_pos_minus_neg": (0.5, 2.5)}), home / "reports" / "results")


def bench(home: Path, *arguments: str) -> int:
    try:
        return cli.main(["--home", str(home), *arguments])
    except SystemExit as stopped:  # argparse's own refusals
        return int(stopped.code)


def snapshot(folder: Path) -> dict[str, bytes | str]:
    """Every entry under `folder` (links as their target, not followed) and its bytes."""
    found: dict[str, bytes | str] = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            found[str(path.relative_to(folder))] = f"-> {path.readlink()}"
        elif path.is_file():
            found[str(path.relative_to(folder))] = path.read_bytes()
    return found


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "index.html").write_text("mine")
    (folder / "keep.txt").write_text("keep")
    return folder


def test_a_report_folder_that_is_a_link_out_of_the_home_is_refused(tmp_path: Path, outside: Path, capsys) -> None:
    home = tmp_path / "home"
    tiny_home(home)
    (home / "reports" / "evil").symlink_to(outside)
    before = snapshot(outside)
    assert bench(home, "report", "--name", "evil") == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "leaves the home" in error and "Traceback" not in error
    assert snapshot(outside) == before


def test_a_gallery_link_inside_a_report_folder_is_refused(tmp_path: Path, outside: Path, capsys) -> None:
    home = tmp_path / "home"
    tiny_home(home)
    (home / "reports" / "latest").mkdir()
    (home / "reports" / "latest" / "gallery").symlink_to(outside)
    before = snapshot(outside)
    assert bench(home, "report") == 2
    assert "symbolic link leading outside the home" in " ".join(capsys.readouterr().err.split())
    assert snapshot(outside) == before


def test_a_results_folder_linked_out_of_the_home_stops_a_run_before_any_work(tmp_path: Path, outside: Path, capsys) -> None:
    home = tmp_path / "home"
    (home / "reports").mkdir(parents=True)
    (home / "reports" / "results").symlink_to(outside)
    before = snapshot(outside)
    assert bench(home, "run", "knn-influence", "--dataset", "demo-mini", "--encoders", RANDOM) == 2
    assert "leaves the home" in " ".join(capsys.readouterr().err.split())
    assert snapshot(outside) == before and not (home / "embeddings").exists()


@pytest.mark.parametrize("name", ["results", "superseded", "rejects", "a" * 300])
def test_report_names_of_the_store_and_overlong_names_are_refused(name: str, tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    tiny_home(home)
    before = snapshot(home)
    assert bench(home, "report", "--name", name) == 2
    error = capsys.readouterr().err
    assert "--name" in error and "Traceback" not in error
    assert snapshot(home) == before


def test_a_link_inside_the_home_is_followed(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    tiny_home(home)
    (home / "elsewhere-inside").mkdir()
    (home / "reports" / "mine").symlink_to(home / "elsewhere-inside")
    assert bench(home, "report", "--name", "mine") == 0
    assert (home / "elsewhere-inside" / "index.html").is_file()


def _dangling(tmp_path: Path) -> Path:
    link = tmp_path / "dangling.csv"
    link.symlink_to(tmp_path / "missing-folder" / "x.csv")
    return link


OUTPUT_ERRORS = {
    "leaderboard to a full disk": (lambda tmp: ["leaderboard", "--format", "csv", "--out", "/dev/full"], "No space left"),
    "leaderboard onto a dangling link": (lambda tmp: ["leaderboard", "--format", "json", "--out", str(_dangling(tmp))], "does not exist"),
    "leaderboard table to a file": (lambda tmp: ["leaderboard", "--out", str(tmp / "board.txt")], "--format"),
    "home is a file": (lambda tmp: ["--home", str(tmp / "file"), "leaderboard"], "is a file"),
    "query --k without --like": (lambda tmp: ["query", "--encoder", RANDOM, "--k", "3"], "--like"),
    "commit seconds nan": (lambda tmp: ["extract", "--encoders", RANDOM, "--commit-seconds", "nan"], "finite"),
    "an overlong output name": (lambda tmp: ["leaderboard", "--format", "csv", "--out", str(tmp / ("x" * 300))], "too long a name"),
    "an overlong root": (lambda tmp: ["run", "knn-influence", "--dataset", "imagefolder", "--root", str(tmp / ("x" * 300)),
                                      "--encoders", RANDOM], "too long a name"),
    "a NUL in an argument": (lambda tmp: ["list", "encoders", "--encoders-file", "\x00"], "holds a NUL character"),
}


def test_a_nul_in_a_path_an_encoders_file_names_is_one_line(tmp_path: Path, capsys) -> None:
    path = tmp_path / "nul.toml"
    path.write_text('[[encoder]]\nname = "mine/nul"\nfamily = "sup"\nloader = "timm"\narchitecture = "resnet18"\n'
                    'input_size = 224\nembed_dim = 512\nweights = "a\\u0000b.pt"\n', encoding="utf-8")
    assert bench(tmp_path / "home", "list", "encoders", "--encoders-file", str(path)) == 2
    error = capsys.readouterr().err
    assert "holds a NUL character" in error and len(error.strip().splitlines()) == 1


@pytest.mark.parametrize("case", OUTPUT_ERRORS)
def test_output_and_option_errors_are_one_line_and_exit_2(case: str, tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    tiny_home(home)
    (tmp_path / "file").write_text("not a folder")
    argv, expected = OUTPUT_ERRORS[case]
    before = snapshot(tmp_path)
    assert bench(home, *argv(tmp_path)) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert expected in error and "Traceback" not in error
    assert {name: value for name, value in snapshot(tmp_path).items() if name != "dangling.csv"} == \
        {name: value for name, value in before.items() if name != "dangling.csv"}
    assert not (tmp_path / "missing-folder").exists() and not (tmp_path / "board.txt").exists()


def test_a_long_filter_is_not_echoed_whole(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    _table(home)
    where = "label = 1 AND " * 8000 + "x"
    assert bench(home, "query", "--dataset", "demo-mini", "--encoder", RANDOM, "--where", where) == 2
    error = capsys.readouterr().err
    assert "--where" in error and len(error) < 2000


def _table(home: Path) -> Path:
    """A tiny real table for demo-mini x the random encoder, written directly through the store."""
    store = Store(home / "embeddings")
    schema = store.prepare("demo-mini", RANDOM, 4, {"weights": "a"})
    rows = [{"image_id": f"i{n}", "split": "train", "processing": "original", "group": "jpeg", "op_version": 1,
             "source_stamp": "s", "label": n % 2, "label_name": f"c{n % 2}"} for n in range(3)]
    store.write("demo-mini", RANDOM, rows_to_arrow(rows, np.eye(3, 4, dtype=np.float32), schema))
    (table,) = (home / "embeddings").glob("*.lance")
    return table


def test_a_table_folder_without_versions_is_one_line_naming_the_rebuild(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    table = _table(home)
    assert bench(home, "query", "--dataset", "demo-mini", "--encoder", RANDOM) == 0
    shutil.rmtree(table / "_versions")
    capsys.readouterr()
    assert bench(home, "query", "--dataset", "demo-mini", "--encoder", RANDOM) == 2
    error = " ".join(capsys.readouterr().err.split())
    assert error.startswith("error: table") and table.stem in error and "--rebuild" in error and "Traceback" not in error


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None])
def test_a_cell_whose_primary_metric_is_not_finite_is_recomputed_not_served(value: float | None, tmp_path: Path, monkeypatch) -> None:
    from rich.console import Console

    from bench import data, runner, tasks
    from bench.workspace import Workspace

    home = tmp_path / "home"
    path = tiny_home(home)
    task = tasks.get("knn-influence")
    request = runner.RunRequest(workspace=Workspace.at(home), dataset="demo-mini", encoders=(RANDOM,), console=Console(file=None, stderr=True))
    dataset = data.resolve("demo-mini")
    work = task.work(runner.options_of(task, {"group": "sharpening", "k": 1, "seeds": 1}), dataset)
    monkeypatch.setattr(runner.identity, "changes", lambda stored, wanted: [])  # every input unchanged: only the numbers decide
    monkeypatch.setattr(runner, "fingerprint", lambda *arguments: {})
    store = Store(home / "embeddings")
    assert runner._stale(request, task, dataset, work, store, None) == []  # a sound cell is served
    document = json.loads(path.read_text())
    document["metrics"]["knn_acc1.all_same"] = value
    path.write_text(json.dumps(document))
    (pending,) = runner._stale(request, task, dataset, work, store, None)
    assert pending[0].name == RANDOM


def test_a_full_disk_while_writing_the_home_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    import errno

    from bench.report import writer

    home = tmp_path / "home"
    tiny_home(home)

    def full(results_dir: Path, folder: Path, *arguments: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(folder / "index.html"))

    monkeypatch.setattr(writer, "write", full)
    assert bench(home, "report") == 2
    error = " ".join(capsys.readouterr().err.split())
    assert "index.html: no space left on the disk" in error and "Traceback" not in error
