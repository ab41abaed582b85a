"""Adapters for images on disk: `imagefolder` (class subfolders) and `imagenet` (its standard layout)."""

from __future__ import annotations

from pathlib import Path

from bench.data.files import walk_images
from bench.data.record import DatasetOptions, ImageRecord, Listing
from bench.errors import DataError
from bench.seeding import stable_int

SPLITS = ("train", "val", "test")
VAL_PERCENT = 20  # imagefolder without split subfolders: this share of each class goes to val


def _class_folders(folder: Path) -> list[str]:
    try:
        return sorted(child.name for child in folder.iterdir() if child.is_dir() and not child.name.startswith("."))
    except OSError as error:
        raise DataError(f"{folder}: cannot read this folder ({error.strerror or error}); check its permissions") from None


def _split_of(image_id: str) -> str:
    return "val" if stable_int(f"imagefolder-split|{image_id}") % 100 < VAL_PERCENT else "train"


def class_folder_listing(root: Path, require_splits: tuple[str, ...] = ()) -> Listing:
    """`root/<split>/<class>/...` when split folders exist, else `root/<class>/...` split by hash."""
    present = [split for split in SPLITS if (root / split).is_dir()]
    missing = [split for split in require_splits if split not in present]
    if missing:
        raise DataError(f"{root}: expected the folder(s) {', '.join(missing)} (layout <root>/<split>/<class>/<image>)")
    groups = [(split, root / split) for split in present] or [("", root)]
    classes = sorted({name for _, folder in groups for name in _class_folders(folder)})
    if not classes:
        raise DataError(f"{root}: no class subfolders found (layout <root>/[<split>/]<class>/<image>)")
    labels = {name: index for index, name in enumerate(classes)}
    records: list[ImageRecord] = []
    rejects: list[dict[str, str]] = []
    for split, folder in groups:
        for name in _class_folders(folder):
            walk = walk_images(folder / name)
            rejects += walk.unreadable
            for path in walk.files:
                image_id = path.relative_to(root).as_posix()
                records.append(ImageRecord(image_id, split or _split_of(image_id), labels[name], name, str(path)))
    if not records:
        raise DataError(f"{root}: no images found in its class folders ({', '.join(classes[:5])}{', …' if len(classes) > 5 else ''}); "
                        "images are files with an image extension (.jpg, .png, …) inside <root>/[<split>/]<class>/")
    return Listing(records, rejects)


def imagefolder(options: DatasetOptions) -> Listing:
    assert options.root is not None
    return class_folder_listing(options.root)


def imagenet(options: DatasetOptions) -> Listing:
    """ImageNet-1k as torchvision lays it out: train/<wnid>/*.JPEG, val/<wnid>/*.JPEG; labels
    follow sorted wnids, as torchvision's ImageNet does."""
    assert options.root is not None
    return class_folder_listing(options.root, require_splits=("train", "val"))
