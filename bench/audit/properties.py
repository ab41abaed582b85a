"""File properties an audit relates to the labels, read from each file's header as stored
(Pillow opens lazily: no pixel is decoded): JPEG quality and chroma subsampling, file format,
pixel size, and the Exif acquisition facts bench already reads."""

from __future__ import annotations

import concurrent.futures
import os
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from PIL import Image

from bench import exif
from bench.audit import quality
from bench.data import hub_rows

ABSENT = "absent"  # the file does not say (no Exif field)
OUTSIDE = "other"  # the Exif value lies outside the paper's classes
SIZE_EDGES = (32, 64, 128, 256, 512, 1024, 2048, 4096)  # upper edges of the long-side bins, in pixels


@dataclass(frozen=True)
class Property:
    """One file property: its name, how a board heads it, and the value that means "not carried"."""

    name: str
    title: str
    missing: str | None  # files with this value do not carry the property (None: every file does)


PROPERTIES: tuple[Property, ...] = (
    Property("jpeg_quality", "JPEG quality", quality.NOT_JPEG),
    Property("subsampling", "chroma subsampling", quality.NOT_JPEG),
    Property("format", "file format", None),
    Property("pixel_size", "pixel size (long side)", None),
    Property("make", "Exif make", ABSENT),
    Property("model", "Exif model", ABSENT),
    Property("is_smartphone", "phone or camera", ABSENT),
    Property("iso", "Exif ISO", ABSENT),
    Property("exposure", "Exif exposure", ABSENT),
    Property("aperture", "Exif aperture", ABSENT),
    Property("focal_length", "Exif focal length", ABSENT),
)


def size_bin(width: int, height: int) -> str:
    """The long side's bin: "≤32 px", "33–64 px", …, ">4096 px"."""
    side = max(width, height)
    lower = 1
    for edge in SIZE_EDGES:
        if side <= edge:
            return f"≤{edge} px" if lower == 1 else f"{lower}–{edge} px"
        lower = edge + 1
    return f">{SIZE_EDGES[-1]} px"


def _phone(flag: bool | None) -> str:
    return ABSENT if flag is None else ("phone" if flag else "camera")


def _binned(attribute: str, value: float | None) -> str:
    if value is None:
        return ABSENT
    return exif.bin_value(attribute, value) or OUTSIDE


def of_image(image: Image.Image) -> dict[str, str]:
    """Every property's value for one opened image (headers only)."""
    shot = exif.of_image(image)
    return {
        "jpeg_quality": quality.quality_label(image),
        "subsampling": quality.subsampling_label(image),
        "format": image.format or "unknown",
        "pixel_size": size_bin(*image.size),
        "make": shot.make or ABSENT,
        "model": shot.model or ABSENT,
        "is_smartphone": _phone(shot.is_smartphone),
        **{attribute: _binned(attribute, getattr(shot, attribute)) for attribute in exif.BINNED},
    }


def of_file(path: str) -> dict[str, str]:
    """Every property's value for one file (or Hugging Face row); raises whatever Pillow raises
    for a file it cannot read."""
    source = hub_rows.image_file(path) if path.startswith(hub_rows.LOCATOR) else path
    with Image.open(source) as image:
        return of_image(image)


@dataclass(frozen=True)
class Reading:
    """What the files said: values per readable file, and why each other file could not be read."""

    values: dict[str, dict[str, str]]  # path -> property -> value
    unreadable: dict[str, str]  # path -> reason


CHUNK = 256  # files per task handed to a worker process
AUTO_SERIAL = 2000  # below this many files, reading in this process is faster than starting workers


def _read_one(path: str) -> tuple[str, dict[str, str] | None, str | None]:
    try:
        return path, of_file(path), None
    except Exception as error:  # Pillow raises many kinds on damaged headers; each is a reason here
        return path, None, f"{type(error).__name__}: {error}"


def _read_chunk(paths: list[str]) -> list[tuple[str, dict[str, str] | None, str | None]]:
    return [_read_one(path) for path in paths]


def default_workers(files: int) -> int:
    """Worker processes for reading `files` headers: none for a small dataset, else one per core (at most 8)."""
    return 0 if files < AUTO_SERIAL else min(os.cpu_count() or 1, 8)


def read(paths: Iterable[str], advance: Callable[[int], None] | None = None, workers: int = 0) -> Reading:
    """The properties of every distinct file; a damaged or unreadable file becomes a reason, not
    an error. `workers` > 0 reads in that many processes; `advance(n)` is called as files are
    read (a progress bar)."""
    distinct = list(dict.fromkeys(paths))
    chunks = [distinct[start:start + CHUNK] for start in range(0, len(distinct), CHUNK)]
    values: dict[str, dict[str, str]] = {}
    unreadable: dict[str, str] = {}
    if workers > 0 and len(chunks) > 1:
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
            done = pool.map(_read_chunk, chunks)
            found = (item for chunk in _advancing(done, advance) for item in chunk)
            _collect(found, values, unreadable)
    else:
        _collect((item for chunk in _advancing(map(_read_chunk, chunks), advance) for item in chunk), values, unreadable)
    return Reading({path: values[path] for path in distinct if path in values}, unreadable)


def _advancing(chunks: Iterable[list], advance: Callable[[int], None] | None) -> Iterator[list]:
    for chunk in chunks:
        if advance is not None:
            advance(len(chunk))
        yield chunk


def _collect(found: Iterable[tuple[str, dict[str, str] | None, str | None]], values: dict[str, dict[str, str]],
             unreadable: dict[str, str]) -> None:
    for path, read_values, reason in found:
        if read_values is None:
            unreadable[path] = reason or "unreadable"
        else:
            values[path] = read_values
