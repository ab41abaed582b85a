"""bench.exif on synthetic images whose Exif the test writes itself (no shared data needed)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from bench import exif
from bench.data import cameras

PROJECT = Path(__file__).resolve().parents[1]


def write_image(path: Path, ifd0: dict[int, object] | None = None, sub: dict[int, object] | None = None, fmt: str = "JPEG") -> Path:
    """An 8x8 image with the given IFD0 tags and Exif sub-IFD tags (no Exif at all when both are None)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGB", (8, 8), (120, 80, 40))
    if ifd0 is None and sub is None:
        image.save(path, fmt)
        return path
    data = Image.Exif()
    for tag, value in (ifd0 or {}).items():
        data[tag] = value
    if sub:
        data[exif.EXIF_IFD] = sub
    image.save(path, fmt, exif=data)
    return path


def shot(make: str = "Canon", model: str = "Canon EOS 5D Mark III", **sub: object) -> tuple[dict[int, object], dict[int, object]]:
    tags = {"exposure": exif.EXPOSURE_TAG, "aperture": exif.FNUMBER_TAG, "iso": exif.ISO_TAG, "focal_length": exif.FOCAL_TAG}
    return {exif.MAKE_TAG: make, exif.MODEL_TAG: model}, {tags[name]: value for name, value in sub.items()}


def test_reads_rationals_and_make_model(tmp_path: Path) -> None:
    ifd0, sub = shot(exposure=IFDRational(1, 60), aperture=IFDRational(28, 10), iso=400, focal_length=IFDRational(50, 1))
    result = exif.read(write_image(tmp_path / "a.jpg", ifd0, sub))
    assert (result.make, result.model, result.raw_make, result.raw_model) == ("Canon", "Canon EOS 5D Mark III", "Canon", "Canon EOS 5D Mark III")
    assert result.exposure == pytest.approx(1 / 60) and result.aperture == pytest.approx(2.8)
    assert (result.iso, result.focal_length, result.is_smartphone) == (400.0, 50.0, False)
    assert result.bins() == {"exposure": "1/60", "aperture": "f/2.8", "iso": "ISO 400", "focal_length": "50mm"}


def test_padded_strings_and_tuples(tmp_path: Path) -> None:
    # Cameras pad text with NULs and spaces; ISO may hold several values; a (num, den) pair is a rational.
    ifd0, sub = shot("NIKON CORPORATION\x00\x00  ", "NIKON  D90   \x00\x00", iso=(200, 0), focal_length=(35, 1), aperture=(IFDRational(4, 1), IFDRational(8, 1)))
    result = exif.read(write_image(tmp_path / "a.jpg", ifd0, sub))
    assert (result.raw_make, result.make) == ("NIKON CORPORATION", "NIKON")
    assert (result.raw_model, result.model) == ("NIKON  D90", "NIKON D90")
    assert (result.iso, result.focal_length, result.aperture) == (200.0, 35.0, 4.0)


def test_missing_fields_are_none(tmp_path: Path) -> None:
    result = exif.read(write_image(tmp_path / "a.jpg", {exif.MAKE_TAG: "SONY"}, None))
    assert result == exif.Acquisition(make="SONY", raw_make="SONY")
    assert result.bins() == dict.fromkeys(exif.BINNED)


def test_zero_denominator_and_bad_values_are_none(tmp_path: Path) -> None:
    ifd0, sub = shot(exposure=IFDRational(1, 0), aperture=IFDRational(0, 0), iso=0, focal_length=(7, 0))
    result = exif.read(write_image(tmp_path / "a.jpg", ifd0, sub))
    assert (result.exposure, result.aperture, result.iso, result.focal_length) == (None, None, None, None)
    assert result.make == "Canon"


def test_text_and_byte_values(tmp_path: Path) -> None:
    ifd0, sub = shot(exposure=b"1/125", aperture="f/2.8 garbage", iso=b"\xff\xfe\x00", focal_length="24")
    result = exif.read(write_image(tmp_path / "a.jpg", ifd0, sub))
    assert result.exposure == pytest.approx(1 / 125)
    assert (result.aperture, result.iso, result.focal_length) == (None, None, 24.0)


def test_garbage_bytes_in_make(tmp_path: Path) -> None:
    ifd0, _ = shot(make=b"\xff\xfe\x00\x13garbage", model="\x01\x02\x03")
    result = exif.read(write_image(tmp_path / "a.jpg", ifd0, None))
    assert (result.make, result.model, result.is_smartphone) == (None, None, None)


def test_no_exif_and_png(tmp_path: Path) -> None:
    assert exif.read(write_image(tmp_path / "plain.jpg")) == exif.Acquisition()
    assert exif.read(write_image(tmp_path / "plain.png", fmt="PNG")) == exif.Acquisition()
    ifd0, sub = shot("Apple", "iPhone XR", aperture=IFDRational(18, 10))
    result = exif.read(write_image(tmp_path / "tagged.png", ifd0, sub, fmt="PNG"))
    assert (result.make, result.is_smartphone, result.aperture) == ("Apple", True, 1.8)


def test_corrupt_exif_block_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.jpg"
    Image.new("RGB", (8, 8)).save(path, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff garbage")
    assert exif.read(path) == exif.Acquisition()


def test_not_an_image_raises_oserror(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(OSError):
        exif.read(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("NIKON CORPORATION", "NIKON"), ("NIKON", "NIKON"), ("Nikon", "NIKON"),
        ("EASTMAN KODAK COMPANY", "EASTMAN KODAK COMPANY"), ("Eastman Kodak Company", "EASTMAN KODAK COMPANY"), ("KODAK", "EASTMAN KODAK COMPANY"),
        ("OLYMPUS OPTICAL CO.,LTD", exif.OLYMPUS), ("OLYMPUS IMAGING CORP.", exif.OLYMPUS), ("OLYMPUS CORPORATION", exif.OLYMPUS),
        ("Hewlett-Packard Company", "Hewlett-Packard"), ("Hewlett-Packard", "Hewlett-Packard"), ("HP", "Hewlett-Packard"),
        ("SAMSUNG", "samsung"), ("samsung", "samsung"), ("SAMSUNG TECHWIN", "samsung"),
        ("SONY", "SONY"), ("Sony", "SONY"), ("Sony Ericsson", "Sony Ericsson"),
        ("Canon", "Canon"), ("FUJIFILM", "FUJIFILM"), ("FUJI PHOTO FILM CO., LTD.", "FUJIFILM"),
        ("Panasonic \x00", "Panasonic"), ("Apple", "Apple"), ("PENTAX Corporation ", "PENTAX"),
        ("SEIKO EPSON CORP.", "EPSON"), ("GoPro\x00\x00\x00", "GoPro"), ("Xiaomi", "Xiaomi"),
        ("  Acme   Photo  Works ", "Acme Photo Works"), ("", None), ("   \x00", None), (None, None), ("\x7f\x01", None),
    ],
)
def test_normalise_make(raw: str | None, expected: str | None) -> None:
    assert exif.normalise_make(raw) == expected
    assert exif.normalise_make(expected) == expected  # canonical names are fixed points


def test_paper_make_classes_are_kept() -> None:
    paper = ["Apple", "Canon", "EASTMAN KODAK COMPANY", "FUJIFILM", "NIKON", "OLYMPUS OPTICAL CO.,LTD", "Panasonic", "SONY", "samsung"]
    assert [exif.normalise_make(name) for name in paper] == paper


@pytest.mark.parametrize(
    ("make", "raw", "expected"),
    [
        ("Canon", "Canon EOS 5D Mark III", "Canon EOS 5D Mark III"),
        ("Canon", "Canon Canon EOS 400D", "Canon EOS 400D"),
        ("EASTMAN KODAK COMPANY", "KODAK  KODAK DC280 ", "KODAK DC280"),
        ("NIKON", "NIKON D90", "NIKON D90"),
        ("SONY", "FDMAVICA     ", "FDMAVICA"),
        ("Hewlett-Packard", "hp  photosmart\t735", "hp photosmart 735"),
        ("Canon", "Mark Mark II", "Mark Mark II"),  # a doubled word that is not the make stays
        (None, "E995", "E995"),
        ("NIKON", "", None),
        ("NIKON", None, None),
    ],
)
def test_normalise_model(make: str | None, raw: str | None, expected: str | None) -> None:
    assert exif.normalise_model(make, raw) == expected


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("Apple", "iPhone XR", True), ("Apple", "iPad Pro", False), ("Apple", None, None),
        ("samsung", "SM-G991B", True), ("SAMSUNG", "Galaxy S8", True), ("samsung", "NX300", False), ("samsung", "WB350F", False),
        ("Google", "Pixel 4", True), ("Xiaomi", "22101320G", True), ("HUAWEI", "ELE-L29", True), ("OnePlus", "A065", True),
        ("motorola", "XT1032", True), ("motorola", "moto g(7)", True),
        ("SONY", "ILCE-6400", False), ("SONY", "DSC-WX300", False), ("Sony", "Xperia 1 II", True), ("SONY", "J9110", True), ("SONY", "XQ-AT51", True),
        ("Canon", "Canon EOS RP", False), ("NIKON CORPORATION", "NIKON D90", False), ("FUJIFILM", "X-T3", False),
        ("OLYMPUS IMAGING CORP.", "E-M1MarkII", False), ("Panasonic", "DMC-GH4", False), ("PENTAX", "PENTAX *ist DL", False),
        ("EASTMAN KODAK COMPANY", "KODAK DC280 ZOOM DIGITAL CAMERA", False), ("Hewlett-Packard", "Photosmart M417", False),
        ("EPSON", "PhotoPC 3100Z", False), ("GoPro", "HERO7 Black", False),
        (None, "iPhone XR", None), ("Acme Photo Works", "X1", None),
    ],
)
def test_is_smartphone(make: str | None, model: str | None, expected: bool | None) -> None:
    assert exif.is_smartphone(make, model) is expected


@pytest.mark.parametrize(
    ("attribute", "value", "expected"),
    [
        ("exposure", 1 / 60, "1/60"), ("exposure", 0.0166, "1/60"), ("exposure", 1 / 59, "1/60"), ("exposure", 0.016667, "1/60"),
        ("exposure", 1 / 64, None), ("exposure", 1 / 30, "1/30"), ("exposure", 1 / 1000, "1/1000"), ("exposure", 1 / 2000, None), ("exposure", 1 / 15, None),
        ("aperture", 2.8, "f/2.8"), ("aperture", 2.0, "f/2"), ("aperture", 11.0, "f/11"), ("aperture", 7.2, "f/7.1"),
        ("aperture", 2.91, None), ("aperture", 3.0, None), ("aperture", 1.5, None), ("aperture", 16.0, None),
        ("iso", 100.0, "ISO 100"), ("iso", 255.0, "ISO 250"), ("iso", 3200.0, "ISO 3200"), ("iso", 120.0, None), ("iso", 25.0, None), ("iso", 6400.0, None),
        ("focal_length", 4.0, "4.0mm"), ("focal_length", 3.99, "4.0mm"), ("focal_length", 4.15, "4.2mm"), ("focal_length", 4.25, "4.3mm"),
        ("focal_length", 6.0, "6.0mm"), ("focal_length", 5.9, None), ("focal_length", 17.8, "18mm"), ("focal_length", 200.0, "200mm"), ("focal_length", 7.0, None),
        ("aperture", None, None), ("iso", 0.0, None), ("exposure", float("nan"), None), ("focal_length", -35.0, None),
    ],
)
def test_bin_value(attribute: str, value: float | None, expected: str | None) -> None:
    assert exif.bin_value(attribute, value) == expected


def test_bin_value_unknown_attribute() -> None:
    with pytest.raises(KeyError, match="aperture"):
        exif.bin_value("flash", 1.0)


def test_class_lists_match_the_paper_and_the_card() -> None:
    assert [len(exif.class_labels(attribute)) for attribute in ("exposure", "aperture", "iso", "focal_length")] == [16, 17, 16, 13]
    assert exif.class_labels("exposure")[0] == "1/30" and exif.class_labels("exposure")[-1] == "1/1000"
    assert exif.class_labels("iso")[0] == "ISO 50" and exif.class_labels("iso")[-1] == "ISO 3200"
    for attribute, labels in exif.CLASSES.items():  # every class maps to itself
        assert [exif.bin_value(attribute, value) for value, _ in labels] == [label for _, label in labels]
    card = tomllib.loads((PROJECT / "datasets" / "cameras.toml").read_text(encoding="utf-8"))
    assert {attribute: card["attributes"][attribute] for attribute in exif.BINNED} == {a: list(exif.class_labels(a)) for a in exif.BINNED}
    assert card["binning"]["tolerance"] == exif.TOLERANCE
    assert set(card["attribute_option"].split(": ", 1)[1].replace(" (default)", "").split(", ")) == set(cameras.ATTRIBUTES)
