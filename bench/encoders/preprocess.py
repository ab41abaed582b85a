"""Encoder preprocessing split at the point where the paper inserts masking (after the crop)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torchvision import transforms as T

from bench.encoders.spec import EncoderSpec

_INTERPOLATION = {
    "bicubic": T.InterpolationMode.BICUBIC,
    "bilinear": T.InterpolationMode.BILINEAR,
    "nearest": T.InterpolationMode.NEAREST,
}


@dataclass(frozen=True)
class Preprocess:
    """`geometry` (PIL -> square PIL crop) then `tensorize` (PIL -> normalised tensor)."""

    geometry: T.Compose
    tensorize: T.Compose
    mode: str

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.tensorize(self.geometry(image))

    def describe(self) -> str:
        return f"{self.mode}: {self.geometry} -> {self.tensorize}"


def paper_preprocess(spec: EncoderSpec) -> Preprocess:
    """The paper's override (PROTOCOL.md §2): shorter side straight to the input size, centre crop."""
    geometry = T.Compose(
        [
            T.Resize(spec.input_size, interpolation=_INTERPOLATION[spec.interpolation], antialias=True),
            T.CenterCrop(spec.input_size),
        ]
    )
    tensorize = T.Compose([T.ToTensor(), T.Normalize(spec.mean, spec.std)])
    return Preprocess(geometry=geometry, tensorize=tensorize, mode="paper")
