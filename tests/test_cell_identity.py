"""A cell is served only for the inputs it was computed from: every changed input makes it stale,
with the reason printed, and every fix a refusal names runs as written."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from bench import __main__ as cli
from bench import processing
from bench.encoders.catalog import ENCODERS
from bench.store import Store

ARCH = "test_resnet"  # timm's tiny test ResNet
CUSTOM = "mine/test_resnet.local"
KNN = ("run", "knn-influence", "--dataset", "imagefolder", "--encoders", CUSTOM, "--group", "sharpening", "--seeds", "2", "--k", "1")


def photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (3,), dtype=np.uint8)
    pixels = np.clip(base + rng.normal(0, 40, (40, 48, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def save_model(path: Path, seed: int) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = timm.create_model(ARCH, pretrained=False, num_classes=0)
    torch.save(model.state_dict(), path)
    return path


def encoders_file(folder: Path, weights: str = "model.pt", input_size: int = 32) -> Path:
    path = folder / "encoders.toml"
    path.write_text(f'[[encoder]]\nname = "{CUSTOM}"\nfamily = "sup"\nloader = "timm"\narchitecture = "{ARCH}"\n'
                    f'weights = "{weights}"\ninput_size = {input_size}\nembed_dim = 96\n', encoding="utf-8")
    return path


@dataclasses.dataclass
class Setup:
    home: Path
    root: Path
    folder: Path  # holds the encoders file and checkpoints

    @property
    def options(self) -> tuple[str, ...]:
        return ("--home", str(self.home), "--encoders-file", str(self.folder / "encoders.toml"))

    def knn(self, *extra: str) -> tuple[str, ...]:
        return (*self.options, *KNN, "--root", str(self.root), *extra)


@pytest.fixture
def registry() -> Iterator[None]:
    """Each command registers the encoders file anew, as a fresh process would."""
    before = dict(ENCODERS)
    yield
    ENCODERS.clear()
    ENCODERS.update(before)


def bench(capsys, *arguments: str) -> tuple[int, str]:
    """Run the command line in this process as a fresh process would; (exit status, stderr without line breaks)."""
    before = dict(ENCODERS)
    try:
        status = cli.main(list(arguments))
    finally:
        ENCODERS.clear()
        ENCODERS.update(before)
    err = capsys.readouterr().err
    return status, " ".join(err.split())


def suggested(message: str) -> list[str]:
    """The commands a message names (between backticks), as argument lists for `cli.main`."""
    commands = re.findall(r"`(python -m bench [^`]+)`", message)
    assert commands, f"no command named in: {message}"
    return [shlex.split(command)[3:] for command in commands]


@pytest.fixture
def setup(tmp_path: Path, registry: None) -> Setup:
    root = tmp_path / "photos"
    for split, count in (("train", 4), ("val", 2)):
        for label, name in enumerate(("cat", "dog", "owl")):
            for index in range(count):
                photo(root / split / name / f"{index}.jpg", 100 * label + 10 * index + (5 if split == "val" else 0))
    folder = tmp_path / "encoder"
    folder.mkdir()
    save_model(folder / "model.pt", 7)
    encoders_file(folder)
    return Setup(tmp_path / "home", root, folder)


def the_cell(home: Path, task: str = "knn-influence") -> dict[str, Any]:
    (path,) = (home / "reports" / "results" / task).glob("**/*.json")
    return json.loads(path.read_text())


def superseded(home: Path) -> list[Path]:
    return sorted((home / "reports" / "superseded").glob("**/*.json"))


def test_an_unchanged_run_is_served_from_its_cell(setup: Setup, capsys) -> None:
    assert bench(capsys, *setup.knn())[0] == 0
    path = next((setup.home / "reports" / "results").glob("**/*.json"))
    written = path.stat().st_mtime_ns
    status, err = bench(capsys, *setup.knn())
    assert status == 0 and "cached:" in err and "stale" not in err and "images in" not in err  # nothing extracted
    assert path.stat().st_mtime_ns == written
    assert not superseded(setup.home)

    # a cell in another version of the format is not read as numbers: it is recomputed, and kept aside
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "schema": 1}))
    status, err = bench(capsys, *setup.knn())
    assert status == 0 and "stale:" in err and "schema 1" in " ".join(err.split())
    assert the_cell(setup.home)["metrics"] == document["metrics"]
    (kept,) = superseded(setup.home)
    assert json.loads(kept.read_text())["schema"] == 1


def test_another_precision_is_stale_and_the_named_fix_rebuilds_it(setup: Setup, capsys) -> None:
    assert bench(capsys, *setup.knn())[0] == 0
    before = the_cell(setup.home)
    status, err = bench(capsys, *setup.knn("--precision", "bf16"))
    assert status == 2 and "stale" in err and "precision fp32 → bf16" in err
    (fix,) = suggested(err)
    assert "--precision" in fix and "bf16" in fix and "--rebuild" in fix and "--encoders-file" in fix
    assert bench(capsys, *fix)[0] == 0
    after = the_cell(setup.home)
    assert after["inputs"]["fingerprint"]["precision"] == "bf16" and Store(setup.home / "embeddings").fingerprint(
        after["dataset"], CUSTOM)["precision"] == "bf16"
    (kept,) = superseded(setup.home)
    assert json.loads(kept.read_text())["metrics"] == before["metrics"]  # the fp32 numbers stay readable
    status, err = bench(capsys, *setup.knn("--precision", "bf16"))
    assert status == 0 and "cached:" in err


def test_replaced_weights_are_stale_and_rebuilt(setup: Setup, capsys) -> None:
    assert bench(capsys, *setup.knn())[0] == 0
    before = the_cell(setup.home)
    save_model(setup.folder / "model.pt", 8)  # other weights under the same name
    status, err = bench(capsys, *setup.knn())
    assert status == 2 and "stale" in err and re.search(r"weights sha256:\w+…? → sha256:\w+", err)
    (fix,) = suggested(err)
    assert bench(capsys, *fix)[0] == 0
    after = the_cell(setup.home)
    assert after["inputs"]["fingerprint"]["weights"] != before["inputs"]["fingerprint"]["weights"]
    assert after["metrics"] != before["metrics"]


def test_a_weights_option_is_stale(setup: Setup, capsys) -> None:
    assert bench(capsys, *setup.knn())[0] == 0
    other = save_model(setup.folder / "other.pt", 9)
    status, err = bench(capsys, *setup.knn("--weights", str(other)))
    assert status == 2 and "stale" in err and "other.pt" in err.replace(" ", "")
    (fix,) = suggested(err)
    assert "--weights" in fix
    assert bench(capsys, *fix)[0] == 0
    from bench.encoders.loaders import file_sha256

    recorded = the_cell(setup.home)["inputs"]["fingerprint"]
    assert recorded["weights"] == f"sha256:{file_sha256(other.resolve())}" and "weights" not in recorded["encoder"]  # its checksum, not its path


def test_an_edited_encoders_file_is_stale(setup: Setup, capsys) -> None:
    assert bench(capsys, *setup.knn())[0] == 0
    encoders_file(setup.folder, input_size=40)
    status, err = bench(capsys, *setup.knn())
    assert status == 2 and "encoder.input_size 32 → 40" in err
    (fix,) = suggested(err)
    assert bench(capsys, *fix)[0] == 0
    assert the_cell(setup.home)["inputs"]["fingerprint"]["encoder"]["input_size"] == 40


def test_a_new_op_version_is_stale_and_re_extracted(setup: Setup, capsys, monkeypatch) -> None:
    assert bench(capsys, *setup.knn())[0] == 0
    changed = dataclasses.replace(processing.PROCESSINGS["sharpen2"], version=2)
    monkeypatch.setitem(processing.PROCESSINGS, "sharpen2", changed)
    status, err = bench(capsys, *setup.knn())
    assert status == 0 and "processing sharpen2 version 1 → 2" in err
    assert "18 images in" in err  # the 18 images' sharpen2 rows, extracted again
    assert the_cell(setup.home)["inputs"]["processings"]["sharpen2"] == 2
    rows = Store(setup.home / "embeddings").scan(the_cell(setup.home)["dataset"], CUSTOM, where="processing = 'sharpen2'",
                                                 columns=["op_version"])
    assert set(rows.column("op_version").to_pylist()) == {2} and rows.num_rows == 18


def test_a_rebuild_by_another_task_makes_this_cell_stale(setup: Setup, capsys) -> None:
    similarity = (*setup.options, "run", "similarity", "--dataset", "imagefolder", "--root", str(setup.root),
                  "--encoders", CUSTOM, "--group", "sharpening")
    assert bench(capsys, *similarity)[0] == 0
    assert bench(capsys, *setup.knn("--rebuild"))[0] == 0
    status, err = bench(capsys, *similarity)
    assert status == 0 and "its table was rebuilt since" in err


def test_an_image_replaced_in_place_is_re_extracted_and_its_cells_recomputed(setup: Setup, capsys, tmp_path: Path) -> None:
    assert bench(capsys, *setup.knn())[0] == 0
    for index, path in enumerate(sorted((setup.root / "val").glob("*/*.jpg"))):
        photo(path, 1000 + index)  # other pictures under the same names
    status, err = bench(capsys, *setup.knn())
    assert status == 0 and "image files changed on disk" in err and "18 images in" in err  # 6 images x 3 processings
    fresh = Setup(tmp_path / "fresh-home", setup.root, setup.folder)
    assert bench(capsys, *fresh.knn())[0] == 0
    assert the_cell(setup.home)["metrics"] == the_cell(fresh.home)["metrics"]


def test_groups_make_the_cell_stale_and_leave_its_table_alone(setup: Setup, capsys, tmp_path: Path) -> None:
    assert bench(capsys, *setup.knn())[0] == 0
    before = the_cell(setup.home)
    groups = tmp_path / "groups.csv"
    rows = [f"{split}/{name}/{index}.jpg,{name}-{index % 2}" for split, count in (("train", 4), ("val", 2))
            for name in ("cat", "dog", "owl") for index in range(count)]  # two photos a class, cropped into both splits
    groups.write_text("\n".join(["image,group", *rows]) + "\n", encoding="utf-8")
    status, err = bench(capsys, *setup.knn("--groups", str(groups)))
    assert status == 0 and "stale" in err and "dataset units absent →" in err and "images in" not in err  # nothing extracted
    after = the_cell(setup.home)
    assert after["inputs"]["table"] == before["inputs"]["table"] and after["inputs"]["fingerprint"] == before["inputs"]["fingerprint"]
    assert after["inputs"]["dataset"]["units"] is not None and after["provenance"]["bootstrap"]["unit"] == "group (--groups)"
    assert after["metrics"] == before["metrics"]  # the numbers are the table's; their intervals and tests are the units'
    status, err = bench(capsys, *setup.knn("--groups", str(groups)))
    assert status == 0 and "cached:" in err


def test_every_refusal_names_a_fix_that_runs(setup: Setup, capsys) -> None:
    # a table extracted differently, on `extract` with several encoders: the fix rebuilds that one
    extract = (*setup.options, "extract", "--dataset", "imagefolder", "--root", str(setup.root), "--processings", "sharpen2")
    assert bench(capsys, *extract, "--encoders", f"{CUSTOM},effnet/lite0.random")[0] == 0
    status, err = bench(capsys, *extract, "--encoders", f"{CUSTOM},effnet/lite0.random", "--precision", "bf16")
    assert status == 2
    fix = suggested(err)[0]
    assert bench(capsys, *fix)[0] == 0
    key = the_key(setup)
    assert Store(setup.home / "embeddings").fingerprint(key, CUSTOM)["precision"] == "bf16"

    # query --like under an edited encoder: the named extraction remakes the table as the encoder is now
    encoders_file(setup.folder, input_size=40)
    like = (*setup.options, "query", "--dataset", "imagefolder", "--root", str(setup.root), "--encoder", CUSTOM,
            "--like", str(next(setup.root.glob("val/*/*.jpg"))), "--k", "2")
    status, err = bench(capsys, *like)
    assert status == 2 and "encoder.input_size 32 → 40" in err
    fix = suggested(err)[0]
    assert "--encoders-file" in fix and "--root" in fix
    assert bench(capsys, *fix)[0] == 0
    assert bench(capsys, *like)[0] == 0

    # query on a table that does not exist yet: the named extraction makes it
    query = (*setup.options, "query", "--dataset", "imagefolder", "--root", str(setup.root), "--encoder", "effnet/lite0.in1k")
    status, err = bench(capsys, *query)
    assert status == 2
    fix = suggested(err)[0]
    assert bench(capsys, *fix)[0] == 0
    assert bench(capsys, *query)[0] == 0

    # a folder that changed since its tables were made: the named command re-extracts it
    photo(setup.root / "train" / "cat" / "new.jpg", 5000)
    status, err = bench(capsys, *setup.knn())
    assert status == 2 and "has changed since" in err
    fix = suggested(err)[0]
    assert "--rebuild" in fix
    assert bench(capsys, *fix)[0] == 0
    assert bench(capsys, *setup.knn())[1].count("cached:") == 1


def the_key(setup: Setup) -> str:
    from bench import data

    return data.get("imagefolder").store_key(data.DatasetOptions(root=setup.root))
