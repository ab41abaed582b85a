"""The paper's processing operations (docs/protocol.md#processing-ops), deterministic per (seed, image_id).

Source-stage ops act on the full-resolution decoded image before the encoder's resize; the
masking op acts on the encoder's resized and centre-cropped image, as in the paper's code.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Literal

from PIL import Image, ImageDraw, ImageEnhance

from bench import registry
from bench.seeding import rng_for

Stage = Literal["source", "after_crop"]

# Pillow resampling filters by the names the paper uses.
KERNELS = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
INTERPOLATION_SCALE_RANGE = (0.8, 1.2)  # s = 1 + U(-0.2, 0.2)
SEED = 0  # the ops' randomness (interpolation scales) is a function of (SEED, image_id); tables record it


@dataclass(frozen=True)
class Processing:
    """One processing class: an op with fixed parameters and the stage where it applies."""

    name: str
    kind: Literal["original", "jpeg", "sharpen", "resize", "interpolate", "mask"]
    params: tuple[tuple[str, object], ...] = field(default_factory=tuple)
    stage: Stage = "source"
    version: int = 1  # bump when the op's output changes; it enters the extraction fingerprint
    description: str = ""

    def param(self, key: str) -> object:
        return dict(self.params)[key]


def jpeg_bytes(image: Image.Image, quality: int, subsampling: str) -> bytes:
    """Pillow's baseline JPEG writer with libjpeg's standard tables: no optimise, no progressive."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, subsampling=subsampling)
    return buffer.getvalue()


def jpeg_roundtrip(image: Image.Image, quality: int, subsampling: str) -> Image.Image:
    """Re-encode as JPEG and decode again."""
    decoded = Image.open(io.BytesIO(jpeg_bytes(image, quality, subsampling)))
    decoded.load()
    return decoded.convert("RGB")


def interpolation_scale(seed: int, image_id: str) -> float:
    """The image's random rescale factor, shared by the four interpolation kernels."""
    low, high = INTERPOLATION_SCALE_RANGE
    return float(rng_for(seed, image_id, "interpolation-scale").uniform(low, high))


def scaled_size(image: Image.Image, scale: float) -> tuple[int, int]:
    """New (width, height), truncated to int as the paper's code does."""
    return int(image.width * scale), int(image.height * scale)


def mask_box(size: int, ratio: float) -> tuple[int, int, int, int]:
    """Centred square box covering `ratio` of a size×size crop: (left, top, right, bottom), exclusive."""
    margin = round((size - size * math.sqrt(ratio)) / 2)
    return margin, margin, size - margin, size - margin


def _final_jpeg(image: Image.Image) -> Image.Image:
    return jpeg_roundtrip(image, 95, "4:4:4")


def apply(processing: Processing, image: Image.Image, *, image_id: str, seed: int = SEED) -> Image.Image:
    """Apply one processing class to an RGB PIL image."""
    kind = processing.kind
    if kind == "original":
        return image
    if kind == "jpeg":
        return jpeg_roundtrip(image, int(processing.param("quality")), str(processing.param("subsampling")))
    if kind == "sharpen":
        return _final_jpeg(ImageEnhance.Sharpness(image).enhance(float(processing.param("factor"))))
    if kind == "resize":
        size = scaled_size(image, float(processing.param("scale")))
        return _final_jpeg(image.resize(size, Image.Resampling.BILINEAR))
    if kind == "interpolate":
        size = scaled_size(image, interpolation_scale(seed, image_id))
        return _final_jpeg(image.resize(size, KERNELS[str(processing.param("kernel"))]))
    if kind == "mask":
        if image.width != image.height:
            raise ValueError(f"masking expects the encoder's square centre crop, got {image.size}")
        masked = _final_jpeg(image)
        left, top, right, bottom = mask_box(image.width, float(processing.param("ratio")))
        if right > left:  # mask0 (the sweep's reference point) draws nothing
            ImageDraw.Draw(masked).rectangle(_inclusive((left, top, right, bottom)), fill=(0, 0, 0))
        return masked
    raise ValueError(f"processing {processing.name!r} has unknown kind {kind!r}")


def _inclusive(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    return left, top, right - 1, bottom - 1  # ImageDraw.rectangle includes its end points


def _jpeg(quality: int, subsampling: str) -> Processing:
    tag = subsampling.replace(":", "")
    return Processing(
        name=f"jpeg{quality}_{tag}",
        kind="jpeg",
        params=(("quality", quality), ("subsampling", subsampling)),
        description=f"JPEG re-encode, quality {quality}, chroma {subsampling}",
    )


def mask(ratio: float) -> Processing:
    """A masking op for any ratio (the masking sweep); `mask95` is the paper's."""
    percent = round(ratio * 100)
    return Processing(
        name=f"mask{percent}",
        kind="mask",
        params=(("ratio", ratio),),
        stage="after_crop",
        description=f"after the encoder's crop: JPEG q95 4:4:4, then a centred black box over {percent}% of the area",
    )


PROCESSINGS: dict[str, Processing] = registry.build(
    "processing",
    [
        Processing("original", "original", description="the decoded file as it is: no re-encode (PairCams, camera datasets)"),
        *(_jpeg(q, s) for q in (75, 85, 95) for s in ("4:2:0", "4:4:4")),
        *(
            Processing(f"sharpen{f}", "sharpen", (("factor", float(f)),), description=f"ImageEnhance.Sharpness x{f}, then JPEG q95 4:4:4")
            for f in (2, 4)
        ),
        Processing("resize_half", "resize", (("scale", 0.5),), description="bilinear x0.5 (int-truncated size), then JPEG q95 4:4:4"),
        Processing("resize_double", "resize", (("scale", 2.0),), description="bilinear x2 (int-truncated size), then JPEG q95 4:4:4"),
        *(
            Processing(f"interp_{k}", "interpolate", (("kernel", k),), description=f"{k} rescale by s~U(0.8,1.2) per image, then JPEG q95 4:4:4")
            for k in KERNELS
        ),
        *(mask(r) for r in (0.0, 0.25, 0.5, 0.75, 0.9, 0.95)),
    ],
)

# Label order inside a group is the class index (docs/protocol.md#groups-and-classes).
DEFAULT_GROUP = "jpeg"
GROUPS: dict[str, tuple[str, ...]] = {
    "jpeg": ("jpeg75_420", "jpeg75_444", "jpeg85_420", "jpeg85_444", "jpeg95_420", "jpeg95_444"),
    "sharpening": ("jpeg95_444", "sharpen2", "sharpen4"),
    "resizing": ("jpeg95_444", "resize_half", "resize_double"),
    "interpolation": ("interp_bilinear", "interp_bicubic", "interp_lanczos", "interp_box"),
}

# The masking sweep (docs/protocol.md#masking): semantic accuracy against the masked fraction of the crop.
MASK_SWEEP: tuple[str, ...] = ("mask0", "mask25", "mask50", "mask75", "mask90", "mask95")


def get(name: str) -> Processing:
    return registry.lookup("processing", PROCESSINGS, name)


def group(name: str) -> tuple[str, ...]:
    if name not in GROUPS:
        raise registry.UnknownNameError(
            f"unknown processing group {name!r}; choose one of: {', '.join(GROUPS)}"
        )
    return GROUPS[name]


def primary_group(name: str) -> str:
    """The first group that lists the op (jpeg95_444 is also the neutral class of two others)."""
    for group_name, members in GROUPS.items():
        if name in members:
            return group_name
    return "masking" if get(name).kind == "mask" else get(name).kind
