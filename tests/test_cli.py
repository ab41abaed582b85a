"""The command line as a user meets it: run, cached rerun, leaderboard from files, helpful errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.store import Store
from tests.conftest import run_bench

RUN = ("run", "knn-influence", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random", "--group", "sharpening", "--seeds", "2")


def test_run_then_cached_rerun_then_leaderboard_from_result_files_alone(tmp_path: Path) -> None:
    first = run_bench(tmp_path, *RUN)
    assert first.returncode == 0, first.stderr
    cells = list((tmp_path / "reports" / "results" / "knn-influence").glob("**/*.json"))
    assert len(cells) == 1
    cell = json.loads(cells[0].read_text())
    assert cell["encoder"] == "effnet/lite0.random" and cell["family"] == "sup"
    assert {name for name in cell["metrics"] if name.startswith("knn_acc1.")} == {
        f"knn_acc1.{name}" for name in ("all_same", "all_diff", "pos_same", "neg_same", "uniform")}
    assert len(cell["detail"]["triples"]) == 27 and len(cell["detail"]["uniform"]) == 6
    assert cell["provenance"]["fingerprint"]["weights"].startswith("random-init")
    # demo-mini's crops of one photo are one unit: the gap's interval redraws photos, its test permutes versions
    assert cell["schema"] == 3 and cell["provenance"]["bootstrap"]["unit"] == "source photo"
    assert cell["tests"]["gap_pos_minus_neg"]["alternative"] == "greater" and 0 < cell["tests"]["gap_pos_minus_neg"]["p"] <= 1
    assert cell["inputs"]["dataset"]["units"] is not None
    assert "effnet/lite0.random" in first.stdout and "pos−neg" in first.stdout

    table = Store(tmp_path / "embeddings")
    version = table.version("demo-mini", "effnet/lite0.random")
    second = run_bench(tmp_path, *RUN)
    assert second.returncode == 0, second.stderr
    assert "cached" in second.stderr and "extract" not in second.stderr
    assert table.version("demo-mini", "effnet/lite0.random") == version  # nothing extracted, nothing written
    assert json.loads(cells[0].read_text()) == cell

    shutil.rmtree(tmp_path / "embeddings")  # the leaderboard needs nothing but the result files
    board = run_bench(tmp_path, "leaderboard")
    assert board.returncode == 0, board.stderr
    all_same = f"{cell['metrics']['knn_acc1.all_same']:.2f}"
    assert "effnet/lite0.random" in board.stdout and all_same in board.stdout


def test_unknown_names_fail_fast_with_suggestions(tmp_path: Path) -> None:
    typo = run_bench(tmp_path, "run", "knn-influence", "--encoders", "effnet/lite0.rando")
    assert typo.returncode == 2
    assert "effnet/lite0.random" in typo.stderr and "Traceback" not in typo.stderr
    task = run_bench(tmp_path, "run", "knn-influense")
    assert task.returncode == 2 and "knn-influence" in task.stderr
    group = run_bench(tmp_path, "run", "knn-influence", "--group", "jpg")
    assert group.returncode == 2 and "jpeg" in group.stderr
    assert not (tmp_path / "embeddings").exists()


def test_list_verbs_show_registries(tmp_path: Path) -> None:
    for kind, expected in (("encoders", "effnet/lite0.in1k"), ("datasets", "demo"), ("tasks", "knn-influence"), ("processings", "jpeg75_420")):
        listed = run_bench(tmp_path, "list", kind)
        assert listed.returncode == 0 and expected in listed.stdout, listed.stderr


def test_leaderboard_without_results_says_what_to_run(tmp_path: Path) -> None:
    board = run_bench(tmp_path, "leaderboard")
    assert board.returncode == 0 and "bench run knn-influence" in board.stdout


def test_paircams_runs_offline_on_its_simulation_and_refuses_unpaired_data(tmp_path: Path) -> None:
    """`run paircams` defaults to paircams-sim, writes a cell whose numbers match the store, and
    a dataset without subjects and camera classes gets a clear error."""
    import numpy as np

    from bench.tasks.paircams import recall_at_1

    done = run_bench(tmp_path, "run", "paircams", "--encoders", "effnet/lite0.random", "--batch-size", "16")
    assert done.returncode == 0, done.stderr
    (path,) = (tmp_path / "reports" / "results" / "paircams").glob("**/*.json")
    cell = json.loads(path.read_text())
    assert cell["dataset"] == "paircams-sim" and cell["detail"]["pairs"] == 242
    entries = cell["picks"]["entries"]  # what the report's gallery redraws
    assert len(entries) == 3 and all(Path(entry["query"]["path"]).is_file() and entry["target"]["target"] for entry in entries)
    rows = Store(tmp_path / "embeddings").scan("paircams-sim", "effnet/lite0.random", columns=["subject_id", "camera_class", "vector"])
    vectors = np.stack(rows.column("vector").to_numpy(zero_copy_only=False))
    again = recall_at_1(vectors, rows.column("subject_id").to_numpy(), rows.column("camera_class").to_numpy())
    assert cell["metrics"]["recall_at_1.same"] == np.mean(list(again.same.values()))
    assert cell["metrics"]["recall_at_1.different"] == np.mean(list(again.different.values()))
    assert "same−diff" in done.stdout and "effnet/lite0.random" in done.stdout

    wrong = run_bench(tmp_path, "run", "paircams", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random")
    assert wrong.returncode == 2 and "paircams-sim" in wrong.stderr and "Traceback" not in wrong.stderr


def test_plan_says_what_a_run_would_do_and_does_none_of_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    arguments = ("run", "knn-influence", "--dataset", "demo-mini", "--encoders", "effnet/lite0.random", "--group", "sharpening")
    planned = run_bench(home, *arguments, "--plan")
    assert planned.returncode == 0, planned.stderr
    text = " ".join(planned.stderr.split())
    rows = 66 * 3  # demo-mini: 11 classes x 6 images, under 3 processings
    assert "1 cell(s) to compute" in text and f"{rows} items to prepare" in text and "Estimated time here:" in text
    line = next(line for line in planned.stderr.splitlines() if "effnet/lite" in line)
    assert [cell.strip() for cell in line.split("│")[2:4]] == ["0", str(rows)]  # stored, missing
    assert not home.exists() or not any(home.rglob("*.json")) and not (home / "embeddings").exists()
    done = run_bench(home, *arguments)
    assert done.returncode == 0, done.stderr
    assert f"{rows} items to prepare" in " ".join(done.stderr.split())  # the same summary opens the real run
    again = run_bench(home, *arguments, "--plan")
    assert "cached:" in again.stderr and "to compute" not in again.stderr
