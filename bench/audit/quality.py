"""JPEG settings read from a file's header: the quality its quantisation tables were scaled to
(the IJG convention every libjpeg-based encoder follows) and its chroma subsampling.

The estimate compares the file's tables with the example tables of the JPEG standard (ITU-T
T.81, Annex K, tables K.1 and K.2) scaled the way the IJG library scales them for a quality q:
a factor of 5000 / q below 50 and 200 - 2q from 50 on, each entry (base × factor + 50) // 100,
clamped to 1 … 255. The q whose tables lie nearest wins; where even that one is off by more than
the rounding of another encoder could explain, the tables are called non-standard (cameras and
phones often write their own). A file re-saved keeps only its last tables, so the estimate says
how a file was last written, never what happened to it before.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from PIL import Image, JpegImagePlugin

# T.81 Annex K, in natural (row-major) order, as Pillow returns a file's tables.
LUMA = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)
CHROMA = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    *(99,) * 32,
)
QUALITIES = range(1, 101)
TOLERANCE = 1  # an entry may differ by this much from the scaled table: encoders round differently
NOT_JPEG = "not JPEG"
NON_STANDARD = "non-standard"
SUBSAMPLING = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}


def scaled(base: tuple[int, ...], quality: int) -> tuple[int, ...]:
    """The IJG library's table for `quality` (1-100) made from a base table."""
    factor = 5000 // quality if quality < 50 else 200 - 2 * quality
    return tuple(min(255, max(1, (entry * factor + 50) // 100)) for entry in base)


# (quality, entry): the luma table's 64 entries, then the chroma table's
_BOTH = np.array([scaled(LUMA, quality) + scaled(CHROMA, quality) for quality in QUALITIES], dtype=np.int64)


@dataclass(frozen=True)
class QualityEstimate:
    """The nearest IJG quality and how far the file's tables are from it (largest entry difference)."""

    quality: int
    distance: int

    @property
    def standard(self) -> bool:
        """Whether the tables are the IJG ones for `quality`, up to rounding."""
        return self.distance <= TOLERANCE

    def label(self) -> str:
        return f"q{self.quality}" if self.standard else NON_STANDARD


def estimate(tables: dict[int, list[int]]) -> QualityEstimate | None:
    """The IJG quality nearest a file's quantisation tables (0: luma, 1: chroma, as Pillow
    numbers them); None when the file has no table 0. Ties go to the higher quality."""
    luma, chroma = tables.get(0), tables.get(1)
    if luma is None or len(luma) != 64:
        return None
    return _nearest(tuple(luma) + (tuple(chroma) if chroma is not None and len(chroma) == 64 else ()))


@lru_cache(maxsize=256)
def _nearest(entries: tuple[int, ...]) -> QualityEstimate:
    """The nearest quality for luma (64) or luma + chroma (128) entries; files of one encoder share tables."""
    gaps = np.abs(_BOTH[:, : len(entries)] - np.asarray(entries, dtype=np.int64))
    largest, total = gaps.max(axis=1), gaps.sum(axis=1)
    best = min(range(len(QUALITIES)), key=lambda row: (largest[row], total[row], -QUALITIES[row]))
    return QualityEstimate(QUALITIES[best], int(largest[best]))


def quality_label(image: Image.Image) -> str:
    """"q75" for a JPEG written with the IJG tables of quality 75, "non-standard" for other
    tables, "not JPEG" for every other format."""
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return NOT_JPEG
    found = estimate(getattr(image, "quantization", None) or {})
    return NON_STANDARD if found is None else found.label()


def subsampling_label(image: Image.Image) -> str:
    """The chroma subsampling of a JPEG ("4:2:0", "4:4:4", …; "grayscale" for one channel)."""
    if not isinstance(image, JpegImagePlugin.JpegImageFile):
        return NOT_JPEG
    if getattr(image, "layers", 3) == 1:
        return "grayscale"
    return SUBSAMPLING.get(JpegImagePlugin.get_sampling(image), "other")
