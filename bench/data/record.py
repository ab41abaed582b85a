"""ImageRecord: one image of a dataset, loadable in a worker process."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from PIL import Image

from bench import processing
from bench.data import hub_rows

ORIENTATION_TAG = 0x0112  # Exif Orientation

# Metadata columns every store table has; datasets fill what they know, the rest stays null.
METADATA_COLUMNS: dict[str, str] = {
    "camera_make": "string",
    "camera_model": "string",
    "is_smartphone": "bool",
    "iso": "float64",
    "exposure": "float64",
    "aperture": "float64",
    "focal_length": "float64",
    "camera_class": "int64",
    "subject_id": "int64",
    "source_path": "string",
}


@dataclass(frozen=True)
class ImageRecord:
    """One dataset item: stable id, split, semantic label, where its pixels come from, metadata."""

    image_id: str
    split: str
    label: int
    label_name: str
    path: str
    crop: tuple[int, int, int, int] | None = None  # (left, top, right, bottom) in source pixels
    meta: tuple[tuple[str, object], ...] = field(default_factory=tuple)
    capture: str | None = None  # a processing op standing in for the camera (simulated datasets)
    orient: bool = False  # rotate by the Exif orientation tag before anything else
    file_state: str = ""  # the source file's size and modification time when the dataset was listed
    unit: str = ""  # the independent unit the image belongs to (a crop's source photo, a --groups group); "": itself

    @property
    def stamp(self) -> str:
        """What the record's pixels are made from, as far as a cheap check can tell: the file's
        state, the crop, the simulated capture op and the orientation rule. A stored vector whose
        stamp differs from its record's is extracted again."""
        return f"{self.file_state}|{self.crop}|{self.capture}|{int(self.orient)}"

    def load(self) -> Image.Image:
        """Decode to 8-bit RGB (see `to_rgb`), rotate by Exif orientation if the dataset says so,
        crop, then apply the simulated capture op if any; undecodable files raise OSError."""
        state = self.file_state if self.path.startswith(hub_rows.LOCATOR) else _file_state(self.path)
        decoded = _decode_rgb_cached(self.path, state, self.orient)
        image = decoded.copy() if self.crop is None else decoded.crop(self.crop)  # copies: the cache stays intact
        if self.capture is None:
            return image
        return processing.apply(processing.get(self.capture), image, image_id=self.image_id)

    def metadata(self) -> dict[str, object]:
        values: dict[str, object] = {column: None for column in METADATA_COLUMNS}
        values["source_path"] = self.path
        values.update(self.meta)
        return values


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB the way the paper's loaders see images: palette, grayscale and CMYK converted,
    alpha dropped (not composited). 16-bit and 32-bit integer grayscale is scaled by its bit depth
    instead of clipped, a departure from the paper's loaders (docs/protocol.md): clipping turns
    nearly every 16-bit pixel white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        import numpy as np

        values = np.asarray(image, dtype=np.int64)
        gray = np.clip(values >> 8, 0, 255).astype(np.uint8)  # 16-bit range -> 8-bit
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "F":
        return image.convert("L").convert("RGB")
    return image.convert("RGB")


def _decode_rgb(path: str, orient: bool = False) -> Image.Image:
    if path.startswith(hub_rows.LOCATOR):  # a row of a Hugging Face dataset
        path = hub_rows.image_file(path)
    with Image.open(path) as handle:
        if orient and handle.getexif().get(ORIENTATION_TAG, 1) != 1:
            from PIL import ImageOps

            return to_rgb(ImageOps.exif_transpose(handle))  # what Hugging Face datasets does when it decodes
        return to_rgb(handle)


def _file_state(path: str) -> tuple[int, int]:
    """(mtime, size): a file rewritten in place is decoded again, not served from the cache."""
    status = os.stat(path)
    return status.st_mtime_ns, status.st_size


@lru_cache(maxsize=2)
def _decode_rgb_cached(path: str, state: object, orient: bool = False) -> Image.Image:
    """Extraction asks for one image under every processing in a row, and the demo's crops of
    one photo come in runs: keeping the last decodes saves decoding the same file each time."""
    return _decode_rgb(path, orient)


@dataclass(frozen=True)
class DatasetOptions:
    """What a user says about where a dataset lives and which label to use."""

    root: Path | None = None  # the dataset's folder (see its card in datasets/)
    attribute: str | None = None  # label attribute, for datasets with several (flickrexif, cameras)
    source: str | None = None  # a Hugging Face dataset: repo id or local path (`--dataset hf:<source>`)
    revision: str | None = None  # of a Hub repo: a branch, tag or commit (default: the main branch)
    image_column: str | None = None  # Hugging Face datasets: the column of images (default: the one Image column)
    label_column: str | None = None  # … of labels (default: the one ClassLabel column)
    id_column: str | None = None  # … of unique image ids (default: split/row)
    hf_splits: tuple[tuple[str, str], ...] = ()  # (bench split, the dataset's split); default: train, validation, test
    verify_content: bool = False  # stamp each file by a hash of its bytes, not its size and time (reads every file in full)
    groups: Path | None = None  # a CSV of image -> group: images of one group are resampled and permuted together


@dataclass
class Listing:
    """A dataset's records in stable order, plus the files it had to leave out and why."""

    records: list[ImageRecord]
    rejects: list[dict[str, str]] = field(default_factory=list)  # {"path": ..., "reason": ...}
    origin: dict[str, object] = field(default_factory=dict)  # where the data comes from, beyond a folder (a Hub repo's revision, splits)
