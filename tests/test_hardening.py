"""bench under real use: which folder a table is about, damaged result files, the mistakes people
make (one clear line, exit 2, nothing left behind), and decoding details."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from bench import __main__ as cli
from bench import data, encoders, extraction, results
from bench.data import DatasetOptions
from bench.store import Store
from tests.test_exif import shot, write_image

RANDOM = "effnet/lite0.random"
KNN = ("run", "knn-influence", "--encoders", RANDOM, "--group", "sharpening", "--seeds", "1", "--k", "1")


def photo(path: Path, seed: int, size: tuple[int, int] = (40, 32), mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if mode == "I;16":
        Image.fromarray(rng.integers(0, 65535, size[::-1], dtype=np.uint16)).save(path)
    else:
        Image.fromarray(rng.integers(0, 255, (*size[::-1], 3), dtype=np.uint8)).save(path)
    return path


def class_folder(root: Path, seed: int, classes: tuple[str, ...] = ("cat", "dog"), train: int = 3, val: int = 1) -> Path:
    for split, count in (("train", train), ("val", val)):
        for number, name in enumerate(classes):
            for index in range(count):
                photo(root / split / name / f"{index}.png", seed * 1000 + number * 100 + index + (50 if split == "val" else 0))
    return root


def bench(home: Path, *arguments: str) -> int:
    return cli.main(["--home", str(home), *arguments])


def cells_of(home: Path, task: str = "knn-influence") -> list[Path]:
    return sorted((home / "reports" / "results" / task).glob("**/*.json"))


def test_two_folders_get_their_own_tables_and_cells_and_a_changed_folder_is_refused(tmp_path: Path, capsys) -> None:
    home, first, second = tmp_path / "home", class_folder(tmp_path / "a" / "photos", 1), class_folder(tmp_path / "b" / "photos", 2)
    assert bench(home, *KNN, "--dataset", "imagefolder", "--root", str(first)) == 0
    assert bench(home, *KNN, "--dataset", "imagefolder", "--root", str(second)) == 0
    assert "cached" not in capsys.readouterr().err  # same names, another folder: computed, not served from the first
    keys = {data.get("imagefolder").store_key(DatasetOptions(root=root)) for root in (first, second)}
    assert len(keys) == 2 and all(Store(home / "embeddings").has_table(key, RANDOM) for key in keys)
    cells = [json.loads(path.read_text()) for path in cells_of(home)]
    assert {cell["dataset"] for cell in cells} == keys
    assert {cell["dataset_identity"]["root"] for cell in cells} == {str(first.resolve()), str(second.resolve())}
    capsys.readouterr()
    assert bench(home, "leaderboard") == 0
    assert str(first.resolve()) in capsys.readouterr().out.replace("\n", "")  # titles name the folder

    photo(first / "train" / "cat" / "new.png", 99)  # the folder changes
    (first / "train" / "dog" / "0.png").rename(first / "train" / "cat" / "moved.png")
    assert bench(home, *KNN, "--dataset", "imagefolder", "--root", str(first)) == 2
    error = capsys.readouterr().err
    error = " ".join(error.split())
    assert "stale" in error and "has changed since" in error and "8 images then and 9 now" in error
    assert "1 stored image(s) are gone or renamed" in error and "--rebuild" in error
    assert bench(home, *KNN, "--dataset", "imagefolder", "--root", str(first), "--rebuild") == 0


def test_damaged_result_files_are_named_skipped_and_recomputed(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    root = class_folder(tmp_path / "photos", 3)
    assert bench(home, *KNN, "--dataset", "imagefolder", "--root", str(root)) == 0
    (cell,) = cells_of(home)
    good = json.loads(cell.read_text())
    cell.write_text(cell.read_text()[:40])  # truncated
    (cell.parent / "empty.json").write_text("")
    (cell.parent / "foreign.json").write_text(json.dumps({"some": "thing"}))
    capsys.readouterr()
    assert bench(home, "leaderboard") == 0
    both = capsys.readouterr()
    for name in (cell.name, "empty.json", "foreign.json"):
        assert name in both.err.replace("\n", "")
    assert "No results" in both.out and "Traceback" not in both.err
    assert bench(home, "report") == 2  # nothing readable to report on: said plainly
    assert "run a task first" in capsys.readouterr().err
    assert bench(home, *KNN, "--dataset", "imagefolder", "--root", str(root)) == 0
    assert "cached" not in capsys.readouterr().err
    again = json.loads(cell.read_text())
    assert again["metrics"] == good["metrics"]


def _binary(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)
    return path


USER_ERRORS = {
    "read-only home": (lambda tmp: ["--home", "/sys/bench-home", *KNN, "--dataset", "demo-mini"], "cannot write"),
    "home is a file": (lambda tmp: ["--home", str(_binary(tmp / "file")), *KNN, "--dataset", "demo-mini"], "is a file"),
    "encoders file is binary": (lambda tmp: ["--encoders-file", str(_binary(tmp / "enc.toml")), "list", "encoders"], "not a text file"),
    "encoders file is a folder": (lambda tmp: ["--encoders-file", str(tmp), "list", "encoders"], "is a folder"),
    "negative workers": (lambda tmp: ["extract", "--encoders", RANDOM, "--workers", "-1"], "must be 0 or more"),
    "cuda without a GPU": (lambda tmp: ["extract", "--encoders", RANDOM, "--device", "cuda"], "no CUDA GPU"),
    "ray address without the ray engine": (lambda tmp: ["extract", "--encoders", RANDOM, "--ray-address", "127.0.0.1:6379"], "add --engine ray"),
    "misspelt device": (lambda tmp: ["extract", "--encoders", RANDOM, "--device", "gpu0"], "not a device name"),
    "unknown split": (lambda tmp: ["extract", "--dataset", "demo-mini", "--encoders", RANDOM, "--splits", "trian"], "unknown split"),
    "empty split": (lambda tmp: ["extract", "--dataset", "demo-mini", "--encoders", RANDOM, "--splits", "test"], "no images in test"),
    "k beyond the database": (lambda tmp: [*KNN[:-2], "--k", "1000", "--dataset", "demo-mini"], "larger than the database"),
    "one class": (lambda tmp: [*KNN, "--dataset", "imagefolder", "--root", str(class_folder(tmp / "one", 4, ("cat",)))], "needs at least two"),
    "empty class folders": (lambda tmp: [*KNN, "--dataset", "imagefolder", "--root", str(_empty_classes(tmp))], "no images found"),
    "option of another task": (lambda tmp: [*KNN, "--mask", "0.9"], "does not take --mask"),
    "one camera make": (lambda tmp: ["run", "probe-acquisition", "--root", str(_one_make(tmp)), "--encoders", RANDOM], "single class"),
    "a folder for a dataset that takes none": (lambda tmp: [*KNN, "--dataset", "demo-mini", "--root", str(tmp)], "takes no --root"),
    "an attribute for a dataset without one": (lambda tmp: [*KNN, "--dataset", "demo-mini", "--attribute", "make"], "takes no --attribute"),
    "no encoders": (lambda tmp: ["run", "knn-influence", "--encoders", ""], "names nothing"),
    "no processings": (lambda tmp: ["extract", "--encoders", RANDOM, "--processings", " , "], "names nothing"),
    "no splits": (lambda tmp: ["extract", "--encoders", RANDOM, "--splits", ""], "names nothing"),
    "a report name that is a path": (lambda tmp: ["report", "--name", "../../elsewhere"], "a report name is one folder name"),
    "query output in a missing folder": (lambda tmp: ["query", "--encoder", RANDOM, "--out", str(tmp / "nowhere" / "x.csv")], "does not exist"),
    "query output onto a folder": (lambda tmp: ["query", "--encoder", RANDOM, "--format", "csv", "--out", str(tmp)], "is a folder"),
    "a damaged checkpoint": (lambda tmp: ["run", "knn-influence", "--dataset", "demo-mini", "--encoders", "timm/resnet50.a1_in1k",
                                          "--weights", str(_binary(tmp / "bad.pt"))], "cannot read checkpoint"),
}


def _one_make(tmp: Path) -> Path:
    for index in range(4):
        write_image(tmp / "cams" / f"c{index}.jpg", *shot("Canon", "Canon EOS RP"))
    return tmp / "cams"


def _empty_classes(tmp: Path) -> Path:
    for name in ("cat", "dog"):
        (tmp / "empty" / name).mkdir(parents=True)
    return tmp / "empty"


@pytest.mark.parametrize("case", USER_ERRORS)
def test_user_errors_are_one_line_with_exit_2_and_leave_nothing_behind(case: str, tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    home.mkdir()
    argv, expected = USER_ERRORS[case]
    arguments = argv(tmp_path)
    if "--home" not in arguments:
        arguments = ["--home", str(home), *arguments]
    try:
        code = cli.main(arguments)
    except SystemExit as stopped:  # argparse's own refusals
        code = stopped.code
    error = capsys.readouterr().err
    assert code == 2, error
    assert expected in " ".join(error.split()) and "Traceback" not in error
    assert not (home / "embeddings").exists() and not (home / "reports").exists()


def test_query_refuses_filters_that_do_not_parse_whole_and_like_decodes_as_extraction(tmp_path: Path, capsys, monkeypatch) -> None:
    home, root = tmp_path / "home", tmp_path / "photos"
    deep = photo(root / "train" / "gray" / "deep.png", 5, mode="I;16")  # 16-bit: scaled to 8 bits, not clipped
    photo(root / "train" / "gray" / "other.png", 6)
    photo(root / "val" / "colour" / "a.png", 7)
    assert bench(home, "extract", "--dataset", "imagefolder", "--root", str(root), "--encoders", RANDOM, "--processings", "original") == 0
    capsys.readouterr()
    for bad in ("label = 3) OR (1=1", "label = 3; garbage", "label = 3 garbage"):
        assert bench(home, "query", "--dataset", "imagefolder", "--encoder", RANDOM, "--where", bad) == 2
        assert "--where" in capsys.readouterr().err
    from bench import query

    key = query.dataset_key(Store(home / "embeddings"), "imagefolder", RANDOM)  # the one table of this dataset
    found = query.like(Store(home / "embeddings"), key, RANDOM, deep, 1)
    assert found.column("image_id").to_pylist() == ["train/gray/deep.png"]
    assert found.column("score").to_pylist()[0] == pytest.approx(1.0, abs=1e-6)  # the very vector extraction stored

    from bench.data import record

    record._decode_rgb_cached.cache_clear()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # over twice this: a decompression bomb
    assert bench(home, "query", "--dataset", "imagefolder", "--root", str(root), "--encoder", RANDOM, "--like", str(deep)) == 2
    error = capsys.readouterr().err
    assert "cannot read the image" in error and "DecompressionBomb" in error and "Traceback" not in error


def test_decoder_warnings_go_to_the_rejects_file_not_the_terminal(tmp_path: Path, monkeypatch, capfd) -> None:
    root = tmp_path / "photos"
    for split in ("train", "val"):
        for name in ("cat", "dog"):
            for index in range(2):
                photo(root / split / name / f"{index}.png", index, size=(300, 300))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 300 * 300 - 1)  # just over the limit: Pillow warns, does not refuse
    dataset = data.resolve("imagefolder", DatasetOptions(root=root))
    summary = extraction.extract(dataset, encoders.get(RANDOM), ["jpeg95_444"], Store(tmp_path / "e"), rejects_dir=tmp_path / "rejects")[RANDOM]
    assert summary.rows_written == 8 and len(summary.warnings) == 8
    assert "DecompressionBombWarning" in summary.warnings[0]["reason"]
    lines = [json.loads(line) for line in next((tmp_path / "rejects").glob("*.jsonl")).read_text().splitlines()]
    assert {line["kind"] for line in lines} == {"warning"}
    assert "Image.py" not in capfd.readouterr().err  # no raw Python warning lines


def test_result_files_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        path = results.write(results.Cell(results.CellKey("t", "d", "f/e", "c=1"), "sup", {}), tmp_path)
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_exif_orientation_is_applied_for_camera_data_only(tmp_path: Path) -> None:
    ifd0, sub = shot("Canon", "Canon EOS RP")
    for index in range(3):
        write_image(tmp_path / "cams" / f"c{index}.jpg", {**ifd0, 0x0112: 6}, sub)  # 6: rotate 90° clockwise to view
    exif = Image.Exif()
    exif[0x0112], exif[271], exif[272] = 6, "Canon", "Canon EOS RP"
    Image.new("RGB", (16, 8), (200, 10, 10)).save(tmp_path / "cams" / "c0.jpg", exif=exif)
    cameras = data.resolve("cameras", DatasetOptions(root=tmp_path / "cams"))
    folder = data.resolve("imagefolder", DatasetOptions(root=tmp_path))
    rotated = next(r for r in cameras.listing.records if r.image_id == "c0.jpg").load()
    plain = next(r for r in folder.listing.records if r.image_id.endswith("c0.jpg")).load()
    assert rotated.size == (8, 16) and plain.size == (16, 8)
    assert cameras.identity["exif_orientation"] is True and folder.identity["exif_orientation"] is False


def test_leaderboard_of_an_empty_home_says_so(tmp_path: Path, capsys) -> None:
    assert cli.main(["leaderboard", "--home", str(tmp_path), "--task", "paircams"]) == 0
    assert "No results for paircams" in capsys.readouterr().out


def test_a_report_name_never_reaches_outside_the_home(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    outside = tmp_path / "elsewhere"
    (outside / "gallery").mkdir(parents=True)
    (outside / "index.html").write_text("mine")
    assert bench(home, *KNN, "--dataset", "demo-mini") == 0
    for name in ("../../elsewhere", str(outside), "..", "a/b"):
        assert bench(home, "report", "--name", name) == 2
    assert (outside / "index.html").read_text() == "mine" and (outside / "gallery").is_dir()
    assert bench(home, "report", "--name", "mine") == 0 and (home / "reports" / "mine" / "index.html").is_file()


def test_an_unreadable_class_folder_is_reported_not_dropped(tmp_path: Path, capsys, monkeypatch) -> None:
    root = class_folder(tmp_path / "photos", 8, classes=("cat", "dog", "owl"))
    locked = root / "train" / "owl"
    real_scandir = os.scandir

    def scandir(path=".") -> Any:  # the folder's permissions deny reading (root ignores chmod, so the refusal is simulated)
        if isinstance(path, (str, os.PathLike)) and Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert bench(tmp_path / "home", *KNN, "--dataset", "imagefolder", "--root", str(root)) == 0
    error = " ".join(capsys.readouterr().err.split())
    assert f"warning: {locked}: cannot read this folder (Permission denied)" in error
    rejects = [json.loads(line) for path in (tmp_path / "home" / "reports" / "rejects").glob("*.jsonl") for line in path.read_text().splitlines()]
    assert any(entry["path"] == str(locked) and "cannot read this folder" in entry["reason"] for entry in rejects)


def _damage(table: Path, how: str) -> None:
    if how == "a missing data file":
        next((table / "data").glob("*.lance")).unlink()
    else:
        latest = min((table / "_versions").glob("*.manifest"), key=lambda path: int(path.stem))  # newest: the smallest number
        with open(latest, "r+b") as handle:
            handle.truncate(10)


@pytest.mark.parametrize("how", ["a missing data file", "a truncated manifest"])
def test_a_damaged_table_is_one_line_naming_the_table_and_a_rebuild_that_works(how: str, tmp_path: Path, capsys) -> None:
    home, root = tmp_path / "home", class_folder(tmp_path / "photos", 9)
    where = ("--dataset", "imagefolder", "--root", str(root))
    assert bench(home, *KNN, *where) == 0
    key = data.get("imagefolder").store_key(DatasetOptions(root=root))
    (table,) = (home / "embeddings").glob("*.lance")
    _damage(table, how)
    capsys.readouterr()
    image = str(next(root.glob("val/*/*.png")))
    commands = {
        "run": (*KNN, *where, "--overwrite"),
        "extract": ("extract", *where, "--encoders", RANDOM, "--group", "sharpening"),
        "similarity": ("run", "similarity", *where, "--encoders", RANDOM, "--group", "sharpening"),
        "query": ("query", *where, "--encoder", RANDOM),
        "query --like": ("query", *where, "--encoder", RANDOM, "--like", image),
        "vector-index build": ("vector-index", "build", *where, "--encoder", RANDOM),
    }
    for verb, command in commands.items():
        assert bench(home, *command) == 2, verb
        error = " ".join(capsys.readouterr().err.split())
        assert "Traceback" not in error and table.stem in error and "--rebuild" in error, (verb, error)
        assert error.startswith("error: table") and error.count("error: table") == 1  # one message, nothing before it
    fix = re.findall(r"`(python -m bench [^`]+)`", error)[0]
    assert bench(home, *shlex.split(fix)[3:]) == 0  # the query's fix: the extraction that rebuilds the table
    assert Store(home / "embeddings").count(key, RANDOM) > 0
    assert bench(home, *KNN, *where, "--rebuild") == 0
