"""Dataset adapters: stable ids and order, labels, splits, and rejects for what is missing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from bench import data
from bench.data import DatasetOptions
from bench.errors import DataError


def _image(path: Path, colour: tuple[int, int, int] = (10, 20, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 12), colour).save(path)
    return path


def test_imagefolder_with_split_folders(tmp_path: Path) -> None:
    for split in ("train", "val"):
        for name in ("dog", "cat"):
            for index in range(2):
                _image(tmp_path / split / name / f"{index}.jpg")
    _image(tmp_path / "train" / "cat" / ".hidden.jpg")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    listing = data.get("imagefolder").list(DatasetOptions(root=tmp_path))
    assert [r.image_id for r in listing.records][:2] == ["train/cat/0.jpg", "train/cat/1.jpg"]
    assert {(r.label_name, r.label) for r in listing.records} == {("cat", 0), ("dog", 1)}
    assert sorted({r.split for r in listing.records}) == ["train", "val"]
    assert len(listing.records) == 8
    assert listing.records == data.get("imagefolder").list(DatasetOptions(root=tmp_path)).records


def test_imagefolder_without_split_folders_splits_stably_by_id(tmp_path: Path) -> None:
    for index in range(60):
        _image(tmp_path / ("a" if index % 2 else "b") / f"{index:02d}.png")
    records = data.get("imagefolder").list(DatasetOptions(root=tmp_path)).records
    splits = {r.image_id: r.split for r in records}
    assert set(splits.values()) == {"train", "val"}
    assert 0 < sum(s == "val" for s in splits.values()) < 30
    assert splits == {r.image_id: r.split for r in data.get("imagefolder").list(DatasetOptions(root=tmp_path)).records}


def test_imagenet_requires_train_and_val_and_root(tmp_path: Path) -> None:
    _image(tmp_path / "train" / "n01" / "a.JPEG")
    with pytest.raises(DataError, match="val"):
        data.get("imagenet").list(DatasetOptions(root=tmp_path))
    with pytest.raises(DataError, match="--root"):
        data.get("imagenet").list(DatasetOptions())


def test_inat2018_reads_coco_json_and_rejects_missing_files(tmp_path: Path) -> None:
    _image(tmp_path / "imgs" / "a.jpg")
    _image(tmp_path / "imgs" / "b.jpg")
    categories = [{"id": 0, "name": "fern"}, {"id": 7, "name": "owl"}]
    (tmp_path / "train2018.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "imgs/a.jpg"}, {"id": 2, "file_name": "imgs/gone.jpg"}],
        "annotations": [{"image_id": 1, "category_id": 7}, {"image_id": 2, "category_id": 0}], "categories": categories,
    }))
    (tmp_path / "val2018.json").write_text(json.dumps({
        "images": [{"id": 3, "file_name": "imgs/b.jpg"}], "annotations": [{"image_id": 3, "category_id": 0}], "categories": categories,
    }))
    listing = data.get("inat2018").list(DatasetOptions(root=tmp_path))
    assert [(r.image_id, r.split, r.label, r.label_name) for r in listing.records] == [("imgs/a.jpg", "train", 7, "owl"), ("imgs/b.jpg", "val", 0, "fern")]
    assert len(listing.rejects) == 1 and "gone.jpg" in listing.rejects[0]["path"] and "missing" in listing.rejects[0]["reason"]
    assert data.get("inat2018").knn_k == 1


def test_flickrexif_uses_the_split_file_and_rejects_missing_ids(tmp_path: Path) -> None:
    for flickr_id in (11, 12, 13):
        _image(tmp_path / "images" / f"{flickr_id}.jpg")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "split_data_target_attribute=Make.json").write_text(json.dumps({
        "train_ids": [11, 99], "encoded_train_labels": [1, 0], "val_ids": [12], "encoded_val_labels": [0],
        "test_ids": [13], "encoded_test_labels": [1], "label_encoder_classes": ["Apple", "Canon"], "target_attribute": "Make",
    }))
    listing = data.get("flickrexif").list(DatasetOptions(root=tmp_path, attribute="Make"))
    assert [(r.image_id, r.split, r.label_name) for r in listing.records] == [("11", "train", "Canon"), ("12", "val", "Apple"), ("13", "test", "Canon")]
    assert len(listing.rejects) == 1 and "99" in listing.rejects[0]["reason"]
    with pytest.raises(DataError, match="available attributes: Make"):
        data.get("flickrexif").list(DatasetOptions(root=tmp_path, attribute="ISO Speed"))


def test_paircams_maps_camera_classes_and_rejects_unknown_models(tmp_path: Path) -> None:
    rows = [("p0.jpg", 0, "iPhone XR"), ("c0.jpg", 0, "Canon EOS 450D"), ("p1.jpg", 1, "XT1032 "), ("x.jpg", 2, "Mystery Cam")]
    for name, _, _ in rows:
        _image(tmp_path / name)
    with open(tmp_path / "metadata.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "subject_idx", "model"])
        writer.writerows(rows)
    listing = data.get("paircams").list(DatasetOptions(root=tmp_path))
    classes = {r.image_id: r.metadata()["camera_class"] for r in listing.records}
    assert classes == {"p0.jpg": 1, "c0.jpg": 0, "p1.jpg": 0}
    assert {r.metadata()["subject_id"] for r in listing.records} == {0, 1}
    assert len(listing.rejects) == 1 and "Mystery Cam" in listing.rejects[0]["reason"]
