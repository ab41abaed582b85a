"""The `cameras` dataset: any folder tree of camera images, labelled by their own Exif
(datasets/cameras.toml).

Splits are stratified by the class being predicted: inside each class of the attribute, images
are ordered by stable_int("0|cameras-split|<attribute>|<image_id>") and the first ~60 % go to
train, the next ~20 % to val, the rest to test; val and test get max(1, round(0.2 n)) each, so
every class of n >= 3 images is in all three splits. Classes with fewer than 3 images cannot be
split that way: they are left out and listed with the reason. A photo's split is a function of
its id, the attribute and the other photos of its class: stable across runs, but adding photos to
a class can move that class's other photos between splits.
"""

from __future__ import annotations

import difflib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench import exif
from bench.data.files import IMAGE_SUFFIXES, walk_images
from bench.data.record import DatasetOptions, ImageRecord, Listing
from bench.errors import DataError
from bench.registry import UnknownNameError
from bench.seeding import stable_int

SPLIT_SEED = 0
ATTRIBUTES = ("make", "model", "is_smartphone", "iso", "exposure", "aperture", "focal_length")
DEFAULT_ATTRIBUTE = "make"
ATTRIBUTE_ALIASES = {"iso_speed": "iso", "smartphone": "is_smartphone"}  # FlickrExif spellings


@dataclass(frozen=True)
class _Shot:
    image_id: str
    path: Path
    acquisition: exif.Acquisition


def label_of(attribute: str, acquisition: exif.Acquisition) -> tuple[str | None, str]:
    """(label name, reason when there is none) of one image for `attribute`."""
    if attribute == "make":
        return acquisition.make, f"no Exif {exif.TAG_NAMES['make']}"
    if attribute == "model":
        return acquisition.model, f"no Exif {exif.TAG_NAMES['model']}"
    if attribute == "is_smartphone":
        if acquisition.make is None:
            return None, "no Exif Make, so phone or camera is unknown"
        flag = acquisition.is_smartphone
        reason = f"cannot tell whether {acquisition.make} {acquisition.model or '(no model)'} is a smartphone"
        return (None if flag is None else str(flag)), reason
    value = getattr(acquisition, attribute)
    if value is None:
        return None, f"no Exif {exif.TAG_NAMES[attribute]}"
    return exif.bin_value(attribute, value), f"{attribute} {_shown(attribute, value)} outside the paper's classes"


def _shown(attribute: str, value: float) -> str:
    if attribute == "exposure":
        return f"{value:g} s" + (f" (1/{1 / value:.4g})" if value < 1 else "")
    return f"{value:g} mm" if attribute == "focal_length" else f"{value:g}"


MIN_PER_CLASS = 3  # one image each for train, val and test


def split_of_each(attribute: str, classes: dict[str, list[str]]) -> dict[str, str]:
    """image_id -> train/val/test, stratified by class (see the module docstring); every class
    given must have at least MIN_PER_CLASS images."""
    splits: dict[str, str] = {}
    for ids in classes.values():
        ordered = sorted(ids, key=lambda image_id: (stable_int(f"{SPLIT_SEED}|cameras-split|{attribute}|{image_id}"), image_id))
        for image_id, split in zip(ordered, _split_sequence(len(ordered))):
            splits[image_id] = split
    return splits


def _split_sequence(count: int) -> list[str]:
    """count split names, ~60/20/20, with every split present from 3 images on."""
    if count < MIN_PER_CLASS:
        return ["train", "test"][:count]
    held_out = max(1, int(0.2 * count + 0.5))
    return ["train"] * (count - 2 * held_out) + ["val"] * held_out + ["test"] * held_out


def _meta(shot: _Shot) -> tuple[tuple[str, object], ...]:
    acquisition = shot.acquisition
    return (
        ("camera_make", acquisition.make),
        ("camera_model", acquisition.model),
        ("is_smartphone", acquisition.is_smartphone),
        ("iso", acquisition.iso),
        ("exposure", acquisition.exposure),
        ("aperture", acquisition.aperture),
        ("focal_length", acquisition.focal_length),
        ("source_path", str(shot.path)),
    )


def _read_all(root: Path) -> tuple[list[_Shot], list[dict[str, str]]]:
    shots: list[_Shot] = []
    walk = walk_images(root)
    rejects: list[dict[str, str]] = list(walk.unreadable)
    for path in walk.files:
        try:
            acquisition = exif.read(path)
        except (OSError, Image.DecompressionBombError) as error:
            rejects.append({"path": str(path), "reason": f"cannot open as an image: {error}"})
            continue
        shots.append(_Shot(path.relative_to(root).as_posix(), path, acquisition))
    return shots, rejects


def attribute_of(requested: str | None) -> str:
    """The canonical attribute name; FlickrExif spellings ("Make", "ISO Speed") are accepted."""
    key = (requested or DEFAULT_ATTRIBUTE).strip().lower().replace(" ", "_")
    attribute = ATTRIBUTE_ALIASES.get(key, key)
    if attribute not in ATTRIBUTES:
        close = difflib.get_close_matches(key, ATTRIBUTES, n=3, cutoff=0.5)
        suggestion = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"cameras: unknown --attribute {requested!r}.{suggestion} Choose one of {', '.join(ATTRIBUTES)}.")
    return attribute


def listing(options: DatasetOptions) -> Listing:
    """Every image below options.root, labelled by options.attribute from its Exif (default make)."""
    assert options.root is not None
    attribute = attribute_of(options.attribute)
    shots, rejects = _read_all(options.root)
    if not shots and not rejects:
        raise DataError(f"cameras: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) below {options.root}")
    by_class: dict[str, list[_Shot]] = defaultdict(list)
    for shot in shots:
        name, reason = label_of(attribute, shot.acquisition)
        if name is None:
            rejects.append({"path": str(shot.path), "reason": reason})
        else:
            by_class[name].append(shot)
    for name, members in list(by_class.items()):
        if len(members) < MIN_PER_CLASS:
            del by_class[name]
            for shot in members:
                rejects.append({"path": str(shot.path), "reason": f"only {len(members)} photo(s) with {attribute} {name!r}; "
                                f"a class needs at least {MIN_PER_CLASS} to have one in each of train, val and test"})
    splits = split_of_each(attribute, {name: [shot.image_id for shot in members] for name, members in by_class.items()})
    class_of = {shot.image_id: name for name, members in by_class.items() for shot in members}
    labelled = [(shot, class_of[shot.image_id]) for shot in shots if shot.image_id in class_of]
    index = {name: label for label, name in enumerate(sorted(by_class))}
    records = [
        ImageRecord(shot.image_id, splits[shot.image_id], index[name], name, str(shot.path), meta=_meta(shot))
        for shot, name in labelled
    ]
    rejects.sort(key=lambda reject: reject["path"])
    return Listing(records, rejects)
