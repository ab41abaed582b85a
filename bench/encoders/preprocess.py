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


def paper_geometry(size: int, interpolation: str) -> T.Compose:
    """The paper's resize override: shorter side straight to the input size, then a centre crop
    (no crop_pct margin, no squashing)."""
    return T.Compose([T.Resize(size, interpolation=_INTERPOLATION[interpolation], antialias=True), T.CenterCrop(size)])


def paper_preprocess(spec: EncoderSpec) -> Preprocess:
    """The encoder's full preprocessing as the paper runs it: `paper_geometry`, then to a float
    tensor in [0, 1] normalised by the encoder's mean and std."""
    tensorize = T.Compose([T.ToTensor(), T.Normalize(spec.mean, spec.std)])
    return Preprocess(geometry=paper_geometry(spec.input_size, spec.interpolation), tensorize=tensorize, mode="paper")
