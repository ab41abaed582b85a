"""Each processing op has a property that a wrong implementation would break."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from bench import processing
from bench.processing import GROUPS, PROCESSINGS, apply, get

# JPEG standard (ITU T.81 Annex K) luminance and chrominance tables, natural order, at quality 50.
LUMA = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
        49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]
CHROMA = [17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
          47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32


def scaled_table(base: list[int], quality: int) -> list[int]:
    """libjpeg's quality scaling of a base table."""
    scale = 5000 // quality if quality < 50 else 200 - 2 * quality
    return [min(max((value * scale + 50) // 100, 1), 255) for value in base]


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 96 * 80).reshape(80, 96)
    pixels = np.stack([gradient, np.flipud(gradient), rng.uniform(0, 255, (80, 96))], axis=2)
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


@pytest.mark.parametrize("name", GROUPS["jpeg"])
def test_jpeg_class_uses_standard_tables_and_subsampling(photo: Image.Image, name: str) -> None:
    op = get(name)
    quality, subsampling = int(op.param("quality")), str(op.param("subsampling"))
    encoded = Image.open(io.BytesIO(processing.jpeg_bytes(photo, quality, subsampling)))
    tables = encoded.quantization
    luma, chroma = list(tables[0]), list(tables[1])
    expected_luma, expected_chroma = scaled_table(LUMA, quality), scaled_table(CHROMA, quality)
    assert expected_luma != scaled_table(LUMA, 90), "tables differ between qualities"
    assert luma == expected_luma  # Pillow reports tables in natural (row-major) order
    assert chroma == expected_chroma
    luma_sampling = encoded.layer[0][1:3]  # (horizontal, vertical) factors of the Y component
    assert luma_sampling == ((2, 2) if subsampling == "4:2:0" else (1, 1))
    assert not encoded.info.get("progressive") and not encoded.info.get("progression")


def test_jpeg_op_changes_pixels_more_at_low_quality(photo: Image.Image) -> None:
    source = np.asarray(photo, dtype=np.float64)
    error = {name: np.abs(np.asarray(apply(get(name), photo, seed=0, image_id="x"), dtype=np.float64) - source).mean() for name in GROUPS["jpeg"]}
    assert error["jpeg75_420"] > error["jpeg85_420"] > error["jpeg95_420"]
    assert error["jpeg95_444"] < error["jpeg95_420"]


def test_resize_sizes_are_truncated_and_final_jpeg_applies(photo: Image.Image) -> None:
    odd = photo.resize((97, 81))
    assert apply(get("resize_half"), odd, seed=0, image_id="x").size == (48, 40)
    assert apply(get("resize_double"), odd, seed=0, image_id="x").size == (194, 162)


def test_sharpening_keeps_size_and_raises_high_frequencies(photo: Image.Image) -> None:
    def detail(image: Image.Image) -> float:
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
        return float(np.abs(np.diff(pixels, axis=1)).mean())

    plain = apply(get("jpeg95_444"), photo, seed=0, image_id="x")
    two, four = (apply(get(name), photo, seed=0, image_id="x") for name in ("sharpen2", "sharpen4"))
    assert two.size == four.size == photo.size
    assert detail(plain) < detail(two) < detail(four)


def test_interpolation_scale_shared_across_kernels_and_varies_across_images(photo: Image.Image) -> None:
    sizes = {name: apply(get(name), photo, seed=3, image_id="img-1").size for name in GROUPS["interpolation"]}
    assert len(set(sizes.values())) == 1
    scales = [processing.interpolation_scale(3, f"img-{i}") for i in range(200)]
    assert all(0.8 <= s <= 1.2 for s in scales)
    assert len(set(scales)) == 200
    assert processing.interpolation_scale(3, "img-1") == processing.interpolation_scale(3, "img-1")
    assert processing.interpolation_scale(4, "img-1") != processing.interpolation_scale(3, "img-1")
    outputs = [np.asarray(apply(get(name), photo, seed=3, image_id="img-1")) for name in GROUPS["interpolation"]]
    assert not np.array_equal(outputs[0], outputs[1]), "different kernels must give different pixels"


@pytest.mark.parametrize("ratio", [0.0, 0.25, 0.5, 0.9, 0.95])
def test_mask_covers_the_requested_area_after_the_crop(ratio: float) -> None:
    crop = Image.new("RGB", (224, 224), (200, 180, 160))
    masked = np.asarray(apply(processing.mask(ratio), crop, seed=0, image_id="x"))
    black = (masked.max(axis=2) == 0).mean()
    assert abs(black - ratio) < 0.01
    assert processing.mask(ratio).stage == "after_crop"


def test_mask95_leaves_a_three_pixel_frame_on_224() -> None:
    assert processing.mask_box(224, 0.95) == (3, 3, 221, 221)
    with pytest.raises(ValueError, match="square"):
        apply(get("mask95"), Image.new("RGB", (20, 10)), seed=0, image_id="x")


def test_groups_name_registered_processings_and_unknown_names_suggest() -> None:
    for members in GROUPS.values():
        assert all(name in PROCESSINGS for name in members)
    assert GROUPS["sharpening"][0] == GROUPS["resizing"][0] == "jpeg95_444"
    with pytest.raises(KeyError, match="jpeg95_444"):
        get("jpeg95_44")


def test_original_keeps_every_pixel_and_belongs_to_no_group(photo: Image.Image) -> None:
    """`original` is the file as decoded: no re-encode, so camera traces stay the cameras' own."""
    out = apply(get("original"), photo, seed=0, image_id="x")
    assert out.size == photo.size and np.array_equal(np.asarray(out), np.asarray(photo))
    assert all("original" not in members for members in GROUPS.values())
    assert processing.primary_group("original") == "original"


def pillow_q95_444(image: Image.Image) -> np.ndarray:
    """The final re-encode, written with Pillow directly: quality 95, no chroma subsampling."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=95, subsampling=0)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


@pytest.mark.parametrize(
    "name, transform",
    [
        ("sharpen2", lambda image, _: ImageEnhance.Sharpness(image).enhance(2.0)),
        ("sharpen4", lambda image, _: ImageEnhance.Sharpness(image).enhance(4.0)),
        ("resize_half", lambda image, _: image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)),
        ("resize_double", lambda image, _: image.resize((image.width * 2, image.height * 2), Image.Resampling.BILINEAR)),
        ("interp_bilinear", lambda image, s: image.resize((int(image.width * s), int(image.height * s)), Image.Resampling.BILINEAR)),
        ("interp_bicubic", lambda image, s: image.resize((int(image.width * s), int(image.height * s)), Image.Resampling.BICUBIC)),
        ("interp_lanczos", lambda image, s: image.resize((int(image.width * s), int(image.height * s)), Image.Resampling.LANCZOS)),
        ("interp_box", lambda image, s: image.resize((int(image.width * s), int(image.height * s)), Image.Resampling.BOX)),
    ],
)
def test_each_op_equals_pillow_called_directly_then_jpeg_q95_444(photo: Image.Image, name: str, transform) -> None:
    """Every non-JPEG op is its Pillow operation (the named kernel, nothing else) followed by the
    final JPEG q95 4:4:4: leaving out the re-encode or swapping a kernel changes the pixels."""
    scale = processing.interpolation_scale(5, "img-7")
    expected = pillow_q95_444(transform(photo, scale))
    produced = np.asarray(apply(get(name), photo, seed=5, image_id="img-7"))
    assert np.array_equal(produced, expected)
    assert not np.array_equal(produced, np.asarray(transform(photo, scale).convert("RGB")))  # the re-encode is visible


def test_final_reencode_writes_q95_tables_without_subsampling(photo: Image.Image) -> None:
    encoded = Image.open(io.BytesIO(processing.jpeg_bytes(photo, 95, "4:4:4")))
    assert list(encoded.quantization[0]) == scaled_table(LUMA, 95)
    assert list(encoded.quantization[1]) == scaled_table(CHROMA, 95)
    assert [component[1:3] for component in encoded.layer] == [(1, 1)] * 3
