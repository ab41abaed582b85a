"""The prepare stage: pure functions of a record that turn a file into encoder inputs.

A record is decoded once, each processing op is applied once, and the geometry step (resize +
centre crop) runs once per distinct input shape, i.e. per (input size, interpolation) among
the encoders that need the item. The result is uint8 pixels; scaling to [0, 1] and the
encoder's mean/std normalisation happen in the embed stage, on the device.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

import numpy as np
import torch
from PIL import Image

from bench import processing
from bench.data import ImageRecord
from bench.encoders.preprocess import paper_geometry
from bench.encoders.spec import EncoderSpec

# Bad input that becomes a reject instead of a crash.
DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class InputShape:
    """An encoder's input: its size and the interpolation that resizes to it. One geometry step;
    encoders that share it share the prepared pixels."""

    size: int
    interpolation: str

    def geometry(self):
        return _geometry(self.size, self.interpolation)


@lru_cache(maxsize=None)
def _geometry(size: int, interpolation: str):
    return paper_geometry(size, interpolation)


def input_shape_of(spec: EncoderSpec) -> InputShape:
    return InputShape(spec.input_size, spec.interpolation)


def pixels(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a (3, H, W) uint8 tensor."""
    array = np.array(image.convert("RGB"), dtype=np.uint8)  # writable: torch refuses read-only memory
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


@dataclass(frozen=True)
class Prepared:
    pixels: dict[InputShape, torch.Tensor]  # (3, H, W) uint8 per input shape
    warnings: tuple[str, ...] = ()  # what the decoder warned about (e.g. corrupt Exif, a very large image)


def prepare(record: ImageRecord, op: processing.Processing, shapes: Iterable[InputShape]) -> Prepared:
    """The record under `op`, through each input shape's geometry, as uint8 pixels per shape. Warnings
    raised on the way are returned, for the run's rejects file, instead of being printed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = record.load()
        if op.stage == "source":
            image = processing.apply(op, image, image_id=record.image_id)
        out: dict[InputShape, torch.Tensor] = {}
        for shape in shapes:
            cropped = shape.geometry()(image)
            if op.stage == "after_crop":
                cropped = processing.apply(op, cropped, image_id=record.image_id)
            out[shape] = pixels(cropped)
    return Prepared(out, tuple(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)))
