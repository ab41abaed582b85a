"""Datasets in the Hugging Face Hub's format, written locally by the test and read through the same
code path as the Hub (`datasets.load_dataset`): `hf:<path>` gives what the same images give from a
folder, and PairCams reads its Hub copy as it reads its folder layout."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import __main__ as cli
from bench import data

datasets = pytest.importorskip("datasets", reason="the hf extra (datasets) reads Hugging Face datasets")
if not hasattr(datasets, "load_dataset"):
    pytest.skip("the Hugging Face `datasets` library is not installed (pip install -e '.[hf]')", allow_module_level=True)

RANDOM = "effnet/lite0.random"
CLASSES = ("cat", "dog", "owl")


def jpeg(seed: int, size: tuple[int, int] = (48, 40)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = np.clip(rng.integers(0, 255, 3) + rng.normal(0, 40, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=90)
    return out.getvalue()


def write_hub_copy(folder: Path, splits: dict[str, dict[str, list]], features) -> Path:
    """A dataset in the Hub's layout: data/<split>-00000-of-00001.parquet, written by `datasets` itself."""
    (folder / "data").mkdir(parents=True)
    for split, columns in splits.items():
        datasets.Dataset.from_dict(columns, features=features).to_parquet(str(folder / "data" / f"{split}-00000-of-00001.parquet"))
    return folder


@pytest.fixture
def same_images(tmp_path: Path) -> tuple[Path, Path]:
    """One set of images as a class folder and as a Hub-format copy (ids: the folder's relative paths)."""
    root = tmp_path / "folder"
    columns: dict[str, dict[str, list]] = {"train": {"image": [], "label": [], "id": []}, "validation": {"image": [], "label": [], "id": []}}
    for split, folder_split, count in (("train", "train", 4), ("validation", "val", 2)):
        for label, name in enumerate(CLASSES):
            for index in range(count):
                content = jpeg(1000 * label + 10 * index + (5 if split == "validation" else 0))
                relative = f"{folder_split}/{name}/{index}.jpg"
                (root / relative).parent.mkdir(parents=True, exist_ok=True)
                (root / relative).write_bytes(content)
                columns[split]["image"].append({"bytes": content, "path": None})
                columns[split]["label"].append(label)
                columns[split]["id"].append(relative)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES)), "id": datasets.Value("string")})
    return root, write_hub_copy(tmp_path / "hub", columns, features)


def cell(home: Path, task: str = "knn-influence") -> dict:
    (path,) = (home / "reports" / "results" / task).glob("**/*.json")
    return json.loads(path.read_text())


def test_a_hub_copy_gives_what_the_same_folder_gives(same_images: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    root, hub = same_images
    knn = ("run", "knn-influence", "--encoders", RANDOM, "--group", "sharpening", "--seeds", "2", "--k", "1")
    assert cli.main(["--home", str(tmp_path / "a"), *knn, "--dataset", "imagefolder", "--root", str(root)]) == 0
    assert cli.main(["--home", str(tmp_path / "b"), *knn, "--dataset", f"hf:{hub}", "--id-column", "id"]) == 0
    folder, copy = cell(tmp_path / "a"), cell(tmp_path / "b")
    assert folder["metrics"] == copy["metrics"] and folder["detail"]["triples"] == copy["detail"]["triples"]
    origin = copy["dataset_identity"]["origin"]
    assert origin["source"] == str(hub.resolve()) and origin["splits"] == {"train": ["train", 12], "val": ["validation", 6]}
    assert origin["columns"] == {"image": "image", "label": "label", "id": "id"}  # found by their features
    resolved = data.resolve(f"hf:{hub}")
    assert [r.label_name for r in resolved.listing.records[:4]] == ["cat"] * 4 and resolved.splits() == {"train": 12, "val": 6}
    assert cli.main(["--home", str(tmp_path / "b"), *knn, "--dataset", f"hf:{hub}", "--id-column", "id"]) == 0
    assert "cached:" in capsys.readouterr().err  # the Hub copy's identity is stable


def test_unknown_columns_and_splits_name_what_the_dataset_has(same_images: tuple[Path, Path], tmp_path: Path, capsys) -> None:
    _, hub = same_images
    base = ["--home", str(tmp_path / "home"), "extract", "--dataset", f"hf:{hub}", "--encoders", RANDOM, "--processings", "original"]
    for extra, expected in ((["--label-column", "kind"], "no column 'kind' for --label-column; its columns are image, label, id"),
                            (["--hf-splits", "train=train,val=dev"], "no split dev; its splits are train, validation"),
                            (["--root", str(hub)], "takes no --root")):
        assert cli.main([*base, *extra]) == 2
        assert expected in " ".join(capsys.readouterr().err.split())
    assert cli.main(["--home", str(tmp_path / "home"), "extract", "--dataset", "demo-mini", "--encoders", RANDOM, "--image-column", "x"]) == 2
    assert "only for a Hugging Face dataset" in " ".join(capsys.readouterr().err.split())


def test_paircams_reads_its_hub_copy_as_its_folder(tmp_path: Path) -> None:
    models = ("Canon EOS 450D", "iPhone 12")  # camera class 0, 1 in the paper's mapping
    folder = tmp_path / "paircams"
    folder.mkdir()
    columns: dict[str, list] = {"image": [], "subject_idx": [], "model": []}
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "subject_idx", "model"])
        for subject in range(6):
            for camera, model in enumerate(models):
                content = jpeg(100 * subject + camera * 7 + 3)
                name = f"{subject}-{camera}.jpg"
                (folder / name).write_bytes(content)
                writer.writerow([name, subject, model])
                columns["image"].append({"bytes": content, "path": None})
                columns["subject_idx"].append(subject)
                columns["model"].append(model)
        content = jpeg(999)  # a camera the paper's mapping does not know: left out by both loaders, for the same reason
        (folder / "stray.jpg").write_bytes(content)
        writer.writerow(["stray.jpg", 6, "Nokia 3310"])
        columns["image"].append({"bytes": content, "path": None})
        columns["subject_idx"].append(6)
        columns["model"].append("Nokia 3310")
    features = datasets.Features({"image": datasets.Image(), "subject_idx": datasets.Value("int64"), "model": datasets.Value("string")})
    hub = write_hub_copy(tmp_path / "paircams-hub", {"train": columns}, features)
    for home, root in ((tmp_path / "a", folder), (tmp_path / "b", hub)):
        assert cli.main(["--home", str(home), "run", "paircams", "--dataset", "paircams", "--root", str(root), "--encoders", RANDOM]) == 0
    assert cell(tmp_path / "a", "paircams")["metrics"] == cell(tmp_path / "b", "paircams")["metrics"]
    listed = data.resolve("paircams", data.DatasetOptions(root=hub)).listing.records
    assert {dict(r.meta)["camera_class"] for r in listed} == {0, 1} and all(r.orient for r in listed)
    reasons = [[reject["reason"] for reject in data.resolve("paircams", data.DatasetOptions(root=root)).listing.rejects] for root in (folder, hub)]
    assert reasons[0] == reasons[1] and len(reasons[0]) == 1 and reasons[0][0].startswith("unknown camera model 'Nokia 3310'; known: ")
