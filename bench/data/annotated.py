"""Adapters driven by annotation files: iNaturalist 2018, FlickrExif (the paper's split JSONs), PairCams."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from bench.data import hub
from bench.data.files import walk_images
from bench.data.record import DatasetOptions, ImageRecord, Listing
from bench.errors import DataError

# The paper's mapping (docs/protocol.md#paircams-dataset): lower-cased, stripped Exif model -> camera class (0 = DSLR/compact, 1 = phone).
# The 2013 Moto G (XT1032) is class 0 in the paper's mapping: "modern smartphone vs older device".
PAIRCAMS_CAMERA_CLASS: dict[str, int] = {
    **{model: 1 for model in ("iphone xr", "pixel 4", "iphone se (3rd generation)", "22101320g", "iphone 12", "iphone 14 pro", "a065", "iphone 12 pro")},
    **{model: 0 for model in ("canon ixy 630", "dsc-wx300", "c8080wz", "ex-fh20", "canon eos 450d", "u700,s700", "u700/s700", "xt1032", "coolpix s200")},
}
Meta = tuple[tuple[str, object], ...]


def paircams_meta(model: str, subject: int) -> Meta | str:
    """A PairCams image's metadata from its Exif model and subject (camera class by the paper's
    mapping), or, for a model the mapping does not know, why the image is left out."""
    known = model.strip().lower()
    if known not in PAIRCAMS_CAMERA_CLASS:
        return f"unknown camera model {model!r}; known: {', '.join(sorted(PAIRCAMS_CAMERA_CLASS))}"
    camera_class = PAIRCAMS_CAMERA_CLASS[known]
    return (("camera_model", model.strip()), ("camera_class", camera_class), ("subject_id", subject), ("is_smartphone", bool(camera_class)))


FLICKREXIF_SPLITS = (("train", "train_ids", "encoded_train_labels"), ("val", "val_ids", "encoded_val_labels"), ("test", "test_ids", "encoded_test_labels"))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"annotation file {path} not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"annotation file {path} is not valid JSON ({error})") from None


def inat2018(options: DatasetOptions) -> Listing:
    """<root>/train2018.json and val2018.json (official COCO-style files), images at <root>/<file_name>."""
    assert options.root is not None
    records: list[ImageRecord] = []
    rejects: list[dict[str, str]] = []
    for split, name in (("train", "train2018.json"), ("val", "val2018.json")):
        document = _read_json(options.root / name)
        categories = {item["id"]: item.get("name", str(item["id"])) for item in document.get("categories", [])}
        label_of = {item["image_id"]: item["category_id"] for item in document.get("annotations", [])}
        for image in sorted(document.get("images", []), key=lambda item: item["file_name"]):
            path = options.root / image["file_name"]
            if image["id"] not in label_of:
                rejects.append({"path": str(path), "reason": f"{name}: image id {image['id']} has no annotation"})
            elif not path.is_file():
                rejects.append({"path": str(path), "reason": f"{name} lists it but the file is missing"})
            else:
                label = int(label_of[image["id"]])
                records.append(ImageRecord(image["file_name"], split, label, categories.get(label, str(label)), str(path)))
    return Listing(records, rejects)


def _flickr_files(root: Path) -> tuple[dict[str, Path], list[dict[str, str]]]:
    """Flickr ID -> file, for files named <FlickrID>.<ext> anywhere below root, and what could not be read."""
    found: dict[str, Path] = {}
    walk = walk_images(root)
    for path in walk.files:
        if path.stem.isdigit():
            found.setdefault(path.stem, path)
    return found, walk.unreadable


def flickrexif(options: DatasetOptions) -> Listing:
    """<root>/<FlickrID>.<ext> images and <root>/splits/split_data_target_attribute=<Attribute>.json."""
    assert options.root is not None
    attribute = options.attribute or "Make"
    split_file = options.root / "splits" / f"split_data_target_attribute={attribute}.json"
    if not split_file.is_file():
        available = sorted(p.name.split("=", 1)[1].removesuffix(".json") for p in (options.root / "splits").glob("split_data_target_attribute=*.json"))
        raise DataError(
            f"flickrexif: no split file for attribute {attribute!r} at {split_file}; "
            f"available attributes: {', '.join(available) or 'none (copy the paper split JSONs into <root>/splits/)'}"
        )
    document = _read_json(split_file)
    classes = [str(name) for name in document["label_encoder_classes"]]
    files, unreadable = _flickr_files(options.root)
    records: list[ImageRecord] = []
    rejects: list[dict[str, str]] = list(unreadable)
    for split, ids_key, labels_key in FLICKREXIF_SPLITS:
        for flickr_id, label in zip(document[ids_key], document[labels_key]):
            path = files.get(str(flickr_id))
            if path is None:
                rejects.append({"path": f"{options.root}/{flickr_id}.*", "reason": f"{split_file.name} names Flickr ID {flickr_id} ({split}) but no such image file exists",
                                "split": split, "label_name": classes[int(label)]})
                continue
            records.append(ImageRecord(str(flickr_id), split, int(label), classes[int(label)], str(path)))
    return Listing(records, rejects)


def paircams(options: DatasetOptions) -> Listing:
    """PairCams from the Hub by name, from a local copy in the Hub's format (`--root`), or from a
    folder with <root>/metadata.csv (file_name, subject_idx, model) beside the images; all images
    are `test`. The semantic label is the subject; camera_class (0 DSLR/compact, 1 phone) comes
    from the Exif model through the paper's mapping."""
    table = None if options.root is None else options.root / "metadata.csv"
    if table is None or not table.is_file():
        return hub.paircams(options, paircams_meta)
    records: list[ImageRecord] = []
    rejects: list[dict[str, str]] = []
    with open(table, newline="", encoding="utf-8") as handle:
        rows = sorted(csv.DictReader(handle), key=lambda row: (int(row["subject_idx"]), row["file_name"]))
    for row in rows:
        path = options.root / row["file_name"]
        subject = int(row["subject_idx"])
        meta = paircams_meta(row["model"], subject)
        if isinstance(meta, str):
            rejects.append({"path": str(path), "reason": meta})
        elif not path.is_file():
            rejects.append({"path": str(path), "reason": "listed in metadata.csv but the file is missing"})
        else:
            records.append(ImageRecord(row["file_name"], "test", subject, f"subject {subject}", str(path), meta=meta))
    return Listing(records, rejects)
