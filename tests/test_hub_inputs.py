"""Hugging Face datasets as people make them: an image column of file paths is stamped file by
file (an edited file is a changed input), a row without an image is a reject, and a label column
that holds images is one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import __main__ as cli
from bench import data
from tests.test_hub_datasets import CLASSES, RANDOM, jpeg, write_hub_copy

datasets = pytest.importorskip("datasets", reason="the hf extra (datasets) reads Hugging Face datasets")
if not hasattr(datasets, "load_dataset"):
    pytest.skip("the Hugging Face `datasets` library is not installed (pip install -e '.[hf]')", allow_module_level=True)


def _files(folder: Path) -> list[Path]:
    paths = []
    for index in range(6):
        path = folder / f"{index}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(jpeg(index))
        paths.append(path)
    return paths


@pytest.mark.parametrize("kind", ["Image", "string"])
def test_files_named_by_a_hub_dataset_are_stamped_like_folder_files(kind: str, tmp_path: Path) -> None:
    files = _files(tmp_path / "pictures")
    labels = [index % 2 for index in range(len(files))]
    if kind == "Image":
        column = [{"bytes": None, "path": str(path)} for path in files]
        features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES[:2]))})
    else:
        column = [str(path) for path in files]
        features = datasets.Features({"image": datasets.Value("string"), "label": datasets.ClassLabel(names=list(CLASSES[:2]))})
    hub = write_hub_copy(tmp_path / "hub", {"train": {"image": column, "label": labels}, "test": {"image": column[:2], "label": labels[:2]}},
                         features)
    before = data.resolve(f"hf:{hub}")
    assert len(before.listing.records) == 8 and not before.listing.rejects
    files[1].write_bytes(jpeg(99, size=(50, 40)))  # edited in place: the parquet file is unchanged
    stamp = os.stat(files[3])
    os.utime(files[3], ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1_000_000_000))
    after = data.resolve(f"hf:{hub}")
    assert after.contents != before.contents
    changed = {record.image_id for old, record in zip(before.listing.records, after.listing.records) if old.stamp != record.stamp}
    assert changed == {"train/1", "train/3", "test/1"}
    assert after.listing.records[1].load().size == (50, 40)


def test_a_hub_row_without_an_image_is_a_reject_not_a_crash(tmp_path: Path) -> None:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES[:2]))})
    images = [{"bytes": jpeg(index), "path": None} for index in range(4)]
    hub = write_hub_copy(tmp_path / "hub", {"train": {"image": [images[0], None, *images[1:]], "label": [0, 1, 0, 1, 0]},
                                             "test": {"image": images[:2], "label": [0, 1]}}, features)
    resolved = data.resolve(f"hf:{hub}")
    assert [record.image_id for record in resolved.listing.records if record.split == "train"] == ["train/0", "train/2", "train/3", "train/4"]
    (reject,) = resolved.listing.rejects
    assert reject["path"].endswith("/train/image/1") and "no image" in reject["reason"]
    for record in resolved.listing.records:
        assert record.load().mode == "RGB"


def test_a_label_column_of_images_is_one_line(tmp_path: Path, capsys) -> None:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=list(CLASSES[:2]))})
    images = [{"bytes": jpeg(index), "path": None} for index in range(4)]
    hub = write_hub_copy(tmp_path / "hub", {"train": {"image": images, "label": [0, 1, 0, 1]}}, features)
    home = tmp_path / "home"
    code = cli.main(["--home", str(home), "run", "knn-influence", "--dataset", f"hf:{hub}", "--label-column", "image",
                     "--encoders", RANDOM])
    error = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "--label-column" in error and "Traceback" not in error
    assert not (home / "embeddings").exists() and not (home / "reports" / "results").exists()


def test_verify_content_tells_a_same_size_rewrite_with_its_old_time_apart(tmp_path: Path) -> None:
    files = _files(tmp_path / "folder" / "train" / "cat") + _files(tmp_path / "folder" / "train" / "dog")
    options = data.DatasetOptions(root=tmp_path / "folder")
    checked = data.DatasetOptions(root=tmp_path / "folder", verify_content=True)
    cheap, hashed = data.resolve("imagefolder", options).contents, data.resolve("imagefolder", checked).contents
    target = files[2]
    stamp = os.stat(target)
    body = bytearray(target.read_bytes())
    body[-3] ^= 0xFF  # the same size, other bytes
    target.write_bytes(bytes(body))
    os.utime(target, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # and its old time restored
    assert data.resolve("imagefolder", options).contents == cheap  # the documented gap of size and time
    assert data.resolve("imagefolder", checked).contents != hashed
